"""One line of facts per run (for `aios-tui runs`, `attach` and the console's Runs screen)."""

from __future__ import annotations

import os
import threading
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from aios_tui.errors import UserError
from aios_tui.metrics.disk_usage import dir_bytes
from aios_tui.metrics.fmt import figure, human_bytes, human_duration
from aios_tui.metrics.jsonl import tail_records
from aios_tui.metrics.rundir import (
    DELETING_PREFIX, LIVE_STATES, RUNS_ENV, UNREADABLE, RunDir, default_runs_root, list_runs, remembered_runs,
    resolve_run,
)


SETTLED_STATES = ("finished", "stopped", "failed")


@dataclass(frozen=True)
class RunSummary:
    name: str
    path: str
    state: str
    step: int | None
    total_steps: int | None
    loss: float | None
    method: str | None
    started_at: float | None
    updated_at: float | None
    pid: int | None
    error: str | None
    has_checkpoint: bool = False     # one to resume or export from
    bytes: int | None = None         # on disk, the whole run directory
    elsewhere: bool = False          # not under the runs root listed: started from another directory

    @property
    def live(self) -> bool:
        return self.state in LIVE_STATES

    def age_s(self, now: float | None = None) -> float | None:
        ref = self.started_at or self.updated_at
        return None if ref is None else max(0.0, (now if now is not None else time.time()) - ref)

    def cells(self, now: float | None = None) -> tuple[str, ...]:
        """STATE, STEP, LOSS, AGE, SIZE and METHOD as `runs` and the console's runs list show them."""
        step = "-" if self.step is None else (f"{self.step}/{self.total_steps}" if self.total_steps else str(self.step))
        loss = "-" if self.loss is None else f"{self.loss:.4f}"
        return (self.state, step, loss, human_duration(self.age_s(now)), human_bytes(self.bytes), self.method or "-")

    def to_dict(self, now: float | None = None) -> dict[str, Any]:
        return {**asdict(self), "age_s": self.age_s(now)}


def _last_loss(metrics: Path) -> tuple[int | None, float | None]:
    try:
        records, _ = tail_records(metrics, 20)
    except OSError:  # a directory, or not ours to read: the status's figures are all there is
        return None, None
    for rec in reversed(records):
        loss, step = figure(rec.get("loss")), rec.get("step")
        if loss is not None and "event" not in rec:  # a NaN or inf loss is no figure to show
            return (step if isinstance(step, int) and not isinstance(step, bool) else None), loss
    return None, None


# A settled run's summary, by run directory, with what it was read from: the console's Runs
# screen summarizes every run every two seconds, and weeks of runs are mostly settled ones.
_Sig = tuple[int, int, int] | None
_settled: dict[Path, tuple[tuple[_Sig, ...], Path, RunSummary]] = {}
_lock = threading.Lock()


def _sig(path: Path) -> _Sig:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_mtime_ns, st.st_size, st.st_ino


def _sources(run: RunDir, metrics: Path) -> tuple[_Sig, ...]:
    """What a summary is read from: the status (written atomically, so a new one is a new
    file), the metrics it may take its loss from, the checkpoints (each one lands by a rename),
    and the run directory itself, whose size an export adds to (it too lands by a rename)."""
    return _sig(run.status_file), _sig(metrics), _sig(run.checkpoints), _sig(run.path)


def summarize(run: RunDir) -> RunSummary:
    cached = _settled.get(run.path)
    if cached is not None and cached[0] == _sources(run, cached[1]):
        return cached[2]
    summary, metrics, settled = _summarize(run)
    with _lock:  # the Runs screen's worker and the console's own thread both list runs
        if settled:
            _settled[run.path] = (_sources(run, metrics), metrics, summary)
        else:
            _settled.pop(run.path, None)
    return summary


