"""What is alive at a training run's peak, grouped by the line that allocated it.

    python bench/peak_breakdown.py --cases gpt2-lora-all --json OUT.json      # on a GPU
    python bench/peak_breakdown.py --smoke                                    # the same on a CPU

Runs ``bench/memory_savers.py``'s cases (the real engine, a few steps) under a dispatch mode
that sees every tensor storage an op creates and when it dies, and lists what was alive at the
highest total by the first frame in this project or a library it drives. This is how a gap
between the VRAM calculator and ``torch.cuda.max_memory_allocated`` is traced to a tensor
instead of guessed at. The total counts op outputs only (not the allocator's cache or a
kernel's private workspace), so it sits a little under the allocator's own peak.
``--variant NAME+TAG:KEY=VALUE,...`` adds a case with changed settings (e.g. the same case
without the 8-bit base), so two runs can be set side by side.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
import traceback
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

import memory_savers  # noqa: E402

OWN = ("aios_tui" + os.sep, "transformers" + os.sep, "peft" + os.sep, "bitsandbytes" + os.sep,
       "liger_kernel" + os.sep)
SWEEP_EVERY = 64


def site_of(stack: list) -> str:
    """The allocating line: the innermost frame in this project or a library it drives."""
    for fr in reversed(stack):
        name = fr.filename
        if any(part in name for part in OWN) and os.sep + "torch" + os.sep not in name:
            short = name.split("site-packages" + os.sep)[-1].replace(str(REPO) + os.sep, "")
            return f"{short}:{fr.lineno} {fr.name}"
    return "(outside the project and its libraries)"


def make_tracker(device_type: str):
    """A dispatch mode counting live op-output storages on ``device_type``, and their sites."""
    import torch
    from torch.multiprocessing.reductions import StorageWeakRef
    from torch.utils._python_dispatch import TorchDispatchMode
    from torch.utils._pytree import tree_flatten

    class LiveTracker(TorchDispatchMode):
        def __init__(self):
            super().__init__()
            self.live: dict[int, tuple] = {}
            self.current = self.peak = self.ops = 0
            self.at_peak: Counter = Counter()

        def _sweep(self) -> None:
            for key in [k for k, v in self.live.items() if v[0].expired()]:
                self.current -= self.live.pop(key)[1]

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            out = func(*args, **(kwargs or {}))
            self.ops += 1
            if self.ops % SWEEP_EVERY == 0:
                self._sweep()
            for t in tree_flatten(out)[0]:
                # plain tensors only: a wrapper subclass (torchao's float8 tensors) has no storage
                # of its own; the tensors it wraps are op outputs and counted as such
                if type(t) is not torch.Tensor or t.device.type != device_type:
                    continue
                st = t.untyped_storage()
                key = st.data_ptr()
                old = self.live.get(key)
                if not key or (old is not None and not old[0].expired()):
                    continue    # a view or an in-place result: that storage is counted already
                if old is not None:     # the allocator handed a freed block out again
                    self.current -= old[1]
                self.live[key] = (StorageWeakRef(st), st.nbytes(), site_of(traceback.extract_stack()[:-1]))
                self.current += st.nbytes()
            if self.current > self.peak:
                self._sweep()
                if self.current > self.peak:
                    self.peak = self.current
                    self.at_peak = Counter()
                    for _, n, where in self.live.values():
                        self.at_peak[where] += n
            return out

    return LiveTracker()


def profile_case(name: str, overrides: dict, workdir: Path, steps: int, smoke: bool, device: str) -> dict:
    base_shape, base = memory_savers.CASES[name.split("+")[0]]
    memory_savers.CASES[name] = (base_shape, {**base, **overrides})
    if device == "cuda":
        import torch

        torch.cuda.empty_cache()
    t0 = time.perf_counter()
    tracker = make_tracker(device)
    with tracker:
        row = memory_savers.run_case(name, workdir, smoke, device, steps)
    top = [{"site": s, "bytes": b} for s, b in tracker.at_peak.most_common(30)]
    return {"case": name, "overrides": overrides, "peak_allocated": row["peak_allocated"],
            "estimate_peak_allocated": row["estimate_peak_allocated"], "estimate_breakdown": row["estimate_breakdown"],
            "tracked_peak": tracker.peak, "ops": tracker.ops, "alive_at_peak": top,
            "seconds": round(time.perf_counter() - t0, 1)}


def _variant(text: str) -> tuple[str, dict]:
    name, _, pairs = text.partition(":")
    out: dict = {}
    for pair in filter(None, pairs.split(",")):
        key, _, value = pair.partition("=")
        out[key] = {"true": True, "false": False}.get(value.lower(), int(value) if value.isdigit() else value)
    return name, out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cases", default="gpt2-lora-all", help="memory_savers cases, comma-separated")
    ap.add_argument("--variant", action="append", default=[],
                    help="CASE+TAG:key=value,... a case with changed settings (repeatable)")
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--workdir", default="")
    ap.add_argument("--json", default="", help="write the breakdowns here")
    ap.add_argument("--smoke", action="store_true", help="the tiny smoke models on the CPU (checks the tool)")
    args = ap.parse_args(argv)

    import torch

    device = "cpu" if args.smoke else "cuda"
    if device == "cuda" and not torch.cuda.is_available():
        print("peak_breakdown: needs a CUDA GPU (or --smoke, on the CPU)", file=sys.stderr)
        return 2
    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="peak-"))
    todo = [(c, {}) for c in filter(None, args.cases.split(","))] + [_variant(v) for v in args.variant]
    unknown = [n for n, _ in todo if n.split("+")[0] not in memory_savers.CASES]
    if unknown:
        print(f"peak_breakdown: unknown case(s) {', '.join(unknown)}", file=sys.stderr)
        return 2
    results = []
    for name, overrides in todo:
        try:
            r = profile_case(name, overrides, workdir, args.steps, args.smoke, device)
        except Exception as exc:  # one failing case must not lose the others' breakdowns
            r = {"case": name, "overrides": overrides, "error": f"{type(exc).__name__}: {exc}"}
        results.append(r)
        if args.json:
            Path(args.json).write_text(json.dumps({"versions": memory_savers.versions(), "cases": results}, indent=1))
        if "error" in r:
            print(f"\n{name}: failed: {r['error']}", flush=True)
            continue
        mib = 1 << 20
        measured = "n/a" if r["peak_allocated"] is None else f"{r['peak_allocated'] / mib:.1f} MiB"
        estimate = "n/a" if r["estimate_peak_allocated"] is None else f"{r['estimate_peak_allocated'] / mib:.1f} MiB"
        print(f"\n{name} {overrides or ''}: peak allocated {measured}, estimate {estimate}, "
              f"tracked peak {r['tracked_peak'] / mib:.1f} MiB ({r['ops']} ops, {r['seconds']} s)", flush=True)
        for item in r["alive_at_peak"]:
            print(f"  {item['bytes'] / (1 << 20):9.1f} MiB  {item['site']}", flush=True)
    return 1 if any("error" in r for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
