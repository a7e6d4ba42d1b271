"""The real backend over NVML (the ``pynvml`` module of nvidia-ml-py, or a stand-in with its API).

The module is passed in rather than imported here, so tests drive this exact code with a
scripted stand-in (``aios_tui.gpu.fake``) and its injected errors.
"""

from __future__ import annotations

import threading
from typing import Any, Callable

from aios_tui.gpu import procinfo
from aios_tui.gpu.backend import UnavailableBackend
from aios_tui.gpu.model import DeviceSample, ProcessInfo
from aios_tui.printable import printable

# After one of these every later call on the device fails too, so the rest of its sample is
# skipped rather than spending a driver round trip per field on the same message.
_FATAL_NAMES = ("NVML_ERROR_GPU_IS_LOST", "NVML_ERROR_UNINITIALIZED", "NVML_ERROR_DRIVER_NOT_LOADED",
                "NVML_ERROR_LIB_RM_VERSION_MISMATCH", "NVML_ERROR_RESET_REQUIRED")


class _DeviceGone(Exception):
    pass


def describe_init_error(nvml: Any, exc: BaseException) -> str:
    value = getattr(exc, "value", None)
    if value == getattr(nvml, "NVML_ERROR_LIBRARY_NOT_FOUND", object()):
        return "NVIDIA driver not found (libnvidia-ml.so.1 could not be loaded)"
    if value == getattr(nvml, "NVML_ERROR_DRIVER_NOT_LOADED", object()):
        return "the NVIDIA driver is not loaded"
    if value == getattr(nvml, "NVML_ERROR_NO_PERMISSION", object()):
        return "no permission to use the NVIDIA driver (NVML)"
    return f"NVML could not start: {exc}"


def open_nvml(nvml: Any):
    """An NvmlBackend, or an UnavailableBackend saying why not. Never raises."""
    try:
        nvml.nvmlInit()
    except Exception as exc:  # NVMLError, or anything else the library throws at load time
        return UnavailableBackend(describe_init_error(nvml, exc))
    try:
        count = int(nvml.nvmlDeviceGetCount())
    except Exception as exc:
        _shutdown(nvml)
        return UnavailableBackend(f"NVML could not count GPUs: {exc}")
    if count <= 0:
        _shutdown(nvml)
        return UnavailableBackend("the NVIDIA driver is loaded but reports no GPU")
    return NvmlBackend(nvml, count)


def _shutdown(nvml: Any) -> None:
    try:
        nvml.nvmlShutdown()
    except Exception:
        pass


