#!/usr/bin/env python3
"""How close the VRAM calculator comes to measured GPU memory.

    python3 bench/vram_accuracy.py [--json] [FILE.jsonl ...]

Reads every measurement line (default: bench/calibration/*.jsonl), describes each run to the
calculator, and prints per configuration the estimated and measured peak allocated, the
error, and beside it the error of the "weights x 4" rule (accelerate's estimate-memory
training figure). The peak model has one fitted constant (the bf16-autocast block extra);
it is refitted leaving each autocast line out in turn, so every error reported for the peak is
held out. The summary gives median and max |error| over those held-out estimates, and the
errors of the reserved and NVML figures (whose three allocator constants were fitted on all
lines: in-sample). Needs only the repository (no torch).
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import statistics
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

from aios_tui.vram import Setup, compute, shape_from_hf_config  # noqa: E402
from aios_tui.vram.activations import AMP_FP32_BLOCK_EXTRA  # noqa: E402
from aios_tui.vram.params import count_params  # noqa: E402

# The model of h200-gpt2ish-124m.jsonl (its README): a Llama block stack at GPT-2 small's size.
ARCHS = {
    "gpt2ish-124m": {"model_type": "llama", "hidden_size": 768, "num_hidden_layers": 12,
                     "num_attention_heads": 12, "num_key_value_heads": 12, "intermediate_size": 3072,
                     "vocab_size": 50257, "tie_word_embeddings": True, "max_position_embeddings": 2048},
}


def load_lines(paths: list[str], failed: list[dict] | None = None) -> list[dict]:
    """The measured lines; a case that ran out of memory or failed has no peak to compare
    and goes to ``failed`` instead."""
    rows = []
    for path in paths:
        with open(path, encoding="utf-8") as fh:
            for n, line in enumerate(fh, 1):
                line = line.strip()
                if not line:
                    continue
                row = json.loads(line)
                row.setdefault("source", f"{os.path.basename(path)}:{n}")
                if not isinstance(row.get("peak_allocated"), (int, float)):
                    if failed is not None:
                        failed.append(row)
                    continue
                rows.append(row)
    return rows


def model_config(row: dict) -> dict:
    if isinstance(row.get("model_config"), dict):
        return row["model_config"]
    if row.get("arch") in ARCHS:
        return ARCHS[row["arch"]]
    raise ValueError(f"{row.get('name')}: no model_config and unknown arch {row.get('arch')!r}")


def setup_from_line(row: dict, amp_extra: float | None = None) -> Setup:
    targets = tuple(t for t in str(row.get("targets") or "").split(",") if t)
    method = row["method"]
    s = Setup(method=method, r=int(row.get("r") or 16), targets=targets,
              dropout=float(row.get("dropout", 0.05)), weights=row.get("weights", "fp32"),
              amp=bool(row.get("autocast_bf16")), grad_ckpt=bool(row.get("grad_ckpt")),
              batch=int(row["batch"]), seq=int(row["seq"]), loss=row.get("loss", "hf"),
              quant=row.get("quant") or None, optimizer=row.get("optimizer", "adamw"),
              paged=bool(row.get("paged", True)),
              ia3_feedforward=tuple(t for t in str(row.get("ia3_feedforward") or "").split(",") if t),
              input_requires_grad=row.get("input_requires_grad"), amp_extra=amp_extra)
    if method == "adalora" and "params_trainable" in row:
        shape = shape_from_hf_config(model_config(row))
        plain = count_params(shape, s.with_(adalora_ranknum_grad=False)).trainable
        s = s.with_(adalora_ranknum_grad=row["params_trainable"] != plain)
    return s


def weights_x4(row: dict) -> int:
    """accelerate's estimate-memory training figure: four times the weights in their dtype."""
    shape = shape_from_hf_config(model_config(row))
    nbytes = {"fp32": 4, "bf16": 2, "fp16": 2}.get(row.get("weights", "fp32"), 4)
    return 4 * shape.param_count() * nbytes


def _slope(row: dict) -> float:
    shape = shape_from_hf_config(model_config(row))
    a = compute(shape, setup_from_line(row, 0.0)).peak_allocated_bytes
    b = compute(shape, setup_from_line(row, 1.0)).peak_allocated_bytes
    return float(b - a)


def fit_amp_extra(rows: list[dict]) -> float | None:
    """Least-squares value of the autocast constant over ``rows`` (None when none uses it)."""
    num = den = 0.0
    for row in rows:
        slope = _slope(row)
        if slope <= 0:
            continue
        shape = shape_from_hf_config(model_config(row))
        resid = row["peak_allocated"] - compute(shape, setup_from_line(row, 0.0)).peak_allocated_bytes
        num += resid * slope
        den += slope * slope
    return num / den if den else None


