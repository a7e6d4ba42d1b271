"""Ask for one line of text (a preset name, a file path, a number of steps)."""

from __future__ import annotations

from typing import Callable

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Footer, Input, Label, Static

EMPTY = "type an answer, or esc to cancel"


class PromptScreen(ModalScreen[str | None]):
    BINDINGS = [
        # Priority: the input would take enter for itself, and then the footer and the palette
        # could not offer it; and either key closes the dialog before the next key is routed,
        # so keys typed right after it reach the screen below.
        Binding("enter", "accept", "Accept", priority=True, tooltip="Accept the answer"),
        Binding("escape", "cancel", "Cancel", priority=True, tooltip="Close without answering"),
    ]

    def __init__(self, title: str, placeholder: str = "", value: str = "", hint: str = "",
                 check: Callable[[str], str | None] | None = None) -> None:
        """``check`` takes the stripped answer and says what is wrong with it, or None: a wrong
        answer keeps the dialog open with the text as typed, to be fixed rather than retyped."""
        super().__init__()
        self.title_text, self.placeholder, self.initial, self.hint = title, placeholder, value, hint
        self.check = check

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Label(self.title_text, classes="dialog-title")
            yield Input(self.initial, placeholder=self.placeholder, id="prompt-input")
            yield Static("", id="prompt-problem", classes="dialog-problem", markup=False)
            if self.hint:
                yield Static(self.hint, classes="dialog-hint")
        yield Footer(compact=True)

    def action_accept(self) -> None:
        field = self.query_one(Input)
        text = field.value.strip()
        problem = EMPTY if not text else self.check(text) if self.check else None
        if problem:
            self._show_problem(problem)
            field.focus()
            return
        self.dismiss(text)

    def action_cancel(self) -> None:
        self.dismiss(None)

    @on(Input.Changed)
    def _edited(self) -> None:
        self._show_problem("")  # it was about the text before the edit

    def _show_problem(self, problem: str) -> None:
        shown = self.query_one("#prompt-problem", Static)
        shown.update(problem)
        shown.display = bool(problem)
        self.query_one(Input).set_class(bool(problem), "-invalid")
