"""The run view, the Runs screen and quitting, over hand-written run directories."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from textual.widgets import DataTable

from aios_tui.metrics.rundir import RunDir
from aios_tui.metrics.runstate import RunView
from aios_tui.ui.messages import GpuSampled, RunUpdated
from aios_tui.ui.screens.configure import ConfigureScreen
from aios_tui.ui.screens.confirm import ConfirmScreen
from aios_tui.ui.screens.prompt import PromptScreen
from aios_tui.ui.screens.quit import QuitScreen
from aios_tui.ui.screens.run import RunScreen
from aios_tui.ui.screens.runs import RunsScreen
from aios_tui.ui.widgets.event_log import EventLog
from aios_tui.ui.widgets.loss_chart import LossChart
from aios_tui.ui.widgets.run_progress import RunProgress
from aios_tui.ui.widgets.run_stats import RunStats

from pilots import answer, wait_for
from runfiles import T0, add_checkpoint, step_record, write_run

SIZE = (100, 32)


def text_of(widget) -> str:
    return str(widget.render())


def dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def append(run: RunDir, *records: dict, partial: str = "") -> None:
    with open(run.default_metrics, "a") as fh:
        for rec in records:
            fh.write(json.dumps(rec) + "\n")
        fh.write(partial)


async def test_run_view_shows_progress_loss_parameters_memory_and_events(make_app, runs_root):
    vram = {"peak_allocated_bytes": 3 << 30, "device_used_bytes": 7 << 29, "breakdown": {}}
    run = write_run(runs_root, "lora-a", cuda=True, vram=vram)
    app = make_app(attach=run.path)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: isinstance(app.screen, RunScreen) and app.screen.view is not None)
        screen = app.screen
        progress = text_of(screen.query_one(RunProgress))
        assert "RUNNING" in progress and "120/200" in progress and "60%" in progress
        assert "ETA 8s" in progress
        stats = text_of(screen.query_one(RunStats))
        assert "73.7K  5.81%" in stats and "1.3M" in stats
        assert "1.9734" in stats                     # the last loss
        assert "2.3135 @100" in stats                # the last eval loss
        assert "3.0 GiB" in stats and "3.5 GiB" in stats   # estimate: peak and device
        assert "allocated" in stats and "1.0 GiB" in stats  # measured
        assert "NVML" in stats and "2.0 GiB" in stats
        chart = screen.query_one(LossChart)
        assert len(chart._series[0]) == 120 and [p[0] for p in chart._series[1]] == [50, 100]
        events = text_of(screen.query_one(EventLog))
        assert "checkpoint" in events and "step 100" in events


async def test_run_view_follows_new_lines_and_waits_for_a_partial_one(make_app, runs_root):
    run = write_run(runs_root, "lora-b")
    app = make_app(attach=run.path)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: isinstance(app.screen, RunScreen) and app.screen.view is not None)
        screen = app.screen
        rec = step_record(121)
        line = json.dumps(rec)
        append(run, *[step_record(s) for s in range(121, 131)], partial=json.dumps(step_record(131))[:25])
        await wait_for(pilot, lambda: screen.view.step == 130)
        assert "130/200" in text_of(screen.query_one(RunProgress))
        await pilot.pause(0.2)
        assert screen.view.step == 130  # the half-written line is not read yet
        with open(run.default_metrics, "a") as fh:
            fh.write(json.dumps(step_record(131))[25:] + "\n")
        await wait_for(pilot, lambda: screen.view.step == 131)
        assert line  # the first appended line was complete


async def test_the_loss_charts_key_is_in_its_title_not_over_the_curve(make_app, runs_root):
    run = write_run(runs_root, "lora-key")
    app = make_app(attach=run.path)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: isinstance(app.screen, RunScreen) and app.screen.view is not None)
        await pilot.pause()
        chart = app.screen.query_one(LossChart)
        plot = text_of(chart)
        assert "train" not in plot and "eval" not in plot
        # the first steps' loss is the highest: the curve starts in the top left corner
        top_row = plot.splitlines()[1]
        assert any("\u2800" <= ch <= "\u28ff" for ch in top_row.split("\u2524", 1)[1][:4])
        assert "train" in chart.border_title and "eval" in chart.border_title


async def test_stop_and_checkpoint_keys_write_the_request_files(make_app, runs_root):
    run = write_run(runs_root, "lora-c")
    add_checkpoint(run, 100)
    app = make_app(attach=run.path)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: isinstance(app.screen, RunScreen) and app.screen.view is not None)
        screen = app.screen
        await pilot.press("c")
        assert run.checkpoint_request_file.exists()
        await pilot.press("s")
        await answer(pilot, "y")
        assert run.stop_file.exists()
        assert "STOPPING" in text_of(screen.query_one(RunProgress))
        # resume is not offered while the run is live
        assert screen.check_action("resume", ()) is False
        # the engine answers: a stopped event and status
        append(run, {"event": "stopped", "step": 120, "time": T0 + 13})
        status = json.loads(run.status_file.read_text())
        run.status_file.write_text(json.dumps({**status, "state": "stopped"}))
        await wait_for(pilot, lambda: "STOPPED" in text_of(screen.query_one(RunProgress)))
        assert "stopped" in text_of(screen.query_one(EventLog))
        assert screen.check_action("resume", ()) is True
        assert screen.check_action("stop", ()) is False


async def test_export_and_resume_are_offered_once_there_is_a_checkpoint(make_app, runs_root):
    from textual.widgets._footer import FooterKey

    run = write_run(runs_root, "no-ckpt", state="stopped", pid=0)
    app = make_app(attach=run.path)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: isinstance(app.screen, RunScreen) and app.screen.view is not None)
        screen = app.screen

        def offered() -> set[str]:
            return {k.action for k in screen.query(FooterKey) if not k.disabled}

        await pilot.pause()
        assert "runs" in offered() and not {"export", "resume"} & offered()
        await pilot.press("e", "r")
        await pilot.pause()
        assert app.screen is screen and not app._notifications  # nothing to refuse
        add_checkpoint(run, 100)
        await wait_for(pilot, lambda: {"export", "resume"} <= offered(), what="export and resume")


async def test_failed_run_shows_the_error_and_the_engine_log(make_app, runs_root):
    run = write_run(runs_root, "lora-d", state="failed", pid=0)
    run.log_path.write_text("loading model\nTraceback (most recent call last):\nRuntimeError: boom\n")
    app = make_app(attach=run.path)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: isinstance(app.screen, RunScreen) and app.screen.view is not None)
        events = text_of(app.screen.query_one(EventLog))
        assert "failed: CUDA out of memory" in events
        assert "RuntimeError: boom" in events
        assert "FAILED" in text_of(app.screen.query_one(RunProgress))


async def test_an_engine_that_dies_before_writing_status_is_shown_failed(make_app, runs_root):
    path = runs_root / "never-started"
    path.mkdir()
    (path / "config.toml").write_text("version = 1\n")
    (path / "engine.log").write_text("ModuleNotFoundError: No module named 'torch'\n")
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        app.open_run(path, pid=dead_pid())
        await wait_for(pilot, lambda: isinstance(app.screen, RunScreen) and app.screen.view is not None)
        await wait_for(pilot, lambda: "FAILED" in text_of(app.screen.query_one(RunProgress)))
        assert "No module named 'torch'" in text_of(app.screen.query_one(EventLog))


async def test_runs_screen_lists_runs_and_attaches(make_app, runs_root):
    old = write_run(runs_root, "old-full", state="finished", steps=200, pid=0, method="full")
    old.write_status(started_at=T0 - 60)  # the run begun last comes first
    write_run(runs_root, "live-lora")
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("ctrl+n")
        await wait_for(pilot, lambda: isinstance(app.screen, RunsScreen))
        table = app.screen.query_one(DataTable)
        rows = [table.get_row_at(i) for i in range(table.row_count)]
        assert rows[0][:5] == ["live-lora", "running", "120/200", "1.9734", "1h00m"]
        assert rows[1][:3] == ["old-full", "finished", "200/200"]
        await pilot.press("down", "enter")
        await wait_for(pilot, lambda: isinstance(app.screen, RunScreen) and app.screen.view is not None)
        assert app.screen.run.name == "old-full"
        assert "FINISHED" in text_of(app.screen.query_one(RunProgress))
        await pilot.press("ctrl+n")  # the form's key for the list works from a run's view too
        await wait_for(pilot, lambda: isinstance(app.screen, RunsScreen))
        await pilot.press("a")
        await wait_for(pilot, lambda: isinstance(app.screen, RunScreen) and app.screen.view is not None)
        await pilot.press("escape")
        await pilot.pause()
        assert isinstance(app.screen, ConfigureScreen)
        # the configure screen now offers to go back to the run
        await pilot.press("ctrl+b")
        await wait_for(pilot, lambda: isinstance(app.screen, RunScreen) and app.screen.view is not None)
        await pilot.press("escape")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfigureScreen))
        await pilot.press("f2")  # the same, where tmux keeps ctrl+b for itself
        await wait_for(pilot, lambda: isinstance(app.screen, RunScreen) and app.screen.view is not None)


async def test_escape_closes_the_keys_panel_before_leaving_the_run(make_app, runs_root):
    run = write_run(runs_root, "lora-a")
    app = make_app(attach=run.path)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: isinstance(app.screen, RunScreen) and app.screen.view is not None)
        app.action_show_help_panel()
        await wait_for(pilot, lambda: app.screen.query("HelpPanel"), what="the keys panel")
        await pilot.press("escape")
        await wait_for(pilot, lambda: not app.screen.query("HelpPanel"), what="the panel to close")
        assert isinstance(app.screen, RunScreen)
        await pilot.press("escape")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfigureScreen))


async def test_runs_screen_stop_and_resume_guards(make_app, runs_root):
    live = write_run(runs_root, "live-one")
    done = write_run(runs_root, "done-one", state="finished", steps=200, pid=0)
    add_checkpoint(live, 100)
    add_checkpoint(done, 200)  # resume is offered only from a checkpoint
    live.write_status(started_at=T0 + 10)  # listed first
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        app.open_runs()
        await wait_for(pilot, lambda: isinstance(app.screen, RunsScreen) and app.screen.runs)
        offered = lambda: {a for a in ("stop", "resume", "export") if app.screen.check_action(a, ())}
        assert "stop" in offered() and "resume" not in offered()  # live: stop, not resume
        await pilot.press("r")
        await pilot.pause()
        assert not app._notifications and isinstance(app.screen, RunsScreen)
        await pilot.press("s")
        await answer(pilot, "y")
        assert live.stop_file.exists()
        await pilot.press("down")  # finished: resume, not stop
        await pilot.pause()
        assert "resume" in offered() and "stop" not in offered()
        await pilot.press("s")
        await pilot.pause()
        assert isinstance(app.screen, RunsScreen)  # nothing to ask about a finished run
        assert not done.stop_file.exists()
        await pilot.press("r")  # asks how far to train
        await wait_for(pilot, lambda: isinstance(app.screen, PromptScreen))
        await pilot.press("5", "0", "enter")  # not more than it ran: refused, and asked again
        await pilot.pause()
        assert isinstance(app.screen, PromptScreen)
        assert "more than the 200 steps" in str(app.screen.query_one("#prompt-problem").render())


async def test_quit_with_a_live_run_asks_and_can_leave_it_training(make_app, runs_root):
    run = write_run(runs_root, "keep-going")
    app = make_app(attach=run.path)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: isinstance(app.screen, RunScreen) and app.screen.view is not None)
        await pilot.press("ctrl+q")
        await pilot.pause()
        assert isinstance(app.screen, QuitScreen)
        await pilot.press("c")  # cancel: still here
        await pilot.pause()
        assert isinstance(app.screen, RunScreen)
        await pilot.press("ctrl+q")
        await pilot.pause()
        await pilot.press("l")
        await pilot.pause()
    assert app.farewell == ["keep-going keeps training; re-attach with: aios-tui attach keep-going"]
    assert not run.stop_file.exists()


async def test_leaving_a_run_under_a_relative_runs_root_names_its_whole_path(make_app, tmp_path,
                                                                            monkeypatch):
    """Under the default artifacts/runs, a run's name finds it only from the directory the
    console ran in; after a dropped SSH link the shell starts elsewhere."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("AIOS_TUI_RUNS")
    run = write_run(tmp_path / "artifacts" / "runs", "here")
    app = make_app(attach=run.path, runs_root=None)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: isinstance(app.screen, RunScreen) and app.screen.view is not None)
        await pilot.press("ctrl+q")
        await wait_for(pilot, lambda: isinstance(app.screen, QuitScreen))
        await pilot.press("l")
        await pilot.pause()
    where = str((tmp_path / "artifacts" / "runs" / "here").resolve())
    assert app.farewell == [f"here keeps training; re-attach with: aios-tui attach {where}"]


