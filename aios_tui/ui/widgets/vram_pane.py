"""The VRAM budget: what the calculator expects a training step to hold, and whether it fits."""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual.app import ComposeResult
from textual.message import Message
from textual.widget import Widget
from textual.widgets import Select

from aios_tui.gpu.model import training_device, training_memory
from aios_tui.ui.widgets.choice import Choice
from aios_tui.metrics.fmt import human_bytes
from aios_tui.ui.gpu_source import safe_latest
from aios_tui.ui.render import bar
from aios_tui.ui.widgets.text_body import TextBody

try:  # the table `aios-tui estimate --list-gpus` prints, so a box without a GPU can still check a fit
    from aios_tui.vram.gpus import GPUS
except ImportError:  # pragma: no cover - a build without the calculator has nothing to budget
    GPUS = []
GPU_SIZES: tuple[tuple[str, int], ...] = tuple(
    (g.label, g.total_bytes) for g in sorted(GPUS, key=lambda g: (g.total_bytes, g.label)))
DETECTED = "detected"
SHORT_NAMES = {"base_weights": "weights", "adapter_weights": "adapter", "optimizer_states": "optimizer",
               "framework_overhead": "overhead", "logits_and_loss": "logits+loss"}


class VramPane(Widget):
    DEFAULT_CSS = """
    VramPane {
        height: auto;
        layout: vertical;
        border: round $primary 50%;
        border-title-color: $text;
        padding: 0 1;
    }
    VramPane #gpu-size {
        width: 1fr;
        margin-bottom: 0;
    }
    VramPane #vram-body {
        height: auto;
    }
    """

    class SizeChanged(Message):
        """The user picked the GPU size to budget against (None: the detected GPU)."""

        def __init__(self, pane: "VramPane", size: int | None) -> None:
            super().__init__()
            self.pane = pane
            self.size = size

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.detected: tuple[str, int] | None = None
        self._unsized = self._shown_unsized = "no GPU"  # first in the menu while no size is detected
        self._estimate: dict[str, Any] | None = None
        self._note: str | None = "estimating..."

    def compose(self) -> ComposeResult:
        yield Choice(self._options(), value=DETECTED, allow_blank=False, compact=True, id="gpu-size")
        yield TextBody(id="vram-body")

    def on_mount(self) -> None:
        self.border_title = "VRAM budget"
        source = getattr(self.app, "gpu", None)
        if source is not None:
            self.detect(safe_latest(source))
        self._render_body()

    def detect(self, snapshot: Any) -> None:
        """Budget against the GPU a run started from here would train on, when there is one."""
        if snapshot is not None and getattr(snapshot, "available", False) and snapshot.devices:
            dev = training_device(snapshot.devices)  # None: CUDA_VISIBLE_DEVICES hides every GPU
            # a run on a GPU in MIG mode gets one instance's memory, which NVML does not give here
            self._unsized = f"{dev.name or 'GPU'} in MIG mode" if dev is not None and dev.mig else "no GPU"
            self.set_detected(dev.name if dev else None, training_memory(dev))

    def _options(self) -> list[tuple[str, str]]:
        first = (f"{self.detected[0]} {human_bytes(self.detected[1])}" if self.detected
                 else f"{self._unsized}: pick a size")
        return [(first, DETECTED)] + [(name, str(size)) for name, size in GPU_SIZES]

    @property
    def budget_bytes(self) -> int | None:
        value = self.query_one("#gpu-size", Select).value
        if value == DETECTED or value is Select.BLANK:
            return self.detected[1] if self.detected else None
        return int(value)

    def set_detected(self, name: str | None, total: int | None) -> None:
        new = (name or "GPU", total) if total else None
        if (new, self._unsized) == (self.detected, self._shown_unsized):
            return
        self.detected, self._shown_unsized = new, self._unsized
        select = self.query_one("#gpu-size", Select)
        keep = select.value
        with self.prevent(Select.Changed):
            select.set_options(self._options())
            select.value = keep
            select.mutate_reactive(Select.value)  # same value, new label: redraw it
        self.post_message(self.SizeChanged(self, self.budget_bytes))

    def on_select_changed(self, event: Select.Changed) -> None:
        event.stop()
        self.post_message(self.SizeChanged(self, self.budget_bytes))

    def show(self, estimate: dict[str, Any] | None, note: str | None = None) -> None:
        self._estimate, self._note = estimate, note
        self._render_body()

    def on_resize(self) -> None:
        self._render_body()

    def _render_body(self) -> None:
        width = max(20, self.content_size.width or 34)
        self.query_one("#vram-body", TextBody).set(render_estimate(self._estimate, self._note,
                                                                    self.budget_bytes, width))


def render_estimate(est: dict[str, Any] | None, note: str | None, budget: int | None, width: int) -> Text:
    text = Text()
    if note:
        text.append(note + "\n", style="italic")
    if not est:
        return text
    peak = est.get("peak_allocated_bytes") or 0
    device = est.get("device_used_bytes")
    text.append("peak ", style="dim")
    text.append(human_bytes(peak), style="bold")
    if device:
        text.append("  device ", style="dim")
        text.append(human_bytes(device))
    text.append("\n")
    breakdown = {SHORT_NAMES.get(k, k.replace("_", " ")): v for k, v in (est.get("breakdown") or {}).items()
                 if isinstance(v, (int, float)) and v > 0}
    label_w = min(max(8, width // 3), max((len(k) for k in breakdown), default=6))
    bar_w = max(4, width - label_w - 11)
    for name, size in sorted(breakdown.items(), key=lambda kv: -kv[1]):
        text.append(f"{name[:label_w]:<{label_w}} ", style="dim")
        text.append(bar(size / peak if peak else 0, bar_w), style="cyan")
        text.append(f" {human_bytes(size):>9}\n")
    fits = est.get("fits")
    need = device or peak
    if budget:
        share = f"{human_bytes(need)} of {human_bytes(budget)}"
        if fits is None:
            fits = need <= budget
        if fits:
            text.append("FITS", style="bold green")
            text.append(f"  {share} ({need / budget:.0%})\n")
        else:
            text.append("DOES NOT FIT", style="bold red")
            text.append(f"  needs {share}\n")
    else:
        text.append("fit: unknown (no GPU size)\n", style="dim")
    suggestions = [s for s in (est.get("suggestions") or []) if isinstance(s, dict)]
    if fits is False:
        # Only what really fits is offered as a fix; else the best single savings, said as such.
        fixes = [s for s in suggestions if s.get("fits") is True]
        heading = "would make it fit:\n" if fixes else "nothing here makes it fit; each lowers the peak:\n"
        suggestions = fixes or suggestions
    else:
        heading = "to use less:\n"
    if suggestions:
        text.append(heading, style="dim")
        for s in suggestions[:4]:
            figure = s.get("peak_allocated_bytes")
            line = f"- {s.get('change', '?')}"
            if isinstance(figure, (int, float)):
                line += f": {human_bytes(figure)}"
            text.append(line + "\n")
    text.rstrip()
    return text
