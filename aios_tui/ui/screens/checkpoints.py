"""Pick one of a run's checkpoints to export: its adapter, or a merged model."""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from pathlib import Path

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Footer, Label, OptionList, Static
from textual.widgets.option_list import Option

from aios_tui.metrics.rundir import RunDir
from aios_tui.metrics.runstate import Point, RunTracker
from aios_tui.ui import cursor_keys


@dataclass(frozen=True)
class CheckpointInfo:
    step: int
    written_at: float | None
    loss: float | None        # the training loss logged at or before this step
    eval_loss: float | None   # the evaluation at this very step, if there was one


def checkpoint_infos(checkpoints: list[Path], loss: tuple[Point, ...], eval_loss: tuple[Point, ...]
                     ) -> list[CheckpointInfo]:
    """Newest first; ``checkpoints`` are complete ``step-NNNNNN`` directories."""
    evals = dict(eval_loss)
    infos = []
    for path in checkpoints:
        try:
            step = int(path.name.removeprefix("step-"))
        except ValueError:
            continue
        try:
            written = (path / "COMPLETE").stat().st_mtime
        except OSError:
            written = None
        before = [v for s, v in loss if s <= step]
        infos.append(CheckpointInfo(step, written, before[-1] if before else None, evals.get(step)))
    return sorted(infos, key=lambda i: i.step, reverse=True)


def infos_for_run(run: RunDir) -> list[CheckpointInfo]:
    """A run's checkpoints with the losses its metrics give for them (the file's tail, if big)."""
    tracker = RunTracker(run)
    tracker.poll()
    view = tracker.view()
    return checkpoint_infos(run.list_checkpoints(), view.loss, view.eval_loss)


def describe(info: CheckpointInfo, best_eval: float | None) -> str:
    """One line that fits an 80-column dialog."""
    when = time.strftime("%m-%d %H:%M", time.localtime(info.written_at)) if info.written_at else "?"
    loss = f"loss {info.loss:.4f}" if info.loss is not None else "loss --"
    ev = f"eval {info.eval_loss:.4f}" if info.eval_loss is not None else ""
    best = "  best" if info.eval_loss is not None and info.eval_loss == best_eval else ""
    return f"step {info.step:>7}  {loss:<11}  {ev:<11}  {when}{best}"


class CheckpointPicker(ModalScreen[tuple[int, bool] | None]):
    """Answers (step, merge) or None."""

    BINDINGS = [
        # Priority: the list would take enter for itself, and then the footer and the palette
        # could not offer it; and every key here closes the picker before the next key is routed.
        Binding("enter", "choose(False)", "Export adapter", priority=True,
                tooltip="Export the highlighted checkpoint's adapter"),
        Binding("m", "choose(True)", "Export merged", priority=True,
                tooltip="Export the highlighted checkpoint merged into the base model"),
        Binding("escape", "dismiss_none", "Cancel", priority=True, tooltip="Close without exporting"),
        *cursor_keys.bindings(),
    ]

    def __init__(self, run_name: str, infos: list[CheckpointInfo], adapter: bool = True) -> None:
        """``adapter``: the run trains one; a full fine-tune only ever exports its whole model."""
        super().__init__()
        self.run_name, self.infos, self.adapter = run_name, infos, adapter
        if not adapter:
            keys = self._bindings.key_to_bindings
            keys["enter"] = [dataclasses.replace(b, description="Export model",
                                                 tooltip="Export the highlighted checkpoint's model")
                             for b in keys["enter"]]

    def compose(self) -> ComposeResult:
        evals = [i.eval_loss for i in self.infos if i.eval_loss is not None]
        best = min(evals) if evals else None
        with Vertical(classes="dialog"):
            yield Label(f"Export a checkpoint of {self.run_name}", classes="dialog-title")
            if self.infos:
                yield OptionList(*(Option(describe(i, best), id=str(i.step)) for i in self.infos),
                                 id="checkpoints")
            else:
                yield Static("This run has no complete checkpoint yet.", id="no-checkpoints")
        yield Footer(compact=True)

    def on_mount(self) -> None:
        if self.infos:
            self.query_one(OptionList).highlighted = 0

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "choose":  # a full fine-tune has nothing to merge: enter is the whole export
            return bool(self.infos) and (self.adapter or not parameters[0])
        return True

    def action_choose(self, merge: bool) -> None:
        if not self.infos:
            return
        index = self.query_one(OptionList).highlighted
        if index is not None:
            self.dismiss((self.infos[index].step, merge))

    async def action_list_cursor(self, key: str) -> None:
        if self.infos:
            await cursor_keys.move(self.query_one(OptionList), key)

    def action_dismiss_none(self) -> None:
        self.dismiss(None)

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        event.stop()
        self.dismiss((int(event.option.id), False))
