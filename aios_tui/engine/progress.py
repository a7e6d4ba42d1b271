"""Headless progress: a bar redrawn in place on a terminal, plain lines anywhere else."""

from __future__ import annotations

import shutil
import sys
import time
from typing import TextIO

from aios_tui.metrics.fmt import human_count, human_duration, num

MODES = ("auto", "bar", "lines", "none")
LINE_MIN_INTERVAL_S = 2.0


def fmt_rate(x: float | None) -> str:
    # as tail, compare and the console write it (1.5K, 1.2M), and "-" for none yet
    return human_count(x) if x else "-"


class Progress:
    def __init__(self, mode: str = "auto", stream: TextIO | None = None, unit: str = "step", rate: bool = True):
        self.stream = stream or sys.stdout
        self.unit = unit  # what the count counts, in plain lines: training steps, eval batches
        self.rate = rate  # whether there is a token rate to show (training's; eval counts none)
        if mode == "auto":
            mode = "bar" if getattr(self.stream, "isatty", lambda: False)() else "lines"
        self.mode = mode
        self._last_line = 0.0
        self._bar_open = False
        self._room: int | None = None  # the bar's width, fixed at the first update
        self._drawn = 0  # length of the line on screen, so a shorter one covers it

    def message(self, text: str) -> None:
        if self.mode == "none":
            return
        self._end_bar()
        print(text, file=self.stream, flush=True)

    def update(self, step: int, total: int, loss: float | None, tokens_per_s: float | None,
               eta_s: float | None, eval_loss: float | None = None, force: bool = False) -> None:
        loss_txt = num(loss, ".4f")  # what is not known yet reads as tail writes it: "-"
        if self.mode == "bar":
            width = shutil.get_terminal_size((80, 24)).columns
            tail = f" {step}/{total} loss {loss_txt}{self._rate(tokens_per_s)} ETA {human_duration(eta_s)}"
            if self._room is None:
                # Sized once for the widest tail the run can print: a width that followed the
                # tail would make the fill shrink when the text grows.
                widest = f" {total}/{total} loss 00.0000 999.9K tok/s ETA 99h59m"
                self._room = max(10, min(40, width - len(widest) - 4))
            room = self._room
            done = int(room * step / max(1, total))
            line = "[" + "#" * done + "-" * (room - done) + "]" + tail
            self.stream.write("\r" + line.ljust(self._drawn)[: width - 1])
            self._drawn = min(width - 1, max(self._drawn, len(line)))
            self.stream.flush()
            self._bar_open = True
            if eval_loss is not None:
                self.message(f"step {step}: eval loss {eval_loss:.4f}")
        elif self.mode == "lines":
            now = time.monotonic()
            if not (force or eval_loss is not None or step >= total or now - self._last_line >= LINE_MIN_INTERVAL_S):
                return
            self._last_line = now
            extra = f" eval {eval_loss:.4f}" if eval_loss is not None else ""
            print(f"{self.unit} {step}/{total} loss {loss_txt}{extra}{self._rate(tokens_per_s)} "
                  f"eta {human_duration(eta_s)}", file=self.stream, flush=True)

    def _rate(self, tokens_per_s: float | None) -> str:
        return f" {fmt_rate(tokens_per_s)} tok/s" if self.rate else ""

    def _end_bar(self) -> None:
        if self._bar_open:
            self.stream.write("\n")
            self.stream.flush()
            self._bar_open = False
            self._drawn = 0

    def close(self) -> None:
        self._end_bar()
