"""What a run tells the world: metrics lines, status.json, memory figures.

Everything goes through ``aios_tui.metrics`` (JSONL that flushes per line, atomic status), so
a console or ``aios-tui tail`` in another process can follow the run by reading files.
"""

from __future__ import annotations

import os
import resource
import time
from pathlib import Path
from typing import Any

import torch

from aios_tui.metrics.jsonl import JsonlLogger, read_header
from aios_tui.metrics.rundir import RunDir

STATUS_MIN_INTERVAL_S = 1.0


def rss_bytes() -> int | None:
    """This process's resident memory now (Linux /proc), else its peak."""
    try:
        with open("/proc/self/statm", "rb") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        try:
            return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        except (OSError, ValueError):
            return None


def peak_rss_bytes() -> int | None:
    try:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    except (OSError, ValueError):
        return None


_NVML_EVERY_S = 1.0
_nvml_cache: list = [float("-inf"), None]  # [monotonic time of the last query, its value]


def nvml_used_bytes(fresh: bool = False) -> int | None:
    """NVML's figure for this process, queried at most once a second (unless ``fresh``): a
    driver call on every logged step of a fast run costs more than it tells."""
    import time

    now = time.monotonic()
    if not fresh and now - _nvml_cache[0] < _NVML_EVERY_S:
        return _nvml_cache[1]
    try:
        from aios_tui.gpu import process_used_bytes
    except ImportError:
        return None
    try:
        value = process_used_bytes(os.getpid())
    except Exception:  # NVML quirks must never stop training
        value = None
    _nvml_cache[:] = [now, value]
    return value


def memory_fields(device: torch.device) -> dict[str, Any]:
    if device.type == "cuda":
        return {"mem_allocated": torch.cuda.memory_allocated(device),
                "mem_reserved": torch.cuda.memory_reserved(device),
                "mem_peak": torch.cuda.max_memory_allocated(device),
                "nvml_used": nvml_used_bytes()}
    return {"rss": rss_bytes()}


def vram_estimate(cfg, model_config: dict | None, device: torch.device) -> tuple[dict | None, str | None]:
    """The calculator's estimate for this run as a dict (or None) and why not, if it failed."""
    try:
        from aios_tui.vram import estimate_for_run
    except ImportError:
        return None, None
    gpu_bytes = torch.cuda.get_device_properties(device).total_memory if device.type == "cuda" else None
    try:
        est = estimate_for_run(cfg, model_config=model_config, gpu_memory_bytes=gpu_bytes)
        return est.to_dict(), None
    except Exception as exc:  # an estimate is advice; a failure there must not stop training
        return None, f"{type(exc).__name__}: {exc}"


def versions() -> dict[str, str]:
    out = {"torch": torch.__version__}
    for name in ("transformers", "peft"):
        try:
            out[name] = __import__(name).__version__
        except Exception:
            pass
    return out


class Reporter:
    """Metrics JSONL plus status.json for one training session."""

    def __init__(self, run: RunDir, metrics_path: Path):
        self.run = run
        self.metrics_path = metrics_path
        self.logger = JsonlLogger(metrics_path)
        self._last_status = 0.0
        self.peak_nvml: int | None = None
        # a reading cached by an earlier session in this process is not this session's
        _nvml_cache[:] = [float("-inf"), None]

    def has_header(self) -> bool:
        header = read_header(self.metrics_path)
        return bool(header) and "peft" in header

    def header(self, record: dict[str, Any]) -> None:
        self.logger.write(record)

    def event(self, name: str, **fields: Any) -> None:
        self.logger.event(name, **fields)

    def log(self, step: int, record: dict[str, Any]) -> None:
        used = record.get("nvml_used")
        if isinstance(used, int):
            self.peak_nvml = max(self.peak_nvml or 0, used)
        self.logger.log(step, record)

    def status(self, force: bool = False, **fields: Any) -> None:
        now = time.monotonic()
        if not force and now - self._last_status < STATUS_MIN_INTERVAL_S:
            return
        self._last_status = now
        self.run.write_status(**fields)

    def close(self) -> None:
        self.logger.close()
