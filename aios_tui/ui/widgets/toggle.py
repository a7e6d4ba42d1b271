"""A one-line on/off field: ``[x] true`` / ``[ ] false``, readable without colour."""

from __future__ import annotations

from rich.text import Text
from textual.binding import Binding
from textual.message import Message
from textual.reactive import reactive
from textual.widget import Widget


class Toggle(Widget, can_focus=True):
    DEFAULT_CSS = """
    Toggle {
        height: 1;
        width: 1fr;
        background: $surface;
    }
    Toggle:focus {
        background: $accent 30%;
        text-style: bold;
    }
    """
    BINDINGS = [Binding("enter,space", "toggle", "Toggle", show=False)]

    value: reactive[bool] = reactive(False, init=False)

    class Changed(Message):
        def __init__(self, toggle: "Toggle", value: bool) -> None:
            super().__init__()
            self.toggle = toggle
            self.value = value

        @property
        def control(self) -> "Toggle":
            return self.toggle

    def __init__(self, value: bool = False, **kwargs) -> None:
        super().__init__(**kwargs)
        self.set_reactive(Toggle.value, value)

    def render(self) -> Text:
        return Text("[x] true" if self.value else "[ ] false")

    def action_toggle(self) -> None:
        self.value = not self.value

    def on_click(self) -> None:
        self.action_toggle()

    def watch_value(self, value: bool) -> None:
        self.post_message(self.Changed(self, value))
