"""What the form amounts to as text: the differences from its base, and the command line."""

from __future__ import annotations

import dataclasses
import shlex
from typing import Any

from aios_tui.config import RunConfig, SECTIONS
from aios_tui.config.resolve import flag_name


def changed_fields(base: RunConfig, cfg: RunConfig) -> list[tuple[str, str, Any, Any]]:
    """(section, field, base value, value) for every field that differs, in schema order."""
    out = []
    for section in SECTIONS:
        old, new = getattr(base, section), getattr(cfg, section)
        for f in dataclasses.fields(old):
            a, b = getattr(old, f.name), getattr(new, f.name)
            if a != b:
                out.append((section, f.name, a, b))
    return out


def _value_text(value: Any) -> str:
    return repr(value) if isinstance(value, float) else str(value)


def command_line(cfg: RunConfig, base: RunConfig | None = None, *, preset: str | None = None,
                 config_file: str | None = None) -> str:
    """`aios-tui train ...` that rebuilds ``cfg``: the base's source, then one flag per change.
    HRM settings act only on a brain, so a form that changes them gets `train-actv1`."""
    changes = changed_fields(base or RunConfig(), cfg)
    args = ["aios-tui", "train-actv1" if any(section == "hrm" for section, *_ in changes) else "train"]
    if preset:
        args += ["--preset", preset]
    if config_file:
        args += ["--config", config_file]
    for _, name, _, value in changes:
        flag = flag_name(name)
        if isinstance(value, bool):
            args.append(flag if value else "--no-" + flag[2:])
        else:
            args += [flag, _value_text(value)]
    return shlex.join(args)


def diff_lines(base: RunConfig, cfg: RunConfig) -> list[str]:
    changes = changed_fields(base, cfg)
    if not changes:
        return ["no differences"]
    width = max(len(f"{s}.{n}") for s, n, _, _ in changes)
    return [f"{f'{s}.{n}':<{width}}  {a!r} -> {b!r}" for s, n, a, b in changes]
