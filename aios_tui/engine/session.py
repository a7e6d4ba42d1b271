"""Run directories from the engine's side: naming, whether one is free, preparing it (no torch).

A directory is *free* for a new run when it does not exist, is empty, or was only prepared for
one (``config.toml`` and a ``starting`` status, as ``train --detach`` and the console leave it).
A directory that holds metrics, checkpoints or a run that got going is taken: only ``--resume``
continues it.
"""

from __future__ import annotations

import dataclasses
import os
import re
from pathlib import Path

from aios_tui.config import RunConfig
from aios_tui.errors import UserError
from aios_tui.metrics.rundir import (RunDir, default_runs_root, generated_run_name, pid_alive, prepare_run,
                                    run_metrics_path, trainer_command)

PREPARED_FILES = {"config.toml", "status.json", "engine.log", "STOP", "CHECKPOINT"}


def choose_run_dir(cfg: RunConfig, command: str = "train") -> Path:
    """``train.run_dir``, else ``<runs root>/<run_name>`` (a name made unique when it is generated)."""
    if cfg.train.run_dir.strip():
        return Path(cfg.train.run_dir).expanduser()
    root = default_runs_root()
    if cfg.train.run_name.strip():
        return root / cfg.train.run_name.strip()
    return _next_free(root, generated_run_name(cfg.method_label(), command))


def _next_free(root: Path, base: str) -> Path:
    path, n = root / base, 1
    while path.exists():
        n += 1
        path = root / f"{base}-{n}"
    return path


# a generated name: what trains, the second it started, and a number when that second was taken
_GENERATED = re.compile(r"^(.+-\d{8}-\d{6})(?:-\d+)?$")


def is_generated(cfg: RunConfig) -> bool:
    """Whether a new run's directory is named by choose_run_dir rather than by the user."""
    return not cfg.train.run_dir.strip() and not cfg.train.run_name.strip()


def take(run: RunDir, cfg: RunConfig, generated: bool) -> tuple[RunDir, RunConfig]:
    """The directory a new run starts in, and ``cfg`` naming it. Runs started in the same second
    generate the same name: when another took it since it was chosen, a generated name moves on
    to the next free one; a name the user gave is refused (ensure_free)."""
    if generated and holds_run(run):
        match = _GENERATED.match(run.path.name)
        run = RunDir(_next_free(run.path.parent, match.group(1) if match else run.path.name))
    ensure_free(run)
    name = run.name if generated else cfg.train.run_name or run.name
    return run, dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, run_dir=str(run.path), run_name=name))


def holds_run(run: RunDir) -> str | None:
    """Why ``run`` cannot take a new run (None when it is free)."""
    path = run.path
    if not path.exists():
        return None
    if not path.is_dir():
        return f"{path} exists and is not a directory"
    if run.list_checkpoints() or (run.checkpoints.is_dir() and any(run.checkpoints.iterdir())):
        return f"{path} already holds a run with checkpoints"
    status = run.read_status()
    state = status.get("state")
    if state and state != "starting":
        return f"{path} already holds a run ({run.state()})"
    if state == "starting":
        pid = status.get("pid")
        if pid and pid_alive(pid, status.get("pid_start")) and pid not in (os.getpid(), os.getppid()):
            return f"{path} is being started by process {pid}"
    metrics = run.default_metrics
    if metrics.exists() and metrics.stat().st_size > 0:
        return f"{path} already holds a run (it has metrics)"
    stray = [p.name for p in path.iterdir() if p.name not in PREPARED_FILES and not p.name.startswith(".")]
    if stray:
        return f"{path} is not empty ({', '.join(sorted(stray)[:4])})"
    return None


def start_again_hint(run: RunDir) -> list[str]:
    """How to reuse the name of a run that ended with no checkpoint (stopped or killed before its
    first one): it cannot be continued, and only deleting it frees the name."""
    if run.exists() and run.state() in ("stopped", "finished", "failed") and run.latest_checkpoint() is None:
        return [f"to start it again under this name, delete it first: `aios-tui runs delete {run.path}`"]
    return []


def ensure_free(run: RunDir) -> None:
    why = holds_run(run)
    if why and not (run.path.is_dir() and run.latest_checkpoint() is not None):
        # only a run with a checkpoint can be continued
        raise UserError(f"{why}; pick another --run-dir or --run-name", *start_again_hint(run))
    if why:
        raise UserError(f"{why}; pick another --run-dir or --run-name, or continue it with "
                        f"`aios-tui {trainer_command(run.read_status())} --resume {run.path}`")


# One way to prepare a run directory, shared with the console.
prepare = prepare_run
metrics_path = run_metrics_path
