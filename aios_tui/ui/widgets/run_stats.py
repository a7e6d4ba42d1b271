"""The figures of a run: loss, eval loss, learning rate, speed, trainable parameters, memory."""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual.widget import Widget
from textual.widgets import Static

from aios_tui.metrics.fmt import figure, human_bytes, human_count, num
from aios_tui.metrics.runstate import RunView


# What a box too short for every row leaves out first, in this order: the title line names the
# model and the method, and the trainable share says more than the total.
SPARE_ROWS = ("model", "method", "of total", "grad norm", "reserved", "NVML")

Row = tuple[str, str, str]  # label, value, style


def fit_rows(rows: list[Row], height: int | None) -> list[Row]:
    """At most ``height`` rows (None: all), the spare ones left out first, the rest in order."""
    if height is None or len(rows) <= height:
        return rows
    spare = [label for label in SPARE_ROWS if any(r[0] == label for r in rows)]
    dropped = set(spare[:len(rows) - height])
    return [r for r in rows if r[0] not in dropped][:max(height, 1)]


def memory_lines(view: RunView) -> list[tuple[str, str]]:
    """(label, value) rows: the calculator's estimate beside what the run measured.

    Per step the engine logs allocated/reserved/peak (and NVML's figure) on CUDA, RSS on the
    CPU; at the end its ``vram_measured`` event holds the run's peaks, which win once there.
    """
    rows: list[tuple[str, str]] = []
    est = (view.header or {}).get("vram_estimate")
    est = est if isinstance(est, dict) else {}  # a header written by hand, or by another version
    last = view.last or {}
    measured = view.measured or {}
    if est.get("peak_allocated_bytes"):
        rows.append(("est. peak", human_bytes(est["peak_allocated_bytes"])))
        if est.get("device_used_bytes"):
            rows.append(("est. device", human_bytes(est["device_used_bytes"])))
    cuda = any(k in last for k in ("mem_allocated", "mem_reserved", "mem_peak")) or "peak_allocated" in measured
    if cuda:
        peak = figure(measured.get("peak_allocated")) or figure(last.get("mem_peak"))
        rows.append(("allocated", human_bytes(last.get("mem_allocated"))))
        rows.append(("reserved", human_bytes(measured.get("peak_reserved") or last.get("mem_reserved"))))
        rows.append(("peak", human_bytes(peak)))
        rows.append(("NVML", human_bytes(measured.get("nvml_peak") or last.get("nvml_used"))))
        estimate = figure(est.get("peak_allocated_bytes"))
        if peak and estimate:
            rows.append(("est. error", f"{(estimate - peak) / peak:+.0%} of peak"))
    elif measured.get("peak_rss") is not None:
        rows.append(("peak RSS", human_bytes(measured["peak_rss"])))
    elif last.get("rss") is not None:
        rows.append(("CPU RSS", human_bytes(last.get("rss"))))
    return rows


class RunStats(Static):
    DEFAULT_CSS = """
    RunStats {
        width: 36;
        height: auto;
        padding: 0 1;
        border: round $primary 50%;
        border-title-color: $text;
    }
    """

    _view: RunView | None = None

    def on_mount(self) -> None:
        self.border_title = "Figures"

    def update_view(self, view: RunView) -> None:
        self._view = view
        self.refit()

    def refit(self) -> None:
        """Draw the rows the run view has room for (the box sits in a row of the screen's height)."""
        if self._view is None:
            return
        room = self.parent.content_size.height if isinstance(self.parent, Widget) else 0
        rows = stat_rows(self._view)
        # A parent not laid out yet has no height: every row, until the next draw.
        self.update(render_rows(fit_rows(rows, room - self.styles.gutter.height if room else None)))


def render_rows(rows: list[Row]) -> Text:
    text = Text()
    for label, value, style in rows:
        text.append(f"{label:<12}", style="dim")
        text.append(value + "\n", style=style)
    text.rstrip()
    return text


def stat_rows(view: RunView) -> list[Row]:
    last: dict[str, Any] = view.last or {}
    ev = view.last_eval
    tps = last.get("tokens_per_s")
    rows: list[Row] = [
        ("loss", num(last.get("loss"), ".4f"), "bold"),
        ("eval loss", f"{ev[1]:.4f} @{ev[0]}" if ev else "-", ""),
        ("lr", num(last.get("lr"), ".2e"), ""),
        ("tokens/s", human_count(tps) if isinstance(tps, (int, float)) else "-", ""),
        ("grad norm", num(last.get("grad_norm"), ".3f"), ""),
    ]
    params = (view.header or {}).get("parameters")
    params = params if isinstance(params, dict) else {}
    if figure(params.get("trainable")) is not None:
        pct = figure(params.get("trainable_pct"))
        rows.append(("trainable", human_count(params["trainable"])
                     + (f"  {pct:.2f}%" if pct is not None else ""), "bold"))
        rows.append(("of total", human_count(params.get("total")), ""))
    else:
        rows.append(("trainable", "-", ""))
    header = view.header or {}
    rows.append(("method", f"{view.method or '-'}  {header.get('device') or ''}".rstrip(), ""))
    if header.get("model"):
        model = str(header["model"])
        if len(model) > 22 and " (" in model:  # "HRM ACTv1 (a new brain, ...)": the name, not the cut
            model = model.split(" (", 1)[0]
        rows.append(("model", model[:22], ""))
    rows += [(label, value, "") for label, value in memory_lines(view)]
    return rows
