"""What a watcher knows about one run, rebuilt only from its run directory.

``RunTracker.poll()`` reads status.json and the new metrics lines; ``view()`` hands out an
immutable ``RunView`` (cumulative: progress, loss history, recent events), so a display that
skips some views to keep up with a slow terminal loses nothing. Of a --log-file other runs
share, only the run's own sessions count.
"""

from __future__ import annotations

import os
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aios_tui.metrics.backscan import last_records, scan_back
from aios_tui.metrics.follow import MAX_POLL_BYTES, Follower
from aios_tui.metrics.history import History, finite, newer_lines_win
from aios_tui.metrics.rundir import LIVE_STATES, RunDir, StatusRead
from aios_tui.metrics.sessions import Owner, config_steps, is_start_of, own_sessions, same_place, step_of

# A run whose directory is not there (deleted while watched).
MISSING = "missing"
# Above this size a watcher reads the header and the last BACKLOG records only.
BIG_FILE_BYTES = 16 << 20
BACKLOG = 5000
Point = tuple[int, float]
_UNREAD = object()


def _add(points: list[Point], point: Point, stride: int, limit: int) -> int:
    """Append ``point``; keep the first point, the newest and those whose step is a multiple of
    ``stride``, doubling the stride whenever the list fills. Thinning only by step keeps the kept
    points evenly spread over the whole run: halving the list each time it filled thinned the
    oldest points again and again. Returns the stride now in use."""
    if len(points) > 1 and points[-1][0] % stride:
        points.pop()  # it was kept only for being the newest
    points.append(point)
    while len(points) > max(limit, 3):
        stride *= 2
        points[1:-1] = [p for p in points[1:-1] if p[0] % stride == 0]
    return stride


@dataclass(frozen=True)
class RunView:
    path: str
    name: str
    state: str
    status: dict[str, Any]
    header: dict[str, Any] | None
    last: dict[str, Any] | None                 # newest record carrying a training loss
    loss: tuple[Point, ...] = ()
    eval_loss: tuple[Point, ...] = ()
    events: tuple[dict[str, Any], ...] = ()
    measured: dict[str, Any] | None = None      # the vram_measured event, once written
    truncated: bool = False                     # history starts at the file's tail, not its top (yet)
    status_problem: str | None = None           # why status.json could not be read
    log_gone: str | None = None                 # the --log-file the status names is not there

    @property
    def live(self) -> bool:
        return self.state in LIVE_STATES

    @property
    def step(self) -> int | None:
        if self.last and isinstance(self.last.get("step"), int):
            return max(self.last["step"], self.status.get("step") or 0)
        return self.status.get("step")

    @property
    def total_steps(self) -> int | None:
        total = self.status.get("total_steps")
        if not total and self.header:
            total = config_steps(self.header)
        return total if isinstance(total, int) else None

    @property
    def method(self) -> str | None:
        return self.status.get("method") or (self.header or {}).get("method")

    @property
    def last_eval(self) -> Point | None:
        return self.eval_loss[-1] if self.eval_loss else None

    @property
    def error(self) -> str | None:
        if self.status.get("error"):
            return str(self.status["error"])
        for ev in reversed(self.events):
            if ev.get("event") == "error":
                return str(ev.get("message") or ev.get("error") or "error")
        return None


