"""A RUN_DIR argument may also be a run's name, as in `aios-tui tail` and `attach`."""

from __future__ import annotations

from pathlib import Path

from aios_tui.metrics.rundir import default_runs_root


def run_path(arg: str) -> str:
    """``arg`` where it exists; else the run of that name under the runs root, if there is one."""
    path = Path(arg).expanduser()
    if path.exists() or not arg.strip() or Path(arg).is_absolute():
        return arg
    named = default_runs_root() / arg
    return str(named) if named.is_dir() else arg