def _summarize(run: RunDir) -> tuple[RunSummary, Path, bool]:
    """The summary, the metrics file it read, and whether the run is settled: its status says
    it ended, so only a new status (a resume) or new files change what it shows."""
    status_sig = _sig(run.status_file)
    read = run.load_status()
    status, state = read.fields, read.state()
    error = read.problem if state == UNREADABLE else status.get("error")
    step, loss = status.get("step"), status.get("last_loss")
    metrics = run.metrics_path(status)
    if loss is None:
        tail_step, loss = _last_loss(metrics)
        step = step if step is not None else tail_step
    try:
        mtime = run.status_file.stat().st_mtime
    except OSError:
        mtime = None
    # Not settled when the status changed while it was read: the cache would key on the new one.
    settled = (read.problem is None and read.fields.get("state") in SETTLED_STATES
               and status_sig == _sig(run.status_file))
    summary = RunSummary(
        name=run.name, path=str(run.path), state=state,
        step=step, total_steps=status.get("total_steps"), loss=loss, method=status.get("method"),
        started_at=status.get("started_at"), updated_at=status.get("heartbeat") or mtime,
        pid=status.get("pid"), error=error, has_checkpoint=_has_checkpoint(run),
        bytes=dir_bytes(run.path),
    )
    return summary, metrics, settled


def _has_checkpoint(run: RunDir) -> bool:
    try:
        return run.latest_checkpoint() is not None
    except OSError:  # not ours to list: nothing can be resumed or exported from it here either
        return False


def summarize_all(root: str | os.PathLike | None = None, *, elsewhere: bool = False) -> list[RunSummary]:
    """The runs under ``root`` (or the default root), the most recently begun first; with
    ``elsewhere``, then the runs of the recent-runs index outside it that still exist, each once
    (by real path), marked ``elsewhere``: together by directory, the one of the newest run first."""
    runs = list_runs(root)
    others = _elsewhere(runs) if elsewhere else []
    with _lock:
        for gone in set(_settled) - {r.path for r in runs + others}:
            del _settled[gone]
    # list_runs's order, from what the summaries already hold: no status read twice
    there = sorted((replace(summarize(r), elsewhere=True) for r in others),
                   key=lambda s: (s.started_at or s.updated_at or 0.0, s.name), reverse=True)
    places: dict[str, int] = {}
    for s in there:
        places.setdefault(os.path.dirname(s.path), len(places))
    return [summarize(r) for r in runs] + sorted(there, key=lambda s: places[os.path.dirname(s.path)])


def _real(path: Path) -> Path | None:
    try:
        return path.resolve()
    except (OSError, RuntimeError, ValueError):  # a link loop, a NUL in a hand-edited line
        return None


def _elsewhere(here: list[RunDir]) -> list[RunDir]:
    """The recent-runs index's runs that still exist and are none of ``here``."""
    seen = {_real(r.path) for r in here}
    out = []
    for path in remembered_runs():
        real = _real(path) if path.is_absolute() else None  # each line is absolute as written
        if real is None or real in seen or real.name.startswith(DELETING_PREFIX):
            continue
        seen.add(real)
        out.append(RunDir(real))
    return out


def find_run(arg: str | None, root: str | os.PathLike | None = None) -> RunDir:
    """The run ``arg`` names (a path, or a name: see ``resolve_run``); a metrics file stands for
    its run. None: the newest run still training under the root, else (with the default root)
    the newest still training anywhere, else the one most recently started anywhere."""
    if arg is None:
        return _newest_run(root)
    path = resolve_run(arg, root)
    if path.is_file() and path.name.endswith(".jsonl"):
        path = path.parent
    if not RunDir(path).exists():
        raise UserError(f"{path}: not a run directory (no status.json or config.toml)")
    return RunDir(path)


def _newest_run(root: str | os.PathLike | None) -> RunDir:
    here = list_runs(root)
    for run in here:
        if run.state() in LIVE_STATES:
            return run
    if root is not None:  # a root named on purpose is the only place looked in
        if here:
            return here[0]
        raise UserError(f"no runs under {runs_root_shown(root)}")
    # none training here: one started from another directory (a new SSH shell starts in ~)
    elsewhere = [RunDir(p) for p in remembered_runs()]
    for run in elsewhere:
        if run.state() in LIVE_STATES:
            return run
    if elsewhere or here:
        return (elsewhere or here)[0]
    raise UserError(f"no runs under {default_runs_root().absolute()} and none started from other "
                    "directories; start one with `aios-tui train` or from the console")


def runs_root_shown(root: str | os.PathLike | None = None) -> str:
    """The runs root (``root``, or the default) as a message names it: absolute, and where the
    default is relative to the working directory, how to look elsewhere."""
    root_path = Path(root) if root else default_runs_root()
    shown = str(root_path.absolute())
    if not root and not root_path.is_absolute():
        shown += (" (runs are kept under the directory they were started from: cd there, "
                  f"or point {RUNS_ENV} at its {root_path})")
    return shown
