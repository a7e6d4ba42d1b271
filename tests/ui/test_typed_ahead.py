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
