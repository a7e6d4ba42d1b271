"""What may change when a run is resumed, and what may not.

``aios-tui train --resume RUN_DIR [flags]`` starts from the config saved in the run's latest
checkpoint and applies the flags on top (or, with ``--config FILE``, compares that file plus
the flags). Each changed field is then judged:

May change (the new value applies from the next step):
    steps (the run's total; not for AdaLoRA, whose rank budget is scheduled over the total),
    lr, lr_schedule, warmup_steps, weight_decay, max_grad_norm, eval_every, eval_batches,
    save_every, keep_last, log_every, device, fused_loss, torch_compile, fp8,
    gradient_checkpointing, attn_implementation, halt_exploration_prob, bundle_dir, brain_name.
    The learning rate is a pure function of the step, so a changed schedule takes effect at
    once with no jump in the step count.

Kept from the run (they name the run, not how it trains): run_name, run_dir. A config file's
values are ignored; `train --resume` refuses flags naming another run.

Refused (exit 2, one line per field):
    the model and its dtype; every peft field (method, rank, alpha, dropout, targets, AdaLoRA
    schedule, IA3 feed-forward modules, modules_to_save), because the saved adapter and
    optimizer state have their shapes; the data (dataset_file, max_seq_len, eval_fraction),
    batch_size, grad_accum and seed, because the saved data position counts blocks of this
    exact packing and order; amp and the memory savers (use_8bit_optimizer, load_in_8bit,
    load_in_4bit), which change the optimizer or scaler state or the numbers themselves;
    log_file (a run keeps one metrics file); HRM architecture fields and student_init.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from aios_tui.config import RunConfig, field_index
from aios_tui.config.paths import anchored
from aios_tui.errors import UserError

MAY_CHANGE = frozenset({
    "steps", "lr", "lr_schedule", "warmup_steps", "weight_decay", "max_grad_norm", "eval_every",
    "eval_batches", "save_every", "keep_last", "log_every", "device", "fused_loss", "torch_compile", "fp8",
    "gradient_checkpointing", "attn_implementation", "halt_exploration_prob", "bundle_dir", "brain_name",
})
KEPT_FROM_RUN = frozenset({"run_name", "run_dir"})

_WHY = {
    "model": "the adapter and optimizer state belong to this model",
    "peft": "the saved adapter and its optimizer state have this shape",
    "data": "the saved data position counts blocks of this exact packing",
    "memory": "it changes the optimizer or scaler state or the arithmetic",
    "hrm": "the saved weights have this architecture",
}
_WHY_FIELD = {
    "batch_size": "the saved data position counts blocks in batches of this size",
    "grad_accum": "the saved data position counts micro-batches per step",
    "seed": "the data order and the dropout noise follow from it",
    "log_file": "a run keeps one metrics file",
    "steps": "AdaLoRA schedules its rank budget over the run's total steps",
    "student_init": "the run already started from its initial weights",
}


def _fmt(v: Any) -> str:
    return repr(v) if isinstance(v, str) else str(v)


def _shown(name: str, value) -> str:
    return "auto" if name == "lr" and value == 0 else _fmt(value)


def merge(saved: RunConfig, requested: RunConfig) -> tuple[RunConfig, list[str]]:
    """(config to continue with, 'field: old -> new' changes); UserError for refused changes.
    Paths compare as absolute ones: a run saved before they were stored so still resumes."""
    saved, requested = anchored(saved), anchored(requested)
    out = dataclasses.replace(saved)
    for section in ("model", "data", "peft", "train", "memory", "hrm"):
        setattr(out, section, dataclasses.replace(getattr(saved, section)))
    changes: list[str] = []
    problems: list[str] = []
    for name, (section, _) in field_index().items():
        old = getattr(getattr(saved, section), name)
        new = getattr(getattr(requested, section), name)
        if old == new or name in KEPT_FROM_RUN:
            continue
        problem = refusal(saved, name, new)
        if problem:
            problems.append(problem)
        else:
            setattr(getattr(out, section), name, new)
            changes.append(f"{name}: {_shown(name, old)} -> {_shown(name, new)}")
    if problems:
        raise UserError(problems + [START_NEW])
    return out, changes


START_NEW = "start a new run to train with these settings"


def refusal(saved: RunConfig, name: str, new: Any) -> str | None:
    """Why field ``name`` may not become ``new`` on resuming ``saved``; None if it may."""
    section = field_index()[name][0]
    old = getattr(getattr(saved, section), name)
    if old == new or name in KEPT_FROM_RUN:
        return None
    if name in MAY_CHANGE and not (name == "steps" and saved.method_label() == "adalora"):
        return None
    why = _WHY_FIELD.get(name) or _WHY.get(section, "the saved state depends on it")
    return f"{section}.{name}: cannot change on resume ({_fmt(old)} -> {_fmt(new)}): {why}"
