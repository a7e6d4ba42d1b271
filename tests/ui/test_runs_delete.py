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


async def test_d_refuses_a_live_run_with_a_notice(make_app, runs_root):
    live = write_run(runs_root, "live")  # running, with this test's pid
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await open_runs(app, pilot, 1)
        await pilot.press("d")
        await pilot.pause(0.1)
        assert isinstance(app.screen, RunsScreen)
        assert "run 'live' is still running" in notices(app)[-1] and "stop it first (s)" in notices(app)[-1]
        assert live.path.is_dir()


async def test_d_is_in_the_runs_screens_keys(make_app, runs_root):
    write_run(runs_root, "done", state="finished", pid=0)
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await open_runs(app, pilot, 1)
        keys = {b.binding.key: b.binding.description for b in app.active_bindings.values()}
        assert keys["d"] == "Delete"