class NvmlBackend:
    available = True
    simulated = False
    reason = ""

    def __init__(self, nvml: Any, count: int):
        self._nvml = nvml
        self._lock = threading.Lock()
        self._closed = False
        self._fatal = {getattr(nvml, n) for n in _FATAL_NAMES if hasattr(nvml, n)}
        self._handles: list[Any] = []
        self._open_errors: list[str | None] = []
        for i in range(count):
            try:
                self._handles.append(nvml.nvmlDeviceGetHandleByIndex(i))
                self._open_errors.append(None)
            except Exception as exc:
                self._handles.append(None)
                self._open_errors.append(f"cannot open: {exc}")
        self._names: dict[int, str | None] = {}
        self._ids: dict[int, tuple[str | None, bool | None]] = {}  # (UUID, MIG mode on)
        self._mem_v2: bool | None = None  # unknown until the first read
        self._proc_funcs: dict[str, str] = {}
        self._proc_names: dict[int, tuple[str | None, str | None]] = {}
        try:
            self.driver_version: str | None = _text(nvml.nvmlSystemGetDriverVersion())
        except Exception:
            self.driver_version = None

    # -- public -------------------------------------------------------------------------------

    def read(self) -> tuple[list[DeviceSample], list[str]]:
        with self._lock:
            if self._closed:
                return [], ["NVML was shut down"]
            devices, errors = [], []
            for i, handle in enumerate(self._handles):
                sample = self._read_device(i, handle)
                devices.append(sample)
                if sample.error:
                    errors.append(f"GPU {i}: {sample.error}")
            self._forget_gone_pids(devices)
            return devices, errors

    def process_used_bytes(self, pid: int) -> int | None:
        with self._lock:
            if self._closed:
                return None
            total, seen = 0, False
            for handle in self._handles:
                if handle is None:
                    continue
                try:
                    procs = self._processes_raw(handle)
                except Exception:
                    continue
                used = procs.get(pid, _MISSING)
                if used is _MISSING:
                    continue
                seen = seen or used is not None
                total += used or 0
            return total if seen else None

    def close(self) -> None:
        with self._lock:
            if not self._closed:
                self._closed = True
                _shutdown(self._nvml)

    # -- one device ---------------------------------------------------------------------------

    def _read_device(self, index: int, handle: Any) -> DeviceSample:
        if handle is None:
            return DeviceSample(index=index, name=None, processes=None, error=self._open_errors[index])
        nvml = self._nvml
        errors: list[str] = []
        values: dict[str, Any] = {}

        def call(label: str, fn: Callable[[], Any]) -> Any:
            try:
                return fn()
            except nvml.NVMLError as exc:
                if getattr(exc, "value", None) == nvml.NVML_ERROR_NOT_SUPPORTED:
                    return None  # e.g. no fan on a passively cooled card: N/A, not an error
                errors.append(f"{label}: {exc}")
                if getattr(exc, "value", None) in self._fatal:
                    raise _DeviceGone from exc
                return None
            except Exception as exc:  # a binding/driver mismatch, a missing function
                errors.append(f"{label}: {exc}")
                return None

        try:
            if index not in self._names:
                name = call("name", lambda: _text(nvml.nvmlDeviceGetName(handle)))
                if name is not None:
                    self._names[index] = name
            values["name"] = self._names.get(index)
            if index not in self._ids:
                # Neither changes without a GPU reset; NotSupported (a GPU without MIG) is None.
                failed = len(errors)
                uuid = call("UUID", lambda: _text(nvml.nvmlDeviceGetUUID(handle)))
                mode = call("MIG mode", lambda: nvml.nvmlDeviceGetMigMode(handle))
                mig = None if mode is None else mode[0] == getattr(nvml, "NVML_DEVICE_MIG_ENABLE", 1)
                if len(errors) == failed:
                    self._ids[index] = (uuid, mig)
                values["uuid"], values["mig"] = uuid, mig
            else:
                values["uuid"], values["mig"] = self._ids[index]

            mem = call("memory", lambda: self._memory(handle))
            if mem is not None:
                values["mem_used"], values["mem_total"] = _memory_figures(mem[0], mem[1])
            util = call("utilization", lambda: nvml.nvmlDeviceGetUtilizationRates(handle))
            if util is not None:
                values["util_gpu"], values["util_mem"] = _percent(util.gpu), _percent(util.memory)
            values["temperature_c"] = _int(call("temperature", lambda: self._temperature(handle)))
            values["power_w"] = _watts(call("power", lambda: nvml.nvmlDeviceGetPowerUsage(handle)))
            # No card is capped at 0 W: a 0 limit is one the driver does not report.
            values["power_limit_w"] = _watts(call("power limit", lambda: self._power_limit(handle))) or None
            values["sm_clock_mhz"] = _int(call("SM clock", lambda: nvml.nvmlDeviceGetClockInfo(
                handle, nvml.NVML_CLOCK_SM)))
            values["mem_clock_mhz"] = _int(call("memory clock", lambda: nvml.nvmlDeviceGetClockInfo(
                handle, nvml.NVML_CLOCK_MEM)))
            values["fan_pct"] = _int(call("fan", lambda: nvml.nvmlDeviceGetFanSpeed(handle)))
            procs = call("processes", lambda: self._processes_raw(handle))
            # None when the list could not be read: unknown, not "no processes".
            values["processes"] = None if procs is None else self._describe(procs)
        except _DeviceGone:
            values.setdefault("name", self._names.get(index))
            values.setdefault("processes", None)
        return DeviceSample(index=index, error="; ".join(errors) or None, **values)

    def _memory(self, handle: Any) -> tuple[int, int]:
        nvml = self._nvml
        # v2 leaves driver-reserved memory out of "used", which is what nvidia-smi shows; v1's
        # "used" is total - free and reads several hundred MiB high on an idle card.
        if self._mem_v2 is not False and hasattr(nvml, "nvmlMemory_v2"):
            try:
                mem = nvml.nvmlDeviceGetMemoryInfo(handle, version=nvml.nvmlMemory_v2)
                self._mem_v2 = True
                return mem.used, mem.total
            except nvml.NVMLError as exc:
                # Only an older driver's "don't know that call" means fall back for good; any
                # other failure is this sample's problem and v2 is tried again next time.
                no_v2 = {getattr(nvml, n, None) for n in (
                    "NVML_ERROR_FUNCTION_NOT_FOUND", "NVML_ERROR_NOT_SUPPORTED",
                    "NVML_ERROR_ARGUMENT_VERSION_MISMATCH")} - {None}
                if self._mem_v2 or getattr(exc, "value", None) not in no_v2:
                    raise
                self._mem_v2 = False
            except TypeError:  # a binding whose call takes no version
                self._mem_v2 = False
        mem = nvml.nvmlDeviceGetMemoryInfo(handle)
        return mem.used, mem.total

    def _temperature(self, handle: Any) -> Any:
        nvml = self._nvml
        try:
            return nvml.nvmlDeviceGetTemperature(handle, nvml.NVML_TEMPERATURE_GPU)
        except nvml.NVMLError as exc:
            # The unversioned call is deprecated and goes away in later drivers.
            gone = {getattr(nvml, n, None) for n in ("NVML_ERROR_FUNCTION_NOT_FOUND",
                                                      "NVML_ERROR_DEPRECATED")} - {None}
            if getattr(exc, "value", None) not in gone or not hasattr(nvml, "nvmlDeviceGetTemperatureV"):
                raise
        return nvml.nvmlDeviceGetTemperatureV(handle, nvml.NVML_TEMPERATURE_GPU)

    def _power_limit(self, handle: Any) -> Any:
        nvml = self._nvml
        try:
            return nvml.nvmlDeviceGetEnforcedPowerLimit(handle)
        except nvml.NVMLError as exc:
            if getattr(exc, "value", None) != nvml.NVML_ERROR_NOT_SUPPORTED:
                raise
        return nvml.nvmlDeviceGetPowerManagementLimit(handle)

    def _processes_raw(self, handle: Any) -> dict[int, int | None]:
        """pid -> bytes for compute and graphics contexts together (None: not reported)."""
        merged: dict[int, int | None] = {}
        for kind in ("Compute", "Graphics"):
            for proc in self._list_processes(handle, kind):
                pid = int(proc.pid)
                used = proc.usedGpuMemory
                used = None if used is None else int(used)
                # A process with both kinds of context is listed twice with the same figure.
                old = merged.get(pid)
                merged[pid] = used if old is None else max(old, used or 0)
        return merged

    def _list_processes(self, handle: Any, kind: str) -> list[Any]:
        nvml = self._nvml
        base = f"nvmlDeviceGet{kind}RunningProcesses"
        chosen = self._proc_funcs.get(kind)
        if chosen:
            return list(getattr(nvml, chosen)(handle))
        # The unversioned name binds the newest struct; an older driver lacks it, so fall back.
        last: Exception | None = None
        for name in (base, f"{base}_v2"):
            fn = getattr(nvml, name, None)
            if fn is None:
                continue
            try:
                result = list(fn(handle))
            except nvml.NVMLError as exc:
                if getattr(exc, "value", None) != getattr(nvml, "NVML_ERROR_FUNCTION_NOT_FOUND", None):
                    raise
                last = exc
                continue
            except getattr(nvml, "NVMLLibraryMismatchError", ()) as exc:  # type: ignore[misc]
                last = exc
                continue
            self._proc_funcs[kind] = name
            return result
        if last is not None:
            raise last
        return []

    def _describe(self, procs: dict[int, int | None]) -> list[ProcessInfo]:
        out = []
        for pid, used in sorted(procs.items(), key=lambda kv: -(kv[1] or 0)):
            if pid not in self._proc_names:
                self._proc_names[pid] = (procinfo.process_name(pid), procinfo.command_line(pid))
            name, command = self._proc_names[pid]
            out.append(ProcessInfo(pid=pid, name=name, used_bytes=used, command=command))
        return out

    def _forget_gone_pids(self, devices: list[DeviceSample]) -> None:
        # Names are cached while a pid stays on a GPU; once it leaves, the pid may be reused.
        live = {p.pid for d in devices for p in d.processes or ()}
        for pid in list(self._proc_names):
            if pid not in live:
                del self._proc_names[pid]


_MISSING = object()


def _text(value: Any) -> str:
    return printable(value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value))


def _memory_figures(used: Any, total: Any) -> tuple[int | None, int | None]:
    """(used, total) bytes, each None where the driver's figure cannot be true: a total of 0
    (not reported), or a used figure outside 0..total (an unsigned value that wrapped around)."""
    total = int(total) if total is not None and int(total) > 0 else None
    used = None if used is None else int(used)
    if used is not None and (used < 0 or (total is not None and used > total)):
        used = None
    return used, total


def _percent(value: Any) -> int | None:
    value = _int(value)
    return value if value is not None and 0 <= value <= 100 else None


def _int(value: Any) -> int | None:
    return None if value is None else int(value)


def _watts(milliwatts: Any) -> float | None:
    return None if milliwatts is None else round(float(milliwatts) / 1000.0, 1)
