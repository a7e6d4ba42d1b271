"""The console starts a real tiny CPU run, watches it, asks for a checkpoint, stops it, resumes it,
stops it again and exports its adapter: all by keys, all through the run directory.

The run is long (it is never meant to finish) so that every step of the test happens while it
trains, however fast the machine."""

from __future__ import annotations

import json
import os
import signal

import pytest

from aios_tui.metrics.rundir import RunDir, pid_alive
from aios_tui.ui.screens.checkpoints import CheckpointPicker
from aios_tui.ui.screens.run import RunScreen
from aios_tui.ui.widgets.event_log import EventLog
from aios_tui.ui.widgets.loss_chart import LossChart
from aios_tui.ui.widgets.run_progress import RunProgress
from aios_tui.ui.widgets.run_stats import RunStats

from pilots import answer, wait_for

pytestmark = pytest.mark.slow


@pytest.fixture
def engines():
    """Engine pids a test started; any still alive at the end (a failed test) is stopped."""
    pids: list[int] = []
    yield pids
    for pid in pids:
        if pid_alive(pid):
            os.kill(pid, signal.SIGTERM)


def field(app, name: str):
    return app.screen.query_one(f"#f-{name}")


async def test_start_watch_stop_and_resume_a_tiny_cpu_run(make_app, runs_root, engines):
    app = make_app(poll_interval=0.1)
    async with app.run_test(size=(120, 40)) as pilot:
        # Configure by keys: a LoRA run on the tiny model, small enough to be quick.
        tabs = app.screen.query_one("#form-tabs")
        for name, tab, text in (("steps", "train", "5000"), ("batch_size", "train", "2"),
                                ("eval_every", "train", "0"), ("save_every", "train", "0"),
                                ("warmup_steps", "train", "2"), ("max_seq_len", "model", "32"),
                                ("run_name", "train", "console-run")):
            tabs.active = f"tab-{tab}"
            await pilot.pause()
            app.screen.set_focus(None)
            field(app, name).focus()
            await pilot.press(*text)
        tabs.active = "tab-peft"
        await pilot.pause()
        field(app, "use_peft").focus()
        await pilot.press("space")
        await pilot.pause()
        cfg = app.screen.form.result.config
        assert cfg is not None and cfg.peft.use_peft and cfg.train.steps == 5000

        await pilot.press("ctrl+r")
        await wait_for(pilot, lambda: isinstance(app.screen, RunScreen), 90, "the run view")
        screen = app.screen
        run = RunDir(runs_root / "console-run")
        assert run.config_toml.is_file()
        engine_pid = app.watched[run.path.resolve()]
        engines.append(engine_pid)
        assert pid_alive(engine_pid)

        # Steps and loss appear as the engine logs them.
        await wait_for(pilot, lambda: screen.view and screen.view.step and screen.view.step >= 3, 120, "the first steps")
        assert "RUNNING" in str(screen.query_one(RunProgress).render())
        assert screen.view.last["loss"] > 0
        stats = str(screen.query_one(RunStats).render())
        assert "%" in stats and "CPU RSS" in stats
        header = screen.view.header
        assert header["method"] == "lora" and 0 < header["parameters"]["trainable_pct"] < 100

        # Checkpoint now: the engine saves one and keeps going.
        await pilot.press("c")  # the engine takes (and deletes) the CHECKPOINT file at its next step
        await wait_for(pilot, lambda: any(e.get("event") == "checkpoint" for e in screen.view.events), 60,
                       "the requested checkpoint")
        assert screen.view.live

        # Stop: the engine saves a checkpoint and exits.
        await pilot.press("s")
        await answer(pilot, "y")
        await wait_for(pilot, lambda: screen.view.state == "stopped", 60, "the run to stop")
        stopped_at = screen.view.step
        assert stopped_at < 5000
        assert run.latest_checkpoint() is not None
        assert "stopped" in str(screen.query_one(EventLog).render())
        await wait_for(pilot, lambda: not pid_alive(engine_pid), 30, "the engine to exit")

        # Resume: a new engine continues from the checkpoint; then stop it again.
        await pilot.press("r")
        engines.append(app.watched[run.path.resolve()])
        assert engines[-1] != engine_pid
        await wait_for(pilot, lambda: any(e.get("event") == "resumed" for e in screen.view.events), 120,
                       "the resumed event")
        await wait_for(pilot, lambda: screen.view.live and screen.view.step > stopped_at + 2, 120,
                       "steps after the resume")
        resumed = [e for e in screen.view.events if e.get("event") == "resumed"][-1]
        assert resumed["step"] == stopped_at
        await pilot.press("s")
        await answer(pilot, "y")
        await wait_for(pilot, lambda: screen.view.state == "stopped", 60, "the second stop")
        steps = [p[0] for p in screen.query_one(LossChart)._series[0]]
        assert steps == sorted(steps) and len(set(steps)) == len(steps) and steps[-1] == screen.view.step

        # Export: `aios-tui export` runs as a child process; the console reports how it went.
        await pilot.press("e")  # the checkpoint picker, the latest highlighted
        await wait_for(pilot, lambda: isinstance(app.screen, CheckpointPicker), 10, "the checkpoint picker")
        await pilot.press("enter")
        await wait_for(pilot, lambda: any("export of console-run" in str(n.title) for n in app._notifications),
                       120, "the export")
        done = [n for n in app._notifications if "export of console-run" in str(n.title)][-1]
        assert done.severity == "information", done.message
        assert (run.path / "adapter" / "adapter_config.json").is_file()
    records = [json.loads(l) for l in run.default_metrics.read_text().splitlines()]
    assert [r["event"] for r in records if r.get("event") in ("started", "stopped", "resumed", "finished")] == \
        ["started", "stopped", "resumed", "stopped"]
