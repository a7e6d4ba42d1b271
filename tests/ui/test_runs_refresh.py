"""The Runs screen's refresh: changed cells are redrawn in place; a new run rebuilds the rows."""

from __future__ import annotations

from textual.widgets import DataTable

from aios_tui.ui.screens import runs as runs_screen_module
from aios_tui.ui.screens.runs import RunsScreen

from pilots import wait_for
from runfiles import write_run

SIZE = (80, 24)


def cells(table: DataTable) -> dict[str, list]:
    return {str(table.get_row_at(i)[0]): [str(c) for c in table.get_row_at(i)] for i in range(table.row_count)}


async def test_a_refresh_redraws_changed_cells_in_place_and_a_new_run_rebuilds(make_app, runs_root, monkeypatch):
    monkeypatch.setattr(runs_screen_module, "REFRESH_S", 0.05)
    live = write_run(runs_root, "live", steps=120, total=200)
    write_run(runs_root, "done", state="finished", pid=0)
    cleared = []
    real_clear = DataTable.clear
    monkeypatch.setattr(DataTable, "clear", lambda self, *a, **k: cleared.append(1) or real_clear(self, *a, **k))
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        app.open_runs()
        await wait_for(pilot, lambda: isinstance(app.screen, RunsScreen) and len(app.screen.runs) == 2)
        table = app.screen.query_one(DataTable)
        await wait_for(pilot, lambda: cells(table)["live"][2] == "120/200")
        await pilot.press("down")
        picked = app.screen.selected().name
        builds = len(cleared)
        live.write_status(step=150, last_loss=0.25)
        await wait_for(pilot, lambda: cells(table)["live"][2:4] == ["150/200", "0.2500"], what="the new step")
        assert len(cleared) == builds  # drawn in place, not rebuilt
        assert app.screen.selected().name == picked
        write_run(runs_root, "new", state="stopped", pid=0)
        await wait_for(pilot, lambda: "new" in cells(table), what="the new run")
        assert len(cleared) > builds
        assert app.screen.selected().name == picked
        assert table.row_count == 3


async def test_an_empty_list_offers_no_key_that_needs_a_run(make_app, runs_root, monkeypatch):
    monkeypatch.setattr(runs_screen_module, "REFRESH_S", 0.05)
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        app.open_runs()
        await wait_for(pilot, lambda: isinstance(app.screen, RunsScreen))
        await pilot.pause(0.1)

        def offered() -> set[str]:
            return {b.binding.action for b in app.active_bindings.values()}

        assert not offered() & set(runs_screen_module.ROW_ACTIONS)
        assert "configure" in offered()
        write_run(runs_root, "done", state="finished", pid=0)
        await wait_for(pilot, lambda: len(app.screen.runs) == 1, what="the new run")
        await pilot.pause(0.1)
        assert {"attach", "delete"} <= offered()


async def test_runs_started_elsewhere_are_listed_after_the_roots_and_marked(make_app, runs_root, tmp_path):
    from textual.widgets import Static

    from aios_tui.metrics.recent import remember

    here = write_run(runs_root, "here", state="finished", pid=0)
    there = write_run(tmp_path / "proj" / "artifacts" / "runs", "there", state="stopped", pid=0)
    for run in (here, there):
        remember(run.path)
    app = make_app(runs_root=None)  # the default root ($AIOS_TUI_RUNS, runs_root here) and elsewhere
    async with app.run_test(size=SIZE) as pilot:
        app.open_runs()
        await wait_for(pilot, lambda: isinstance(app.screen, RunsScreen) and len(app.screen.runs) == 2)
        table = app.screen.query_one(DataTable)
        assert list(cells(table)) == ["here", "there *"]
        note = app.screen.query_one("#runs-empty", Static)
        assert str(note.render()) == "* started from another directory"
        await pilot.press("down")
        await wait_for(pilot, lambda: str(note.render()) == f"* started from another directory: {there.path}",
                       what="the selected run's directory")
    app = make_app()  # a runs root given: only its runs
    async with app.run_test(size=SIZE) as pilot:
        app.open_runs()
        await wait_for(pilot, lambda: isinstance(app.screen, RunsScreen) and len(app.screen.runs) == 1)
        assert list(cells(app.screen.query_one(DataTable))) == ["here"]
