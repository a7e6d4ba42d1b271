"""A scripted stand-in for the ``pynvml`` module, for tests and deterministic screens.

It has the slice of pynvml's API the NVML backend calls and raises pynvml's own exception
classes, so ``fake_backend()`` runs the real backend code against values a test sets:

    gpu = FakeGpu(mem_used=2 << 30, temperature_c=None)   # None: "Not Supported" -> N/A
    nvml = FakeNvml([gpu])
    nvml.fail("nvmlDeviceGetPowerUsage", pynvml.NVMLError_GpuIsLost, times=1)
    backend = open_nvml(nvml)
"""

from __future__ import annotations

import collections
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import pynvml as _pynvml

GiB = 1 << 30


@dataclass
class FakeGpu:
    """What one fake GPU reports. A value may be a callable (read on every call); None raises
    NVMLError_NotSupported for that call, as a device without the sensor does."""

    name: Any = "Fake GPU 24GB"
    mem_total: Any = 24 * GiB
    mem_used: Any = 1 * GiB
    mem_reserved: Any = 512 << 20  # counted in v1's "used", left out of v2's
    util_gpu: Any = 50
    util_mem: Any = 20
    temperature_c: Any = 55
    power_w: Any = 150.0
    power_limit_w: Any = 300.0
    sm_clock_mhz: Any = 1800
    mem_clock_mhz: Any = 9501
    fan_pct: Any = 40
    uuid: Any = None  # None: "GPU-fake-<index>"
    mig_mode: Any = None  # NVML_DEVICE_MIG_ENABLE / _DISABLE; None: a GPU without MIG
    processes: Any = field(default_factory=list)  # [(pid, bytes or None), ...] compute contexts
    graphics_processes: Any = field(default_factory=list)


class _Handle:
    def __init__(self, index: int):
        self.index = index


