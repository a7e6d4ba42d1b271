"""Live GPU figures over NVML, with no UI code: a sampler thread, its history, and snapshots.

Importing this package is cheap: pynvml is imported only when a real backend is opened.

    sampler = GpuSampler(open_backend(), interval=1.0).start()
    snap = sampler.latest()          # Snapshot; snap.available False -> snap.reason says why
    sampler.history(0)               # [DeviceSample, ...] for GPU 0, oldest first
"""

from aios_tui.gpu.backend import UnavailableBackend, open_backend, process_used_bytes
from aios_tui.gpu.model import DeviceSample, ProcessInfo, Snapshot, training_device, training_memory
from aios_tui.gpu.sampler import GpuSampler

__all__ = [
    "DeviceSample", "GpuSampler", "ProcessInfo", "Snapshot", "UnavailableBackend", "open_backend",
    "process_used_bytes", "training_device", "training_memory",
]
