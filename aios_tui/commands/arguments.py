"""Arguments several commands take: a run (by directory or name), an interval in seconds."""

from __future__ import annotations

import math
from pathlib import Path

from aios_tui.metrics.rundir import default_runs_root


def run_path(arg: str) -> str:
    """``arg`` where it exists; else the run of that name under the runs root, if there is one."""
    path = Path(arg).expanduser()
    if path.exists() or not arg.strip() or Path(arg).is_absolute():
        return arg
    named = default_runs_root() / arg
    return str(named) if named.is_dir() else arg


def interval_problem(seconds: float) -> str | None:
    if math.isfinite(seconds) and 0.05 <= seconds <= 3600:
        return None
    return f"--interval {seconds:g}: give seconds between 0.05 and 3600"
