#!/usr/bin/env python3
"""Check the NVML monitor against a real GPU and print a JSON report.

    python3 bench/gpu_check.py [--seconds 20] [--alloc-mib 2048] [--out report.json]

1. memory used per GPU in the sampler's snapshot vs `nvidia-smi --query-gpu=memory.used`
   (within 1%, nvidia-smi's 1 MiB rounding allowed), read while a known allocation is held;
2. a child process allocates --alloc-mib on the GPU with torch: it must appear in the process
   list with at least that much memory, marked as ours, with process_used_bytes() agreeing;
3. the sampler thread's CPU cost at a 1 s interval over --seconds (CPU time / wall time).

Exit status: 0 when every check passed (or when there is no GPU: the report says skipped),
1 when a check failed. Needs only the repository on sys.path, nvidia-ml-py, and torch with CUDA
for the child.
"""

from __future__ import annotations

import argparse
import json
import os
import select
import shutil
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from aios_tui.gpu import GpuSampler, open_backend, process_used_bytes  # noqa: E402

MiB = 1 << 20

CHILD = r"""
import sys, torch
n = int(sys.argv[1])
x = torch.empty(n, dtype=torch.uint8, device="cuda")
x.fill_(1)
torch.cuda.synchronize()
print("ready", torch.cuda.memory_allocated(), torch.cuda.memory_reserved(), flush=True)
sys.stdin.readline()
"""


def nvidia_smi_used_mib() -> dict[int, tuple[float, float]] | None:
    """index -> (used MiB, total MiB) as nvidia-smi reports them, or None without nvidia-smi."""
    exe = shutil.which("nvidia-smi")
    if exe is None:
        return None
    out = subprocess.run([exe, "--query-gpu=index,memory.used,memory.total",
                          "--format=csv,noheader,nounits"],
                         capture_output=True, text=True, timeout=30, check=True).stdout
    result = {}
    for line in out.strip().splitlines():
        idx, used, total = (c.strip() for c in line.split(","))
        result[int(idx)] = (float(used), float(total))
    return result


def compare_memory(sampler: GpuSampler, rounds: int = 5) -> dict:
    if shutil.which("nvidia-smi") is None:
        return {"ok": None, "skipped": "nvidia-smi not found"}
    rows, ok = [], True
    for _ in range(rounds):
        before = nvidia_smi_used_mib() or {}
        snap = sampler.sample_once()
        after = nvidia_smi_used_mib() or {}
        for d in snap.devices:
            if d.index not in before or d.mem_used is None:
                rows.append({"gpu": d.index, "error": "missing figure", "ours": d.mem_used})
                ok = False
                continue
            ours = d.mem_used / MiB
            # nvidia-smi is read on both sides of our sample: compare with the nearer one.
            smi = min((before[d.index][0], after.get(d.index, before[d.index])[0]),
                      key=lambda v: abs(v - ours))
            tol = max(0.01 * smi, 1.0)
            good = abs(ours - smi) <= tol
            ok = ok and good
            rows.append({"gpu": d.index, "ours_mib": round(ours, 1), "nvidia_smi_mib": smi,
                         "diff_mib": round(ours - smi, 1),
                         "diff_pct": round(100 * (ours - smi) / smi, 3) if smi else None,
                         "ours_total_mib": round((d.mem_total or 0) / MiB, 1),
                         "nvidia_smi_total_mib": before[d.index][1], "within_1pct": good})
        time.sleep(0.2)
    return {"ok": ok, "rounds": rows}


