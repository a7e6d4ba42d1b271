"""Exporting a checkpoint from the run view: e lists them (loss, eval, best), enter exports the
highlighted one's adapter (an older one beside the latest's export), m a merged model."""

from __future__ import annotations

import json

import pytest

from aios_tui.ui.screens.checkpoints import CheckpointPicker, checkpoint_infos, describe
from aios_tui.ui.screens.run import RunScreen

from pilots import wait_for


def test_infos_are_newest_first_with_the_loss_at_each_step(tmp_path):
    paths = []
    for step in (2, 4, 6):
        path = tmp_path / f"step-{step:06d}"
        path.mkdir()
        (path / "COMPLETE").touch()
        paths.append(path)
    infos = checkpoint_infos(paths, loss=((1, 5.0), (3, 4.0), (5, 3.0), (6, 2.5)), eval_loss=((4, 3.9), (6, 4.1)))
    assert [(i.step, i.loss, i.eval_loss) for i in infos] == [(6, 2.5, 4.1), (4, 4.0, 3.9), (2, 5.0, None)]
    assert describe(infos[1], best_eval=3.9).endswith("best") and len(describe(infos[1], 3.9)) < 64
    assert "best" not in describe(infos[0], best_eval=3.9)


@pytest.fixture
def finished_run(runs_root):
    from aios_tui.config import resolve
    from aios_tui.engine.train import run_training

    cfg = resolve(overrides={"model": "tiny", "steps": 6, "save_every": 2, "eval_every": 2, "keep_last": 3,
                             "batch_size": 2, "max_seq_len": 32, "device": "cpu", "use_peft": True, "lora_r": 4})
    result = run_training(cfg, runs_root / "picked", progress="none")
    assert result.state == "finished"
    return result.run_dir


@pytest.mark.slow
async def test_pick_a_checkpoint_and_export_its_adapter(make_app, finished_run):
    app = make_app(attach=finished_run)
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_for(pilot, lambda: isinstance(app.screen, RunScreen) and app.screen.view is not None,
                       what="the run view")
        await pilot.press("e")
        await wait_for(pilot, lambda: isinstance(app.screen, CheckpointPicker), what="the picker")
        picker = app.screen
        assert [i.step for i in picker.infos] == [6, 4, 2]
        assert all(i.eval_loss is not None for i in picker.infos)
        await pilot.press("down", "enter")  # step 4
        await wait_for(pilot, lambda: isinstance(app.screen, RunScreen), what="back to the run view")
        await wait_for(pilot, lambda: any("export of picked" in str(n.title) for n in app._notifications),
                       120, "the export")
        done = [n for n in app._notifications if "export of picked" in str(n.title)][-1]
        assert done.severity == "information", done.message
        out = finished_run / "adapter-step-000004"
        assert (out / "adapter_config.json").is_file(), (done.message, sorted(p.name for p in finished_run.iterdir()))
        assert json.loads((out / "export.json").read_text())["step"] == 4
        assert not (finished_run / "adapter").exists()  # the latest checkpoint's export is left alone

        # m on the latest: a merged model where `aios-tui export --merge` puts it
        app._notifications.clear()
        await pilot.press("e")
        await wait_for(pilot, lambda: isinstance(app.screen, CheckpointPicker), what="the picker again")
        await pilot.press("m")
        await wait_for(pilot, lambda: any("export of picked" in str(n.title) for n in app._notifications),
                       120, "the merged export")
        done = [n for n in app._notifications if "export of picked" in str(n.title)][-1]
        assert done.severity == "information", done.message
    merged = finished_run / "merged"
    assert (merged / "config.json").is_file() and json.loads((merged / "export.json").read_text())["step"] == 6


async def test_a_run_without_checkpoints_is_offered_no_export_or_resume(make_app, runs_root):
    from textual.widgets import DataTable

    from aios_tui.metrics.rundir import RunDir
    from aios_tui.ui.screens.checkpoints import infos_for_run
    from aios_tui.ui.screens.runs import RunsScreen

    path = runs_root / "empty"
    path.mkdir()
    (path / "config.toml").write_text("version = 1\n")
    app = make_app(attach=path)
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_for(pilot, lambda: isinstance(app.screen, RunScreen), what="the run view")
        assert not app.screen.check_action("export", ())  # the run view does not offer it
        app.open_runs()  # nor does the runs list, for that row
        await wait_for(pilot, lambda: isinstance(app.screen, RunsScreen)
                       and app.screen.query_one(DataTable).row_count == 1, what="the runs list")
        runs = app.screen
        assert not runs.check_action("export", ()) and not runs.check_action("resume", ())
        await pilot.press("e", "r")
        await pilot.pause(0.2)
        assert app.screen is runs
        # the picker itself still says why, should a run lose its checkpoints while it is open
        app.push_screen(CheckpointPicker("empty", infos_for_run(RunDir(path))))
        await wait_for(pilot, lambda: isinstance(app.screen, CheckpointPicker)
                       and app.screen.query("#no-checkpoints"), what="the picker")
        assert "no complete checkpoint" in str(app.screen.query_one("#no-checkpoints").render())
        await pilot.press("enter", "m")  # nothing to choose: nothing happens
        assert isinstance(app.screen, CheckpointPicker)
        await pilot.press("escape")
        await wait_for(pilot, lambda: app.screen is runs, what="the runs list again")
        assert not any("export" in str(n.title) for n in app._notifications)


