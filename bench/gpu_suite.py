#!/usr/bin/env python3
"""Every GPU measurement of bench/RESULTS.md in one go, inside a time budget.

    python3 bench/gpu_suite.py --out DIR                  # all steps, in priority order
    python3 bench/gpu_suite.py --out DIR --budget 540     # stop starting steps after 9 minutes
    python3 bench/gpu_suite.py --out DIR --only seed-table,pytest-cuda
    python3 bench/gpu_suite.py --list                     # the steps, their commands and estimates
    python3 bench/gpu_suite.py --out DIR --dry-run        # print what would run

Steps run one after another, most important first. A step starts only if its estimated time
fits in what is left of ``--budget``, and is killed if it runs past what is left; a failed or
killed step does not stop the others. Into DIR go three files, rewritten after every step so
that an interrupted suite still leaves its figures:

    log.txt        everything every step printed, with the command and exit status
    results.json   each step's status, seconds, and the JSON its bench wrote
    summary.md     the figures as the rows of bench/RESULTS.md's tables

The models are saved under ``--workdir`` once and shared between steps (the 8B shape is
written once and used by both the throughput and the QLoRA step).
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PY = sys.executable
CALIBRATION = sorted(str(p.relative_to(REPO)) for p in (REPO / "bench" / "calibration").glob("*.jsonl"))


@dataclass
class Step:
    name: str
    about: str
    commands: list[list[str]]       # run in order; {json}, {out}, {work} are filled in
    estimate_s: float               # on an H200, start-up and compilation included
    needs: tuple[str, ...] = ()     # modules that must import, or the step is skipped
    json_files: list[str] = field(default_factory=list)
    requires: tuple[str, ...] = ()  # files under --workdir an earlier step must have made


def _tp(*args: str, name: str) -> list[str]:
    return [PY, "bench/throughput.py", *args, "--workdir", "{work}", "--json", "{json}/" + name + ".json"]


SEED_TABLE = [
    ("full", ["--method", "full"]),
    ("r4-qv", ["--lora-r", "4", "--lora-target-modules", "q_proj,v_proj"]),
    ("r8-qv", ["--lora-r", "8", "--lora-target-modules", "q_proj,v_proj"]),
    ("r16-qv", ["--lora-r", "16", "--lora-target-modules", "q_proj,v_proj"]),
    ("r16-qkvo", ["--lora-r", "16", "--lora-target-modules", "q_proj,k_proj,v_proj,o_proj"]),
    ("r32-all", ["--lora-r", "32", "--lora-target-modules",
                 "q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj,down_proj"]),
]

SEED_LABELS = {"full": "Full fine-tuning", "r4-qv": "LoRA r=4 q,v", "r8-qv": "LoRA r=8 q,v",
               "r16-qv": "LoRA r=16 q,v", "r16-qkvo": "LoRA r=16 q,k,v,o", "r32-all": "LoRA r=32 all 7"}

STEPS = [
    # what is still open first: the 8-bit + checkpointing memory case and what is alive at its
    # peak, the 8B speed with FP8 matmuls (side by side with HF Trainer) and QLoRA on its saved
    # model; then the CUDA-only tests and the bf16 throughput rows again, the seed's table.
    # Estimates: the 2026-11-28 H200 run's times plus a margin.
    Step("savers-gpt2", "GPT-2 124M: full, LoRA, LoRA + 8-bit base + 8-bit AdamW + checkpointing",
         [[PY, "bench/memory_savers.py", "--workdir", "{work}/savers", "--json", "{json}/savers-gpt2.json"]], 35,
         needs=("bitsandbytes",), json_files=["savers-gpt2.json"]),
    Step("peak-gpt2", "what is alive at the peak: GPT-2 LoRA + 8-bit base + checkpointing, and without the 8-bit base",
         [[PY, "bench/peak_breakdown.py", "--cases", "gpt2-lora-all", "--variant",
           "gpt2-lora-all+noquant:load_in_8bit=false,use_8bit_optimizer=false", "--workdir", "{work}/peak",
           "--json", "{json}/peak-gpt2.json"]], 60, needs=("bitsandbytes",), json_files=["peak-gpt2.json"]),
    Step("tp-8b-fp8", "throughput, Llama-3.1-8B shape, LoRA r=16 q,v, 2 x 2048, compiled, FP8 base matmuls (torchao)",
         [_tp("--config", "8b", "--torch-compile", "--fp8", name="tp-8b-fp8")], 115, needs=("torchao",),
         json_files=["tp-8b-fp8.json"]),
    Step("savers-qlora-8b", "QLoRA on the 8B shape against its estimate",
         [[PY, "bench/memory_savers.py", "--cases", "qlora-8b", "--workdir", "{work}/savers",
           "--llama8b-dir", "{work}/model-8b-bf16", "--json", "{json}/savers-qlora-8b.json"]], 40,
         needs=("bitsandbytes",), json_files=["savers-qlora-8b.json"],
         requires=("model-8b-bf16/config.json",)),
    Step("tp-1b-fp8", "throughput, Llama-3.2-1B shape, LoRA r=16 all projections, 4 x 2048, compiled, FP8 base matmuls",
         [_tp("--config", "1b", "--torch-compile", "--fp8", name="tp-1b-fp8")], 90, needs=("torchao",),
         json_files=["tp-1b-fp8.json"]),
    Step("pytest-cuda", "the CUDA-only tests",
         [[PY, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/speed", "tests/memory_savers", "tests/engine",
           "-k", "cuda"]],
         30),
    Step("tp-8b", "throughput, Llama-3.1-8B shape, LoRA r=16 q,v, 2 x 2048, compiled",
         [_tp("--config", "8b", "--torch-compile", name="tp-8b")], 115, json_files=["tp-8b.json"]),
    Step("tp-1b", "throughput, Llama-3.2-1B shape, LoRA r=16 all projections, 4 x 2048, compiled",
         [_tp("--config", "1b", "--torch-compile", name="tp-1b")], 90, json_files=["tp-1b.json"]),
    Step("tp-124m", "throughput, 152M shape, LoRA r=16 q,v, 8 x 1024, compiled",
         [_tp("--config", "124m", "--torch-compile", name="tp-124m")], 65, json_files=["tp-124m.json"]),
    Step("seed-table", "the seed's Performance Benchmarks table: full vs LoRA r=4/8/16/32, 124m shape",
         [_tp("--config", "124m", "--sides", "ours", *args, name=f"seed-{label}") for label, args in SEED_TABLE],
         185, json_files=[f"seed-{label}.json" for label, _ in SEED_TABLE]),
    Step("gpu-check", "NVML monitor against nvidia-smi, sampler cost",
         [[PY, "bench/gpu_check.py", "--seconds", "5", "--out", "{json}/gpu-check.json"]], 15,
         needs=("pynvml",), json_files=["gpu-check.json"]),
    Step("savers-paged", "paged 8-bit AdamW state through a save and load",
         [[PY, "bench/memory_savers.py", "--paged-check", "--json", "{json}/savers-paged.json"]], 20,
         needs=("bitsandbytes",), json_files=["savers-paged.json"]),
    Step("tp-1b-eager", "throughput, 1b, fused loss without compilation (each speed-up's share)",
         [_tp("--config", "1b", "--sides", "ours", name="tp-1b-eager"),
          _tp("--config", "1b", "--sides", "ours", "--no-fused-loss", name="tp-1b-plain")], 80,
         json_files=["tp-1b-eager.json", "tp-1b-plain.json"]),
    Step("tp-1b-liger", "throughput, 1b, compiled, liger-kernel's fused cross-entropy",
         [_tp("--config", "1b", "--torch-compile", "--fused-ce-backend", "liger", "--sides", "ours",
              name="tp-1b-liger")], 65, needs=("liger_kernel",), json_files=["tp-1b-liger.json"]),
    Step("compile-time", "first-step wait: whole decoder compiled vs block by block (16 layers, hidden 1024)",
         [[PY, "bench/compile_time.py", "--device", "cuda", "--layers", "16", "--hidden", "1024", "--seq", "512"]],
         150),
    Step("vram-groundtruth", "the calculator's GPU truth, short list (then bench/vram_accuracy.py)",
         [[PY, "bench/vram_groundtruth.py", "--quick", "--out", "{json}/groundtruth.jsonl"],
          [PY, "bench/vram_accuracy.py", *CALIBRATION, "{json}/groundtruth.jsonl"]], 330,
         needs=("bitsandbytes",)),
]

# --smoke: the same machinery on a CPU with the benches' own smoke modes (no figures)
SMOKE_STEPS = [
    Step("tp-smoke", "throughput --smoke (CPU)", [[PY, "bench/throughput.py", "--smoke", "--json", "{json}/tp-smoke.json"]],
         60, json_files=["tp-smoke.json"]),
    Step("savers-smoke", "memory_savers --smoke (CPU)",
         [[PY, "bench/memory_savers.py", "--smoke", "--cases", "gpt2-lora", "--workdir", "{work}/savers",
           "--json", "{json}/savers-smoke.json"]], 60, json_files=["savers-smoke.json"]),
]


def _fill(cmd: list[str], out: Path, json_dir: Path, work: Path) -> list[str]:
    return [c.format(out=out, json=json_dir, work=work) for c in cmd]


def _importable(module: str) -> bool:
    probe = subprocess.run([PY, "-c", f"import {module}"], capture_output=True, cwd=REPO)
    return probe.returncode == 0


def _run(cmd: list[str], limit: float, log) -> tuple[int | None, float]:
    """Run ``cmd`` with its output into ``log``; (exit status or None if killed, seconds)."""
    log.write(f"\n$ {shlex.join(cmd)}\n")
    log.flush()
    t0 = time.monotonic()
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=log, stderr=subprocess.STDOUT,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"}, start_new_session=True)
    try:
        code = proc.wait(timeout=max(1.0, limit))
    except subprocess.TimeoutExpired:
        try:
            os.killpg(proc.pid, 9)
        except ProcessLookupError:  # it ended just then
            pass
        proc.wait()
        code = None
    seconds = time.monotonic() - t0
    log.write(f"[exit {code if code is not None else 'killed at the time limit'}, {seconds:.0f} s]\n")
    log.flush()
    return code, seconds


def _load(path: Path):
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def summarize(results: dict) -> str:
    """RESULTS.md table rows from the collected JSON."""
    lines = ["# GPU suite summary", ""]
    env = results.get("environment", {})
    lines.append(f"{env.get('date', '')}; {env.get('device', '')}; {env.get('versions', '')}; "
                 f"commit {env.get('commit', '')}")
    lines.append("")
    lines.append("| step | status | seconds |")
    lines.append("|---|---|---|")
    for name, r in results["steps"].items():
        lines.append(f"| {name} | {r['status']} | {r.get('seconds', 0):.0f} |")
    tp_rows = []
    for name, r in results["steps"].items():
        for fname, data in (r.get("json") or {}).items():
            if not (isinstance(data, dict) and "summary" in data and "results" in data):
                continue
            ours, hf = data["results"].get("ours") or {}, data["results"].get("hf") or {}
            s = data["summary"]
            kernel = ours.get("fused_ce_backend") or ""
            label = fname + (f" [{kernel}]" if "unavailable" in kernel else "")
            if data.get("failures"):
                label += " [" + "; ".join(data["failures"].values()) + "]"
            tp_rows.append(
                f"| {label} | {_k(ours.get('tokens_per_s'))} | {_k(hf.get('tokens_per_s'))} | "
                f"{_x(s.get('speed_ratio'))} | {_gb(ours.get('peak_allocated'))} | {_gb(hf.get('peak_allocated'))} | "
                f"{_x(s.get('memory_ratio'))} | {_pct(ours.get('mfu'))} / {_pct(hf.get('mfu'))} | "
                f"{_f(ours.get('first_loss'))} / {_f(hf.get('first_loss'))} |")
    if tp_rows:
        lines += ["", "| run | ours tokens/s | HF tokens/s | ratio | ours peak alloc | HF peak alloc | ratio | "
                      "MFU ours / HF | first loss ours / HF |", "|---|---|---|---|---|---|---|---|---|", *tp_rows]
    seed = (results["steps"].get("seed-table") or {}).get("json") or {}
    runs = [(label, (seed.get(f"seed-{label}.json") or {}).get("results", {}).get("ours") or {})
            for label, _ in SEED_TABLE]
    full_tps = dict(runs).get("full", {}).get("tokens_per_s")
    seed_rows = []
    for label, r in runs:
        if not r:
            continue
        pct = 100 * r["trainable"] / r["total"] if r.get("trainable") and r.get("total") else None
        speed = r["tokens_per_s"] / full_tps if r.get("tokens_per_s") and full_tps else None
        seed_rows.append(f"| {SEED_LABELS[label]} | {r.get('trainable', 0):,} ({_num(pct, '{:.2f}')}%) | "
                         f"{_gb(r.get('peak_allocated'))} | {_k(r.get('tokens_per_s'))} | {_x(speed)} |")
    if seed_rows:
        lines += ["", "The seed's Performance Benchmarks, re-measured (124m shape, 8 x 1024, fp32 + bf16 autocast;",
                  "quality is not measured here: random weights, random text)", "",
                  "| Configuration | Trainable params | Peak allocated | tokens/s | Speed vs full |",
                  "|---|---|---|---|---|", *seed_rows]
    saver_rows = []
    for name, r in results["steps"].items():
        for data in (r.get("json") or {}).values():
            for row in (data or {}).get("rows", []) if isinstance(data, dict) else []:
                if "case" in row:
                    p = row.get("parameters") or {}
                    saver_rows.append(
                        f"| {row['case']} | {p.get('trainable', 0):,} / {p.get('total', 0):,} | "
                        f"{_gib(row.get('peak_allocated'))} | {_gib(row.get('estimate_peak_allocated'))} | "
                        f"{_pct(row.get('error_peak_allocated'), signed=True)} | {_gib(row.get('nvml_peak'))} | "
                        f"{_gib(row.get('estimate_device_used'))} | {_pct(row.get('error_device_used'), signed=True)} |")
                elif row.get("check") == "paged":
                    saver_rows.append(f"| paged check | ok={row.get('ok')} paged={row.get('states_paged_after_load')} "
                                      f"diff={row.get('max_weight_diff_vs_uninterrupted')} | | | | | | |")
    if saver_rows:
        lines += ["", "| case | trainable / total | peak alloc | estimate | error | NVML | est. used | error |",
                  "|---|---|---|---|---|---|---|---|", *saver_rows]
    for data in ((results["steps"].get("peak-gpt2") or {}).get("json") or {}).values():
        for case in (data or {}).get("cases", []) if isinstance(data, dict) else []:
            if "error" in case:
                lines += ["", f"What is alive at the peak, {case.get('case')}: failed: {case['error']}"]
                continue
            lines += ["", f"What is alive at the peak, {case.get('case')} {case.get('overrides') or ''}: "
                          f"peak alloc {_gib(case.get('peak_allocated'))}, estimate "
                          f"{_gib(case.get('estimate_peak_allocated'))}, tracked {_gib(case.get('tracked_peak'))}",
                      "", "| MiB | allocated at |", "|---|---|"]
            lines += [f"| {item['bytes'] / 2**20:.1f} | {item['site']} |" for item in case.get("alive_at_peak", [])[:12]]
    return "\n".join(lines) + "\n"


def _num(x, fmt: str) -> str:
    return fmt.format(x) if isinstance(x, (int, float)) else "n/a"


def _k(x) -> str:
    return f"{x / 1e3:,.1f}K" if isinstance(x, (int, float)) else "n/a"


def _x(x) -> str:
    return f"{x:.2f}x" if isinstance(x, (int, float)) else "n/a"


def _gb(x) -> str:
    return f"{x / 1e9:.1f} GB" if isinstance(x, (int, float)) else "n/a"


def _gib(x) -> str:
    return f"{x / 2**30:.2f} GiB" if isinstance(x, (int, float)) else "n/a"


def _pct(x, signed: bool = False) -> str:
    return (f"{x:+.1%}" if signed else f"{x:.1%}") if isinstance(x, (int, float)) else "n/a"


def _f(x) -> str:
    return f"{x:.4f}" if isinstance(x, (int, float)) else "n/a"


def _environment() -> dict:
    probe = subprocess.run([PY, "-c", (
        "import json, platform, torch, importlib.metadata as m\n"
        "v = {'python': platform.python_version(), 'torch': torch.__version__, 'cuda': torch.version.cuda}\n"
        "for n in ('transformers', 'peft', 'bitsandbytes', 'liger-kernel', 'nvidia-ml-py'):\n"
        "    try: v[n] = m.version(n)\n"
        "    except Exception: v[n] = None\n"
        "d = torch.cuda.get_device_name() if torch.cuda.is_available() else 'no CUDA device'\n"
        "print(json.dumps({'device': d, 'versions': v}))")], capture_output=True, text=True, cwd=REPO)
    env = json.loads(probe.stdout) if probe.returncode == 0 else {"device": "unknown", "versions": probe.stderr[-300:]}
    rev = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=REPO)
    env.update(date=time.strftime("%Y-%m-%dT%H:%M:%S%z"), commit=rev.stdout.strip() or "unknown")
    return env


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="bench/gpu_suite.py", description=__doc__.split("\n\n")[0],
                                 epilog="\n".join(f"  {s.name:18s} ~{s.estimate_s:.0f} s  {s.about}" for s in STEPS),
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", help="where log.txt, results.json and summary.md go")
    ap.add_argument("--workdir", default="/tmp/aios-gpu-suite", help="saved models, shared between steps")
    ap.add_argument("--budget", type=float, default=540.0, help="seconds for the whole suite (default 540)")
    ap.add_argument("--only", default="", help="comma-separated step names (default: all)")
    ap.add_argument("--skip", default="", help="comma-separated step names to leave out")
    ap.add_argument("--list", action="store_true", help="print the steps and their commands")
    ap.add_argument("--dry-run", action="store_true", help="print what would run, run nothing")
    ap.add_argument("--smoke", action="store_true", help="the benches' CPU smoke modes through the same driver")
    args = ap.parse_args(argv)

    catalogue = SMOKE_STEPS if args.smoke else STEPS
    names = [s.name for s in catalogue]
    wanted = [n for n in args.only.split(",") if n] or names
    skip = [n for n in args.skip.split(",") if n]
    unknown = [n for n in wanted + skip if n not in names]
    if unknown:
        print(f"gpu_suite: unknown step(s) {', '.join(unknown)}; choose from {', '.join(names)}", file=sys.stderr)
        return 2
    steps = [s for s in catalogue if s.name in wanted and s.name not in skip]
    if args.list or args.dry_run:
        out, work = Path(args.out or "OUT"), Path(args.workdir)
        for s in steps:
            print(f"{s.name} (~{s.estimate_s:.0f} s): {s.about}")
            for cmd in s.commands:
                print("   ", shlex.join(_fill(cmd, out, work / "json", work)))
        return 0
    if not args.out:
        print("gpu_suite: --out DIR is needed (where the log and figures go)", file=sys.stderr)
        return 2

    out, work = Path(args.out), Path(args.workdir)
    json_dir = work / "json"  # the bench JSON files; their contents are gathered into results.json
    for d in (out, work, json_dir):
        d.mkdir(parents=True, exist_ok=True)
    deadline = time.monotonic() + args.budget
    results: dict = {"environment": _environment(), "budget_s": args.budget, "steps": {}}
    print(f"gpu suite on {results['environment']['device']}: {len(steps)} steps, budget {args.budget:.0f} s",
          flush=True)

    def save() -> None:
        for name, text in (("results.json", json.dumps(results, indent=1)), ("summary.md", summarize(results))):
            tmp = out / (name + ".tmp")
            tmp.write_text(text)
            os.replace(tmp, out / name)

    with open(out / "log.txt", "a") as log:
        log.write(f"# gpu suite {results['environment']}\n")
        for s in steps:
            left = deadline - time.monotonic()
            missing = [m for m in s.needs if not _importable(m)]
            if missing:
                status, seconds = f"skipped: {', '.join(missing)} not importable", 0.0
            elif [r for r in s.requires if not (work / r).is_file()]:
                # the 8B QLoRA step would otherwise build the 16 GB model itself inside its window
                status, seconds = f"skipped: no {', '.join(s.requires)} from an earlier step", 0.0
            elif left < s.estimate_s:
                status, seconds = f"skipped: {left:.0f} s left, needs ~{s.estimate_s:.0f} s", 0.0
            else:
                print(f"[{s.name}] {s.about} (~{s.estimate_s:.0f} s, {left:.0f} s left)", flush=True)
                for name in [*s.json_files, "groundtruth.jsonl"] if s.name == "vram-groundtruth" else s.json_files:
                    (json_dir / name).unlink(missing_ok=True)  # never report an earlier suite's figures
                codes, seconds = [], 0.0
                for cmd in s.commands:
                    code, took = _run(_fill(cmd, out, json_dir, work), deadline - time.monotonic(), log)
                    codes.append(code)
                    seconds += took
                    if code is None:
                        break
                status = ("ok" if all(c == 0 for c in codes) else
                          "killed at the budget" if None in codes else f"failed (exit {codes})")
            ran = not status.startswith("skipped")
            entry = {"status": status, "seconds": round(seconds, 1),
                     "json": {f: _load(json_dir / f) for f in s.json_files if ran and (json_dir / f).is_file()}}
            if ran and s.name == "vram-groundtruth" and (json_dir / "groundtruth.jsonl").is_file():
                entry["jsonl"] = (json_dir / "groundtruth.jsonl").read_text()
            results["steps"][s.name] = entry
            print(f"[{s.name}] {status} in {seconds:.0f} s", flush=True)
            save()
    print((out / "summary.md").read_text(), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