def evaluate(rows: list[dict]) -> dict:
    uses = [r for r in rows if _slope(r) > 0]
    fitted_all = fit_amp_extra(rows)
    results = []
    for row in rows:
        if row in uses:
            others = [r for r in uses if r is not row]
            k = fit_amp_extra(others)
            held = "leave-one-out" if k is not None else "fitted on itself"
            k = k if k is not None else fitted_all
        else:
            k, held = None, "no fitted constant"
        shape = shape_from_hf_config(model_config(row))
        est = compute(shape, setup_from_line(row, k))
        meas = row["peak_allocated"]
        x4 = weights_x4(row)
        res = {"name": row.get("name"), "source": row.get("source"), "phase": est.phase,
               "estimate": est.peak_allocated_bytes, "measured": meas,
               "error_pct": 100.0 * (est.peak_allocated_bytes - meas) / meas,
               "weights_x4": x4, "weights_x4_error_pct": 100.0 * (x4 - meas) / meas,
               "amp_constant": k, "held_out": held,
               "params_trainable": est.params_trainable, "params_trainable_measured": row.get("params_trainable")}
        if row.get("peak_reserved"):
            res["reserved_estimate"] = est.peak_reserved_bytes
            res["reserved_error_pct"] = 100.0 * (est.peak_reserved_bytes - row["peak_reserved"]) / row["peak_reserved"]
        if row.get("nvml_used"):
            res["nvml_estimate"] = est.device_used_bytes
            res["nvml_error_pct"] = 100.0 * (est.device_used_bytes - row["nvml_used"]) / row["nvml_used"]
        results.append(res)
    errs = [abs(r["error_pct"]) for r in results]
    x4 = [abs(r["weights_x4_error_pct"]) for r in results]

    def stats(v: list[float]) -> dict:
        return {"median_abs_pct": statistics.median(v), "max_abs_pct": max(v)} if v else {}

    return {"results": results, "peak_allocated": stats(errs), "weights_x4": stats(x4),
            "reserved": stats([abs(r["reserved_error_pct"]) for r in results if "reserved_error_pct" in r]),
            "nvml": stats([abs(r["nvml_error_pct"]) for r in results if "nvml_error_pct" in r]),
            "amp_constant_all_lines": fitted_all, "amp_constant_shipped": AMP_FP32_BLOCK_EXTRA,
            "lines": len(results)}


def gb(n: float) -> str:
    return f"{n / 1e9:7.2f}"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("files", nargs="*", help="measurement JSONL files (default: bench/calibration/*.jsonl)")
    ap.add_argument("--json", action="store_true", help="print the full report as JSON")
    args = ap.parse_args(argv)
    paths = args.files or sorted(glob.glob(os.path.join(REPO, "bench", "calibration", "*.jsonl")))
    if not paths:
        print("no measurement files", file=sys.stderr)
        return 2
    failed: list[dict] = []
    rows = load_lines(paths, failed)
    for row in failed:
        print(f"not compared: {row.get('name', row['source'])}: {row.get('error', 'no peak_allocated')}",
              file=sys.stderr)
    if not rows:
        print("no measured lines to compare", file=sys.stderr)
        return 1
    report = evaluate(rows)
    report["not_compared"] = [{"name": r.get("name"), "error": r.get("error")} for r in failed]
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    print(f"{'configuration':26s} {'estimate':>9s} {'measured':>9s} {'error':>7s} {'w x 4':>8s} "
          f"{'w x 4 err':>9s}  held out")
    for r in report["results"]:
        print(f"{r['name'][:26]:26s} {gb(r['estimate'])} GB {gb(r['measured'])} GB {r['error_pct']:+6.2f}% "
              f"{gb(r['weights_x4'])} {r['weights_x4_error_pct']:+8.1f}%  {r['held_out']}")
    p, x, rs, nv = report["peak_allocated"], report["weights_x4"], report["reserved"], report["nvml"]
    print()
    print(f"peak allocated, held out: median |error| {p['median_abs_pct']:.2f}%, max {p['max_abs_pct']:.2f}% "
          f"({report['lines']} configurations)")
    print(f"weights x 4 rule:         median |error| {x['median_abs_pct']:.1f}%, max {x['max_abs_pct']:.1f}%")
    if rs:
        print(f"peak reserved (in-sample): median |error| {rs['median_abs_pct']:.2f}%, max {rs['max_abs_pct']:.2f}%")
    if nv:
        print(f"NVML used (in-sample):     median |error| {nv['median_abs_pct']:.2f}%, max {nv['max_abs_pct']:.2f}%")
    k = report["amp_constant_all_lines"]
    if k is not None:
        print(f"autocast constant: {k:.2f} bytes per token per hidden unit per block fitted on all lines "
              f"(shipped: {report['amp_constant_shipped']})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
