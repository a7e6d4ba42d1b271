"""The Runs screen's d: delete the selected run, once asked; never one still training."""

from __future__ import annotations

from aios_tui.metrics.disk_usage import dir_bytes
from aios_tui.metrics.fmt import human_bytes
from aios_tui.ui.screens.confirm import ConfirmScreen
from aios_tui.ui.screens.runs import RunsScreen

from pilots import answer, wait_for
from runfiles import add_checkpoint, write_run

SIZE = (80, 24)


def notices(app) -> list[str]:
    return [str(n.message) for n in app._notifications]


async def open_runs(app, pilot, count: int) -> None:
    app.open_runs()
    await wait_for(pilot, lambda: isinstance(app.screen, RunsScreen) and len(app.screen.runs) == count)


async def test_d_asks_and_only_y_deletes_the_selected_run(make_app, runs_root):
    keep = write_run(runs_root, "keep", state="finished", pid=0)
    gone = write_run(runs_root, "gone", state="stopped", pid=0)
    gone.write_status(started_at=2_000_000_000.0)  # listed first
    add_checkpoint(gone, 100)
    size = dir_bytes(gone.path)
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await open_runs(app, pilot, 2)
        assert app.screen.selected().name == "gone"
        await pilot.press("d")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen), what="the question")
        assert app.screen.question == f"Delete run gone: {human_bytes(size)}, 1 checkpoint?"
        await answer(pilot, "n")
        assert gone.path.is_dir() and [r.name for r in app.screen.runs] == ["gone", "keep"]
        await pilot.press("d")
        await answer(pilot, "y")
        await wait_for(pilot, lambda: any(n.startswith("deleted gone") for n in notices(app)), what="the notice")
        assert notices(app)[-1] == f"deleted gone: {human_bytes(size)} freed"
        assert not gone.path.exists() and keep.path.is_dir()
        assert [p.name for p in runs_root.iterdir()] == ["keep"]
        assert [r.name for r in app.screen.runs] == ["keep"]


async def test_d_and_r_refuse_a_live_run_with_one_notice(make_app, runs_root):
    import os

    live = write_run(runs_root, "live")  # running, with this test's pid
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await open_runs(app, pilot, 1)
        await pilot.press("d")
        await pilot.pause(0.1)
        assert isinstance(app.screen, RunsScreen)
        why = f"run 'live' is still running (pid {os.getpid()}); stop it first (s)"
        assert notices(app)[-1] == why
        assert live.path.is_dir()
        # r is not offered for a live run; a resume asked for just before it started is refused alike
        app.resume_run(live)
        await pilot.pause(0.1)
        assert notices(app)[-1] == f"cannot resume: {why}"


async def test_d_is_in_the_runs_screens_keys(make_app, runs_root):
    write_run(runs_root, "done", state="finished", pid=0)
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await open_runs(app, pilot, 1)
        keys = {b.binding.key: b.binding.description for b in app.active_bindings.values()}
        assert keys["d"] == "Delete"


async def test_deleting_the_run_last_viewed_takes_it_off_the_forms_back_key(make_app, runs_root):
    from aios_tui.ui.screens.configure import ConfigureScreen
    from aios_tui.ui.screens.run import RunScreen

    gone = write_run(runs_root, "gone", state="finished", pid=0)
    app = make_app(attach=gone.path)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: isinstance(app.screen, RunScreen) and app.screen.view is not None)
        app.watched[gone.path.resolve()] = 2 ** 22 + 1   # as after a resume here: an engine, now gone
        await pilot.press("n")
        await wait_for(pilot, lambda: isinstance(app.screen, RunsScreen) and app.screen.runs)
        await pilot.press("d")
        await answer(pilot, "y")
        await wait_for(pilot, lambda: not gone.path.exists(), what="the run to go")
        assert app.current_run is None and not app.watched
        await pilot.press("escape")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfigureScreen))
        assert "run_view" not in {b.binding.action for b in app.screen.active_bindings.values() if b.enabled}
        await pilot.press("ctrl+b")
        await pilot.pause(0.1)
        assert isinstance(app.screen, ConfigureScreen)


async def test_a_run_view_whose_directory_went_says_so_not_failed(make_app, runs_root):
    import shutil

    from aios_tui.ui.screens.run import RunScreen
    from aios_tui.ui.widgets.event_log import EventLog
    from aios_tui.ui.widgets.run_progress import RunProgress

    run = write_run(runs_root, "elsewhere", state="finished", pid=0)
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        app.open_run(run.path, pid=2 ** 22 + 1)   # started here; that engine is gone
        await wait_for(pilot, lambda: isinstance(app.screen, RunScreen) and app.screen.view is not None)
        shutil.rmtree(run.path)                   # deleted from another shell
        screen = app.screen
        await wait_for(pilot, lambda: screen.view.state == "missing", what="the view to see it gone")
        assert str(screen.query_one(RunProgress).render()).startswith("MISSING")
        events = str(screen.query_one(EventLog).render())
        assert "run directory is gone" in events and "failed" not in events


async def test_d_refuses_a_run_being_exported(make_app, runs_root, monkeypatch):
    """An export reads the checkpoint and writes beside it: the run stays until it has finished."""
    import threading

    from aios_tui.ui import runctl

    release = threading.Event()
    monkeypatch.setattr(runctl, "export_run", lambda run, merge=False, step=None, **kw: release.wait(10) and "done")
    run = write_run(runs_root, "busy", state="stopped", pid=0)
    add_checkpoint(run, 100)
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await open_runs(app, pilot, 1)
        await pilot.press("e", "enter", "d")
        await pilot.pause(0.1)
        assert isinstance(app.screen, RunsScreen)
        assert notices(app)[-1] == "an export of busy is running; delete the run once it has finished"
        release.set()
        await wait_for(pilot, lambda: not runctl.export_running(run), what="the export to end")
        await pilot.press("d")
        await answer(pilot, "y")
        await wait_for(pilot, lambda: not run.path.exists(), what="the run to go")
