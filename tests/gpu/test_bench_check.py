"""bench/gpu_check.py, the script a GPU machine runs: its logic against a scripted NVML, a
stand-in nvidia-smi and a CPU child, and its clean exit on a machine without a GPU."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys

import pytest

from aios_tui.gpu import GpuSampler
from aios_tui.gpu import backend as backend_mod
from aios_tui.gpu.fake import FakeGpu, FakeNvml
from aios_tui.gpu.nvml import open_nvml

from .conftest import GiB, MiB
from .test_cli import _driver_present

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SCRIPT = os.path.join(REPO, "bench", "gpu_check.py")


@pytest.fixture
def gc():
    spec = importlib.util.spec_from_file_location("gpu_check", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def smi(tmp_path, monkeypatch):
    """Put an `nvidia-smi` on PATH that answers the query with the MiB figures given."""
    def install(used_mib: int, total_mib: int = 24576) -> None:
        exe = tmp_path / "bin" / "nvidia-smi"
        exe.parent.mkdir(exist_ok=True)
        exe.write_text("#!/bin/sh\n"
                       '[ "$*" = "--query-gpu=index,memory.used,memory.total '
                       '--format=csv,noheader,nounits" ] || { echo "bad args: $*" >&2; exit 9; }\n'
                       f"echo '0, {used_mib}, {total_mib}'\n")
        exe.chmod(0o755)
        monkeypatch.setenv("PATH", f"{exe.parent}{os.pathsep}{os.environ['PATH']}")
    return install


def test_no_gpu_exits_cleanly_with_a_message():
    if _driver_present():
        pytest.skip("this test is about a machine without a GPU")
    res = subprocess.run([sys.executable, SCRIPT], capture_output=True, text=True, timeout=60)
    assert res.returncode == 0
    assert json.loads(res.stdout) == {"ok": None, "skipped": True, "reason":
                                      "NVIDIA driver not found (libnvidia-ml.so.1 could not be loaded)"}
    assert res.stderr.startswith("gpu_check: no GPU to check here")


def test_memory_comparison_passes_within_1pct_and_fails_beyond(gc, smi):
    sampler = GpuSampler(open_nvml(FakeNvml([FakeGpu(mem_used=10 * GiB, mem_total=24 * GiB)])))
    smi(10240 + 50)  # 0.49% apart
    result = gc.compare_memory(sampler, rounds=2)
    assert result["ok"] is True and len(result["rounds"]) == 2
    row = result["rounds"][0]
    assert row["ours_mib"] == 10240.0 and row["nvidia_smi_mib"] == 10290.0
    assert row["within_1pct"] is True and row["ours_total_mib"] == 24576.0
    smi(10240 + 150)  # 1.44% apart
    assert gc.compare_memory(sampler, rounds=1)["ok"] is False


def test_memory_comparison_skips_without_nvidia_smi(gc, monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))
    sampler = GpuSampler(open_nvml(FakeNvml()))
    assert gc.compare_memory(sampler) == {"ok": None, "skipped": "nvidia-smi not found"}


def test_process_check_reports_a_missing_pid_with_what_it_saw(gc):
    sampler = GpuSampler(open_nvml(FakeNvml([FakeGpu(processes=[(4242, GiB)])])))
    result = gc.check_process(sampler, {"pid": 999_999_999, "torch_reserved": 0}, GiB, wait_s=0)
    assert result["ok"] is False and "not in NVML's process list" in result["error"]
    assert result["seen"] == [(0, 4242, None, GiB)]


def test_whole_run_with_a_cpu_child(gc, smi, monkeypatch, tmp_path):
    pids: list[int] = []
    real_start = gc.start_child

    def start(alloc):
        proc, info = real_start(alloc)
        if proc is not None:
            pids.append(proc.pid)
        return proc, info

    # The child holds plain host memory; the scripted NVML lists it as a GPU process.
    monkeypatch.setattr(gc, "CHILD", "import sys\nb = bytearray(int(sys.argv[1]))\n"
                                     "print('ready', len(b), len(b), flush=True)\nsys.stdin.readline()\n")
    monkeypatch.setattr(gc, "start_child", start)
    nvml = FakeNvml([FakeGpu(mem_used=10 * GiB, mem_total=24 * GiB,
                             processes=lambda: [(p, 16 * MiB + 500 * MiB) for p in pids])])
    backend = open_nvml(nvml)
    monkeypatch.setattr(gc, "open_backend", lambda: backend)
    monkeypatch.setattr(backend_mod, "_shared", backend)
    monkeypatch.setattr(gc, "check_cli", lambda n: {"ok": True, "devices": n})
    smi(10240)
    out = tmp_path / "report.json"
    monkeypatch.setattr(sys, "argv", ["gpu_check.py", "--seconds", "0.2", "--alloc-mib", "16",
                                      "--out", str(out)])
    assert gc.main() == 0
    report = json.loads(out.read_text())
    assert report["ok"] is True
    assert report["process"]["checks"] == {
        "listed": True, "memory_at_least_allocation": True, "memory_plausible": True,
        "marked_own": True, "process_used_bytes_agrees": True}
    assert report["process"]["pid"] == pids[0]
    assert report["memory_vs_nvidia_smi"]["ok"] is True
    cost = report["sampler_cost"]
    assert cost["samples"] >= 1 and cost["process_cpu_pct"] >= 0
    assert report["devices"][0]["name"] == "Fake GPU 24GB"
    assert nvml.initialized == 0  # closed at the end
    with pytest.raises(ProcessLookupError):
        os.kill(pids[0], 0)  # the child was told to exit and reaped


def test_cli_check_without_a_gpu_is_a_failure_not_a_crash(gc):
    if _driver_present():
        pytest.skip("this test is about a machine without a GPU")
    assert gc.check_cli(1) == {"ok": False, "available": False, "devices": 0}
