"""Run directories whose status.json is malformed, half-written or gone: the Runs screen, the
run view and the CLI keep working and say what they cannot read."""

from __future__ import annotations

import json
import os
import threading

import pytest
from textual.widgets import DataTable

from aios_tui.metrics.rundir import RunDir
from aios_tui.metrics.summary import summarize
from aios_tui.ui import runctl
from aios_tui.ui.screens import run as run_screen_module
from aios_tui.ui.screens import runs as runs_screen_module
from aios_tui.ui.screens.checkpoints import CheckpointPicker
from aios_tui.ui.screens.run import RunScreen
from aios_tui.ui.screens.runs import RunsScreen
from aios_tui.ui.widgets.event_log import EventLog
from aios_tui.ui.widgets.run_progress import RunProgress

from pilots import wait_for
from runfiles import write_run

SIZE = (100, 32)

# name -> status.json bytes; the value each shows in the STATE column
BAD = {
    "a-list": (b"[1, 2]", "unreadable"),
    "b-null": (b"null", "unreadable"),
    "c-text-loss": (b'{"state": "stopped", "last_loss": "x"}', "stopped"),
    "d-text-start": (b'{"started_at": "yesterday"}', "unknown"),
    "e-text-pid": (b'{"state": "running", "pid": "abc"}', "failed"),
    "f-int-state": (b'{"state": 5}', "unknown"),
    "g-empty": (b"", "unreadable"),
    "h-truncated": (b'{"state": "runn', "unreadable"),
    "i-binary": (b"\x00\xff\xfe\x81garbage", "unreadable"),
    "j-huge-pid": (b'{"state": "running", "pid": 123456789012345678901234567890}', "failed"),
    "k-bool-pid": (b'{"state": "running", "pid": true}', "failed"),
}


def bad_run(root, name: str, content: bytes, log: str | None = None) -> RunDir:
    run = RunDir(root / name)
    run.path.mkdir()
    run.config_toml.write_text("version = 1\n")
    run.status_file.write_bytes(content)
    if log is not None:
        run.log_path.write_text(log)
    return run


def rows_of(table: DataTable) -> dict[str, list]:
    return {table.get_row_at(i)[0]: table.get_row_at(i) for i in range(table.row_count)}


def row_index(screen: RunsScreen, name: str) -> int:
    return next(i for i, r in enumerate(screen.runs) if r.name == name)


async def select(pilot, screen: RunsScreen, name: str) -> None:
    screen.query_one(DataTable).move_cursor(row=row_index(screen, name))
    await pilot.pause()


def notices(app) -> list[str]:
    return [str(n.message) for n in app._notifications]


def test_summaries_treat_wrong_types_as_absent(tmp_path):
    for name, (content, state) in BAD.items():
        s = summarize(bad_run(tmp_path, name, content))
        assert s.state == state, name
        assert s.loss is None and s.started_at is None and s.pid is None, name
        assert s.age_s() is not None  # from the file's time
    assert summarize(RunDir(tmp_path / "a-list")).error == "status.json holds a list, not an object"
    assert summarize(RunDir(tmp_path / "g-empty")).error == "status.json is empty"


async def test_runs_screen_lists_every_run_whatever_its_status(make_app, runs_root):
    write_run(runs_root, "good", state="finished", steps=200, pid=0)
    for name, (content, _) in BAD.items():
        bad_run(runs_root, name, content)
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("ctrl+n")
        await wait_for(pilot, lambda: isinstance(app.screen, RunsScreen))
        rows = rows_of(app.screen.query_one(DataTable))
        assert rows["good"][1:3] == ["finished", "200/200"]
        for name, (_, state) in BAD.items():
            assert rows[name][1] == state, name
        assert rows["c-text-loss"][3] == "-"          # the loss "x" is no loss
        assert rows["d-text-start"][4] == "-" or rows["d-text-start"][4].endswith("s")


async def test_a_status_that_goes_bad_later_is_shown_unreadable(make_app, runs_root, monkeypatch):
    monkeypatch.setattr(runs_screen_module, "REFRESH_S", 0.05)
    run = write_run(runs_root, "turns-bad", state="stopped", pid=0)
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        app.open_runs()
        await wait_for(pilot, lambda: isinstance(app.screen, RunsScreen) and app.screen.runs)
        assert app.screen.runs[0].state == "stopped"
        run.status_file.write_text("[1, 2]")
        await wait_for(pilot, lambda: app.screen.runs[0].state == "unreadable", what="the refresh")
        run.status_file.write_text('{"state": "running", "pid": "abc", "last_loss": [1]}')
        await wait_for(pilot, lambda: app.screen.runs[0].state == "failed", what="the refresh")
        assert isinstance(app.screen, RunsScreen)


async def test_attach_to_a_run_with_a_state_of_the_wrong_type(make_app, runs_root):
    bad_run(runs_root, "int-state", b'{"state": 5, "step": "x", "total_steps": [3]}')
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        app.open_runs()
        await wait_for(pilot, lambda: isinstance(app.screen, RunsScreen) and app.screen.runs)
        await pilot.press("a")
        await wait_for(pilot, lambda: isinstance(app.screen, RunScreen) and app.screen.view is not None)
        await pilot.pause(0.2)
        assert "UNKNOWN" in str(app.screen.query_one(RunProgress).render())