@pytest.mark.parametrize("name, how, farewell", [
    ("stop-me", {}, "asked stop-me to stop (it saves a checkpoint first); resume with: "
                    "aios-tui train --resume {path}"),
    # an HRM ACTv1 run is resumed by the command that trains it, as `tail` and the CLI say
    ("hrm-me", {"method": "hrm-lora"}, "asked hrm-me to stop (it saves a checkpoint first); resume with: "
                                       "aios-tui train-actv1 --resume {path}"),
    # a run still loading its model has no step to save
    ("loading", {"steps": 0, "state": "starting"},
     "asked loading to stop (it has trained no step yet, so no checkpoint is saved)"),
])
async def test_quit_and_stop(make_app, runs_root, name, how, farewell):
    run = write_run(runs_root, name, **how)
    app = make_app(attach=run.path)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: isinstance(app.screen, RunScreen) and app.screen.view is not None)
        await pilot.press("ctrl+q")
        await pilot.pause()
        await pilot.press("s")
        await pilot.pause()
    assert run.stop_file.exists()
    assert app.farewell == [farewell.format(path=run.path)]


async def test_quit_without_live_runs_does_not_ask(make_app, runs_root):
    run = write_run(runs_root, "all-done", state="finished", steps=200, pid=0)
    app = make_app(attach=run.path)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: isinstance(app.screen, RunScreen) and app.screen.view is not None)
        await pilot.press("ctrl+q")
        await pilot.pause()
    assert app.farewell == []


