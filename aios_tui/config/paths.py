"""A run's local paths, made absolute when the run starts.

A run is resumed, exported, tailed and attached to from wherever the user is later (another
shell, a console opened elsewhere); its saved settings must name the same files from there. Hub
ids and addresses (``hf://`` dataset files) are names, not paths, and stay as given.
"""

from __future__ import annotations

import copy
import os
from pathlib import Path

from aios_tui.config.schema import RunConfig


def _absolute(value: str, base: Path) -> str:
    if not value.strip() or "://" in value:  # empty (a default), or an address (hf://, https://)
        return value
    return os.path.normpath(base / Path(value).expanduser())


def anchored(cfg: RunConfig, base: str | Path | None = None) -> RunConfig:
    """``cfg`` with its relative local paths joined to ``base`` (the working directory)."""
    base = Path(base or Path.cwd())
    out = copy.deepcopy(cfg)
    for section, name in (("data", "dataset_file"), ("train", "log_file"), ("train", "run_dir"), ("hrm", "bundle_dir"),
                          ("hrm", "student_init")):
        part = getattr(out, section)
        setattr(part, name, _absolute(getattr(part, name), base))
    model = out.model.model
    if model != "tiny" and (base / Path(model).expanduser()).exists():  # a local directory, not a hub id
        out.model.model = _absolute(model, base)
    return out
