"""Where the console gets GPU samples: the `aios_tui.gpu` sampler, or a fixed 'no GPU' state."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any


@dataclass
class NoGpuSnapshot:
    available: bool = False
    reason: str = "GPU monitoring is not available in this build"
    simulated: bool = False
    timestamp: float = field(default_factory=time.time)
    devices: list = field(default_factory=list)


class StaticGpu:
    """A source that always answers the same snapshot (no GPU support, or a test's fixed GPU)."""

    def __init__(self, snapshot: Any = None, history: list | None = None) -> None:
        self.snapshot = snapshot if snapshot is not None else NoGpuSnapshot()
        self._history = history or []

    def latest(self) -> Any:
        return self.snapshot

    def history(self, index: int) -> list:
        return list(self._history) if index == 0 else []

    def stop(self) -> None:
        pass


def safe_latest(source: Any) -> Any:
    """The source's newest snapshot; a failing source reads as 'no GPU' with the error as reason."""
    try:
        return source.latest()
    except Exception as exc:  # noqa: BLE001 - painting a screen must not depend on NVML behaving
        return NoGpuSnapshot(reason=f"GPU monitor error: {exc}")


def open_gpu(simulate: bool = False, interval: float = 1.0) -> Any:
    """A started sampler over NVML (or the simulated GPU); never raises."""
    try:
        from aios_tui.gpu import GpuSampler, open_backend
    except ImportError:
        return StaticGpu()
    try:
        sampler = GpuSampler(open_backend(simulate=simulate), interval=interval, history_seconds=600)
        sampler.start()
    except Exception as exc:  # noqa: BLE001 - the console must open without a GPU monitor
        return StaticGpu(NoGpuSnapshot(reason=f"GPU monitor failed to start: {exc}"))
    return sampler