def test_high_rate_messages_replace_stale_copies():
    a = RunView("/r/a", "a", "running", {}, None, None)
    b = RunView("/r/b", "b", "running", {}, None, None)
    assert RunUpdated(a).can_replace(RunUpdated(a))
    assert not RunUpdated(a).can_replace(RunUpdated(b))
    assert GpuSampled(None, []).can_replace(GpuSampled(None, []))
    assert not GpuSampled(None, []).can_replace(RunUpdated(a))


def test_console_imports_no_torch_transformers_or_peft():
    code = ("import sys, aios_tui.ui.app, aios_tui.commands.console, aios_tui.commands.attach, "
            "aios_tui.commands.tail, aios_tui.commands.runs\n"
            "bad = [m for m in ('torch', 'transformers', 'peft') if m in sys.modules]\n"
            "print(','.join(bad))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == ""


async def test_a_failing_background_task_is_reported_and_the_console_carries_on(make_app):
    from aios_tui.ui.gpu_source import StaticGpu
    from console_fixtures import fixed_gpu

    class FailsLater(StaticGpu):
        calls = 0

        def latest(self):
            self.calls += 1
            if self.calls > 1:
                raise RuntimeError("NVML exploded")
            return super().latest()

    base = fixed_gpu()
    app = make_app(gpu=FailsLater(base.snapshot, base._history), gpu_interval=0.05)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: any("NVML exploded" in str(n.message) for n in app._notifications))
        await pilot.press("ctrl+n")
        await wait_for(pilot, lambda: isinstance(app.screen, RunsScreen))