class FakeNvml:
    """Module-like object: attributes named as in pynvml."""

    def __init__(self, gpus: list[FakeGpu] | None = None, *, init_error: Any = None,
                 memory_v2: bool = True, driver_version: str = "999.99"):
        self.gpus = list(gpus if gpus is not None else [FakeGpu()])
        self.init_error = init_error
        self.memory_v2 = memory_v2
        self.driver_version = driver_version
        self.calls: collections.Counter[str] = collections.Counter()
        self._faults: list[dict[str, Any]] = []
        self.initialized = 0
        # Errors and constants are pynvml's own, so `except pynvml.NVMLError_...` works unchanged.
        for name in dir(_pynvml):
            if name.startswith(("NVMLError", "NVML_ERROR_", "NVML_TEMPERATURE_", "NVML_CLOCK_",
                                "NVML_DEVICE_MIG_")):
                setattr(self, name, getattr(_pynvml, name))
        for name in ("NVMLLibraryMismatchError", "nvmlMemory_v2"):  # not in every nvidia-ml-py
            if hasattr(_pynvml, name):
                setattr(self, name, getattr(_pynvml, name))

    # -- scripting ------------------------------------------------------------------------------

    def fail(self, function: str, error: Any, *, index: int | None = None,
             times: int | None = None) -> None:
        """Make ``function`` (a pynvml name) raise ``error`` (an NVMLError class, an error code or
        an exception) on GPU ``index`` (every GPU when None), for the next ``times`` calls
        (always when None)."""
        self._faults.append({"function": function, "error": error, "index": index, "times": times})

    def clear_faults(self) -> None:
        self._faults.clear()

    def _enter(self, function: str, handle: _Handle | None = None) -> None:
        self.calls[function] += 1
        for fault in self._faults:
            if fault["function"] != function or fault["times"] == 0:
                continue
            if fault["index"] is not None and (handle is None or handle.index != fault["index"]):
                continue
            if fault["times"] is not None:
                fault["times"] -= 1
            raise _as_exception(fault["error"])

    def _value(self, handle: _Handle, attr: str) -> Any:
        value = getattr(self.gpus[handle.index], attr)
        if callable(value):
            value = value()
        if value is None:
            raise _pynvml.NVMLError(_pynvml.NVML_ERROR_NOT_SUPPORTED)
        return value

    # -- the pynvml API ---------------------------------------------------------------------------

    def nvmlInit(self) -> None:
        self._enter("nvmlInit")
        if self.init_error is not None:
            raise _as_exception(self.init_error)
        self.initialized += 1

    def nvmlShutdown(self) -> None:
        self._enter("nvmlShutdown")
        self.initialized -= 1

    def nvmlSystemGetDriverVersion(self) -> str:
        self._enter("nvmlSystemGetDriverVersion")
        return self.driver_version

    def nvmlDeviceGetCount(self) -> int:
        self._enter("nvmlDeviceGetCount")
        return len(self.gpus)

    def nvmlDeviceGetHandleByIndex(self, index: int) -> _Handle:
        self._enter("nvmlDeviceGetHandleByIndex", _Handle(index))
        if not 0 <= index < len(self.gpus):
            raise _pynvml.NVMLError(_pynvml.NVML_ERROR_INVALID_ARGUMENT)
        return _Handle(index)

    def nvmlDeviceGetName(self, handle: _Handle) -> str:
        self._enter("nvmlDeviceGetName", handle)
        return self._value(handle, "name")

    def nvmlDeviceGetUUID(self, handle: _Handle) -> str:
        self._enter("nvmlDeviceGetUUID", handle)
        uuid = self.gpus[handle.index].uuid
        return f"GPU-fake-{handle.index}" if uuid is None else uuid

    def nvmlDeviceGetMigMode(self, handle: _Handle) -> list[int]:
        self._enter("nvmlDeviceGetMigMode", handle)
        mode = self._value(handle, "mig_mode")
        return [mode, mode]

    def nvmlDeviceGetMemoryInfo(self, handle: _Handle, version: int | None = None) -> Any:
        self._enter("nvmlDeviceGetMemoryInfo", handle)
        total = self._value(handle, "mem_total")
        used = self._value(handle, "mem_used")
        reserved = self._value(handle, "mem_reserved")
        if version:
            if not self.memory_v2:
                raise _pynvml.NVMLError(_pynvml.NVML_ERROR_FUNCTION_NOT_FOUND)
            return SimpleNamespace(version=version, total=total, reserved=reserved, used=used,
                                   free=total - reserved - used)
        return SimpleNamespace(total=total, used=used + reserved, free=total - used - reserved)

    def nvmlDeviceGetUtilizationRates(self, handle: _Handle) -> Any:
        self._enter("nvmlDeviceGetUtilizationRates", handle)
        return SimpleNamespace(gpu=self._value(handle, "util_gpu"), memory=self._value(handle, "util_mem"))

    def nvmlDeviceGetTemperature(self, handle: _Handle, sensor: int) -> int:
        self._enter("nvmlDeviceGetTemperature", handle)
        assert sensor == _pynvml.NVML_TEMPERATURE_GPU
        return self._value(handle, "temperature_c")

    def nvmlDeviceGetTemperatureV(self, handle: _Handle, sensor: int) -> int:
        self._enter("nvmlDeviceGetTemperatureV", handle)
        assert sensor == _pynvml.NVML_TEMPERATURE_GPU
        return self._value(handle, "temperature_c")

    def nvmlDeviceGetPowerUsage(self, handle: _Handle) -> int:
        self._enter("nvmlDeviceGetPowerUsage", handle)
        return int(round(self._value(handle, "power_w") * 1000))

    def nvmlDeviceGetEnforcedPowerLimit(self, handle: _Handle) -> int:
        self._enter("nvmlDeviceGetEnforcedPowerLimit", handle)
        return int(round(self._value(handle, "power_limit_w") * 1000))

    def nvmlDeviceGetPowerManagementLimit(self, handle: _Handle) -> int:
        self._enter("nvmlDeviceGetPowerManagementLimit", handle)
        return int(round(self._value(handle, "power_limit_w") * 1000))

    def nvmlDeviceGetClockInfo(self, handle: _Handle, clock: int) -> int:
        self._enter("nvmlDeviceGetClockInfo", handle)
        attr = {_pynvml.NVML_CLOCK_SM: "sm_clock_mhz", _pynvml.NVML_CLOCK_MEM: "mem_clock_mhz"}[clock]
        return self._value(handle, attr)

    def nvmlDeviceGetFanSpeed(self, handle: _Handle) -> int:
        self._enter("nvmlDeviceGetFanSpeed", handle)
        return self._value(handle, "fan_pct")

    def nvmlDeviceGetComputeRunningProcesses(self, handle: _Handle) -> list[Any]:
        self._enter("nvmlDeviceGetComputeRunningProcesses", handle)
        return _procs(self._value(handle, "processes"))

    def nvmlDeviceGetGraphicsRunningProcesses(self, handle: _Handle) -> list[Any]:
        self._enter("nvmlDeviceGetGraphicsRunningProcesses", handle)
        return _procs(self._value(handle, "graphics_processes"))


def _procs(pairs: list[tuple[int, int | None]]) -> list[Any]:
    return [SimpleNamespace(pid=pid, usedGpuMemory=used, gpuInstanceId=0xFFFFFFFF,
                            computeInstanceId=0xFFFFFFFF) for pid, used in pairs]


def _as_exception(error: Any) -> BaseException:
    if isinstance(error, BaseException):
        return error
    if isinstance(error, int):
        return _pynvml.NVMLError(error)
    if isinstance(error, type) and issubclass(error, _pynvml.NVMLError):
        return error()  # pynvml's per-code subclasses carry their own code
    if isinstance(error, type):
        return error("injected failure")
    raise TypeError(f"cannot raise {error!r}")


def fake_backend(gpus: list[FakeGpu] | None = None, **kw: Any):
    """The NVML backend over a FakeNvml (or the unavailable backend, if its init fails)."""
    from aios_tui.gpu.nvml import open_nvml

    return open_nvml(FakeNvml(gpus, **kw))

