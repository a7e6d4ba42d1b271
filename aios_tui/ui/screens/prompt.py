"""Ask for one line of text (a preset name, a file path, a number of steps)."""

from __future__ import annotations

from typing import Callable

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Footer, Input, Label, Static

from aios_tui.ui.widgets.in_order_input import InOrderInput

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
            # titles and hints name files and runs: shown as written, never as markup
            yield Label(self.title_text, classes="dialog-title", markup=False)
            yield InOrderInput(self.initial, placeholder=self.placeholder, id="prompt-input")
            yield Static("", id="prompt-problem", classes="dialog-problem", markup=False)
            if self.hint:
                yield Static(self.hint, classes="dialog-hint", markup=False)
        yield Footer(compact=True)

    # Keys typed just before enter can still wait in the input's queue when enter is taken (a
    # burst on a busy box or a slow link, a paste): the answer is judged once the input has them,
    # and meanwhile the app holds the keys typed after enter for the screen they were meant for.
    holding_keys = False

    def action_accept(self) -> None:
        self.holding_keys = True
        self.query_one(Input).call_later(self._accept)

    def _accept(self) -> None:
        self.holding_keys = False
        field = self.query_one(Input)
        text = field.value.strip()
        problem = EMPTY if not text else self.check(text) if self.check else None
        if problem:
            self._show_problem(problem, text)
            field.focus()
            return
        self.dismiss(text)

    def action_cancel(self) -> None:
        self.dismiss(None)

    @on(Input.Changed)
    def _edited(self, event: Input.Changed) -> None:
        # A problem is about the text it judged; the changes that led up to that text can be
        # handled after it (see action_accept).
        if event.input.value.strip() != self._judged:
            self._show_problem("")

    _judged: str | None = None

    def _show_problem(self, problem: str, text: str | None = None) -> None:
        self._judged = text if problem else None
        shown = self.query_one("#prompt-problem", Static)
        shown.update(problem)
        shown.display = bool(problem)
        self.query_one(Input).set_class(bool(problem), "-invalid")
