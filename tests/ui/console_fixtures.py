"""A fixed GPU and a fixed VRAM estimate, so every console screen renders the same on every run."""

from __future__ import annotations

from types import SimpleNamespace

from aios_tui.gpu import DeviceSample, ProcessInfo, Snapshot
from aios_tui.ui.gpu_source import NoGpuSnapshot, StaticGpu

from runfiles import T0

GiB = 1 << 30
NOW = T0 + 3600.0


def h200(util: int = 87) -> DeviceSample:
    return DeviceSample(
        index=0, name="NVIDIA H200", mem_used=41 * GiB, mem_total=140 * GiB, util_gpu=util,
        util_mem=40, temperature_c=54, power_w=320.0, power_limit_w=700.0, sm_clock_mhz=1980,
        mem_clock_mhz=3201, fan_pct=None,
        processes=[ProcessInfo(pid=4242, name="python", used_bytes=38 * GiB, own=True),
                   ProcessInfo(pid=777, name="jupyter", used_bytes=2 * GiB, own=False)])


def fixed_gpu() -> StaticGpu:
    history = [h200(util) for util in (10, 30, 55, 80, 95, 90, 70, 87) * 4]
    return StaticGpu(Snapshot(True, "", False, T0, [h200()]), history)


def no_gpu() -> StaticGpu:
    return StaticGpu(NoGpuSnapshot(reason="NVIDIA driver not found", timestamp=T0))


def fixed_estimator(cfg, model_config=None, gpu_memory_bytes=None):
    """A stand-in calculator whose figures follow lora_r and batch_size, so screens stay fixed
    while the real one evolves; the real calculator has its own tests (and one here)."""
    weights = 500 << 20
    adapter = (cfg.peft.lora_r * 3 << 20) if cfg.peft.use_peft else 0
    grads = adapter or weights
    optimizer = 2 * grads
    activations = cfg.train.batch_size * cfg.data.max_seq_len * (1 << 20) // 8
    breakdown = {"weights": weights, "adapter": adapter, "gradients": grads,
                 "optimizer": optimizer, "activations": activations}
    peak = sum(breakdown.values())
    device = peak + (600 << 20)
    fits = None if gpu_memory_bytes is None else device <= gpu_memory_bytes
    suggestions = [] if fits is not False else [
        {"change": "gradient_checkpointing = true", "peak_allocated_bytes": peak - activations // 2}]
    data = {"peak_allocated_bytes": peak, "device_used_bytes": device, "breakdown": breakdown,
            "fits": fits, "suggestions": suggestions}
    return SimpleNamespace(to_dict=lambda: data)


