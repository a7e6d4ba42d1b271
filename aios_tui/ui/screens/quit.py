"""Quitting with runs still training, or an export still running: leave the runs going, stop
them, or stay; quitting waits for an export to end."""

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
        Binding("q", "choose('quit')", "Quit", tooltip="Quit once the export has finished"),
        # Priority: cancelling closes the dialog before the next key is routed, so keys typed
        # right after it reach the screen below.
        Binding("c,escape", "choose(None)", "Cancel", priority=True, tooltip="Stay in the console"),
    ]

    def __init__(self, run_names: list[str], exports: list[str] | None = None) -> None:
        super().__init__()
        self.run_names = run_names
        self.exports = list(exports or [])

    def compose(self) -> ComposeResult:
        names = ", ".join(self.run_names)
        many = len(self.run_names) > 1
        exports = ", ".join(self.exports)
        waits = (f"the export{'s' if len(self.exports) > 1 else ''} of {exports} "
                 f"{'are' if len(self.exports) > 1 else 'is'} still running: quitting waits for "
                 f"{'them' if len(self.exports) > 1 else 'it'} to finish (Ctrl-C abandons "
                 f"{'them' if len(self.exports) > 1 else 'it'})")
        with Vertical(classes="dialog"):
            if self.run_names:
                yield Label(f"{'Runs' if many else 'Run'} still training: {names}", classes="dialog-title")
                if self.exports:
                    yield Static(waits[0].upper() + waits[1:], classes="dialog-hint")
                yield Static(f"l  leave {'them' if many else 'it'} training "
                             f"(re-attach with `aios-tui attach {self.run_names[0]}`)")
                yield Static(f"s  stop {'them' if many else 'it'} (a checkpoint is saved first) and quit")
            else:
                yield Label(f"Export still running: {exports}", classes="dialog-title")
                yield Static(f"q  quit once {'they' if len(self.exports) > 1 else 'it'} "
                             f"{'have' if len(self.exports) > 1 else 'has'} finished (Ctrl-C abandons "
                             f"{'them' if len(self.exports) > 1 else 'it'})")
            yield Static("c  cancel: stay in the console")
        yield Footer(compact=True)

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "choose" and parameters and parameters[0] in ("leave", "stop"):
            return bool(self.run_names)
        if action == "choose" and parameters and parameters[0] == "quit":
            return not self.run_names
        return True

    def action_choose(self, choice: str | None) -> None:
        self.dismiss(choice)
