"""Messages that workers post to the console. High-rate ones replace their own stale copies."""

from __future__ import annotations

from typing import Any

from textual.message import Message

from aios_tui.metrics.runstate import RunView


class GpuSampled(Message):
    """The newest GPU snapshot and the history of the first device."""

    def __init__(self, snapshot: Any, history: list[Any]) -> None:
        super().__init__()
        self.snapshot = snapshot
        self.history = history

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, GpuSampled)


class RunUpdated(Message):
    """A run's whole current view: cumulative, so an older one still queued can be dropped."""

    def __init__(self, view: RunView) -> None:
        super().__init__()
        self.view = view

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, RunUpdated) and message.view.path == self.view.path


class RunsListed(Message):
    def __init__(self, runs: list[Any]) -> None:
        super().__init__()
        self.runs = runs

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, RunsListed)


class ExportFinished(Message):
    def __init__(self, run_name: str, ok: bool, text: str) -> None:
        super().__init__()
        self.run_name = run_name
        self.ok = ok
        self.text = text
