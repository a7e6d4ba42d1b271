"""Read-only text (a diff, a command line) that can be selected or copied to the clipboard."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Footer, Label, TextArea


class TextScreen(ModalScreen[None]):
    BINDINGS = [
        # Priority: closing happens before the next key is routed, so keys typed right after
        # Escape reach the form instead of this view.
        Binding("escape,q", "close", "Close", priority=True, tooltip="Close this view"),
        # Terminals that do not pass OSC 52 on ignore the copy; the text can still be selected.
        Binding("c", "copy", "Copy", tooltip="Copy the text to the clipboard"),
    ]

    def __init__(self, title: str, text: str) -> None:
        super().__init__()
        self.title_text, self.text = title, text

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog wide"):
            yield Label(self.title_text, classes="dialog-title", markup=False)  # may name a file: as written
            yield TextArea(self.text, read_only=True, soft_wrap=True, id="text-body")
        yield Footer(compact=True)

    def action_copy(self) -> None:
        self.app.copy_to_clipboard(self.text)
        self.notify("copied to the clipboard (if the terminal allows it)")

    def action_close(self) -> None:
        self.dismiss(None)
