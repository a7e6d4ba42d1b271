"""The newest events of a run (started, checkpoint, stopped, finished, error...), newest last."""

from __future__ import annotations

import time
from typing import Any, Iterable

from rich.text import Text
from textual.widgets import Static

from aios_tui.metrics.fmt import event_line

# Fields that say nothing the rest of the screen does not already show.
HIDDEN_FIELDS = ("pid", "run_dir", "total_steps")
EVENT_STYLE = {"error": "bold red", "finished": "bold green", "stopped": "yellow", "checkpoint": "cyan"}


class EventLog(Static):
    DEFAULT_CSS = """
    EventLog {
        height: auto;
        max-height: 8;
        text-wrap: nowrap;
        text-overflow: ellipsis;
        padding: 0 1;
        border: round $primary 50%;
        border-title-color: $text;
    }
    """

    def __init__(self, limit: int = 6, **kwargs) -> None:
        super().__init__("", **kwargs)
        self.limit = limit

    def on_mount(self) -> None:
        self.border_title = "Events"

    def show(self, events: Iterable[dict[str, Any]], extra: Iterable[str] = ()) -> None:
        text = Text(no_wrap=True, overflow="ellipsis")
        rows = list(events)[-self.limit:]
        if not rows and not extra:
            text.append("no events yet", style="dim")
        for ev in rows:
            stamp = ev.get("time")
            if isinstance(stamp, (int, float)):
                text.append(time.strftime("%H:%M:%S ", time.localtime(stamp)), style="dim")
            shown = {k: _short(v) for k, v in ev.items() if k not in HIDDEN_FIELDS}
            text.append(event_line(shown).removeprefix("== "), style=EVENT_STYLE.get(ev.get("event"), ""))
            text.append("\n")
        for line in extra:
            text.append(line + "\n", style="red")
        text.rstrip()
        self.update(text)


def _short(value: Any) -> Any:
    """A long path keeps its last two parts: the run's own directory is on screen already."""
    if isinstance(value, str) and "/" in value and len(value) > 32:
        return "…/" + "/".join(value.rstrip("/").split("/")[-2:])
    return value
