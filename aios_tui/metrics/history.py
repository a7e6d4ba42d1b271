"""The loss history before a huge file's tail, read a bounded piece per poll.

A watcher opening a huge metrics file shows its last lines at once; this then reads the file
from the top to where that tail ended, keeping only the events and the (step, loss) and (step,
eval loss) points, thinned as the watcher thins its own. Once done, the two join into the chart
of the whole run that reading the file from its first line would have drawn.
"""

from __future__ import annotations

import math
from collections import deque
from pathlib import Path
from typing import Any, Callable

from aios_tui.metrics.jsonl import open_metrics, parse_complete_lines

Point = tuple[int, float]
Add = Callable[[list[Point], Point, int, int], int]


def finite(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def newer_lines_win(loss: list[Point], eval_loss: list[Point], step: int,
                    rec: dict[str, Any]) -> tuple[list[Point], list[Point]]:
    """The points before ``rec`` at ``step``: a resumed run repeats the steps after its last
    checkpoint, and its newer lines replace those the interrupted session wrote."""
    if loss and step <= loss[-1][0] and finite(rec.get("loss")):
        loss = [p for p in loss if p[0] < step]
        eval_loss = [p for p in eval_loss if p[0] < step]
    if eval_loss and step <= eval_loss[-1][0] and finite(rec.get("eval_loss")):
        eval_loss = [p for p in eval_loss if p[0] < step]
    return loss, eval_loss


class History:
    """Points of ``path``'s bytes ``[0, end)``, or of its byte ``ranges`` in turn (a run's own
    sessions in a file other runs share), ``max_bytes`` a ``step()``."""

    def __init__(self, path: Path, end: int, add: Add, limit: int, max_bytes: int, max_events: int,
                 ranges: list[tuple[int, int]] | None = None):
        self.path, self.add, self.limit, self.max_bytes = path, add, limit, max_bytes
        self.events: deque[dict[str, Any]] = deque(maxlen=max_events)
        self._ranges = deque([(0, end)] if ranges is None else ranges)
        self.offset = self.end = 0
        self._next_range()
        self.loss: list[Point] = []
        self.eval_loss: list[Point] = []
        self._loss_stride = self._eval_stride = 1

    def _next_range(self) -> None:
        while self.offset >= self.end and self._ranges:
            self.offset, self.end = self._ranges.popleft()

    @property
    def done(self) -> bool:
        return self.offset >= self.end and not self._ranges

    def step(self) -> None:
        self._next_range()
        try:
            with open_metrics(self.path) as fh:
                fh.seek(self.offset)
                data = fh.read(min(self.max_bytes, self.end - self.offset))
        except OSError:
            data = b""
        records, used = parse_complete_lines(data)
        if used == 0:  # the file shrank under us, or a line longer than a read: give up on it
            used = len(data) or self.end - self.offset
        self.offset += used
        for rec in records:
            self._take(rec)

    def _take(self, rec: dict[str, Any]) -> None:
        # the same rules as the watcher's own ingest: a resumed run's repeated steps win
        step = rec.get("step")
        if "event" in rec:
            self.events.append(rec)
            return
        if not isinstance(step, int) or isinstance(step, bool):
            return
        self.loss, self.eval_loss = newer_lines_win(self.loss, self.eval_loss, step, rec)
        if finite(rec.get("loss")):
            self._loss_stride = self.add(self.loss, (step, float(rec["loss"])), self._loss_stride, self.limit)
        if finite(rec.get("eval_loss")):
            self._eval_stride = self.add(self.eval_loss, (step, float(rec["eval_loss"])),
                                         self._eval_stride, self.limit)

    def joined(self, loss: list[Point], eval_loss: list[Point]) -> tuple[list[Point], int, list[Point], int]:
        """The history, then ``loss`` and ``eval_loss`` (what the tail and the lines since gave),
        and the strides now in use. Strides are powers of two, so every point the coarser
        stride keeps is among those the tail's finer one kept: the join thins exactly as one
        pass over the whole file would have."""
        cut = loss[0][0] if loss else math.inf   # the tail's own lines supersede the history's
        out_loss = [p for p in self.loss if p[0] < cut]
        out_eval = [p for p in self.eval_loss if p[0] < min(cut, eval_loss[0][0] if eval_loss else math.inf)]
        loss_stride, eval_stride = self._loss_stride, self._eval_stride
        for p in loss:
            loss_stride = self.add(out_loss, p, loss_stride, self.limit)
        for p in eval_loss:
            eval_stride = self.add(out_eval, p, eval_stride, self.limit)
        return out_loss, loss_stride, out_eval, eval_stride
