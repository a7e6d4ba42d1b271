"""Ask for one line of text (a preset name, a file path, a number of steps)."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Footer, Input, Label, Static


class PromptScreen(ModalScreen[str | None]):
    BINDINGS = [
        # Priority: the input would take enter for itself, and then the footer and the palette
        # could not offer it; and either key closes the dialog before the next key is routed,
        # so keys typed right after it reach the screen below.
        Binding("enter", "accept", "Accept", priority=True, tooltip="Accept the answer"),
        Binding("escape", "cancel", "Cancel", priority=True, tooltip="Close without answering"),
    ]

    def __init__(self, title: str, placeholder: str = "", value: str = "", hint: str = "") -> None:
        super().__init__()
        self.title_text, self.placeholder, self.initial, self.hint = title, placeholder, value, hint

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Label(self.title_text, classes="dialog-title")
            yield Input(self.initial, placeholder=self.placeholder, id="prompt-input")
            if self.hint:
                yield Static(self.hint, classes="dialog-hint")
        yield Footer(compact=True)

    def action_accept(self) -> None:
        self.dismiss(self.query_one(Input).value.strip() or None)

    def action_cancel(self) -> None:
        self.dismiss(None)