@pytest.mark.slow
async def test_runs_screen_exports_through_the_same_picker(make_app, finished_run):
    from aios_tui.ui.screens.runs import RunsScreen

    app = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("ctrl+n")
        await wait_for(pilot, lambda: isinstance(app.screen, RunsScreen), what="the runs screen")
        await pilot.press("e")
        await wait_for(pilot, lambda: isinstance(app.screen, CheckpointPicker), what="the picker")
        assert [i.step for i in app.screen.infos] == [6, 4, 2]
        assert app.screen.infos[0].eval_loss is not None  # read from the run's metrics
        await pilot.press("enter")  # the latest: where `aios-tui export` puts it
        await wait_for(pilot, lambda: any("export of picked" in str(n.title) for n in app._notifications),
                       120, "the export")
        done = [n for n in app._notifications if "export of picked" in str(n.title)][-1]
        assert done.severity == "information", done.message
    assert json.loads((finished_run / "adapter" / "export.json").read_text())["step"] == 6


def test_export_names_the_step_and_leaves_the_folder_to_the_export(monkeypatch, tmp_path):
    """The chosen step is always named (a checkpoint saved meanwhile must not be exported
    instead); the folder is chosen when the export writes, from what is newest then."""
    import subprocess

    from aios_tui.metrics.rundir import RunDir
    from aios_tui.ui import runctl

    run = RunDir(tmp_path / "r")
    run.path.mkdir()
    seen = []
    monkeypatch.setattr(runctl.subprocess, "run", lambda argv, **kw: seen.append(argv) or
                        subprocess.CompletedProcess(argv, 0, "done\n", ""))
    runctl.export_run(run, merge=True, step=4)
    argv = seen[0]
    assert argv[argv.index("--checkpoint") + 1] == "4" and "--merge" in argv and "--out" not in argv


async def test_the_export_result_reaches_the_user_who_left_the_run_view(make_app, runs_root, monkeypatch):
    import time

    from aios_tui.ui import runctl
    from aios_tui.ui.screens.configure import ConfigureScreen

    from runfiles import add_checkpoint, write_run

    run = write_run(runs_root, "leaving", state="stopped", pid=0)
    add_checkpoint(run, 100)

    def slow_export(run, merge=False, timeout=3600, step=None):
        time.sleep(0.5)
        return f"exported step {step} to {run.path}/adapter\n"

    monkeypatch.setattr(runctl, "export_run", slow_export)
    app = make_app(attach=run.path)
    async with app.run_test(size=(120, 40), notifications=True) as pilot:
        await wait_for(pilot, lambda: isinstance(app.screen, RunScreen) and app.screen.view is not None,
                       what="the run view")
        await pilot.press("e")
        await wait_for(pilot, lambda: isinstance(app.screen, CheckpointPicker), what="the picker")
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, RunScreen), what="back to the run view")
        await pilot.press("escape")  # off to the form before the export ends
        await wait_for(pilot, lambda: isinstance(app.screen, ConfigureScreen), what="the form")
        await wait_for(pilot, lambda: any(n.title == "export of leaving" for n in app._notifications),
                       10, "the export's result")
        done = [n for n in app._notifications if n.title == "export of leaving"][-1]
        assert done.severity == "information" and "exported step 100" in done.message
        assert not runctl.export_running(run)


async def test_an_export_says_it_runs_until_it_ends_and_is_not_started_twice(make_app, runs_root, monkeypatch):
    """A merge takes long: the runs list and the run view say it is under way for as long as it
    runs (not just in a notice that times out), and e does not start a second one meanwhile."""
    import threading

    from aios_tui.ui import runctl
    from aios_tui.ui.screens.runs import RunsScreen
    from aios_tui.ui.widgets.event_log import EventLog

    from runfiles import add_checkpoint, write_run

    run = write_run(runs_root, "merging", state="stopped", pid=0)
    run.config_toml.write_text("version = 1\n[peft]\nuse_peft = true\n")  # an adapter: m merges it
    add_checkpoint(run, 100)
    release, started = threading.Event(), []

    def slow_export(run, merge=False, timeout=3600, step=None):
        started.append((merge, step))
        release.wait(30)
        return f"model written to {run.path}/merged\n"

    monkeypatch.setattr(runctl, "export_run", slow_export)
    app = make_app()
    try:
        async with app.run_test(size=(100, 30), notifications=True) as pilot:
            await pilot.press("ctrl+n")
            await wait_for(pilot, lambda: isinstance(app.screen, RunsScreen), what="the runs screen")
            runs = app.screen
            await pilot.press("e")
            await wait_for(pilot, lambda: isinstance(app.screen, CheckpointPicker), what="the picker")
            await pilot.press("m")
            await wait_for(pilot, lambda: started, what="the export")
            line = "exporting a merged model of merging (step 100)..."
            assert str(runs.query_one("#runs-empty").render()) == line
            app.clear_notifications()  # as if the notice had timed out: the line stays
            await pilot.press("e")
            await pilot.pause(0.2)
            assert app.screen is runs and len(started) == 1
            assert any("already running" in str(n.message) for n in app._notifications)
            assert str(runs.query_one("#runs-empty").render()) == line
            await pilot.press("a")  # the run's own view says it too
            await wait_for(pilot, lambda: isinstance(app.screen, RunScreen) and app.screen.view is not None,
                           what="the run view")
            assert line in str(app.screen.query_one(EventLog).render())
            assert app.screen.check_action("export", ()) is None
            release.set()
            await wait_for(pilot, lambda: any(n.title == "export of merging" for n in app._notifications),
                           10, "the export's result")
            assert line not in str(app.screen.query_one(EventLog).render())
            assert app.screen.check_action("export", ()) is True
            await pilot.press("n")
            await wait_for(pilot, lambda: isinstance(app.screen, RunsScreen), what="the runs screen")
            assert str(app.screen.query_one("#runs-empty").render()) == ""
    finally:
        release.set()
    assert started == [(True, 100)]
