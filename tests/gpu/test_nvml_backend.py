"""The NVML backend over a scripted NVML: units, N/A fields, errors mid-run, init failures."""

from __future__ import annotations

import json
import os

import pynvml
import pytest

from aios_tui.gpu import DeviceSample, GpuSampler, UnavailableBackend
from aios_tui.gpu import backend as backend_mod
from aios_tui.gpu.fake import FakeGpu, FakeNvml, _procs
from aios_tui.gpu.nvml import NvmlBackend, open_nvml

GiB = 1 << 30
MiB = 1 << 20


def read_one(b):
    devices, errors = b.read()
    assert len(devices) == 1
    return devices[0], errors


def test_reads_every_field_in_the_documented_units(nvml):
    nvml.gpus[0].name = b"Fake H100 80GB"  # older bindings hand back bytes
    b = open_nvml(nvml)
    assert isinstance(b, NvmlBackend) and b.available and not b.simulated
    d, errors = read_one(b)
    assert errors == [] and d.error is None
    assert d.index == 0 and d.name == "Fake H100 80GB"
    # v2 memory: driver-reserved memory is not "used" (what nvidia-smi shows).
    assert d.mem_used == 10 * GiB and d.mem_total == 80 * GiB
    assert (d.util_gpu, d.util_mem, d.temperature_c) == (50, 20, 55)
    assert d.power_w == 150.0 and d.power_limit_w == 300.0  # NVML gives milliwatts
    assert (d.sm_clock_mhz, d.mem_clock_mhz, d.fan_pct) == (1800, 9501, 40)
    assert d.processes == []
    assert b.driver_version == "999.99"


def test_memory_falls_back_to_v1_once_on_an_old_driver():
    nvml = FakeNvml([FakeGpu(mem_used=3 * GiB, mem_reserved=512 * MiB)], memory_v2=False)
    b = open_nvml(nvml)
    for _ in range(3):
        d, errors = read_one(b)
        assert errors == []
        assert d.mem_used == 3 * GiB + 512 * MiB  # v1's used = total - free
    # v2 was tried once, then v1 only: 1 + 3 calls, not 2 per sample.
    assert nvml.calls["nvmlDeviceGetMemoryInfo"] == 4


def test_a_transient_memory_error_does_not_give_up_v2(nvml):
    b = open_nvml(nvml)
    read_one(b)
    nvml.fail("nvmlDeviceGetMemoryInfo", pynvml.NVMLError_Unknown, times=1)
    d, errors = read_one(b)
    assert d.mem_used is None and "memory: Unknown Error" in errors[0]
    d, errors = read_one(b)
    assert errors == [] and d.mem_used == 10 * GiB  # still v2's figure


def test_unsupported_fields_are_none_and_not_errors(nvml):
    nvml.gpus[0].fan_pct = None  # a passively cooled card
    nvml.fail("nvmlDeviceGetTemperature", pynvml.NVMLError_NotSupported)
    nvml.fail("nvmlDeviceGetClockInfo", pynvml.NVML_ERROR_NOT_SUPPORTED)
    b = open_nvml(nvml)
    d, errors = read_one(b)
    assert errors == [] and d.error is None
    assert d.fan_pct is None and d.temperature_c is None
    assert d.sm_clock_mhz is None and d.mem_clock_mhz is None
    assert d.mem_used == 10 * GiB and d.util_gpu == 50  # the rest is still read


def test_error_mid_run_sets_the_field_na_and_carries_the_text_then_recovers(nvml):
    sampler = GpuSampler(open_nvml(nvml))
    ok = sampler.sample_once()
    assert ok.reason == "" and ok.devices[0].power_w == 150.0
    nvml.fail("nvmlDeviceGetPowerUsage", pynvml.NVMLError_Unknown, times=1)
    bad = sampler.sample_once()
    d = bad.devices[0]
    assert bad.available
    assert d.power_w is None and d.power_limit_w == 300.0 and d.mem_used == 10 * GiB
    assert d.error == "power: Unknown Error"
    assert bad.reason == "GPU 0: power: Unknown Error"
    again = sampler.sample_once()
    assert again.reason == "" and again.devices[0].power_w == 150.0


def test_a_lost_gpu_gives_an_all_na_device_without_further_calls(nvml):
    b = open_nvml(nvml)
    read_one(b)
    before = sum(nvml.calls.values())
    nvml.fail("nvmlDeviceGetMemoryInfo", pynvml.NVMLError_GpuIsLost)
    d, errors = read_one(b)
    assert errors == ["GPU 0: memory: GPU is lost"]
    assert d.name == "Fake H100 80GB"  # known from before, still shown
    figures = [d.mem_used, d.mem_total, d.util_gpu, d.util_mem, d.temperature_c, d.power_w,
               d.power_limit_w, d.sm_clock_mhz, d.mem_clock_mhz, d.fan_pct]
    assert figures == [None] * 10 and d.processes is None  # unknown, not "none"
    assert sum(nvml.calls.values()) - before == 1  # stopped at the first fatal error