async def test_measured_peaks_show_beside_the_estimate(make_app, runs_root):
    vram = {"peak_allocated_bytes": 3 << 30, "device_used_bytes": 7 << 29}
    run = write_run(runs_root, "measured", cuda=True, vram=vram, state="finished", pid=0, events=[
        {"event": "vram_measured", "device": "cuda:0", "peak_allocated": 4 << 30,
         "peak_reserved": 5 << 30, "nvml_peak": 6 << 30, "estimate_peak_allocated": 3 << 30}])
    app = make_app(attach=run.path)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: isinstance(app.screen, RunScreen) and app.screen.view is not None)
        stats = text_of(app.screen.query_one(RunStats))
        rows = {l[:12].strip(): l[12:].strip() for l in stats.splitlines()}
        assert rows["est. peak"] == "3.0 GiB"
        assert rows["peak"] == "4.0 GiB" and rows["reserved"] == "5.0 GiB" and rows["NVML"] == "6.0 GiB"
        assert rows["est. error"] == "-25% of peak"
        assert "vram_measured" in text_of(app.screen.query_one(EventLog))


async def test_a_gpu_runs_figures_fit_80x24_and_all_show_when_taller(make_app, runs_root):
    """A GPU run has more figures than 80x24 has rows for: those the title line repeats go first,
    the memory measured beside the estimate stays whole, and a taller terminal shows them all."""
    vram = {"peak_allocated_bytes": 3 << 30, "device_used_bytes": 7 << 29}
    events = [{"event": "checkpoint", "step": s, "path": f"checkpoints/step-{s:06d}", "time": T0 + s}
              for s in (20, 40, 60)]
    run = write_run(runs_root, "gpu-short", cuda=True, vram=vram, events=events)
    app = make_app(attach=run.path)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: isinstance(app.screen, RunScreen) and app.screen.view is not None)
        stats, main = app.screen.query_one(RunStats), app.screen.query_one("#run-main")
        await wait_for(pilot, lambda: stats.region.bottom <= main.region.bottom, what="the figures to fit")
        labels = [line[:12].strip() for line in text_of(stats).splitlines()]
        assert {"loss", "eval loss", "tokens/s", "est. peak", "allocated", "NVML", "est. error"} <= set(labels)
        assert "model" not in labels and "method" not in labels
        await pilot.resize_terminal(120, 40)
        await wait_for(pilot, lambda: "model" in text_of(stats), what="every figure at 120x40")
        assert "method" in text_of(stats) and "est. error" in text_of(stats)


