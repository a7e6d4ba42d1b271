"""Keys typed in one burst across a screen change: a busy box (a run on every core) hands the
console several keys at once, and each must reach the screen it was typed for."""

from __future__ import annotations

from textual import events

from pilots import focus_field, wait_for
from aios_tui.ui.screens.prompt import PromptScreen
from aios_tui.ui.screens.text_view import TextScreen

SIZE = (100, 30)


def burst(app, *keys: str) -> None:
    """Queue keys all at once, as the terminal reader posts a read that held several."""
    for key in keys:
        app.post_message(events.Key(key, "\x1b" if key == "escape" else key if len(key) == 1 else None))


async def test_keys_typed_right_after_escape_closes_a_view_reach_the_form(make_app):
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await focus_field(pilot, "dataset_file", "model")
        await pilot.press("ctrl+l")
        await wait_for(pilot, lambda: isinstance(app.screen, TextScreen), what="the command view")
        burst(app, "escape", "d", "a", "t", "a")
        await wait_for(pilot, lambda: app.screen.query_one("#f-dataset_file").value == "data",
                       what="the typed name in the field")
        assert not isinstance(app.screen, TextScreen)


async def test_keys_typed_right_after_ctrl_s_reach_the_prompt_not_the_form(make_app):
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await focus_field(pilot, "dataset_file", "model")
        burst(app, "ctrl+s", "m", "i", "n", "e")
        await wait_for(pilot, lambda: isinstance(app.screen, PromptScreen), what="the preset prompt")
        await wait_for(pilot, lambda: app.screen.query_one("#prompt-input").value == "mine",
                       what="the typed name in the prompt")
        assert app.screen_stack[0].query_one("#f-dataset_file").value == ""


async def test_down_then_enter_in_one_burst_exports_the_checkpoint_moved_to(make_app):
    from aios_tui.ui.screens.checkpoints import CheckpointInfo, CheckpointPicker

    infos = [CheckpointInfo(step, None, 2.0, None) for step in (300, 200, 100)]
    answers = []
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        app.push_screen(CheckpointPicker("r", infos), answers.append)
        await wait_for(pilot, lambda: isinstance(app.screen, CheckpointPicker), what="the picker")
        burst(app, "down", "down", "up", "enter")
        await wait_for(pilot, lambda: answers, what="the picker's answer")
        await pilot.pause()
    assert answers == [(200, False)]


async def test_down_then_a_in_one_burst_attaches_the_run_moved_to(make_app, runs_root):
    from textual.widgets import DataTable

    from runfiles import write_run
    from aios_tui.ui.screens.run import RunScreen
    from aios_tui.ui.screens.runs import RunsScreen

    for name in ("first", "second"):
        write_run(runs_root, name, state="stopped")
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        app.open_runs()
        await wait_for(pilot, lambda: isinstance(app.screen, RunsScreen)
                       and app.screen.query_one(DataTable).row_count == 2, what="the runs list")
        rows = [r.name for r in app.screen.runs]
        burst(app, "down", "a")
        await wait_for(pilot, lambda: isinstance(app.screen, RunScreen), what="a run view")
        assert app.screen.run.path.name == rows[1]


def at_least(n: int):
    return lambda text: None if int(text) >= n else f"give {n} or more"


async def test_an_answer_typed_with_its_enter_in_one_burst_is_judged_whole(make_app):
    answers = []
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await focus_field(pilot, "dataset_file", "model")
        app.push_screen(PromptScreen("How many?", check=at_least(100)), answers.append)
        await wait_for(pilot, lambda: isinstance(app.screen, PromptScreen), what="the prompt")
        burst(app, "1", "2", "0", "enter", "d", "a")
        await wait_for(pilot, lambda: answers, what="the prompt's answer")
        # and the keys typed after enter reach the screen below, as typed
        await wait_for(pilot, lambda: app.screen.query_one("#f-dataset_file").value == "da",
                       what="the keys after enter in the form")
    assert answers == ["120"]


async def test_a_wrong_answer_typed_with_its_enter_in_one_burst_stays_said(make_app):
    answers = []
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        app.push_screen(PromptScreen("How many?", check=at_least(100)), answers.append)
        await wait_for(pilot, lambda: isinstance(app.screen, PromptScreen), what="the prompt")
        burst(app, "4", "0", "enter")
        await wait_for(pilot, lambda: app.screen.query_one("#prompt-problem").display, what="the problem shown")
        problem = app.screen.query_one("#prompt-problem")
        for _ in range(5):
            await pilot.pause()
        assert problem.display and str(problem.render()) == "give 100 or more"
        assert app.screen.query_one("#prompt-input").value == "40"
        # corrected in one burst too
        burst(app, "backspace", "backspace", "3", "0", "0", "enter")
        await wait_for(pilot, lambda: answers, what="the prompt's answer")
    assert answers == ["300"]

