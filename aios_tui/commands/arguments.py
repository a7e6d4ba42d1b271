"""Arguments several commands take: a run (by directory or name), an interval in seconds; notes
on settings that will not do what they seem to."""

from __future__ import annotations

import math
from pathlib import Path

from aios_tui.metrics.rundir import resolve_run


def run_path(arg: str, what: str = "run directory") -> str:
    """``arg`` where it exists; else the run it names (see ``resolve_run``, which says what was
    looked for when there is none)."""
    if Path(arg).expanduser().exists():
        return arg  # as the user wrote it: the messages that follow name it so
    return str(resolve_run(arg, what=what))


def interval_problem(seconds: float) -> str | None:
    if math.isfinite(seconds) and 0.05 <= seconds <= 3600:
        return None
    return f"--interval {seconds:g}: give seconds between 0.05 and 3600"


def device_problem(device: str) -> str | None:
    """--device cuda without a GPU, said under the flag the user gave (the engine's own check,
    for a config, names train.device)."""
    if device != "cuda":
        return None
    import torch

    if torch.cuda.is_available():
        return None
    return "--device: cuda was asked for but no CUDA GPU is visible to torch; use --device cpu or auto"


def _method_ignores(method: str, name: str) -> bool:
    """Whether adapter type ``method`` has no use for PEFT field ``name``."""
    if name.startswith("adalora_"):
        return method != "adalora"
    if name.startswith("ia3_"):
        return method != "ia3"
    return method == "ia3" and name in ("lora_r", "lora_alpha", "lora_dropout")  # IA3 learns scales only


def note_ignored_peft_flags(args, peft) -> None:
    """Says so when PEFT flags were given that the run will not use: all of them without
    --use-peft (the master switch), or those of another adapter type."""
    from aios_tui.config import field_index, overrides_from_args

    index = field_index()
    given = [n for n in overrides_from_args(args) if n != "use_peft" and index.get(n, ("",))[0] == "peft"]
    if peft.use_peft:
        given = [n for n in given if _method_ignores(peft.peft_method, n)]
        why = f"with --peft-method {peft.peft_method}"
    else:
        why = "without --use-peft; training the full model"
    _say_no_effect(given, why)


def note_ignored_hrm_flags(args) -> None:
    """`train` fine-tunes the model it loads as it is: HRM ACTv1 settings typed on its command
    line (AI-OS's train-actv1 examples pass --halt-max-steps) would otherwise vanish unsaid."""
    from aios_tui.config import field_index, overrides_from_args

    index = field_index()
    _say_no_effect([n for n in overrides_from_args(args) if index.get(n, ("",))[0] == "hrm"],
                   "on `aios-tui train`; HRM ACTv1 brains train with `aios-tui train-actv1`")


def _say_no_effect(names: list[str], why: str) -> None:
    from aios_tui import notes

    if names:
        flags = ", ".join("--" + n.replace("_", "-") for n in names)
        notes.say(f"{flags} {'has' if len(names) == 1 else 'have'} no effect {why}")