async def test_run_view_actions_are_in_the_palette(make_app, runs_root):
    run = write_run(runs_root, "palette")
    add_checkpoint(run, 100)
    app = make_app(attach=run.path)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: isinstance(app.screen, RunScreen) and app.screen.view is not None)
        titles = {c.title for c in app.get_system_commands(app.screen)}
        for b in RunScreen.BINDINGS:
            assert (b.tooltip in titles) == (b.action != "resume"), b.action  # resume: not while live
        assert "Quit the console" in titles
        app.open_runs()
        await wait_for(pilot, lambda: isinstance(app.screen, RunsScreen))
        titles = {c.title for c in app.get_system_commands(app.screen)}
        # not the list's cursor keys; resume: the selected run is live
        assert [b.action for b in RunsScreen.BINDINGS if b.show and b.tooltip not in titles] == ["resume"]


def test_resuming_to_more_steps_shows_the_new_total_at_once(runs_root, monkeypatch):
    from aios_tui.ui import runctl

    run = write_run(runs_root, "done", state="finished", steps=20, pid=0)
    add_checkpoint(run, 20)
    monkeypatch.setattr(runctl, "start_detached", lambda args, path, **handed_down: 999999)
    runctl.resume_run(run, steps=2000)
    status = run.read_status()
    assert status["state"] == "starting" and status["total_steps"] == 2000


async def test_no_eta_until_a_resumed_run_logs_a_step_of_its_own(make_app, runs_root):
    resumed = {"event": "resumed", "step": 120, "total_steps": 300, "pid": 1,
               "checkpoint": "checkpoints/step-000120", "changes": [], "time": T0 + 100}
    run = write_run(runs_root, "again", state="starting", events=[resumed])
    app = make_app(attach=run.path)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: isinstance(app.screen, RunScreen) and app.screen.view is not None)
        progress = app.screen.query_one(RunProgress)
        assert "STARTING" in text_of(progress)
        assert "ETA" not in text_of(progress) and "took" not in text_of(progress)
        status = json.loads(run.status_file.read_text())
        run.status_file.write_text(json.dumps({**status, "state": "running"}))
        await wait_for(pilot, lambda: "RUNNING" in text_of(progress), what="running")
        assert "ETA" not in text_of(progress)  # the last step is the previous session's
        append(run, {**step_record(121, 300), "time": T0 + 101})
        await wait_for(pilot, lambda: "121/" in text_of(progress), what="the new step")
        assert "ETA 18s" in text_of(progress)


async def test_stopping_a_run_before_its_first_step_says_nothing_is_saved(make_app, runs_root):
    run = write_run(runs_root, "just-started", steps=0, state="starting")
    app = make_app(attach=run.path)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: isinstance(app.screen, RunScreen) and app.screen.view is not None)
        await pilot.press("s")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen), what="the question")
        assert app.screen.question == "Stop just-started before its first step?"
        await answer(pilot, "y")
        assert run.stop_file.exists()
        said = [str(n.message) for n in app._notifications if "stopping" in str(n.message)]
        assert said and "before its first step" in said[-1] and "nothing will be saved" in said[-1]
        assert "checkpoint first" not in said[-1]
        run.stop_file.unlink()
        app.open_runs()
        await wait_for(pilot, lambda: isinstance(app.screen, RunsScreen) and app.screen.runs)
        await pilot.press("s")
        await answer(pilot, "y")
        assert run.stop_file.exists()
        said = [str(n.message) for n in app._notifications if "stop" in str(n.message)]
        assert "nothing will be saved" in said[-1]


