"""A list's cursor keys, handled in step with the keys that act on the selected row.

A screen's priority keys (enter, a, r, ...) act as soon as the app reads them, while a key for
the focused list waits in that list's own queue. On a busy box or a slow link, where a read holds
several keys, "down enter" would then act on the row above the one moved to. Screens whose
priority keys read a list's selection take its cursor keys with priority too, and run the list's
own action for each, so every key acts in the order it was typed.
"""

from __future__ import annotations

from textual.binding import Binding
from textual.widget import Widget

KEYS = ("up", "down", "pageup", "pagedown", "home", "end")


def bindings() -> list[Binding]:
    return [Binding(key, f"list_cursor('{key}')", show=False, priority=True) for key in KEYS]


async def move(widget: Widget, key: str) -> None:
    """Do now what ``key`` does in ``widget``: its own binding, whatever it is for that widget."""
    for binding in widget._bindings.key_to_bindings.get(key, ()):
        await widget.run_action(binding.action)
        return
