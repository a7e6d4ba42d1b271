"""The `aios-tui train ...` line equivalent to the form, always in view."""

from __future__ import annotations

from rich.text import Text
from textual.widget import Widget


class CommandPreview(Widget):
    DEFAULT_CSS = """
    CommandPreview {
        height: 1;
        padding: 0 1;
        background: $boost;
        text-wrap: nowrap;
        text-overflow: ellipsis;
    }
    """

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.command = ""

    def show(self, command: str) -> None:
        """``command``, or "" while the form has problems: an old line must not pass for the form."""
        if command != self.command:
            self.command = command
            self.refresh()  # a repaint: one fixed-size line never needs a new layout

    def render(self) -> Text:
        if not self.command:
            return Text("the command line appears once the form's problems are fixed", style="dim italic")
        return Text.assemble(("$ ", "dim"), self.command)
