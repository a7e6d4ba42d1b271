"""The end of a metrics file as sessions, read back from its end only as far as they need.

``tail`` shows a file's last lines, and says whose they are: a --log-file several runs share
holds their sessions one after another, and a line belongs to the session whose marker (a
header, a ``started`` or ``resumed`` event) last came before it. Reading back, a line is parsed
only while more lines are wanted or when it may be a marker; the rest is skipped unread.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Callable

from aios_tui.metrics.jsonl import open_metrics, parse_complete_lines, tail_records
from aios_tui.metrics.sessions import Session, is_marker, session_of

CHUNK = 1 << 20
_MARKS = (b'"peft"', b'"started"', b'"resumed"')
_LONGEST_LINE = 16 << 20  # a "line" longer than this is no metrics line: it is skipped


@dataclass
class Scan:
    sessions: list[Session]  # in file order; the first is a "begin" one, its marker not read
    end: int                 # the offset after the last complete line
    top: bool                # read back to the file's first byte


def _parse(line: bytes) -> dict[str, Any] | None:
    records, _ = parse_complete_lines(line if line.endswith(b"\n") else line + b"\n")
    return records[0] if records else None


def scan_back(path: str | os.PathLike, keep: Callable[[dict[str, Any]], bool], n: int, *,
              per_session: bool = False, stop: Callable[[Session], bool] = lambda s: False,
              budget: int | None = None) -> Scan:
    """Sessions from the end of ``path`` back, each with its marker and the records ``keep``
    takes: the file's last ``n`` of them, or with ``per_session`` each session's last ``n``.
    Reading stops at a session ``stop`` accepts or at the file's top; without ``per_session``
    also once ``n`` are kept, at the next marker or ``budget`` bytes from the end."""
    try:
        fh = open_metrics(path)
    except FileNotFoundError:
        return Scan([Session()], 0, True)
    done: list[Session] = []   # latest first
    current = Session()        # the session being read back, its marker not found yet
    kept = 0
    with fh:
        pos = fh.seek(0, os.SEEK_END)
        end: int | None = None
        head = b""  # the start of a line that began before ``pos``
        finished = False
        while pos > 0 and not finished:
            step = min(CHUNK, pos)
            pos -= step
            fh.seek(pos)
            data = fh.read(step) + head
            if end is None:
                cut = data.rfind(b"\n")
                if cut < 0:
                    head = data if len(data) <= _LONGEST_LINE else b""
                    continue
                end = current.end = pos + cut + 1
                data = data[:cut + 1]
            first = data.find(b"\n") + 1 if pos > 0 else 0
            head = data[:first] if len(data[:first]) <= _LONGEST_LINE else b""
            body, at = data[first:], pos + first
            want = (len(current.records) < n) if per_session else kept < n
            if not want and not any(m in body for m in _MARKS):
                current.start = pos + first
                finished = budget is not None and not per_session and end - pos > budget
                continue
            lines = body.splitlines(keepends=True)
            offsets = []
            for line in lines:
                offsets.append(at)
                at += len(line)
            for line, offset in zip(reversed(lines), reversed(offsets)):
                current.start = offset
                want = (len(current.records) < n) if per_session else kept < n
                if not want and not any(m in line for m in _MARKS):
                    continue
                rec = _parse(line)
                if rec is None:
                    continue
                if is_marker(rec):
                    found = session_of(rec)
                    found.records = [rec, *reversed(current.records)]
                    found.start, found.end = offset, current.end
                    done.append(found)
                    current = Session(end=offset, start=offset)
                    # a run's header comes just before its started event: read on to it
                    if stop(found) or (not per_session and kept >= n and found.kind != "started"):
                        finished = True
                        break
                elif want and keep(rec):
                    current.records.append(rec)
                    kept += 1
            if not finished and budget is not None and not per_session and kept >= n and end - pos > budget:
                finished = True
    current.records.reverse()
    return Scan([current, *reversed(done)], end or 0, pos == 0 and not finished)


def last_records(path: str | os.PathLike, sessions: list[Session], n: int) -> list[dict[str, Any]]:
    """The last ``n`` records of ``sessions`` (read by ``scan_back``, so their bytes are known),
    reading back only as far as they take."""
    out: list[dict[str, Any]] = []
    for s in reversed(sessions):
        if len(out) >= n:
            break
        records, _ = tail_records(path, n - len(out), start=s.start, end=s.end)
        out[:0] = records
    return out
