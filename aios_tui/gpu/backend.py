"""Where samples come from: NVML, nothing (with the reason), or a simulated demo GPU."""

from __future__ import annotations

import threading
from typing import Protocol

from aios_tui.gpu.model import DeviceSample


class Backend(Protocol):
    available: bool
    reason: str  # why it is unavailable, or the simulated label; "" for a healthy real GPU
    simulated: bool
    driver_version: str | None

    def read(self) -> tuple[list[DeviceSample], list[str]]:
        """Every device now, and the error lines met while reading (never raises)."""

    def process_used_bytes(self, pid: int) -> int | None:
        """Memory the driver reports for ``pid`` summed over GPUs; None if it reports none."""

    def close(self) -> None:
        """Release the library; the backend must not be read afterwards."""


class UnavailableBackend:
    """No GPU to read; every snapshot says why."""

    available = False
    simulated = False
    driver_version = None

    def __init__(self, reason: str):
        self.reason = reason

    def read(self) -> tuple[list[DeviceSample], list[str]]:
        return [], []

    def process_used_bytes(self, pid: int) -> int | None:
        return None

    def close(self) -> None:
        pass


def open_backend(simulate: bool = False):
    """NVML when a driver and a GPU are there; otherwise an unavailable backend with the reason.

    ``simulate`` gives a demo GPU with moving figures instead, labelled simulated everywhere.
    """
    if simulate:
        from aios_tui.gpu.simulated import SimulatedBackend

        return SimulatedBackend()
    try:
        import pynvml
    except ImportError:
        return UnavailableBackend("nvidia-ml-py is not installed (pip install nvidia-ml-py)")
    from aios_tui.gpu.nvml import open_nvml

    return open_nvml(pynvml)


_shared = None
_shared_lock = threading.Lock()


def _shared_backend():
    global _shared
    with _shared_lock:
        if _shared is None:
            _shared = open_backend()
        return _shared


def process_used_bytes(pid: int) -> int | None:
    """GPU memory NVML reports for one process (bytes, summed over GPUs).

    None without NVML, or when NVML lists no memory for ``pid`` (for instance a process in
    another pid namespace, whose pid the driver reports differently).
    """
    return _shared_backend().process_used_bytes(pid)