def test_any_exception_from_the_binding_is_contained(nvml):
    nvml.fail("nvmlDeviceGetUtilizationRates", RuntimeError("binding bug"))
    d, errors = read_one(open_nvml(nvml))
    assert d.util_gpu is None and d.util_mem is None
    assert errors == ["GPU 0: utilization: binding bug"]


def test_temperature_uses_the_versioned_call_when_the_old_one_is_gone(nvml):
    nvml.fail("nvmlDeviceGetTemperature", pynvml.NVMLError_FunctionNotFound)
    d, errors = read_one(open_nvml(nvml))
    assert errors == [] and d.temperature_c == 55
    assert nvml.calls["nvmlDeviceGetTemperatureV"] == 1


def test_power_limit_falls_back_to_the_management_limit(nvml):
    nvml.fail("nvmlDeviceGetEnforcedPowerLimit", pynvml.NVMLError_NotSupported)
    d, errors = read_one(open_nvml(nvml))
    assert errors == [] and d.power_limit_w == 300.0
    assert nvml.calls["nvmlDeviceGetPowerManagementLimit"] == 1


def test_processes_merge_compute_and_graphics_with_names_from_proc(nvml):
    me = os.getpid()
    nvml.gpus[0].processes = [(me, 3 * GiB), (999_999_999, 1 * GiB), (424242424, None)]
    nvml.gpus[0].graphics_processes = [(me, 3 * GiB), (123456789, 200 * MiB)]
    d, errors = read_one(open_nvml(nvml))
    assert errors == []
    assert [p.pid for p in d.processes] == [me, 999_999_999, 123456789, 424242424]  # by memory
    mine = d.processes[0]
    assert mine.used_bytes == 3 * GiB  # listed twice, counted once
    with open(f"/proc/{me}/comm") as fh:
        assert mine.name == fh.read().strip()
    assert "pytest" in (mine.command or "") or "python" in (mine.command or "")
    gone = d.processes[1]
    assert gone.name is None and gone.command is None  # no such pid here
    assert d.processes[3].used_bytes is None  # the driver did not say


@pytest.mark.skipif(not hasattr(pynvml, "NVMLLibraryMismatchError"),
                    reason="this nvidia-ml-py has no versioned process call to fall back from")
def test_process_list_uses_the_older_call_when_the_newest_is_missing(nvml):
    nvml.gpus[0].processes = [(4321, 5 * GiB)]
    nvml.fail("nvmlDeviceGetComputeRunningProcesses",
              pynvml.NVMLLibraryMismatchError("Unversioned function called"))
    older = []

    def v2(handle):
        older.append(handle.index)
        return _procs(nvml.gpus[handle.index].processes)

    nvml.nvmlDeviceGetComputeRunningProcesses_v2 = v2
    b = open_nvml(nvml)
    for _ in range(2):
        d, errors = read_one(b)
        assert errors == [] and [(p.pid, p.used_bytes) for p in d.processes] == [(4321, 5 * GiB)]
    assert older == [0, 0]
    assert nvml.calls["nvmlDeviceGetComputeRunningProcesses"] == 1  # not retried every sample


def test_process_errors_empty_the_list_and_are_reported(nvml):
    nvml.gpus[0].processes = [(4321, 5 * GiB)]
    nvml.fail("nvmlDeviceGetComputeRunningProcesses", pynvml.NVMLError_NoPermission)
    d, errors = read_one(open_nvml(nvml))
    assert d.processes is None and errors == ["GPU 0: processes: Insufficient Permissions"]


def test_process_used_bytes_sums_gpus_and_is_none_when_not_listed():
    nvml = FakeNvml([FakeGpu(processes=[(77, 2 * GiB)]), FakeGpu(processes=[(77, 1 * GiB), (88, None)])])
    b = open_nvml(nvml)
    assert b.process_used_bytes(77) == 3 * GiB
    assert b.process_used_bytes(88) is None  # listed without a figure
    assert b.process_used_bytes(99) is None  # not on any GPU
    nvml.fail("nvmlDeviceGetComputeRunningProcesses", pynvml.NVMLError_GpuIsLost, index=0)
    assert b.process_used_bytes(77) == 1 * GiB  # what the healthy GPU still says


def test_two_gpus_and_one_that_cannot_be_opened():
    nvml = FakeNvml([FakeGpu(name="A"), FakeGpu(name="B")])
    nvml.fail("nvmlDeviceGetHandleByIndex", pynvml.NVMLError_NoPermission, index=1)
    devices, errors = open_nvml(nvml).read()
    assert [d.name for d in devices] == ["A", None]
    assert devices[0].error is None and devices[0].mem_used is not None
    assert devices[1].mem_used is None and devices[1].processes is None
    assert errors == ["GPU 1: cannot open: Insufficient Permissions"]


