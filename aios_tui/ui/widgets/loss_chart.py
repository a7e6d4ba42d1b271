"""Train and eval loss against step, drawn by plotext."""

from __future__ import annotations

import math
import time

from rich.text import Text
from textual.app import RenderResult
from textual.timer import Timer
from textual_plotext import PlotextPlot

from aios_tui.metrics.runstate import RunView

# Each series' colour, shared by the curve and its key in the border title.
TRAIN_RGB = (0, 130, 200)
EVAL_RGB = (60, 180, 75)
# The least time between two drawings of new points.
REDRAW_S = 2.0
# plotext works its axes out in floats, and a span near the float's limit overflows them: a
# loss beyond this (a metrics line written by hand, a run long diverged) is left off the chart.
PLOTTABLE = 1e300


def _hex(rgb: tuple[int, int, int]) -> str:
    return "#{:02x}{:02x}{:02x}".format(*rgb)


class LossChart(PlotextPlot):
    """Builds its plot only for new points, a new size or a new theme, at most once a
    ``REDRAW_S``: a plot of many points takes milliseconds to build, and a fast run logs new
    points at every poll (a backlog being read, every 50 ms)."""

    DEFAULT_CSS = """
    LossChart {
        height: 1fr;
        min-height: 6;
        border: round $primary 50%;
        border-title-color: $text;
    }
    """

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self._series: tuple = ((), ())
        self._read = False  # no view yet: the run's metrics are still being read
        self._built: tuple[tuple, Text] | None = None  # what the plot was built from, and it
        self._drawn_at = -math.inf  # when new points were last drawn
        self._due: Timer | None = None
        self._title = ""

    def on_mount(self) -> None:
        self._set_key()

    def update_view(self, view: RunView) -> None:
        series = (view.loss, view.eval_loss)
        if series == self._series and self._read:
            return
        self._series, self._read = series, True
        self._set_key()
        # the newest points, drawn now or at the end of the wait (or on a resize before it):
        # those between are never drawn
        wait = self._drawn_at + REDRAW_S - time.monotonic()
        if wait <= 0:
            self.refresh()
        elif self._due is None:
            self._due = self.set_timer(wait, self._draw_due)

    def _draw_due(self) -> None:
        self._due = None
        self.refresh()

    def _set_key(self) -> None:
        # The key goes in the border title: plotext's legend is drawn in the plot's top left
        # corner, over the start of the curve (a loss curve starts high, at the left).
        loss, evals = self._series
        key = ["Loss"]
        if loss:
            key.append(f"[{_hex(TRAIN_RGB)}]⢕⢕[/] train")
        if evals:
            key.append(f"[{_hex(EVAL_RGB)}]o[/] eval")
        title = "  ".join(key)
        if title != self._title:  # setting it repaints the whole chart, even to the same text
            self._title = self.border_title = title

    def render(self) -> RenderResult:
        """Textual asks again for many reasons: the last plot serves until its points, its size
        or the theme change."""
        built_from = (self.size, self.app.theme, self._series, self._read)
        if self._built is None or self._built[0] != built_from:
            if self._read and (self._built is None or self._built[0][2:] != built_from[2:]):
                self._drawn_at = time.monotonic()
            self._plot_series(self._series, self._read)
            self._built = (built_from, super().render())
        return self._built[1]

    def _plot_series(self, series: tuple, read: bool) -> None:
        loss, evals = ([p for p in points if abs(p[1]) <= PLOTTABLE] for points in series)
        plt = self.plt
        plt.clear_data()
        plt.clear_figure()
        plt.xlabel("step")
        if not loss and not evals:
            plt.title("waiting for the first logged step" if read else "reading the metrics...")
        if loss:
            plt.plot([p[0] for p in loss], [p[1] for p in loss], marker="braille", color=TRAIN_RGB)
        if evals:
            plt.scatter([p[0] for p in evals], [p[1] for p in evals], marker="o", color=EVAL_RGB)
        steps = [p[0] for p in loss] + [p[0] for p in evals]
        if steps:
            plt.xticks(step_ticks(min(steps), max(steps)))


def step_ticks(lo: int, hi: int, n: int = 5) -> list[int]:
    """Up to ``n`` whole steps from ``lo`` to ``hi`` (plotext's own ticks fall between steps)."""
    if hi - lo < n:
        return list(range(int(lo), int(hi) + 1))
    return sorted({round(lo + i * (hi - lo) / (n - 1)) for i in range(n)})
