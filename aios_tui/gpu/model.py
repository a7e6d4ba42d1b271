"""What one sample of the GPUs holds. Any field that is None is not available (shown as N/A)."""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from typing import Any, Mapping


@dataclass(frozen=True)
class ProcessInfo:
    """A process holding memory on a GPU, as NVML lists it."""

    pid: int
    name: str | None  # from /proc/<pid>/comm; None when the pid is not visible here
    used_bytes: int | None  # None when the driver does not report it
    own: bool = False  # this process, a run it started, or one of their children
    command: str | None = None  # full command line when readable

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class DeviceSample:
    """One GPU at one moment. Memory in bytes, power in watts, clocks in MHz, the rest in %/°C."""

    index: int
    name: str | None
    mem_used: int | None = None
    mem_total: int | None = None
    util_gpu: int | None = None
    util_mem: int | None = None
    temperature_c: int | None = None
    power_w: float | None = None
    power_limit_w: float | None = None
    sm_clock_mhz: int | None = None
    mem_clock_mhz: int | None = None
    fan_pct: int | None = None
    uuid: str | None = None  # "GPU-...", as CUDA_VISIBLE_DEVICES may name it
    mig: bool | None = None  # split into MIG instances: a run gets one slice, not mem_total
    # None when the driver could not list them (not supported, no permission, GPU lost);
    # [] when it listed none.
    processes: list[ProcessInfo] | None = field(default_factory=list)
    # NVML failures on this device during this sample (a field that the device simply does not
    # support is not an error: it is None here and nothing is said).
    error: str | None = None

    @property
    def mem_fraction(self) -> float | None:
        if self.mem_used is None or not self.mem_total:
            return None
        return self.mem_used / self.mem_total

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "DeviceSample":
        names = {f.name for f in dataclasses.fields(cls)}
        kw = {k: v for k, v in data.items() if k in names}
        procs = data.get("processes", [])
        kw["processes"] = None if procs is None else [
            ProcessInfo(**{k: v for k, v in p.items() if k in ProcessInfo.__dataclass_fields__})
            for p in procs]
        return cls(**kw)


@dataclass(frozen=True)
class Snapshot:
    """Every GPU at one moment, or why there are none.

    ``reason`` says why ``available`` is False, carries NVML error text when a call failed
    mid-run, and labels simulated data; it is empty when all is well.
    """

    available: bool
    reason: str
    simulated: bool
    timestamp: float  # unix time of the sample; 0.0 before the first one
    devices: list[DeviceSample] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Snapshot":
        return cls(available=bool(data["available"]), reason=data.get("reason") or "",
                   simulated=bool(data.get("simulated", False)),
                   timestamp=float(data.get("timestamp") or 0.0),
                   devices=[DeviceSample.from_dict(d) for d in data.get("devices") or []])


def training_device(devices: list[DeviceSample], env: Mapping[str, str] | None = None) -> DeviceSample | None:
    """The GPU a run started from this shell trains on: the first one CUDA_VISIBLE_DEVICES
    names, else the first GPU; None when the variable hides them all (the run goes to the CPU).

    NVML numbers GPUs in PCI bus order. CUDA does too with CUDA_DEVICE_ORDER=PCI_BUS_ID, and on
    a box of one GPU model either way, so a number in the variable is taken as NVML's. A GPU UUID
    (or a unique start of one) picks that GPU; a MIG instance's name picks the first GPU in MIG
    mode, whose ``mig`` tells the caller the run gets a slice of it (see ``training_memory``).
    """
    spec = (os.environ if env is None else env).get("CUDA_VISIBLE_DEVICES")
    if spec is None:
        return devices[0] if devices else None
    first = spec.split(",")[0].strip()
    if not first or first.startswith("-"):  # "" or "-1": CUDA sees no GPU at all
        return None
    if first.isdigit():
        return next((d for d in devices if d.index == int(first)), None)
    if first.startswith("MIG-"):
        return next((d for d in devices if d.mig), devices[0] if devices else None)
    if first.startswith("GPU-"):
        named = [d for d in devices if d.uuid and d.uuid.startswith(first)]
        if len(named) == 1:
            return named[0]
        if any(d.uuid for d in devices):
            return None  # no GPU here has it: CUDA sees none either
    return devices[0] if devices else None


def training_memory(device: DeviceSample | None) -> int | None:
    """Bytes a run on ``device`` can hold; None when unknown: no figure, or a GPU in MIG mode,
    where a run gets one instance's share of the card, not all of it."""
    if device is None or device.mig or not device.mem_total:
        return None
    return device.mem_total
