"""Train and eval loss against step, drawn by plotext."""

from __future__ import annotations

from textual_plotext import PlotextPlot

from aios_tui.metrics.runstate import RunView

# Each series' colour, shared by the curve and its key in the border title.
TRAIN_RGB = (0, 130, 200)
EVAL_RGB = (60, 180, 75)


def _hex(rgb: tuple[int, int, int]) -> str:
    return "#{:02x}{:02x}{:02x}".format(*rgb)


class LossChart(PlotextPlot):
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

    def on_mount(self) -> None:
        self._draw()

    def update_view(self, view: RunView) -> None:
        series = (view.loss, view.eval_loss)
        if series == self._series and self._read:
            return
        self._series, self._read = series, True
        self._draw()

    def _draw(self) -> None:
        loss, evals = self._series
        plt = self.plt
        plt.clear_data()
        plt.clear_figure()
        plt.xlabel("step")
        if not loss and not evals:
            plt.title("waiting for the first logged step" if self._read else "reading the metrics...")
        # The key goes in the border title: plotext's legend is drawn in the plot's top left
        # corner, over the start of the curve (a loss curve starts high, at the left).
        key = ["Loss"]
        if loss:
            plt.plot([p[0] for p in loss], [p[1] for p in loss], marker="braille", color=TRAIN_RGB)
            key.append(f"[{_hex(TRAIN_RGB)}]⢕⢕[/] train")
        if evals:
            plt.scatter([p[0] for p in evals], [p[1] for p in evals], marker="o", color=EVAL_RGB)
            key.append(f"[{_hex(EVAL_RGB)}]o[/] eval")
        self.border_title = "  ".join(key)
        steps = [p[0] for p in loss] + [p[0] for p in evals]
        if steps:
            plt.xticks(step_ticks(min(steps), max(steps)))
        self.refresh()


def step_ticks(lo: int, hi: int, n: int = 5) -> list[int]:
    """Up to ``n`` whole steps from ``lo`` to ``hi`` (plotext's own ticks fall between steps)."""
    if hi - lo < n:
        return list(range(int(lo), int(hi) + 1))
    return sorted({round(lo + i * (hi - lo) / (n - 1)) for i in range(n)})