@pytest.mark.parametrize("error, reason", [
    (pynvml.NVMLError_LibraryNotFound, "NVIDIA driver not found (libnvidia-ml.so.1 could not be loaded)"),
    (pynvml.NVMLError_DriverNotLoaded, "the NVIDIA driver is not loaded"),
    (pynvml.NVMLError_NoPermission, "no permission to use the NVIDIA driver (NVML)"),
    (pynvml.NVMLError_Unknown, "NVML could not start: Unknown Error"),
    (OSError("libnvidia-ml.so.1: wrong ELF class"), "NVML could not start: libnvidia-ml.so.1: wrong ELF class"),
])
def test_init_failure_is_unavailable_with_the_reason(error, reason):
    b = open_nvml(FakeNvml(init_error=error))
    assert isinstance(b, UnavailableBackend) and not b.available
    assert b.reason == reason
    snap = GpuSampler(b).sample_once()
    assert snap.to_dict() == {"available": False, "reason": reason, "simulated": False,
                              "timestamp": snap.timestamp, "devices": []}
    assert b.process_used_bytes(os.getpid()) is None


def test_a_driver_with_no_gpu_is_unavailable_and_shut_down():
    nvml = FakeNvml([])
    b = open_nvml(nvml)
    assert not b.available and b.reason == "the NVIDIA driver is loaded but reports no GPU"
    assert nvml.initialized == 0  # nvmlShutdown matched the nvmlInit


def test_close_shuts_nvml_down_once_and_later_reads_are_harmless(nvml):
    b = open_nvml(nvml)
    assert nvml.initialized == 1
    b.close()
    b.close()
    assert nvml.initialized == 0
    assert b.read() == ([], ["NVML was shut down"])
    assert b.process_used_bytes(1) is None


def test_module_process_used_bytes_uses_one_shared_backend(monkeypatch):
    nvml = FakeNvml([FakeGpu(processes=[(os.getpid(), 123 * MiB)])])
    monkeypatch.setattr(backend_mod, "_shared", None)
    opened = []

    def fake_open(simulate=False):
        opened.append(simulate)
        return open_nvml(nvml)

    monkeypatch.setattr(backend_mod, "open_backend", fake_open)
    from aios_tui.gpu import process_used_bytes

    assert process_used_bytes(os.getpid()) == 123 * MiB
    assert process_used_bytes(1) is None
    assert opened == [False]  # opened once, reused


def test_module_process_used_bytes_without_a_driver_is_none(monkeypatch):
    monkeypatch.setattr(backend_mod, "_shared", UnavailableBackend("no driver"))
    assert backend_mod.process_used_bytes(os.getpid()) is None


@pytest.mark.parametrize("used, total, expect", [
    (1 * GiB, 0, (1 * GiB, None)),  # a total of 0 is one the driver does not report
    (2**64 - 5, 24 * GiB, (None, 24 * GiB)),  # an unsigned figure that wrapped around
    (30 * GiB, 24 * GiB, (None, 24 * GiB)),  # more used than there is
    (-5, 24 * GiB, (None, 24 * GiB)),
    (24 * GiB, 24 * GiB, (24 * GiB, 24 * GiB)),  # full is a real reading
])
def test_impossible_memory_figures_are_unknown(used, total, expect):
    d, errors = read_one(open_nvml(FakeNvml([FakeGpu(mem_used=used, mem_total=total, mem_reserved=0)])))
    assert (d.mem_used, d.mem_total) == expect and errors == []


def test_impossible_power_limit_and_utilisation_are_unknown(nvml):
    nvml.gpus[0].power_limit_w = 0
    nvml.gpus[0].util_gpu, nvml.gpus[0].util_mem = 4294967295, 101
    d, errors = read_one(open_nvml(nvml))
    assert d.power_limit_w is None and d.power_w == 150.0
    assert d.util_gpu is None and d.util_mem is None and errors == []
    nvml.gpus[0].util_gpu, nvml.gpus[0].util_mem = 0, 100  # the ends are real readings
    d, _ = read_one(open_nvml(nvml))
    assert (d.util_gpu, d.util_mem) == (0, 100)


@pytest.mark.parametrize("error", [pynvml.NVMLError_NotSupported, pynvml.NVMLError_InsufficientSize,
                                   pynvml.NVMLError_Timeout])
def test_a_process_list_that_cannot_be_read_is_unknown(nvml, error):
    nvml.gpus[0].processes = [(4321, 5 * GiB)]
    nvml.fail("nvmlDeviceGetComputeRunningProcesses", error, times=1)
    b = open_nvml(nvml)
    d, _ = read_one(b)
    assert d.processes is None
    assert DeviceSample.from_dict(json.loads(json.dumps(d.to_dict()))).processes is None
    d, errors = read_one(b)
    assert errors == [] and [p.pid for p in d.processes] == [4321]
