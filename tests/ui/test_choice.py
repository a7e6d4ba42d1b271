"""Choice fields removed while they mount (the console quitting as a form tab fills in) must not
end the console with a traceback; Textual's own Select does."""

from __future__ import annotations

import pytest
from textual.app import App
from textual.containers import Vertical
from textual.css.query import NoMatches
from textual.widgets import Select

from aios_tui.ui.widgets.choice import Choice


class Box(App):
    def compose(self):
        yield Vertical(id="box")


async def mount_and_remove_at_once(cls) -> None:
    app = Box()
    async with app.run_test() as pilot:
        box = app.query_one("#box")
        for _ in range(10):
            row = Vertical()
            await box.mount(row)
            row.mount(cls([("a", "a"), ("b", "b")], value="b", allow_blank=False))
            row.remove()
            await pilot.pause()


async def test_textual_select_breaks_when_removed_while_mounting():
    with pytest.raises(NoMatches):  # if this stops failing, Choice can go
        await mount_and_remove_at_once(Select)


async def test_choice_survives_it_and_still_shows_its_value():
    await mount_and_remove_at_once(Choice)
    app = Box()
    async with app.run_test() as pilot:
        choice = Choice([("a", "a"), ("b", "b")], value="b", allow_blank=False)
        await app.query_one("#box").mount(choice)
        await pilot.pause()
        assert choice.value == "b" and "b" in str(choice.query_one("#label").render())


async def test_an_open_menu_leaves_the_footer_to_the_screens_keys():
    from textual.widgets import Footer

    class Form(App):
        BINDINGS = [("ctrl+r", "bell", "Run")]

        def compose(self):
            yield Choice([("a", "a"), ("b", "b")], value="a", allow_blank=False)
            yield Footer()

    app = Form()
    async with app.run_test() as pilot:
        app.query_one(Choice).focus()
        await pilot.press("enter")
        await pilot.pause()
        assert app.query_one(Choice).expanded
        shown = [b.description for _, b, enabled, _ in app.screen.active_bindings.values() if b.show]
        assert "Run" in shown and "Dismiss menu" not in shown
        await pilot.press("escape")   # the key still closes the menu
        await pilot.pause()
        assert not app.query_one(Choice).expanded
