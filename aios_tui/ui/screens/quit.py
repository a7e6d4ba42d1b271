"""Quitting with runs still training: leave them going, stop them, or stay."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Footer, Label, Static


class QuitScreen(ModalScreen[str | None]):
    BINDINGS = [
        Binding("l", "choose('leave')", "Leave training", tooltip="Quit and leave the runs training"),
        Binding("s", "choose('stop')", "Stop and quit", tooltip="Stop the runs (each saves a checkpoint) and quit"),
        Binding("c,escape", "choose(None)", "Cancel", tooltip="Stay in the console"),
    ]

    def __init__(self, run_names: list[str]) -> None:
        super().__init__()
        self.run_names = run_names

    def compose(self) -> ComposeResult:
        names = ", ".join(self.run_names)
        many = len(self.run_names) > 1
        with Vertical(classes="dialog"):
            yield Label(f"{'Runs' if many else 'Run'} still training: {names}", classes="dialog-title")
            yield Static(f"l  leave {'them' if many else 'it'} training "
                         f"(re-attach with `aios-tui attach {self.run_names[0]}`)")
            yield Static(f"s  stop {'them' if many else 'it'} (a checkpoint is saved first) and quit")
            yield Static("c  cancel: stay in the console")
        yield Footer(compact=True)

    def action_choose(self, choice: str | None) -> None:
        self.dismiss(choice)
