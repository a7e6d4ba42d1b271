"""Live GPU: memory bar, utilisation history, temperature, power and processes per device."""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.widget import Widget
from textual.worker import Worker, get_current_worker

from aios_tui.metrics.chart import sparkline
from aios_tui.metrics.fmt import human_bytes
from aios_tui.ui.gpu_source import safe_latest
from aios_tui.ui.messages import GpuSampled
from aios_tui.ui.pacing import nap
from aios_tui.ui.render import bar
from aios_tui.ui.widgets.text_body import TextBody


def _na(value: Any, fmt: str = "{}") -> str:
    return "N/A" if value is None else fmt.format(value)


def render_gpu(snapshot: Any, history: list[Any], width: int, max_processes: int = 3) -> Text:
    text = Text()
    if snapshot is None:
        return Text("waiting for the first sample...", style="italic")
    if not getattr(snapshot, "available", False):
        text.append("no GPU: ", style="bold")
        text.append(str(getattr(snapshot, "reason", "") or "unavailable"))
        text.append("\ntraining runs on the CPU; pick a GPU size in the VRAM pane to check a fit",
                    style="dim")
        return text
    for i, dev in enumerate(snapshot.devices):
        if i:
            text.append("\n")
        text.append(f"GPU{dev.index} ", style="bold")
        label = f"GPU{dev.index} "
        name = str(dev.name or "?")
        room = max(1, width - len(label))
        # One line, however long the driver's name: a wrapped one pushes the figures out of view.
        text.append(name if len(name) <= room else name[:room - 1] + "…")
        text.append("\n")
        used, total = dev.mem_used, dev.mem_total
        frac = used / total if used is not None and total else None
        tail = f" {human_bytes(used) if used is not None else 'N/A'}/{human_bytes(total) if total else 'N/A'}"
        text.append("mem  ", style="dim")
        bar_w = max(4, width - 5 - len(tail))
        # An empty bar would read as 0% used; an unknown share is drawn as unknown.
        text.append(bar(frac, bar_w) if frac is not None else "?" * bar_w, style="magenta")
        text.append(tail + "\n")
        util = dev.util_gpu
        text.append("util ", style="dim")
        text.append(f"{_na(util, '{:.0f}%'):>4} ")
        if i == 0 and history:
            values = [getattr(s, "util_gpu", None) for s in history]
            text.append(sparkline(values, max(4, width - 10), lo=0, hi=100), style="green")
        text.append("\n")
        text.append("temp ", style="dim")
        text.append(_na(dev.temperature_c, "{:.0f}°C"))
        text.append("  ")
        power = _na(dev.power_w, "{:.0f}")
        limit = _na(dev.power_limit_w, "{:.0f}")
        text.append(f"{power}/{limit} W")
        if dev.fan_pct is not None:
            text.append("  fan ", style="dim")
            text.append(f"{dev.fan_pct:.0f}%")
        procs = sorted(dev.processes or [], key=lambda p: -(p.used_bytes or 0))
        name_w = max(8, width - 20)
        for p in procs[:max_processes]:
            text.append("\n")
            mark = "*" if p.own else " "
            used = human_bytes(p.used_bytes) if p.used_bytes is not None else "N/A"
            text.append(f"{mark}{p.pid:>7} {str(p.name or '?')[:name_w]:<{name_w}} {used:>10}",
                        style="bold" if p.own else "")
        if len(procs) > max_processes:
            text.append(f"\n  +{len(procs) - max_processes} more processes", style="dim")
    return text


class GpuPane(Widget):
    DEFAULT_CSS = """
    GpuPane {
        height: auto;
        border: round $primary 50%;
        border-title-color: $text;
        padding: 0 1;
    }
    GpuPane #gpu-body {
        height: auto;
    }
    """

    def __init__(self, interval: float = 1.0, **kwargs) -> None:
        super().__init__(**kwargs)
        self.interval = interval
        self.snapshot: Any = None
        self.history: list[Any] = []

    def compose(self) -> ComposeResult:
        yield TextBody(id="gpu-body")

    def on_mount(self) -> None:
        self.border_title = "GPU"
        source = getattr(self.app, "gpu", None)
        if source is not None:
            self._apply(safe_latest(source), _history(source))
            self._sample()

    @work(thread=True, exclusive=True, group="gpu-pane", exit_on_error=False)
    def _sample(self) -> None:
        worker = get_current_worker()
        source = self.app.gpu
        while nap(worker, self.interval):
            self.post_message(GpuSampled(source.latest(), _history(source)))

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        self.app.on_worker_state_changed(event)

    def on_gpu_sampled(self, message: GpuSampled) -> None:
        self._apply(message.snapshot, message.history)

    def _apply(self, snapshot: Any, history: list[Any]) -> None:
        self.snapshot, self.history = snapshot, history
        # A simulated GPU says so where it cannot be missed, whatever the pane's width.
        self.border_title = "GPU · SIMULATED" if getattr(snapshot, "simulated", False) else "GPU"
        self._paint()

    def on_resize(self) -> None:
        self._paint()

    def _paint(self) -> None:
        width = max(20, self.content_size.width or 34)
        self.query_one("#gpu-body", TextBody).set(render_gpu(self.snapshot, self.history, width))


def _history(source: Any) -> list[Any]:
    try:
        return list(source.history(0))
    except Exception:  # a source with no device 0 has no history; the pane shows its state
        return []
