"""The figures of a run: loss, eval loss, learning rate, speed, trainable parameters, memory."""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual.widgets import Static

from aios_tui.metrics.fmt import human_bytes, human_count, num
from aios_tui.metrics.runstate import RunView


def _row(text: Text, label: str, value: str, style: str = "") -> None:
    text.append(f"{label:<12}", style="dim")
    text.append(value + "\n", style=style)


def memory_lines(view: RunView) -> list[tuple[str, str]]:
    """(label, value) rows: the calculator's estimate beside what the run measured.

    Per step the engine logs allocated/reserved/peak (and NVML's figure) on CUDA, RSS on the
    CPU; at the end its ``vram_measured`` event holds the run's peaks, which win once there.
    """
    rows: list[tuple[str, str]] = []
    est = (view.header or {}).get("vram_estimate") or {}
    last = view.last or {}
    measured = view.measured or {}
    if est.get("peak_allocated_bytes"):
        rows.append(("est. peak", human_bytes(est["peak_allocated_bytes"])))
        if est.get("device_used_bytes"):
            rows.append(("est. device", human_bytes(est["device_used_bytes"])))
    cuda = any(k in last for k in ("mem_allocated", "mem_reserved", "mem_peak")) or "peak_allocated" in measured
    if cuda:
        peak = measured.get("peak_allocated") or last.get("mem_peak")
        rows.append(("allocated", human_bytes(last.get("mem_allocated"))))
        rows.append(("reserved", human_bytes(measured.get("peak_reserved") or last.get("mem_reserved"))))
        rows.append(("peak", human_bytes(peak)))
        rows.append(("NVML", human_bytes(measured.get("nvml_peak") or last.get("nvml_used"))))
        if peak and est.get("peak_allocated_bytes"):
            rows.append(("est. error", f"{(est['peak_allocated_bytes'] - peak) / peak:+.0%} of peak"))
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

    def on_mount(self) -> None:
        self.border_title = "Figures"

    def update_view(self, view: RunView) -> None:
        self.update(render_stats(view))


def render_stats(view: RunView) -> Text:
    text = Text()
    last: dict[str, Any] = view.last or {}
    _row(text, "loss", num(last.get("loss"), ".4f"), "bold")
    ev = view.last_eval
    _row(text, "eval loss", f"{ev[1]:.4f} @{ev[0]}" if ev else "-")
    _row(text, "lr", num(last.get("lr"), ".2e"))
    tps = last.get("tokens_per_s")
    _row(text, "tokens/s", human_count(tps) if isinstance(tps, (int, float)) else "-")
    _row(text, "grad norm", num(last.get("grad_norm"), ".3f"))
    params = (view.header or {}).get("parameters") or {}
    if params.get("trainable") is not None:
        pct = params.get("trainable_pct")
        _row(text, "trainable", human_count(params["trainable"])
             + (f"  {pct:.2f}%" if isinstance(pct, (int, float)) else ""), "bold")
        _row(text, "of total", human_count(params.get("total")))
    else:
        _row(text, "trainable", "-")
    header = view.header or {}
    _row(text, "method", f"{view.method or '-'}  {header.get('device') or ''}".rstrip())
    if header.get("model"):
        model = str(header["model"])
        if len(model) > 22 and " (" in model:  # "HRM ACTv1 (a new brain, ...)": the name, not the cut
            model = model.split(" (", 1)[0]
        _row(text, "model", model[:22])
    for label, value in memory_lines(view):
        _row(text, label, value)
    text.rstrip()
    return text
