"""Short human figures for metrics: sizes, durations, counts, and one line per record."""

from __future__ import annotations

import math
from typing import Any


def figure(v: Any) -> float | None:
    """``v`` as a float, where it is a finite number: the figures shown come from files anyone
    may have written (a metrics line's ``"rss": "x"``), and one of another kind shows as ``-``."""
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return None
    try:
        v = float(v)
    except OverflowError:
        return None
    return v if math.isfinite(v) else None


def human_bytes(n: float | None) -> str:
    """A size as every command and the console show one: ``812.0 KiB``, ``31.4 GiB`` (at most 9
    characters below 1000 TiB)."""
    n = figure(n)
    if n is None:
        return "-"
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        # Switch unit at 1000, not 1024: "1000.0 MiB" is wider than "1.0 GiB" and no clearer.
        if abs(n) < 1000 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"  # pragma: no cover


def human_duration(seconds: float | None) -> str:
    seconds = figure(seconds)
    if seconds is None or seconds < 0:
        return "-"
    s = int(round(seconds))
    if s < 60:
        return f"{s}s"
    m, s = divmod(s, 60)
    if m < 60:
        return f"{m}m{s:02d}s"
    h, m = divmod(m, 60)
    if h < 48:
        return f"{h}h{m:02d}m"
    d, h = divmod(h, 24)
    return f"{d}d{h:02d}h"


def human_count(n: float | None) -> str:
    n = figure(n)
    if n is None:
        return "-"
    for unit, size in (("B", 1e9), ("M", 1e6), ("K", 1e3)):
        if abs(n) >= size:
            return f"{n / size:.1f}{unit}"
    return f"{n:.0f}"


def num(value: Any, fmt: str) -> str:
    value = figure(value)
    return "-" if value is None else format(value, fmt)


def memory_of(record: dict[str, Any]) -> float | None:
    """The memory figure worth one column: CUDA peak, else NVML, else CPU RSS."""
    for key in ("mem_peak", "mem_allocated", "nvml_used", "rss"):
        if isinstance(record.get(key), (int, float)):
            return record[key]
    return None


def params_summary(header: dict[str, Any] | None) -> str:
    params = (header or {}).get("parameters")
    params = params if isinstance(params, dict) else {}
    trainable, total, pct = params.get("trainable"), params.get("total"), figure(params.get("trainable_pct"))
    if figure(trainable) is None:
        return "-"
    pct_txt = f" ({pct:.2f}%)" if pct is not None else ""
    return f"{human_count(trainable)} / {human_count(total)}{pct_txt}"


def header_line(header: dict[str, Any] | None, name: str = "") -> str:
    if not header:
        return f"run {name}: no header yet" if name else "no header yet"
    parts = []
    if name:
        parts.append(f"run {name}")
    parts.append(f"method {header.get('method') or '-'}")
    if header.get("model"):
        parts.append(f"model {header['model']}")
    if header.get("device"):
        parts.append(f"device {header['device']}")
    parts.append(f"trainable {params_summary(header)}")
    return "  ".join(parts)


def step_line(record: dict[str, Any], total: int | None = None) -> str:
    """``step   12/200  loss 2.3456  eval 2.4012  lr 2.00e-04  tok/s 5.1K  mem 1.2 GiB  eta 1m05s``."""
    width = len(str(total)) if total else 5
    step = record.get("step")
    step_txt = f"{step:>{width}}" if isinstance(step, int) else str(step)
    if total:
        step_txt += f"/{total}"
    parts = [f"step {step_txt}", f"loss {num(record.get('loss'), '.4f')}"]
    if "eval_loss" in record:
        parts.append(f"eval {num(record.get('eval_loss'), '.4f')}")
    if "act_segments" in record:  # HRM ACTv1: segments used per sequence, and the halting head's hits
        parts.append(f"act {num(record.get('act_segments'), '.2f')}")
    if "halt_accuracy" in record:
        parts.append(f"halt {num(record.get('halt_accuracy'), '.0%')}")
    parts.append(f"lr {num(record.get('lr'), '.2e')}")
    tps = record.get("tokens_per_s")
    parts.append(f"tok/s {human_count(tps) if isinstance(tps, (int, float)) else '-'}")
    parts.append(f"mem {human_bytes(memory_of(record))}")
    parts.append(f"eta {human_duration(record.get('eta_s'))}")
    return "  ".join(parts)


def event_line(record: dict[str, Any]) -> str:
    """``== checkpoint  step 100  path=...``: an event with its fields, time left out."""
    name = record.get("event", "?")
    rest = {k: v for k, v in record.items() if k not in ("event", "time")}
    parts = [f"== {name}"]
    if "step" in rest:
        parts.append(f"step {rest.pop('step')}")
    changes = rest.pop("changes", None)
    if isinstance(changes, list) and changes:
        # what a resume changed ("steps: 300 -> 400"), ahead of the checkpoint's path, so a
        # narrow view cuts the path rather than them
        parts.append("changed=" + "; ".join(str(c) for c in changes))
    if name == "vram_measured":
        for key, value in list(rest.items()):
            if isinstance(value, (int, float)) and not isinstance(value, bool) and key.endswith(("bytes", "peak", "reserved", "allocated", "used", "rss")):
                rest[key] = human_bytes(value)
    for key, value in rest.items():
        if isinstance(value, (dict, list)) or value is None:
            continue
        if isinstance(value, float):
            value = f"{value:.4g}"
        parts.append(f"{key}={value}")
    return "  ".join(parts)
