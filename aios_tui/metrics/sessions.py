"""A metrics file as sessions, and which of them are one run's.

A --log-file several runs share holds each one's sessions; a session runs from one marker (a
header, a ``started`` or ``resumed`` event) to the next. A session is told to be a run's by the
``run_dir`` its header and ``started`` event name, or by the checkpoint (or pid) its ``resumed``
event names. ``run`` below is the run's directory, or every place it trained at
(``RunDir.places``): a run moved since is still named in the file by where it was.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aios_tui.metrics.jsonl import is_header


@dataclass
class Session:
    """The lines from one session marker to the next; ``start``/``end``: their bytes, when known."""
    kind: str = "begin"
    run_dir: str | None = None
    pid: int | None = None
    checkpoint: str | None = None
    header: dict[str, Any] | None = None
    total_steps: int | None = None
    config: dict[str, Any] | None = None  # the settings it ran with: its header's, or a resume's
    records: list[dict[str, Any]] = field(default_factory=list)
    start: int = 0
    end: int = 0


def step_of(v: Any) -> int | None:
    return v if isinstance(v, int) and not isinstance(v, bool) else None


def is_marker(rec: dict[str, Any]) -> bool:
    return is_header(rec) or rec.get("event") in ("started", "resumed")


def session_of(rec: dict[str, Any]) -> Session:
    """The session the marker ``rec`` begins."""
    config = rec.get("config") if isinstance(rec.get("config"), dict) else None
    if is_header(rec):
        return Session("header", _text(rec.get("run_dir")), header=rec, total_steps=config_steps(rec),
                       config=config)
    return Session(rec["event"], _text(rec.get("run_dir")), step_of(rec.get("pid")),
                   _text(rec.get("checkpoint")), total_steps=step_of(rec.get("total_steps")), config=config)


def split_sessions(records: list[dict[str, Any]]) -> list[Session]:
    sessions = [Session()]
    for rec in records:
        if is_marker(rec):
            sessions.append(session_of(rec))
        sessions[-1].records.append(rec)
    return sessions


def _text(v: Any) -> str | None:
    return v if isinstance(v, str) and v else None


def config_steps(header: dict[str, Any]) -> int | None:
    """The total steps a run's header line says it was started with."""
    train = (header.get("config") or {}).get("train") if isinstance(header.get("config"), dict) else None
    return step_of(train.get("steps")) if isinstance(train, dict) else None


Places = "Path | tuple[Path, ...]"


def _places(run: Places) -> tuple[Path, ...]:
    return run if isinstance(run, tuple) else (run,)


def same_place(a: str, b: Path) -> bool:
    return os.path.realpath(a) == os.path.realpath(b)


def at_run(path: str, run: Places) -> bool:
    return any(same_place(path, p) for p in _places(run))


def _inside(path: str, run: Places) -> bool:
    real = os.path.realpath(path)
    for place in _places(run):
        root = os.path.realpath(place)
        if real == root or real.startswith(root.rstrip(os.sep) + os.sep):
            return True
    return False


def belongs(s: Session, run: Places, pid: int | None, mine: bool) -> bool:
    """Whether ``s`` is ``run``'s, ``mine`` telling whether the session before it was."""
    if s.run_dir:
        return at_run(s.run_dir, run)
    if s.kind == "resumed" and s.checkpoint:
        return _inside(s.checkpoint, run)
    if s.kind == "resumed" and pid is not None and s.pid is not None:
        return s.pid == pid or mine
    return mine


class Owner:
    """Whose the lines of a file read in order are, one at a time: a marker says, as for
    ``own_sessions``; ``mine``: whether the lines before the next marker are ``run``'s."""

    def __init__(self, run: Places, pid: int | None = None, mine: bool = True):
        self.run, self.pid, self.mine = run, pid, mine

    def take(self, rec: dict[str, Any]) -> bool:
        """Whether ``rec`` is the run's."""
        if is_marker(rec):
            self.mine = belongs(session_of(rec), self.run, self.pid, self.mine)
        return self.mine


def is_start_of(s: Session, run: Places) -> bool:
    """Whether ``s`` is the header ``run`` began with: no session before it is the run's."""
    return s.kind == "header" and bool(s.run_dir) and at_run(s.run_dir, run)


def own_sessions(sessions: list[Session], run: Places, pid: int | None,
                 own_file: bool = False) -> list[Session]:
    """The sessions of ``run`` in a file that may hold other runs' sessions too; ``own_file``:
    the file is the run's own metrics.jsonl, inside its directory."""
    named = {os.path.realpath(s.run_dir) for s in sessions if s.run_dir}
    if own_file and len(named) == 1 and not any(os.path.realpath(p) in named for p in _places(run)):
        # one run's file that names a directory it is no longer in: the run was moved or
        # copied (an archive, a box's runs fetched home), and every session is still its own
        return sessions
    if not named:
        # nothing names its run (a file from an older version): as `tail` reads a shared
        # file, its last header's session on is the run's
        heads = [i for i, s in enumerate(sessions) if s.kind == "header"]
        return sessions[heads[-1] if heads else 0:]
    mine, out = True, []
    for s in sessions:
        mine = belongs(s, run, pid, mine)
        if mine:
            out.append(s)
    return out
