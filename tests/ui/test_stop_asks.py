"""Stopping a run asks first: a stray s (typed for the form while a run's view opened, on a busy
box that hands keys over in bursts) must not end hours of training."""

from __future__ import annotations

from textual import events

from aios_tui.ui.screens.confirm import ConfirmScreen
from aios_tui.ui.screens.run import RunScreen
from aios_tui.ui.screens.runs import RunsScreen
from aios_tui.ui.widgets.run_progress import RunProgress

from pilots import answer, focus_field, wait_for
from runfiles import write_run

SIZE = (100, 32)


def burst(app, *keys: str) -> None:
    """Queue keys all at once, as the terminal reader posts a read that held several."""
    for key in keys:
        app.post_message(events.Key(key, key))


def notices(app) -> list[str]:
    return [str(n.message) for n in app._notifications]


def progress(app) -> str:
    return str(app.screen.query_one(RunProgress).render())


async def test_the_run_view_asks_before_it_stops_and_n_or_escape_keep_it_training(make_app, runs_root):
    run = write_run(runs_root, "lora-s")
    app = make_app(attach=run.path)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: isinstance(app.screen, RunScreen) and app.screen.view is not None)
        for no in ("n", "escape"):
            await pilot.press("s")
            await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen), what="the question")
            assert app.screen.question == "Stop lora-s at step 120?"
            assert "saves a checkpoint first; r resumes it exactly" in app.screen.detail
            await answer(pilot, no)
            assert isinstance(app.screen, RunScreen)
            assert not run.stop_file.exists()
            assert "RUNNING" in progress(app) and not any("stopping" in n for n in notices(app))
        await pilot.press("s")
        await answer(pilot, "y")
        assert run.stop_file.exists()
        assert "STOPPING" in progress(app)
        assert notices(app)[-1] == "stopping lora-s: saving a checkpoint first"


async def test_the_runs_list_asks_before_it_stops_the_selected_run(make_app, runs_root):
    write_run(runs_root, "older")
    picked = write_run(runs_root, "newer", steps=150)
    picked.write_status(started_at=2_000_000_000.0)  # listed first
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        app.open_runs()
        await wait_for(pilot, lambda: isinstance(app.screen, RunsScreen) and len(app.screen.runs) == 2)
        await pilot.press("down", "up")
        assert app.screen.selected().name == "newer"
        await pilot.press("s")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen), what="the question")
        assert app.screen.question == "Stop newer at step 150?"
        await answer(pilot, "n")
        assert not picked.stop_file.exists() and app.screen.selected().name == "newer"
        await pilot.press("s")
        await answer(pilot, "y")
        assert picked.stop_file.exists() and app.screen.selected().name == "newer"
        assert notices(app)[-1] == "stopping newer: saving a checkpoint first"
        assert not (runs_root / "older" / "STOP").exists()


async def test_an_s_typed_for_the_form_as_the_run_view_opens_does_not_stop_the_run(make_app, runs_root):
    run = write_run(runs_root, "fresh")
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await focus_field(pilot, "dataset_file", "model")
        app.open_run(run.path)  # as Ctrl+R's check ends, while the user goes on typing a name
        await wait_for(pilot, lambda: isinstance(app.screen, RunScreen) and app.screen.view is not None)
        burst(app, "s", "t", "o", "r", "y")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen), what="the question")
        await pilot.pause(0.2)
        # the y was typed before the question showed: it agrees to nothing
        assert isinstance(app.screen, ConfirmScreen) and not run.stop_file.exists()
        await answer(pilot, "n")
        assert isinstance(app.screen, RunScreen) and not run.stop_file.exists()
        assert "RUNNING" in progress(app)
