"""Common GPUs with the memory NVML reports for them, and parsing of sizes like ``24GiB``."""

from __future__ import annotations

import re
from dataclasses import dataclass

from aios_tui.errors import UserError

MiB = 1 << 20
GiB = 1 << 30


@dataclass(frozen=True)
class GPU:
    key: str
    label: str          # what a picker shows: "RTX 4090 24 GB"
    total_bytes: int    # device memory as NVML reports it (a little under the marketing size)


# Totals in MiB as nvidia-smi shows them on these cards.
_TABLE = [
    ("t4", "T4 16 GB", 15360),
    ("rtx3060", "RTX 3060 12 GB", 12288),
    ("rtx3080", "RTX 3080 10 GB", 10240),
    ("rtx3090", "RTX 3090 24 GB", 24576),
    ("rtx4070", "RTX 4070 12 GB", 12282),
    ("rtx4080", "RTX 4080 16 GB", 16376),
    ("rtx4090", "RTX 4090 24 GB", 24564),
    ("rtx5090", "RTX 5090 32 GB", 32607),
    ("l4", "L4 24 GB", 23034),
    ("a10g", "A10G 24 GB", 23028),
    ("v100-32", "V100 32 GB", 32768),
    ("a6000", "RTX A6000 48 GB", 49140),
    ("l40s", "L40S 48 GB", 46068),
    ("a100-40", "A100 40 GB", 40960),
    ("a100-80", "A100 80 GB", 81920),
    ("h100", "H100 80 GB", 81559),
    ("h200", "H200 141 GB", 143771),
]

GPUS: list[GPU] = [GPU(k, label, mib * MiB) for k, label, mib in _TABLE]

_UNITS = {
    "": 1, "b": 1,
    "k": 1 << 10, "kib": 1 << 10, "kb": 10 ** 3,
    "m": 1 << 20, "mib": 1 << 20, "mb": 10 ** 6,
    "g": 1 << 30, "gib": 1 << 30, "gb": 10 ** 9,
    "t": 1 << 40, "tib": 1 << 40, "tb": 10 ** 12,
}
_SIZE = re.compile(r"^\s*(-?[0-9]+(?:\.[0-9]+)?)\s*([a-zA-Z]*)\s*$")  # a sign: refused as not positive


def find_gpu(text: str) -> GPU | None:
    """A table entry by key or label, loosely: 'rtx4090', '4090', 'A100 80 GB', 'h200'."""
    norm = re.sub(r"[^a-z0-9]", "", text.lower())
    if not norm:
        return None
    for g in GPUS:
        if norm in (g.key.replace("-", ""), re.sub(r"[^a-z0-9]", "", g.label.lower())):
            return g
    hits = gpu_matches(text)
    return hits[0] if len(hits) == 1 else None


def gpu_matches(text: str) -> list[GPU]:
    """Table entries whose label contains ``text`` loosely ('a100': both sizes)."""
    norm = re.sub(r"[^a-z0-9]", "", text.lower())
    return [g for g in GPUS if norm and norm in re.sub(r"[^a-z0-9]", "", g.label.lower())]


def parse_size(text: str | int) -> int:
    """Bytes from '24GiB', '24G' (binary), '24GB' (decimal), '16000MiB', a GPU name or a plain byte count.

    K/M/G/T and KiB/MiB/GiB/TiB are powers of 1024; KB/MB/GB/TB powers of 1000.
    """
    if isinstance(text, int) and not isinstance(text, bool):
        if text <= 0:
            raise UserError(f"GPU memory must be positive, not {text}")
        return text
    s = str(text)
    m = _SIZE.match(s)
    if not m:
        gpu = find_gpu(s)
        if gpu:
            return gpu.total_bytes
        several = gpu_matches(s)
        if len(several) > 1:
            raise UserError(f"{s!r} names more than one GPU; pick one: {', '.join(g.key for g in several)}")
        raise UserError(f"{s!r} is not a memory size; write e.g. 24GiB, 24GB, 80G, 16000MiB, "
                        "a byte count, or a GPU name such as rtx4090 or a100-80")
    number, unit = float(m.group(1)), m.group(2).lower()
    if int(number * _UNITS["gb"]) <= 0:   # said before a hint offers it with a unit, as 0GiB
        raise UserError(f"{s!r}: GPU memory must be positive")
    if not unit:
        # a bare number that names a GPU ('4090', '3090') means that GPU; one too small to be
        # a GPU's byte count ('24', '80') is a size whose unit was left off
        gpu = find_gpu(s)
        if gpu:
            return gpu.total_bytes
        if number < MiB:
            raise UserError(f"{s!r} has no unit and is too few bytes for a GPU; write e.g. {m.group(1)}GiB "
                            f"or {m.group(1)}GB")
    if unit not in _UNITS:
        raise UserError(f"{s!r}: unknown unit {m.group(2)!r}; use B, KiB, MiB, GiB, TiB (or K/M/G/T), "
                        "KB, MB, GB or TB")
    value = int(number * _UNITS[unit])
    if value <= 0:
        raise UserError(f"{s!r}: GPU memory must be positive")
    return value
