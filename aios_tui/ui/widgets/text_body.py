"""A block of rich text that repaints in place and asks for a new layout only when its
height changes (panes update every second; a layout pass of the whole screen each time
would cost more than everything else together)."""

from __future__ import annotations

from rich.text import Text
from textual.widget import Widget


class TextBody(Widget):
    DEFAULT_CSS = """
    TextBody {
        height: auto;
    }
    """

    def __init__(self, text: Text | str = "", **kwargs) -> None:
        super().__init__(**kwargs)
        self.text = Text(text) if isinstance(text, str) else text

    def set(self, text: Text | str) -> None:
        text = Text(text) if isinstance(text, str) else text
        if text == self.text:
            return
        width = self.content_size.width
        same_height = bool(width) and self._height(self.text, width) == self._height(text, width)
        self.text = text
        self.refresh(layout=not same_height)

    def _height(self, text: Text, width: int) -> int:
        return len(text.wrap(self.app.console, width))

    def render(self) -> Text:
        return self.text
