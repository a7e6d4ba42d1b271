"""Scoring a run's checkpoints: mean loss per target token, and perplexity, on held-out blocks.

The figure is the one training logs as ``eval_loss``: the task's own ``eval_loss`` (so the same
masking and the same loss), weighted by each micro-batch's target tokens, under the autocast the
run trained with. Without a dataset file the blocks are the run's own eval split, the very
micro-batches its training evaluated, so a checkpoint scores what the run logged at its step.

``plan`` refuses what it can before any weights are read; ``evaluate`` loads the base once and
swaps each checkpoint's adapter (or full weights) into it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import torch

from aios_tui.errors import UserError
from aios_tui.metrics.rundir import RunDir
from aios_tui.engine import checkpoint as ckpt
from aios_tui.engine.adapter_check import check_adapter, loading_adapter
from aios_tui.engine.data import IGNORE, make_batch

# Below this many seconds an eval says nothing while it runs: most finish before a bar is worth it.
QUIET_S = 2.0


@dataclass(frozen=True)
class Plan:
    """What will be scored, worked out from the run directory alone."""

    run: RunDir
    checkpoints: list[Path]  # in step order
    peft: bool
    base: bool


@dataclass(frozen=True)
class Score:
    step: int | None  # None: the base model without the adapter
    loss: float
    tokens: int  # target tokens the loss is the mean over
    checkpoint: str | None = None

    @property
    def perplexity(self) -> float:
        return math.exp(self.loss) if self.loss < 700 else math.inf  # exp overflows a float past ~709


def plan(run_dir: str | os.PathLike, *, step: int | None = None, all_checkpoints: bool = False,
         base: bool = False) -> Plan:
    """The checkpoints to score; refuses a directory that is not a run, a missing checkpoint,
    --base on a fully fine-tuned run, all before anything is loaded."""
    path = Path(run_dir).expanduser()
    if (path / "brain.json").exists():
        raise UserError(f"{run_dir}: is an HRM ACTv1 brain bundle, which keeps no eval split or "
                        "checkpoints; score the run directory that trained it")
    if not path.is_dir():
        raise UserError(f"{run_dir}: no such run directory")
    if not ((path / "checkpoints").is_dir() or (path / "status.json").is_file()):
        raise UserError(f"{run_dir}: is not a run directory (it has no checkpoints/); "
                        "eval scores the checkpoints a run saved")
    run = RunDir(path.resolve())
    if all_checkpoints:
        checkpoints = run.list_checkpoints()
        if not checkpoints:
            ckpt.find_checkpoint(run)  # says there is none
    else:
        checkpoints = [ckpt.find_checkpoint(run, step)]
    peft = bool(ckpt.read_meta(checkpoints[-1]).get("peft"))
    if base and not peft:
        raise UserError(f"--base: {run.path.name} is a full fine-tune: its checkpoints hold the whole "
                        "model, with no adapter to leave out for a base-model row")
    return Plan(run, checkpoints, peft, base)


def _step(checkpoint: Path) -> int:
    return int(checkpoint.name.split("-")[1])


@dataclass
class Blocks:
    """The packed blocks to score and what they are, for the line that says so."""

    ids: torch.Tensor
    labels: torch.Tensor
    batch_size: int
    what: str
    pad_id: int

    @property
    def n_blocks(self) -> int:
        return int(self.ids.shape[0])

    @property
    def n_batches(self) -> int:
        return -(-self.n_blocks // self.batch_size)

    def targets(self) -> int:
        return int((self.labels[:, 1:] != IGNORE).sum())

    def batches(self) -> Iterator[dict]:
        # One micro-batch at a time: a large held-out file is never copied out whole.
        for at in range(0, self.n_blocks, self.batch_size):
            yield make_batch(self.ids, self.labels, list(range(at, min(at + self.batch_size, self.n_blocks))),
                             self.pad_id)


def blocks(trained, dataset_file: str | None, max_batches: int | None, batch_size: int | None) -> Blocks:
    """The run's eval split (as training evaluated it), or every block of ``dataset_file`` packed
    with the run's tokenizer and max_seq_len."""
    cfg, tokenizer = trained.cfg, trained.tokenizer
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0  # as training's
    size = batch_size or cfg.train.batch_size
    if dataset_file is None:
        data = trained.task.load_data(cfg, tokenizer)
        _same_data(trained, data)
        if data.n_eval == 0:
            raise UserError(f"the run holds out no eval blocks (eval_fraction {cfg.data.eval_fraction:g} of "
                            f"{data.n_train} block(s)); give a held-out file with --dataset-file")
        # The blocks training's own pass took (see data.eval_batches): the first eval_batches
        # micro-batches' worth; --max-batches N takes N of this command's batches instead.
        count = min(data.n_eval, (max_batches * size) if max_batches else
                    cfg.train.eval_batches * cfg.train.batch_size)
        ids, labels = data.eval_ids[:count], data.eval_labels[:count]
        what = "the run's eval split"
    else:
        own = dataclasses.replace(cfg, data=dataclasses.replace(cfg.data, dataset_file=dataset_file,
                                                                 eval_fraction=0.0))
        data = trained.task.load_data(own, tokenizer)
        count = data.n_train if max_batches is None else min(data.n_train, max_batches * size)
        ids, labels = data.train_ids[:count], data.train_labels[:count]
        what = f"--dataset-file {dataset_file}"
    found = Blocks(ids, labels, size, what, pad_id)
    if found.targets() == 0:
        raise UserError(f"{what}: its {found.n_blocks} block(s) hold no token to score (only prompts "
                        "and padding); give more text" + (" or a larger --max-batches" if max_batches else ""))
    return found


