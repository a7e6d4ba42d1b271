"""Plain-text charts for a shell: a one-line sparkline and a small line chart of loss."""

from __future__ import annotations

import math
from typing import Sequence

BLOCKS = "▁▂▃▄▅▆▇█"
Point = tuple[float, float]


def _finite(values: Sequence[float | None]) -> list[float]:
    return [v for v in values if isinstance(v, (int, float)) and math.isfinite(v)]


def sparkline(values: Sequence[float | None], width: int | None = None,
              lo: float | None = None, hi: float | None = None) -> str:
    """One character per value (the last ``width`` values); missing values are blanks."""
    vals = list(values)[-width:] if width else list(values)
    good = _finite(vals)
    if not good:
        return " " * len(vals)
    lo = min(good) if lo is None else lo
    hi = max(good) if hi is None else hi
    span = (hi - lo) or 1.0
    out = []
    for v in vals:
        if not isinstance(v, (int, float)) or not math.isfinite(v):
            out.append(" ")
            continue
        idx = int((min(max(v, lo), hi) - lo) / span * (len(BLOCKS) - 1) + 0.5)
        out.append(BLOCKS[idx])
    return "".join(out)


def _fmt_y(v: float) -> str:
    if v == 0:
        return "0"
    if abs(v) >= 1000 or abs(v) < 0.01:
        return f"{v:.2e}"
    return f"{v:.3f}"


def line_chart(series: dict[str, Sequence[Point]], width: int = 72, height: int = 12,
               marks: str = "•o+x") -> list[str]:
    """Lines of a chart of ``series`` (name -> [(x, y)]) with a y axis, an x range and a legend.

    Each series is drawn with its own mark; points falling in one column are averaged.
    """
    named = [(name, [(float(x), float(y)) for x, y in pts
                     if isinstance(y, (int, float)) and math.isfinite(y)])
             for name, pts in series.items()]
    points = [p for _, pts in named for p in pts]
    if not points:
        return ["(no data to chart yet)"]
    height = max(3, height)
    xs = [p[0] for p in points]
    ys = [p[1] for p in points]
    x0, x1 = min(xs), max(xs)
    y0, y1 = min(ys), max(ys)
    if y1 == y0:
        y0, y1 = y0 - 0.5, y1 + 0.5
    labels = [_fmt_y(y1), _fmt_y((y0 + y1) / 2), _fmt_y(y0)]
    label_w = max(len(s) for s in labels)
    plot_w = max(8, width - label_w - 2)
    grid = [[" "] * plot_w for _ in range(height)]
    for (name, pts), mark in zip(named, marks):
        columns: dict[int, list[float]] = {}
        for x, y in pts:
            col = 0 if x1 == x0 else round((x - x0) / (x1 - x0) * (plot_w - 1))
            columns.setdefault(col, []).append(y)
        for col, vals in columns.items():
            y = sum(vals) / len(vals)
            row = round((y1 - y) / (y1 - y0) * (height - 1))
            grid[row][col] = mark
    mid = (height - 1) // 2
    lines = []
    for i, row in enumerate(grid):
        label = labels[0] if i == 0 else labels[1] if i == mid else labels[2] if i == height - 1 else ""
        tick = "┤" if label else "│"
        lines.append(f"{label:>{label_w}} {tick}{''.join(row)}")
    lines.append(" " * label_w + " └" + "─" * plot_w)
    left, right = f"{x0:g}", f"{x1:g}"
    lines.append(" " * (label_w + 2) + left + right.rjust(plot_w - len(left)))
    legend = "   ".join(f"{mark} {name}" for (name, pts), mark in zip(named, marks) if pts)
    lines.append(" " * (label_w + 2) + legend)
    return lines
