"""Metrics JSONL: a writer that flushes every line, readers that never trip on a partial one."""

from __future__ import annotations

import json
import math
import os
import time
from pathlib import Path
from typing import Any, BinaryIO, Iterator

from aios_tui.regular_file import open_regular


def _clean(value: Any) -> Any:
    """JSON has no NaN or Infinity: write them as null so every reader can parse the line."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    return value


def _ends_a_line(path: Path) -> bool:
    """Whether ``path`` is empty or its last byte ends a line."""
    try:
        with open(path, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            if fh.tell() == 0:
                return True
            fh.seek(-1, os.SEEK_END)
            return fh.read(1) == b"\n"
    except OSError:
        return True


class JsonlLogger:
    """``log(step, payload)`` appends one line and flushes it, so a tail sees it at once."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fh = open(self.path, "a", encoding="utf-8")
        if not _ends_a_line(self.path):
            # a writer killed mid-line (kill -9, a full disk) left a torn last line: the next
            # record must start on a line of its own, or readers drop it with the torn one
            self._fh.write("\n")
            self._fh.flush()

    def write(self, record: dict[str, Any]) -> None:
        record.setdefault("time", round(time.time(), 3))
        self._fh.write(json.dumps(_clean(record), separators=(",", ":")) + "\n")
        self._fh.flush()

    def log(self, step: int, payload: dict[str, Any]) -> None:
        self.write({"step": step, **payload})

    def event(self, name: str, **fields: Any) -> None:
        self.write({"event": name, **fields})

    def close(self) -> None:
        if not self._fh.closed:
            try:
                self._fh.close()
            except OSError:  # what a full disk would not take was already reported by write()
                pass

    def __enter__(self) -> "JsonlLogger":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def open_metrics(path: str | os.PathLike) -> BinaryIO:
    """``path`` opened to read, as every reader of a metrics file opens it: what is no regular file
    raises OSError (a directory reads as nothing but errors; a FIFO would wait for a writer)."""
    return open_regular(path)


def metrics_unreadable(path: str | os.PathLike) -> str | None:
    """Why the metrics file ``path`` cannot be read (``is a directory, ...``); None when it can, or is
    not there (a run that has logged nothing yet)."""
    try:
        with open_metrics(path) as fh:
            fh.read(1)
    except FileNotFoundError:
        return None
    except OSError as exc:
        return exc.strerror or str(exc)
    return None


def _int(text: str) -> int | float:
    # JSON has no bound on an integer's size, but no field of ours fits one past 64 bits, and
    # such an int overflows every float it meets (a format, math.isfinite): it is read as the
    # float it stands for, inf where none is that large, which every reader already passes over
    try:
        value = int(text)
    except ValueError:  # more digits than Python converts
        return float(text)
    return value if -(1 << 63) <= value < 1 << 63 else float(text)


def loads(data: bytes | str) -> Any:
    """One JSON document as a run directory's files (metrics lines, status.json) are read."""
    return json.loads(data, parse_int=_int)


def parse_complete_lines(data: bytes) -> tuple[list[dict[str, Any]], int]:
    """Records from the complete lines of ``data`` and how many bytes they used.

    A partial last line (a writer mid-flush) is left for the next read; a corrupt line is skipped.
    """
    end = data.rfind(b"\n")
    if end < 0:
        return [], 0
    records = []
    for line in data[: end + 1].splitlines():
        if not line.strip():
            continue
        try:
            obj = loads(line)
        except ValueError:
            continue
        if isinstance(obj, dict):
            records.append(obj)
    return records, end + 1


def read_from(path: str | os.PathLike, offset: int = 0) -> tuple[list[dict[str, Any]], int]:
    """New complete records after byte ``offset``; returns them and the next offset."""
    try:
        with open_metrics(path) as fh:
            fh.seek(offset)
            data = fh.read()
    except FileNotFoundError:
        return [], offset
    records, used = parse_complete_lines(data)
    return records, offset + used


def iter_records(path: str | os.PathLike) -> Iterator[dict[str, Any]]:
    records, _ = read_from(path, 0)
    yield from records


def is_header(rec: dict[str, Any]) -> bool:
    """Whether ``rec`` is a run's header line (what it trains, with what), not a step or event."""
    return "peft" in rec and "step" not in rec and "event" not in rec


def read_header(path: str | os.PathLike) -> dict[str, Any] | None:
    """The first line (the ``{"peft": ...}`` record) without reading the rest of the file."""
    try:
        with open_metrics(path) as fh:
            line = fh.readline()
    except FileNotFoundError:
        return None
    records, _ = parse_complete_lines(line)
    return records[0] if records else None


def tail_records(path: str | os.PathLike, n: int, chunk: int = 1 << 16, *, start: int = 0,
                 end: int | None = None) -> tuple[list[dict[str, Any]], int]:
    """The last ``n`` complete records, reading only the end of the file (or of its bytes
    ``[start, end)``, whole lines); and the offset after the last of them."""
    try:
        fh = open_metrics(path)
    except FileNotFoundError:
        return [], 0
    with fh:
        pos = fh.seek(0, os.SEEK_END) if end is None else end
        buf = b""
        while pos > start and buf.count(b"\n") <= n + 1:
            step = min(chunk, pos - start)
            pos -= step
            fh.seek(pos)
            buf = fh.read(step) + buf
        last_nl = buf.rfind(b"\n")
        if last_nl < 0:
            return [], pos
        complete = buf[: last_nl + 1]
        end = pos + last_nl + 1
        if pos > start:  # the first line in the buffer may be cut
            first_nl = complete.find(b"\n")
            complete = complete[first_nl + 1:]
        return _last_records(complete, n), end


def _last_records(data: bytes, n: int) -> list[dict[str, Any]]:
    """The last ``n`` records of ``data`` (complete lines), parsing from the end: the buffer read
    to find them holds a chunk's worth of lines, and parsing them all was most of the cost."""
    out: list[dict[str, Any]] = []
    for line in reversed(data.splitlines()):
        if len(out) >= n:
            break
        records, _ = parse_complete_lines(line + b"\n")
        out.extend(records)
    out.reverse()
    return out
