"""The newest events of a run (started, checkpoint, stopped, finished, error...), newest last.

The box is often shorter than what there is to say, so it drops from the top: the oldest
events go first, then the engine log's oldest lines; a failure's reason stays, wrapped whole.
"""

from __future__ import annotations

import time
from typing import Any, Iterable

from rich.text import Text
from textual.widget import Widget

from aios_tui.metrics.fmt import event_line

# Fields that say nothing the rest of the screen does not already show.
HIDDEN_FIELDS = ("pid", "run_dir", "total_steps")
EVENT_STYLE = {"error": "bold red", "finished": "bold green", "stopped": "yellow", "checkpoint": "cyan"}


class EventLog(Widget):
    DEFAULT_CSS = """
    EventLog {
        height: auto;
        max-height: 8;
        padding: 0 1;
        border: round $primary 50%;
        border-title-color: $text;
    }
    """

    def __init__(self, limit: int = 6, **kwargs) -> None:
        super().__init__(**kwargs)
        self.limit = limit
        self._events: list[Text] = []
        self._notes: list[str] = []
        self._busy: list[Text] = []

    def on_mount(self) -> None:
        self.border_title = "Events"

    def show(self, events: Iterable[dict[str, Any]], extra: Iterable[str] = (),
             busy: Iterable[str] = ()) -> None:
        """``extra``: a reason first (kept whole), then lines that explain it (kept newest).
        ``busy``: what is under way for the run (an export), shown after its newest event."""
        shown = ([_event_text(ev) for ev in list(events)[-self.limit:]], list(extra),
                 [Text(line, style="bold yellow", no_wrap=True, overflow="ellipsis") for line in busy])
        if shown == (self._events, self._notes, self._busy):
            return  # a view comes with every poll: re-laying out the screen for nothing costs a frame
        self._events, self._notes, self._busy = shown
        self.refresh(layout=True)

    def _blocks(self, width: int) -> tuple[list[Text], list[Text], list[Text]]:
        """(events, reason, details) as lines of at most ``width`` cells."""
        events = [t.copy() for t in self._events + self._busy]
        if not events and not self._notes:
            events = [Text("no events yet", style="dim")]
        if width <= 0:  # not laid out yet
            return events, [Text(n, style="red") for n in self._notes[:1]], \
                [Text(n, style="red") for n in self._notes[1:]]
        for line in events:
            line.truncate(width, overflow="ellipsis")

        def wrapped(notes: list[str]) -> list[Text]:
            return [line for n in notes for line in Text(n, style="red").wrap(self.app.console, width)]

        return events, wrapped(self._notes[:1]), wrapped(self._notes[1:])

    def get_content_height(self, container, viewport, width: int) -> int:
        return sum(len(block) for block in self._blocks(width))

    def render(self) -> Text:
        width, height = self.content_size
        events, reason, details = self._blocks(width)
        if height > 0:
            reason = reason[:height]
            room = height - len(reason)
            details = details[max(0, len(details) - room):] if room else []
            room -= len(details)
            events = events[max(0, len(events) - room):] if room else []
        return Text("\n").join(events + reason + details)


def _event_text(ev: dict[str, Any]) -> Text:
    text = Text(no_wrap=True, overflow="ellipsis")
    stamp = ev.get("time")
    if isinstance(stamp, (int, float)):
        try:
            text.append(time.strftime("%H:%M:%S ", time.localtime(stamp)), style="dim")
        except (OverflowError, ValueError, OSError):  # not a time a clock can show
            pass
    shown = {k: _short(v) for k, v in ev.items() if k not in HIDDEN_FIELDS}
    text.append(event_line(shown).removeprefix("== "), style=EVENT_STYLE.get(ev.get("event"), ""))
    return text


def _short(value: Any) -> Any:
    """A long path keeps its last two parts: the run's own directory is on screen already."""
    if isinstance(value, str) and "/" in value and len(value) > 32:
        return "…/" + "/".join(value.rstrip("/").split("/")[-2:])
    return value