def start_child(alloc_bytes: int) -> tuple[subprocess.Popen | None, dict]:
    proc = subprocess.Popen([sys.executable, "-c", CHILD, str(alloc_bytes)], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    ready, _, _ = select.select([proc.stdout], [], [], 180)
    line = proc.stdout.readline() if ready else ""
    if not line.startswith("ready"):
        proc.kill()
        _, err = proc.communicate(timeout=30)
        return None, {"error": "the CUDA child did not start", "stderr": err[-2000:]}
    _, allocated, reserved = line.split()
    return proc, {"pid": proc.pid, "torch_allocated": int(allocated), "torch_reserved": int(reserved)}


def check_process(sampler: GpuSampler, child: dict, alloc_bytes: int, wait_s: float = 8.0) -> dict:
    pid = child["pid"]
    found, seen = None, []
    deadline = time.monotonic() + wait_s
    while True:  # the driver may list a new context a moment after it exists
        snap = sampler.sample_once()
        seen = [(d.index, p.pid, p.name, p.used_bytes) for d in snap.devices for p in d.processes or ()]
        found = next(((d.index, p) for d in snap.devices for p in d.processes or () if p.pid == pid), None)
        if found is not None or time.monotonic() >= deadline:
            break
        time.sleep(0.5)
    if found is None:
        return {"ok": False, "error": f"pid {pid} not in NVML's process list (inside a container "
                                      "NVML may report host pids)", "seen": seen}
    gpu, p = found
    nvml_one = process_used_bytes(pid)
    used = p.used_bytes or 0
    checks = {
        "listed": True,
        "memory_at_least_allocation": used >= alloc_bytes,
        # The rest is the CUDA context and the caching allocator's rounding, well under 4 GiB.
        "memory_plausible": used <= alloc_bytes + 4 * 1024 * MiB,
        "marked_own": p.own,
        "process_used_bytes_agrees": nvml_one is not None and abs(nvml_one - used) <= 64 * MiB,
    }
    return {"ok": all(checks.values()), "checks": checks, "gpu": gpu, "pid": pid, "name": p.name,
            "used_bytes": p.used_bytes, "process_used_bytes": nvml_one,
            "overhead_over_reserved_mib": round((used - child["torch_reserved"]) / MiB, 1), **child}


def sampler_cost(backend, seconds: float) -> dict:
    sampler = GpuSampler(backend, interval=1.0)
    cpu0, wall0 = time.process_time(), time.monotonic()
    sampler.start()
    clock_id = None
    try:
        clock_id = time.pthread_getcpuclockid(sampler._thread.ident)  # type: ignore[union-attr]
        thread0 = time.clock_gettime(clock_id)
    except (AttributeError, OSError):
        thread0 = None
    time.sleep(seconds)
    thread_cpu = None
    if thread0 is not None:
        try:
            thread_cpu = time.clock_gettime(clock_id) - thread0
        except OSError:
            pass
    sampler.stop()
    cpu, wall = time.process_time() - cpu0, time.monotonic() - wall0
    n = sampler.samples_taken
    # Latency of one full sample, back to back (not the cost: that is the CPU share above).
    t = time.perf_counter()
    for _ in range(10):
        sampler.sample_once()
    per_sample_ms = (time.perf_counter() - t) / 10 * 1000
    return {"interval_s": 1.0, "wall_s": round(wall, 2), "samples": n,
            "process_cpu_s": round(cpu, 4), "process_cpu_pct": round(100 * cpu / wall, 3),
            "sampler_thread_cpu_s": None if thread_cpu is None else round(thread_cpu, 4),
            "sampler_thread_cpu_pct": None if thread_cpu is None else round(100 * thread_cpu / wall, 3),
            "sample_latency_ms": round(per_sample_ms, 2)}


def check_cli(n_devices: int) -> dict:
    env = {**os.environ, "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    res = subprocess.run([sys.executable, "-m", "aios_tui", "gpu", "--once", "--json"], cwd=REPO,
                         capture_output=True, text=True, timeout=120, env=env)
    if res.returncode != 0:
        # The device image may lack the CLI's other dependencies (tomli-w): not this check's subject.
        return {"ok": None, "skipped": f"exit {res.returncode}", "stderr": res.stderr[-1500:]}
    data = json.loads(res.stdout)
    ok = data["available"] is True and len(data["devices"]) == n_devices
    return {"ok": ok, "available": data["available"], "devices": len(data["devices"])}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=float, default=20.0, help="how long to measure the CPU cost")
    ap.add_argument("--alloc-mib", type=int, default=2048, help="what the child allocates")
    ap.add_argument("--out", help="also write the report to this file")
    args = ap.parse_args()

    backend = open_backend()
    if not backend.available:
        report = {"ok": None, "skipped": True, "reason": backend.reason}
        print(f"gpu_check: no GPU to check here ({backend.reason})", file=sys.stderr)
        print(json.dumps(report, indent=2))
        if args.out:
            Path(args.out).write_text(json.dumps(report, indent=2) + "\n")
        return 0

    report: dict = {"driver": backend.driver_version}
    sampler = GpuSampler(backend, interval=1.0)
    first = sampler.sample_once()
    report["devices"] = [{"index": d.index, "name": d.name, "mem_total": d.mem_total,
                          "error": d.error} for d in first.devices]
    report["unsupported_fields"] = sorted({k for d in first.devices
                                           for k, v in d.to_dict().items() if v is None and k != "error"})
    alloc = args.alloc_mib * MiB
    child_proc, child = start_child(alloc)
    try:
        if child_proc is None:
            report["process"] = {"ok": False, **child}
        else:
            report["process"] = check_process(sampler, child, alloc)
        # Compared while the allocation is held, so 1% is of a figure well above idle.
        report["memory_vs_nvidia_smi"] = compare_memory(sampler)
        report["sampler_cost"] = sampler_cost(backend, args.seconds)
    finally:
        if child_proc is not None:
            try:
                child_proc.communicate("\n", timeout=60)
            except subprocess.TimeoutExpired:
                child_proc.kill()
                child_proc.wait()
    report["cli"] = check_cli(len(first.devices))
    results = [report["process"].get("ok"), report["memory_vs_nvidia_smi"].get("ok"),
               report["cli"].get("ok")]
    report["ok"] = all(r is not False for r in results)
    text = json.dumps(report, indent=2, default=str)
    print(text)
    if args.out:
        Path(args.out).write_text(text + "\n")
    backend.close()
    return 0 if report["ok"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
