"""A Select that survives being torn down while it mounts, and keeps the footer to the screen's keys.

Textual's Select shows its initial value from its mount handler by querying a child that a
parent being removed at that moment (the console quitting just as a tab's rows mount) may
already have pruned; the NoMatches it raises would end the console with a traceback. The
value itself is kept either way, so there is nothing to show and nothing lost.

An open menu adds "esc Dismiss menu" in front of the footer; at 80 columns that pushes the
screen's last keys under the palette key. Escape closing a menu goes without saying, so the
menu keeps the key and the footer leaves it out.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any, Iterable

from rich.text import Text

from textual.css.query import NoMatches
from textual.widgets import Select


class Choice(Select):
    def on_mount(self) -> None:
        # each widget holds its own copy of its class's bindings, so only this menu changes
        for overlay in self.query("SelectOverlay"):
            keys = overlay._bindings.key_to_bindings
            for key, bindings in keys.items():
                keys[key] = [replace(b, show=False) for b in bindings]

    # Options are shown as written: a preset's or a file's name may hold '[', which Textual
    # would read as markup and, unbalanced, refuse with an error that ends the console.
    def __init__(self, options: Iterable[tuple[Any, Any]], **kwargs: Any) -> None:
        super().__init__(_as_written(options), **kwargs)

    def set_options(self, options: Iterable[tuple[Any, Any]]) -> Choice:
        super().set_options(_as_written(options))
        return self

    # Both run from Select's mount handler and query children that may be gone by then.
    def _setup_options_renderables(self, *args: Any, **kwargs: Any) -> Any:
        try:
            return super()._setup_options_renderables(*args, **kwargs)
        except NoMatches:
            return None

    def _init_selected_option(self, *args: Any, **kwargs: Any) -> Any:
        try:
            return super()._init_selected_option(*args, **kwargs)
        except NoMatches:
            return None


def _as_written(options: Iterable[tuple[Any, Any]]) -> list[tuple[Any, Any]]:
    return [(Text(prompt) if isinstance(prompt, str) else prompt, value) for prompt, value in options]
