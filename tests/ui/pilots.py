"""Driving the console in Pilot tests: waiting for screens and rows, typing into fields."""

from __future__ import annotations

import io

from rich.console import Console
from textual.css.query import NoMatches
from textual.geometry import Region

from aios_tui.config import field_index


async def wait_for(pilot, predicate, timeout: float = 10.0, what: str = "") -> None:
    """Poll ``predicate`` while the app runs (a widget still composing counts as not yet)."""
    def check() -> bool:
        try:
            return bool(predicate())
        except NoMatches:
            return False
    for _ in range(int(timeout / 0.05)):
        if check():
            # what made it true may have queued a layout (a box grown by a new view): let it run
            # before the caller reads what the screen shows
            await pilot.pause()
            return
        await pilot.pause(0.05)
    assert check(), f"timed out waiting for {what or predicate}"


async def all_rows(pilot) -> None:
    """The hidden tabs' rows mount after the first paint; wait for every field's row."""
    from aios_tui.ui.widgets.field_row import FieldRow
    await wait_for(pilot, lambda: len(pilot.app.screen.query(FieldRow)) == len(field_index()),
                   what="every field row")


async def focus_field(pilot, name: str, tab: str) -> None:
    app = pilot.app
    await wait_for(pilot, lambda: app.screen.query_one("#form-tabs"), what="the form")
    app.screen.query_one("#form-tabs").active = f"tab-{tab}"  # opening a tab mounts its rows
    await wait_for(pilot, lambda: app.screen.query_one(f"#f-{name}"), what=f"field {name}")
    app.screen.set_focus(None)  # a fresh focus selects the field's text, as tabbing in does
    app.screen.query_one(f"#f-{name}").focus()
    await pilot.pause()


async def retype(pilot, name: str, tab: str, text: str) -> None:
    """Focus a field (which selects its text) and type over it."""
    await focus_field(pilot, name, tab)
    await pilot.press(*list(text))
    await pilot.pause()


async def set_field(pilot, name: str, value) -> None:
    """Put a value straight into a field's editor (its change event runs as if typed)."""
    from aios_tui.ui.widgets.toggle import Toggle
    app = pilot.app
    await wait_for(pilot, lambda: app.screen.query_one(f"#f-{name}"), what=f"field {name}")
    editor = app.screen.query_one(f"#f-{name}")
    editor.value = value if isinstance(editor, Toggle) or not isinstance(value, (int, float)) else str(value)
    await pilot.pause()


async def answer(pilot, key: str) -> None:
    """Answer the yes/no question on top once it shows (a stop's ignores a y typed before that)."""
    from aios_tui.ui.screens.confirm import ConfirmScreen
    app = pilot.app
    await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen) and app.screen.shown_at is not None,
                   what="the question")
    question = app.screen
    await pilot.press(key)
    await wait_for(pilot, lambda: app.screen is not question, what="the question to close")


def screen_lines(app) -> list[str]:
    """What the terminal shows, one string a row."""
    width, height = app.size
    out = Console(width=width, height=height, file=io.StringIO(), record=True, color_system=None,
                  legacy_windows=False, safe_box=False)
    out.print(app.screen._compositor.render_update(full=True, screen_stack=app._background_screens))
    return out.export_text().splitlines()


def text_in(app, region: Region) -> str:
    """The words shown inside ``region``, its rows joined by spaces."""
    rows = screen_lines(app)[region.y:region.bottom]
    return " ".join(" ".join(row[region.x:region.right].split()) for row in rows).strip()
