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
