"""Fixtures for the GPU monitor tests: a scripted NVML and a clock tests can drive."""

from __future__ import annotations

import os
import signal
import subprocess

import pytest

from aios_tui.gpu.fake import FakeGpu, FakeNvml

GiB = 1 << 30
MiB = 1 << 20


class FakeClock:
    """Monotonic time that moves only when told; ``wait`` advances it and records the waits."""

    def __init__(self, stop_after_waits: int | None = None):
        self.now = 0.0
        self.waits: list[float] = []
        self.stop_after_waits = stop_after_waits

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds

    def wait(self, seconds: float) -> bool:
        self.waits.append(seconds)
        self.now += seconds
        return self.stop_after_waits is not None and len(self.waits) >= self.stop_after_waits


@pytest.fixture
def nvml():
    """A one-GPU scripted NVML; tests change ``nvml.gpus[0]`` fields or inject faults."""
    return FakeNvml([FakeGpu(name="Fake H100 80GB", mem_total=80 * GiB, mem_used=10 * GiB,
                             mem_reserved=600 * MiB)])


@pytest.fixture
def orphan():
    """A `sleep` process that is not our descendant (its parent exited), like a detached run."""
    out = subprocess.run(["sh", "-c", "sleep 60 >/dev/null 2>&1 & echo $!"], capture_output=True,
                         text=True, check=True).stdout
    pid = int(out.strip())
    yield pid
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
