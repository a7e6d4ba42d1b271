"""Where a run that died without saying so really got to.

The engine writes status.json at most once a second but flushes every metrics line, so after a
kill -9 or the OOM killer the status can trail the metrics by a few steps. Every view of such a
run reads its step through ``caught_up``, from the end of metrics.jsonl only (files grow huge).
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

from aios_tui.metrics.jsonl import tail_records

# Enough lines to reach back past the seconds a status can trail by, and usually to the line
# that began the dead process's session.
TAIL_RECORDS = 200
SESSION_EVENTS = ("started", "resumed")


def _is_step(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _loss(v: Any) -> float | None:
    ok = isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
    return v if ok else None


# The answer for each file, with the file's (mtime, size, inode) it was read at: a dead
# process's file stops changing, and every listing of the runs asks again.
_read: dict[tuple[Path, int | None], tuple[tuple[int, int, int], dict[str, Any] | None]] = {}
_KEPT = 256


def last_step_line(metrics: Path, pid: int | None) -> dict[str, Any] | None:
    """The newest training line the process ``pid`` wrote to ``metrics``; None when there is none
    since its session began, or the end of the file belongs to another process (a --log-file that
    a later run shares)."""
    try:
        st = os.stat(metrics)
    except OSError:
        return None
    sig = (st.st_mtime_ns, st.st_size, st.st_ino)
    known = _read.get((metrics, pid))
    if known is not None and known[0] == sig:
        return known[1]
    line = _last_step_line(metrics, pid)
    if len(_read) >= _KEPT:
        _read.clear()
    _read[(metrics, pid)] = (sig, line)
    return line


def _last_step_line(metrics: Path, pid: int | None) -> dict[str, Any] | None:
    try:
        records, _ = tail_records(metrics, TAIL_RECORDS)
    except OSError:  # a directory, or not ours to read: the status is all there is
        return None
    newest = None
    for rec in reversed(records):
        event = rec.get("event")
        if event in SESSION_EVENTS:
            began = rec.get("pid")
            if _is_step(began) and pid is not None and began != pid:
                return None
            return newest
        if event is None and newest is None and _is_step(rec.get("step")) and "loss" in rec:
            newest = rec
    return newest


def caught_up(fields: dict[str, Any], metrics: Path) -> dict[str, Any]:
    """``fields`` (a dead process's status) with the step, loss and eval loss of its newest metrics
    line, where that line is past the step the status says; the fields unchanged otherwise."""
    line = last_step_line(metrics, fields.get("pid"))
    known = fields.get("step")
    if line is None or (_is_step(known) and line["step"] <= known):
        return fields
    out = {**fields, "step": line["step"], "last_loss": _loss(line.get("loss"))}
    if "eval_loss" in line:
        out["eval_loss"] = _loss(line["eval_loss"])
    return out