async def test_quitting_during_an_export_says_it_waits_for_it(make_app, runs_root, monkeypatch, capsys):
    import threading

    from aios_tui.ui import runctl

    run = write_run(runs_root, "exporting", state="stopped", pid=0)
    release = threading.Event()
    monkeypatch.setattr(runctl, "export_run",
                        lambda run, merge=False, timeout=3600, step=None: release.wait(10) and "done\n")
    app = make_app()

    async def quit_during_export(pilot) -> None:
        await pilot.pause()
        assert runctl.claim_export(run)
        app.start_export(run, False, 100)
        await pilot.press("ctrl+q")
        await wait_for(pilot, lambda: isinstance(app.screen, QuitScreen), what="the question")
        said = " ".join(str(w.render()) for w in app.screen.query("Label, Static"))
        assert "Export still running: exporting" in said and "Ctrl-C abandons it" in said
        await pilot.press("q")

    try:
        await app.run_async(headless=True, size=SIZE, auto_pilot=quit_during_export)
        out = capsys.readouterr().out
        assert "waiting for the export of exporting to finish (Ctrl-C abandons it)" in out
    finally:
        release.set()
    await wait_for_release(run)


async def wait_for_release(run) -> None:
    import asyncio

    from aios_tui.ui import runctl
    for _ in range(200):
        if not runctl.export_running(run):
            return
        await asyncio.sleep(0.05)
    raise AssertionError("the export was never released")


async def test_the_quit_dialog_for_live_runs_mentions_a_running_export(make_app, runs_root):
    from aios_tui.ui import runctl

    run = write_run(runs_root, "both")
    app = make_app(attach=run.path)
    assert runctl.claim_export(run)
    try:
        async with app.run_test(size=SIZE) as pilot:
            await wait_for(pilot, lambda: isinstance(app.screen, RunScreen) and app.screen.view is not None)
            await pilot.press("ctrl+q")
            await wait_for(pilot, lambda: isinstance(app.screen, QuitScreen), what="the question")
            said = " ".join(str(w.render()) for w in app.screen.query("Label, Static"))
            assert "Run still training: both" in said
            assert "export of both is still running: quitting waits for it to finish" in said
            assert app.export_wait_line() == "waiting for the export of both to finish (Ctrl-C abandons it)..."
            await pilot.press("c")
    finally:
        runctl.release_export(run)


async def test_the_loss_chart_is_built_only_for_new_points_and_at_most_once_a_wait(
        make_app, runs_root, monkeypatch):
    from textual_plotext import PlotextPlot

    from aios_tui.ui.widgets import loss_chart

    built: list[int] = []  # the newest step of each plot the chart built
    build = PlotextPlot.render

    def counted(self):
        built.append(self._series[0][-1][0] if self._series[0] else 0)
        return build(self)

    monkeypatch.setattr(PlotextPlot, "render", counted)
    monkeypatch.setattr(loss_chart, "REDRAW_S", 3600.0, raising=False)  # the wait outlasts the test
    run = write_run(runs_root, "lora-live")
    app = make_app(attach=run.path)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: isinstance(app.screen, RunScreen) and built and built[-1] == 120)
        await pilot.pause(0.2)  # the layout settles (a box grown by the first view resizes the chart)
        screen, before = app.screen, len(built)
        # a heartbeat, no new points: views come, the chart is not built again
        status = json.loads(run.status_file.read_text())
        for beat in range(1, 4):
            run.status_file.write_text(json.dumps({**status, "heartbeat": T0 + 100 + beat}))
            await wait_for(pilot, lambda: screen.view.status.get("heartbeat") == T0 + 100 + beat)
            await pilot.pause()
        assert len(built) == before
        # new points in a burst, right after a drawing: kept for the end of the wait
        for step in range(121, 126):
            append(run, step_record(step))
            await wait_for(pilot, lambda: screen.view.step == step)
            await pilot.pause()
        assert len(built) == before and screen.query_one(LossChart)._series[0][-1][0] == 125
        # a new size cannot wait: built again, with the newest points
        await pilot.resize_terminal(90, 26)
        await wait_for(pilot, lambda: len(built) > before)
        assert built[before:] == [125]