def _same_data(trained, data) -> None:
    """Refuses an eval split rebuilt from a dataset file that changed since the run trained on
    it: its blocks would be other ones (some of them trained on), scored as if held out."""
    from aios_tui.engine.train import data_digest

    try:  # mmap: the optimizer's state in the same file is never read for one string
        state = torch.load(trained.checkpoint / ckpt.TRAINER_STATE, map_location="cpu", weights_only=True,
                           mmap=True)
        recorded = state.get("data_digest")
    except Exception:  # unreadable: nothing to compare with, as for a checkpoint from before digests
        return
    if recorded is not None and recorded != data_digest(data):
        raise UserError(f"dataset {trained.cfg.data.dataset_file or '(the bundled sample)'}: its contents "
                        f"changed since {trained.checkpoint.name}, so the run's eval split cannot be "
                        "rebuilt; score a held-out file with --dataset-file")


def _swap_in(trained, checkpoint: Path, active: str) -> str:
    """Puts ``checkpoint``'s weights into the loaded model; the adapter name now active."""
    model = trained.model
    if not trained.meta.get("peft"):
        for p in model.parameters():
            p.requires_grad_(True)  # load_trainable fills the tensors that require grad: all of them
        ckpt.load_trainable(checkpoint, model)
        for p in model.parameters():
            p.requires_grad_(False)
        return active
    name = checkpoint.name.replace("-", "_")  # peft adapter names end up in module attribute names
    check_adapter(checkpoint)
    with loading_adapter(checkpoint):
        model.load_adapter(str(checkpoint / ckpt.ADAPTER), adapter_name=name, is_trainable=False)
    model.set_adapter(name)
    model.delete_adapter(active)  # one adapter held at a time, however many checkpoints
    model.eval()
    return name


def _removed(checkpoint: Path) -> UserError:
    return UserError(f"{checkpoint}: was removed while it was being scored (a run keeps only its last "
                     "--keep-last checkpoints); eval again")


def score(trained, found: Blocks, device: torch.device, on_batch: Callable[[int, float], None] | None = None
          ) -> tuple[float, int]:
    """(mean loss per target token, target tokens) over ``found``, as training's evaluate() sums it."""
    from aios_tui.engine.train import autocast_dtype

    amp = autocast_dtype(trained.cfg, device)
    total, weight = torch.zeros((), dtype=torch.float64, device=device), 0
    trained.model.eval()
    with torch.no_grad(), torch.autocast(device.type, dtype=amp, enabled=amp is not None):
        for i, batch in enumerate(found.batches(), 1):
            batch = {k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}
            loss, w = trained.task.eval_loss(trained.model, batch)
            total += loss.double() * w
            weight += w
            if on_batch is not None:
                on_batch(i, float(total) / max(1, weight))
    return float(total) / max(1, weight), weight


def evaluate(p: Plan, *, dataset_file: str | None = None, max_batches: int | None = None,
             batch_size: int | None = None, device: str = "auto", progress=None,
             on_blocks: Callable[[Blocks], None] | None = None) -> list[Score]:
    """Scores ``p``'s rows: the base model first (with ``p.base``), then each checkpoint in step
    order, the base loaded once. ``progress`` (an engine ``Progress``) hears of an eval that runs
    long; ``on_blocks`` is told what is scored once the data is packed."""
    from aios_tui.engine.export import load_trained
    from aios_tui.engine.models import resolve_device

    dev = resolve_device(device)
    first = p.checkpoints[0]
    try:
        trained = load_trained(p.run.path, _step(first), dev)
    except (FileNotFoundError, UserError):
        if not (first / ckpt.COMPLETE).exists():
            raise _removed(first) from None
        raise
    found = blocks(trained, dataset_file, max_batches, batch_size)
    if on_blocks is not None:
        on_blocks(found)
    rows: list[tuple[int | None, Path | None]] = ([(None, None)] if p.base else [])
    rows += [(_step(c), c) for c in p.checkpoints]
    scores, active = [], "default"
    for n, (step, checkpoint) in enumerate(rows, 1):
        if checkpoint is not None and checkpoint != first:
            try:
                active = _swap_in(trained, checkpoint, active)
            except (FileNotFoundError, ValueError, UserError):
                if not (checkpoint / ckpt.COMPLETE).exists():
                    raise _removed(checkpoint) from None
                raise
        label = "base model" if step is None else f"step {step}"
        watch = _Watch(progress, f"{label} ({n}/{len(rows)})", found.n_batches)
        with trained.model.disable_adapter() if step is None else contextlib.nullcontext():
            loss, tokens = score(trained, found, dev, watch.batch)
        watch.close()
        scores.append(Score(step, loss, tokens, None if checkpoint is None else str(checkpoint)))
    return scores


class _Watch:
    """Progress for one row, shown only once it has run ``QUIET_S``: a short eval prints nothing."""

    def __init__(self, progress, label: str, total: int):
        self.progress, self.label, self.total = progress, label, total
        self.start = time.monotonic()
        self.shown = False

    def batch(self, done: int, loss: float) -> None:
        if self.progress is None:
            return
        elapsed = time.monotonic() - self.start
        if not self.shown:
            if elapsed < QUIET_S:
                return
            self.shown = True
            self.progress.message(f"scoring {self.label}: {self.total} batch(es)")
        rate = done / elapsed if elapsed > 0 else None
        eta = (self.total - done) / rate if rate else None
        self.progress.update(done, self.total, loss, None, eta)

    def close(self) -> None:
        if self.shown:
            self.progress.close()


def best(scores: list[Score]) -> Score | None:
    """The checkpoint with the lowest loss (the base model is not one to pick)."""
    candidates = [s for s in scores if s.step is not None]
    return min(candidates, key=lambda s: s.loss) if candidates else None
