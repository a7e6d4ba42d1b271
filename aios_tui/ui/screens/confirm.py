"""A yes/no question."""

from __future__ import annotations

try:  # the clock Textual stamps each key with as it is read
    from textual._time import get_time
except ImportError:  # a Textual that moved it: its keys have been stamped with the monotonic clock
    from time import monotonic as get_time
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

    def __init__(self, question: str, detail: str = "", careful: bool = False) -> None:
        """``careful``: only a y typed once the question shows answers yes. A busy box delivers
        keys in bursts, and a y typed for the screen below (in a word, say) must not agree to
        something nobody has read; n and escape count whenever typed, as they change nothing."""
        super().__init__()
        self.question, self.detail, self.careful = question, detail, careful
        self.shown_at: float | None = None

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            # Questions name files, runs and presets: shown as written, '[' and all, never as markup.
            yield Label(self.question, classes="dialog-title", markup=False)
            if self.detail:
                yield Static(self.detail, markup=False)
        yield Footer(compact=True)

    def on_mount(self) -> None:
        self.shown_at = get_time()  # the clock Textual stamps each key with as it is read

    def action_answer(self, yes: bool) -> None:
        if yes and self.careful and not self._typed_since_shown():
            return
        self.dismiss(yes)

    def _typed_since_shown(self) -> bool:
        typed_at = getattr(self.app, "key_typed_at", None)
        if typed_at is None:  # a click on the footer: nothing was typed ahead
            return True
        return self.shown_at is not None and typed_at >= self.shown_at