async def test_actions_on_an_unreadable_run_say_why(make_app, runs_root, monkeypatch):
    calls = []
    monkeypatch.setattr(runctl, "resume_run", lambda *a, **k: calls.append(a) or 1)
    run = bad_run(runs_root, "broken", b"[1, 2]", log="Traceback...\nRuntimeError: disk full\n")
    (run.checkpoints / "step-000002").mkdir(parents=True)
    (run.checkpoints / "step-000002" / "COMPLETE").touch()
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        app.open_runs()
        await wait_for(pilot, lambda: isinstance(app.screen, RunsScreen) and app.screen.runs)
        await pilot.press("r")
        await pilot.press("s")
        await pilot.pause()
        assert not calls and not run.stop_file.exists()
        said = [n for n in notices(app) if "status.json" in n]
        assert len(said) == 2 and all("broken" in n and "list" in n for n in said), notices(app)
        await pilot.press("a")
        await wait_for(pilot, lambda: isinstance(app.screen, RunScreen) and app.screen.view is not None)
        screen = app.screen
        await wait_for(pilot, lambda: "UNREADABLE" in str(screen.query_one(RunProgress).render()))
        events = str(screen.query_one(EventLog).render())
        assert "status.json holds a list" in events and "engine.log" in events
        assert "RuntimeError: disk full" in events
        await pilot.press("r")
        await pilot.pause()
        assert not calls
        assert any("cannot resume" in n for n in notices(app))


@pytest.mark.parametrize("content", [b"", b'{"state": "running", "st', b"\x89PNG\r\n\x1a\n\x00\x00", None],
                         ids=["empty", "truncated", "binary", "missing"])
async def test_attach_to_a_run_whose_status_cannot_be_read(make_app, runs_root, monkeypatch, content):
    monkeypatch.setattr(run_screen_module, "STATUS_GRACE_S", 0.3)
    run = RunDir(runs_root / "no-status")
    run.path.mkdir()
    run.config_toml.write_text("version = 1\n")
    run.log_path.write_text("loading model\nKilled\n")
    if content is not None:
        run.status_file.write_bytes(content)
    app = make_app(attach=run.path)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: isinstance(app.screen, RunScreen) and app.screen.view is not None)
        screen = app.screen
        await wait_for(pilot, lambda: "UNREADABLE" in str(screen.query_one(RunProgress).render()),
                       what="the status to be given up on")
        def events() -> str:
            return str(screen.query_one(EventLog).render()).replace("\n", "")  # a long path is folded

        await wait_for(pilot, lambda: "Killed" in events(), what="the engine log's tail")
        events = events()
        assert "starting the engine" not in events
        assert "status" in events and str(run.log_path) in events and "Killed" in events
        assert screen.check_action("stop", ()) is False


async def test_a_missing_status_is_waited_for_before_giving_up(make_app, runs_root, monkeypatch):
    monkeypatch.setattr(run_screen_module, "STATUS_GRACE_S", 30)
    run = RunDir(runs_root / "slow-start")
    run.path.mkdir()
    run.config_toml.write_text("version = 1\n")
    app = make_app(attach=run.path)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: isinstance(app.screen, RunScreen) and app.screen.view is not None)
        await pilot.pause(0.3)
        assert "STARTING" in str(app.screen.query_one(RunProgress).render())
        run.status_file.write_text(json.dumps({"state": "running", "pid": os.getpid(), "step": 3,
                                               "total_steps": 10}))
        await wait_for(pilot, lambda: "RUNNING" in str(app.screen.query_one(RunProgress).render()))


async def test_the_runs_screen_starts_one_export_per_run_at_a_time(make_app, runs_root, monkeypatch):
    release = threading.Event()
    started: list[tuple[str, bool]] = []

    def slow_export(run, merge=False, step=None, **kw):
        started.append((run.name, merge))
        release.wait(10)
        return "exported"

    monkeypatch.setattr(runctl, "export_run", slow_export)
    run = write_run(runs_root, "exp", state="finished", steps=200, pid=0)
    (run.checkpoints / "step-000200").mkdir(parents=True)
    (run.checkpoints / "step-000200" / "COMPLETE").touch()
    app = make_app()
    try:
        async with app.run_test(size=SIZE) as pilot:
            app.open_runs()
            await wait_for(pilot, lambda: isinstance(app.screen, RunsScreen) and app.screen.runs)
            await pilot.press("e")
            await wait_for(pilot, lambda: isinstance(app.screen, CheckpointPicker))
            await pilot.press("enter")
            await wait_for(pilot, lambda: started == [("exp", False)], what="the first export")
            for _ in range(3):
                await pilot.press("e")
                await pilot.pause()
                if isinstance(app.screen, CheckpointPicker):
                    await pilot.press("enter")
                    await pilot.pause()
            await pilot.pause(0.2)
            assert started == [("exp", False)]
            assert any("already" in n and "exp" in n for n in notices(app)), notices(app)
            assert isinstance(app.screen, RunsScreen)
            release.set()
            await wait_for(pilot, lambda: any("exported" in n for n in notices(app)), what="the export")
            await pilot.press("e")
            await wait_for(pilot, lambda: isinstance(app.screen, CheckpointPicker))
            await pilot.press("enter")
            await wait_for(pilot, lambda: len(started) == 2, what="a second export once the first is done")
    finally:
        release.set()
