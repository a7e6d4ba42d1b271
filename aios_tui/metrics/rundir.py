"""The run directory: the only channel between a training process and whoever watches it.

    <run>/config.toml          the exact config the run started with
    <run>/metrics.jsonl        one JSON object per line, flushed per line
    <run>/status.json          pid (and its start time), state, step, heartbeat (written atomically)
    <run>/checkpoints/step-NNNNNN/
    <run>/STOP                 created by anyone who wants the run to save and stop
    <run>/adapter/ <run>/merged/   exports
"""

from __future__ import annotations

import errno
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aios_tui.atomic import atomic_write_json

STATES = ("starting", "running", "stopping", "stopped", "finished", "failed")
LIVE_STATES = ("starting", "running", "stopping")


def default_runs_root() -> Path:
    return Path(os.environ.get("AIOS_TUI_RUNS", "artifacts/runs"))


def process_start(pid: int | None) -> int | None:
    """When process ``pid`` started (clock ticks since boot, Linux), or None where unknown."""
    if not pid or pid <= 0:
        return None
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            return int(fh.read().split(b")")[-1].split()[19])
    except (OSError, ValueError, IndexError):
        return None


def pid_alive(pid: int | None, start: int | None = None) -> bool:
    """Whether ``pid`` runs; with ``start`` (from ``process_start``), whether it is still the same
    process, not a new one that was given a dead run's pid."""
    if not pid or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except OSError as exc:
        if exc.errno != errno.EPERM:  # EPERM: it runs, as another user
            return False
    if start is not None and process_start(pid) not in (None, start):
        return False
    try:  # a zombie child still answers kill(0); it is not training
        with open(f"/proc/{pid}/stat", "rb") as fh:
            return fh.read().split(b")")[-1].split()[0] != b"Z"
    except OSError:
        return True


def status_alive(status: dict[str, Any]) -> bool:
    """Whether the process a status.json names is still the one that wrote it."""
    return pid_alive(status.get("pid"), status.get("pid_start"))


@dataclass(frozen=True)
class RunDir:
    path: Path

    def __init__(self, path: str | os.PathLike):
        object.__setattr__(self, "path", Path(path))

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def config_toml(self) -> Path:
        return self.path / "config.toml"

    @property
    def default_metrics(self) -> Path:
        return self.path / "metrics.jsonl"

    @property
    def status_file(self) -> Path:
        return self.path / "status.json"

    @property
    def checkpoints(self) -> Path:
        return self.path / "checkpoints"

    @property
    def stop_file(self) -> Path:
        return self.path / "STOP"

    @property
    def checkpoint_request_file(self) -> Path:
        return self.path / "CHECKPOINT"

    @property
    def log_path(self) -> Path:
        """stdout/stderr of a detached run."""
        return self.path / "engine.log"

    def metrics_path(self) -> Path:
        """Where this run writes metrics: status.json may name a --log-file elsewhere."""
        status = self.read_status()
        return Path(status["metrics"]) if status.get("metrics") else self.default_metrics

    def exists(self) -> bool:
        return self.status_file.is_file() or self.config_toml.is_file()

    def read_status(self) -> dict[str, Any]:
        try:
            return json.loads(self.status_file.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}

    def write_status(self, **fields: Any) -> dict[str, Any]:
        """Merge ``fields`` into status.json, stamping the heartbeat."""
        status = self.read_status()
        if "pid" in fields and "pid_start" not in fields:
            fields = {**fields, "pid_start": process_start(fields["pid"])}
        status.update(fields)
        status["heartbeat"] = time.time()
        atomic_write_json(self.status_file, status)
        return status

    def state(self) -> str:
        """The state, corrected for a process that died without saying so."""
        status = self.read_status()
        state = status.get("state", "unknown")
        if state in LIVE_STATES and not status_alive(status):
            return "failed" if state != "stopping" else "stopped"
        return state

    def request_stop(self) -> None:
        self.stop_file.touch()

    def request_checkpoint(self) -> None:
        self.checkpoint_request_file.touch()

    def list_checkpoints(self) -> list[Path]:
        if not self.checkpoints.is_dir():
            return []
        return sorted(p for p in self.checkpoints.iterdir()
                      if p.is_dir() and p.name.startswith("step-") and (p / "COMPLETE").exists())

    def latest_checkpoint(self) -> Path | None:
        cps = self.list_checkpoints()
        return cps[-1] if cps else None


def list_runs(root: str | os.PathLike | None = None) -> list[RunDir]:
    """Run directories under ``root``, newest first."""
    root = Path(root) if root else default_runs_root()
    if not root.is_dir():
        return []
    runs = [RunDir(p) for p in root.iterdir() if p.is_dir() and RunDir(p).exists()]

    def mtime(r: RunDir) -> float:
        try:
            return r.status_file.stat().st_mtime
        except OSError:
            return r.path.stat().st_mtime

    return sorted(runs, key=mtime, reverse=True)


def run_metrics_path(cfg: Any, run: RunDir) -> Path:
    """Where a run with config ``cfg`` writes its metrics: ``train.log_file`` or the run's own."""
    log_file = cfg.train.log_file.strip()
    return Path(log_file).expanduser().resolve() if log_file else run.default_metrics.resolve()


def prepare_run(run: RunDir, cfg: Any, *, pid: int, total_steps: int, write_config: bool = True) -> bool:
    """Create the run directory with config.toml and a ``starting`` status naming ``pid``;
    True if the directory was created. The CLI, the engine and the console all prepare runs
    this one way, so a watcher reads the same status whoever started the run."""
    from aios_tui.config import save_config  # the config layer; kept out of this module's import

    created = not run.path.exists()
    run.path.mkdir(parents=True, exist_ok=True)
    if write_config:
        save_config(cfg, run.config_toml)
    run.write_status(state="starting", pid=pid, step=0, total_steps=total_steps,
                     run_name=run.name, method=cfg.method_label(),
                     metrics=str(run_metrics_path(cfg, run)), started_at=time.time(),
                     last_loss=None, error=None, checkpoint=None)
    return created
