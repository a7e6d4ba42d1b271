"""A yes/no question."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Footer, Label, Static


class ConfirmScreen(ModalScreen[bool]):
    BINDINGS = [
        # Priority: the answer closes the dialog before the next key is routed, so keys typed
        # right after it reach the screen below.
        Binding("y", "answer(True)", "Yes", priority=True, tooltip="Answer yes"),
        Binding("n,escape", "answer(False)", "No", priority=True, tooltip="Answer no"),
    ]

    def __init__(self, question: str, detail: str = "") -> None:
        super().__init__()
        self.question, self.detail = question, detail

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Label(self.question, classes="dialog-title")
            if self.detail:
                yield Static(self.detail)
        yield Footer(compact=True)

    def action_answer(self, yes: bool) -> None:
        self.dismiss(yes)