class RunTracker:
    """Polls one run directory; cheap to call a few times a second."""

    def __init__(self, run_dir: str | os.PathLike | RunDir, *, max_points: int = 1500,
                 backlog: int = BACKLOG, max_events: int = 40, history_bytes: int = MAX_POLL_BYTES):
        self.run = run_dir if isinstance(run_dir, RunDir) else RunDir(run_dir)
        self.max_points = max_points
        self.backlog = backlog
        self.history_bytes = history_bytes
        self._status_read = StatusRead({}, missing=True)
        self.state = "unknown"
        self.header: dict[str, Any] | None = None
        self.last: dict[str, Any] | None = None
        self.loss: list[Point] = []
        self.eval_loss: list[Point] = []
        self._loss_stride = self._eval_stride = 1
        self.events: deque[dict[str, Any]] = deque(maxlen=max_events)
        self.measured: dict[str, Any] | None = None
        self.truncated = False
        self._follower: Follower | None = None
        self._owner: Owner | None = None   # whose lines are read, in a file not the run's own
        self._history: History | None = None
        self._events_seen = self._events_at_tail = 0   # events ingested: in all, and with the tail
        self._resets = 0
        self._status_sig: object = _UNREAD
        self._version = 0

    @property
    def status(self) -> dict[str, Any]:
        return self._status_read.fields

    @property
    def status_problem(self) -> str | None:
        return self._status_read.problem

    # -- reading ---------------------------------------------------------------
    def _read_status(self) -> bool:
        try:
            st = os.stat(self.run.status_file)
            sig = (st.st_mtime_ns, st.st_ino)
        except OSError:
            sig = None
        changed = False
        if sig != self._status_sig:
            self._status_sig = sig
            self._status_read = self.run.load_status()
            changed = True
        if self._status_read.missing:
            state = "starting" if self.run.path.is_dir() else MISSING
        else:
            state = self._status_read.state()
            if state != self.state and not changed and self._status_read.fields.get("state") in LIVE_STATES:
                # its process died since the file was read: read it again, caught up to the
                # step the metrics reached
                self._status_read = self.run.load_status()
                changed = True
        if state != self.state:
            self.state = state
            changed = True
        return changed

    def _metrics_path(self) -> Path:
        return self.run.metrics_path(self.status)

    def _clear(self) -> None:
        self.header, self.last, self.measured = None, None, None
        self.loss, self.eval_loss = [], []
        self._loss_stride = self._eval_stride = 1
        self.events.clear()
        self.truncated = False
        self._history = None

    def poll(self) -> bool:
        """Read what is new; True when the view changed."""
        changed = self._read_status()
        path = self._metrics_path()
        records: list[dict[str, Any]] = []
        history = self._history  # none yet on the poll that reads a tail: that one stays quick
        if self._follower is None or self._follower.path != path:
            if self._follower is not None:
                self._clear()
            self._follower = Follower(path)
            self._owner = None if same_place(str(path), self.run.default_metrics) else Owner(self.run.places())
            self._resets = 0
            try:
                big = os.path.getsize(path) > BIG_FILE_BYTES
            except OSError:
                big = False
            if big:
                records = self._enter_from_end(path)
                changed = True
                self._events_at_tail = self._events_seen + sum(1 for r in records if "event" in r)
        new = self._follower.poll()
        if self._follower.resets != self._resets:
            self._resets = self._follower.resets
            self._clear()
            if self._owner is not None:
                self._owner.mine = True
            changed = True
        if self._owner is not None:
            self._owner.pid = step_of(self.status.get("pid"))
            new = [rec for rec in new if self._owner.take(rec)]
        records += new
        for rec in records:
            self.ingest(rec)
        if records:
            changed = True
        if history is not None and history is self._history and self._backfill():
            changed = True
        if changed:
            self._version += 1
        return changed

    def _enter_from_end(self, path: Path) -> list[dict[str, Any]]:
        """The last records of a huge file, the run's own, read at once; the history up to their
        end is read a piece a poll, and where the two overlap the tail's lines win."""
        self.truncated = True
        if self._owner is None:
            self.header = self._follower.header()
            records = self._follower.tail(self.backlog)
            ranges = [(0, self._follower.offset)]
        else:
            # whose each session is, read back from the end to the run's own header (markers
            # only: their lines are skipped unread), then the run's own last lines
            places = self.run.places()
            scan = scan_back(path, lambda rec: False, 0, per_session=True,
                             stop=lambda s: is_start_of(s, places))
            self._owner.pid = step_of(self.status.get("pid"))
            own = own_sessions(scan.sessions, places, self._owner.pid)
            self.header = next((s.header for s in reversed(own) if s.header), None)
            records = last_records(path, own, self.backlog)
            self._follower = Follower(path, offset=scan.end)
            self._owner.mine = bool(own) and own[-1] is scan.sessions[-1]
            ranges = [(s.start, s.end) for s in own]
        self._history = History(path, 0, _add, self.max_points, self.history_bytes,
                                self.events.maxlen or 0, ranges=ranges)
        return records

    @property
    def behind(self) -> bool:
        """Whether more is already there to read: a backlog, or the history before a tail."""
        pending = self._follower is not None and self._follower.pending_bytes() > 0
        return pending or self._history is not None

    def _backfill(self) -> bool:
        """Read the next piece of the history; True when it is all read and joined."""
        history = self._history
        history.step()
        if not history.done:
            return False
        self.loss, self._loss_stride, self.eval_loss, self._eval_stride = history.joined(
            self.loss, self.eval_loss)
        # the history's events end with the tail's; then those logged since
        since = self._events_seen - self._events_at_tail
        newer = list(self.events)[-since:] if since else []
        self.events = deque([*history.events, *newer], maxlen=self.events.maxlen)
        self._history = None
        self.truncated = False
        return True

    # -- interpreting ----------------------------------------------------------
    def ingest(self, rec: dict[str, Any]) -> None:
        if "event" in rec:
            self.events.append(rec)
            self._events_seen += 1
            if rec["event"] == "vram_measured":
                self.measured = rec
            return
        if "step" not in rec:
            if "peft" in rec or "parameters" in rec:
                self.header = rec
            return
        step = rec["step"]
        if not isinstance(step, int):
            return
        # Peaks are written when a session ends: a step after them is a resumed session's,
        # whose own memory figures are the ones to show.
        self.measured = None
        self.loss, self.eval_loss = newer_lines_win(self.loss, self.eval_loss, step, rec)
        if finite(rec.get("loss")):
            self._loss_stride = _add(self.loss, (step, float(rec["loss"])), self._loss_stride,
                                     self.max_points)
        if "loss" in rec:
            self.last = rec
        if finite(rec.get("eval_loss")):
            self._eval_stride = _add(self.eval_loss, (step, float(rec["eval_loss"])),
                                     self._eval_stride, self.max_points)

    def view(self) -> RunView:
        return RunView(
            path=str(self.run.path), name=self.status.get("run_name") or self.run.name,
            state=self.state, status=dict(self.status), header=self.header, last=self.last,
            loss=tuple(self.loss), eval_loss=tuple(self.eval_loss), events=tuple(self.events),
            measured=self.measured, truncated=self.truncated, status_problem=self.status_problem,
            log_gone=self.run.log_gone(self.status),
        )
