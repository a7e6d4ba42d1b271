#!/usr/bin/env python3
"""The memory savers measured through the engine itself, next to the VRAM calculator.

    python3 bench/memory_savers.py                     # the seed's GPT-2 124M comparison (3 runs)
    python3 bench/memory_savers.py --cases qlora-8b    # QLoRA on the Llama-3.1-8B shape
    python3 bench/memory_savers.py --paged-check       # paged 8-bit AdamW: state paged again after a resume
    python3 bench/memory_savers.py --bytes             # quantized weights and 8-bit states vs the calculator
    python3 bench/memory_savers.py --smoke             # CPU, small shapes: the same code, no figures

Each case is an ``aios-tui train`` run (``run_training``, the code a user runs) on a model built
from a config with random weights and saved with ``save_pretrained`` under --workdir (reused
between invocations), on the bundled sample text. After the second step (the first creates the
optimizer state) the peak statistics are reset, so the peak reported is that of training
steps, not of loading. Printed per case: parameters, measured peak allocated
(``torch.cuda.max_memory_allocated``), NVML's figure for the process, the calculator's
``peak_allocated_bytes`` and ``device_used_bytes`` for the same config, and the errors.
``--json FILE`` keeps every figure.

The seed's comparison (batch 8 x 1024, LoRA r=16 on c_attn,c_proj):
  gpt2-full      full fine-tuning, fp32 weights
  gpt2-lora      LoRA, fp32 weights
  gpt2-lora-all  LoRA + 8-bit base + paged 8-bit AdamW + gradient checkpointing + bf16 autocast
and ``qlora-8b``: 4-bit NF4 base, LoRA r=16 on all seven projections, paged 8-bit AdamW,
checkpointing, bf16 autocast, batch 4 x 2048 (it writes a 16 GB bf16 model to --workdir once).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

GPT2 = {"model_type": "gpt2", "n_embd": 768, "n_layer": 12, "n_head": 12, "n_positions": 1024, "vocab_size": 50257}
LLAMA_8B = {"model_type": "llama", "hidden_size": 4096, "intermediate_size": 14336, "num_hidden_layers": 32,
            "num_attention_heads": 32, "num_key_value_heads": 8, "vocab_size": 128256,
            "max_position_embeddings": 8192, "rope_theta": 500000.0, "tie_word_embeddings": False}
SMOKE_GPT2 = {"model_type": "gpt2", "n_embd": 64, "n_layer": 2, "n_head": 4, "n_positions": 128, "vocab_size": 300,
              "bos_token_id": 257, "eos_token_id": 258}
SMOKE_LLAMA = {"model_type": "llama", "hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2,
               "num_attention_heads": 4, "num_key_value_heads": 2, "vocab_size": 300, "max_position_embeddings": 256}
ALL7 = "q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj,down_proj"

CASES = {
    "gpt2-full": ("gpt2", {"use_peft": False, "model_dtype": "fp32", "batch_size": 8, "max_seq_len": 1024}),
    "gpt2-lora": ("gpt2", {"use_peft": True, "lora_r": 16, "lora_alpha": 32, "lora_target_modules": "c_attn,c_proj",
                           "model_dtype": "fp32", "batch_size": 8, "max_seq_len": 1024}),
    "gpt2-lora-all": ("gpt2", {"use_peft": True, "lora_r": 16, "lora_alpha": 32, "lora_target_modules": "c_attn,c_proj",
                               "model_dtype": "fp32", "batch_size": 8, "max_seq_len": 1024, "load_in_8bit": True,
                               "use_8bit_optimizer": True, "gradient_checkpointing": True, "amp": True}),
    "qlora-8b": ("llama8b", {"use_peft": True, "lora_r": 16, "lora_alpha": 32, "lora_target_modules": ALL7,
                             "model_dtype": "bf16", "batch_size": 4, "max_seq_len": 2048, "load_in_4bit": True,
                             "use_8bit_optimizer": True, "gradient_checkpointing": True, "amp": True}),
}
DEFAULT_CASES = ("gpt2-full", "gpt2-lora", "gpt2-lora-all")


def model_dir(workdir: Path, name: str, smoke: bool, device: str) -> Path:
    """A random-weight model of the named shape, saved once with the byte-level tokenizer."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    from aios_tui.engine.tokenizer import byte_tokenizer

    shape = {"gpt2": SMOKE_GPT2 if smoke else GPT2, "llama8b": SMOKE_LLAMA if smoke else LLAMA_8B}[name]
    path = workdir / f"{name}{'-smoke' if smoke else ''}"
    if name == "llama8b" and not smoke and LLAMA8B_DIR:
        if (Path(LLAMA8B_DIR) / "config.json").is_file():
            return _same_shape(Path(LLAMA8B_DIR), shape)
        print(f"note: no model in --llama8b-dir {LLAMA8B_DIR}; writing one to {path}", flush=True)
    if (path / "config.json").is_file():
        return path
    dtype = torch.bfloat16 if name == "llama8b" and not smoke else torch.float32
    config = AutoConfig.for_model(**shape)
    torch.manual_seed(0)
    with torch.device(device):
        model = AutoModelForCausalLM.from_config(config, dtype=dtype)
    tmp = path.with_name(path.name + ".tmp")
    model.save_pretrained(tmp)
    byte_tokenizer().save_pretrained(tmp)
    del model
    os.replace(tmp, path)
    return path


LLAMA8B_DIR = ""  # --llama8b-dir: an existing bf16 model of that shape, instead of writing one


def _same_shape(path: Path, shape: dict) -> Path:
    """``path`` if it holds a saved model of ``shape``; otherwise a clear exit."""
    try:
        config = json.loads((path / "config.json").read_text())
    except (OSError, ValueError) as exc:
        print(f"--llama8b-dir {path}: no readable config.json ({exc})", file=sys.stderr)
        raise SystemExit(2) from None
    wrong = [f"{k}={config.get(k)!r} (want {v!r})" for k, v in shape.items()
             if k not in ("rope_theta", "max_position_embeddings") and config.get(k) != v]
    if wrong:
        print(f"--llama8b-dir {path}: not the Llama-3.1-8B shape: {', '.join(wrong)}", file=sys.stderr)
        raise SystemExit(2)
    return path


def run_case(name: str, workdir: Path, smoke: bool, device: str, steps: int) -> dict:
    import torch

    from aios_tui.config import resolve
    from aios_tui.engine.train import run_training
    from aios_tui.metrics.jsonl import iter_records, read_header

    shape, overrides = CASES[name]
    overrides = dict(overrides)
    if smoke:
        overrides.update(batch_size=2, max_seq_len=32)
    source = model_dir(workdir, shape, smoke, device)
    run = workdir / "runs" / f"{name}{'-smoke' if smoke else ''}-{time.strftime('%Y%m%d-%H%M%S')}"
    cfg = resolve(overrides={"model": str(source), "device": device, "steps": steps, "warmup_steps": 1,
                             "eval_every": 0, "save_every": 0, "lora_dropout": 0.05, "seed": 0, **overrides})
    cuda = device == "cuda"

    def on_step(step: int, record: dict) -> None:
        # Step 1's line arrives once step 2 is queued: after this sync the optimizer state
        # exists and two steps are done; what follows is steady training.
        if step == 1 and cuda:
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()

    if cuda:
        torch.cuda.empty_cache()
    t0 = time.perf_counter()
    result = run_training(cfg, run, progress="none", on_step=on_step)
    wall = time.perf_counter() - t0
    metrics = run / "metrics.jsonl"
    header = read_header(metrics) or {}
    measured = next((r for r in iter_records(metrics) if r.get("event") == "vram_measured"), {})
    estimate = header.get("vram_estimate") or {}
    row = {"case": name, "config": overrides, "steps": steps, "last_loss": result.last_loss, "wall_s": round(wall, 1),
           "parameters": header.get("parameters"), "memory_savers": header.get("memory_savers"),
           "peak_allocated": measured.get("peak_allocated"), "peak_reserved": measured.get("peak_reserved"),
           "nvml_peak": measured.get("nvml_peak"), "peak_rss": measured.get("peak_rss"),
           "estimate_peak_allocated": estimate.get("peak_allocated_bytes"),
           "estimate_device_used": estimate.get("device_used_bytes"), "estimate_breakdown": estimate.get("breakdown"),
           "run_dir": str(run)}
    if row["peak_allocated"] and row["estimate_peak_allocated"]:
        row["error_peak_allocated"] = row["estimate_peak_allocated"] / row["peak_allocated"] - 1
    if row["nvml_peak"] and row["estimate_device_used"]:
        row["error_device_used"] = row["estimate_device_used"] / row["nvml_peak"] - 1
    return row


def paged_check(device: str) -> dict:
    """A paged 8-bit AdamW saved and loaded (as resume does) keeps its big states paged and
    makes exactly the updates the uninterrupted optimizer makes."""
    import torch

    from aios_tui.engine.optim_bnb import PAGED_MIN_ELEMENTS, after_load, build_adamw8bit

    if device != "cuda":
        return {"check": "paged", "skipped": "paging is CUDA only"}
    dev = torch.device(device)
    torch.manual_seed(0)
    init = torch.randn(512, 512, device=dev) * 0.02        # 262,144 elements: over the paging threshold
    grads = [torch.randn(512, 512, device=dev) for _ in range(4)]

    def fresh():
        layer = torch.nn.Linear(512, 512, bias=False, device=dev)
        with torch.no_grad():
            layer.weight.copy_(init)
        return layer, build_adamw8bit([{"params": [layer.weight]}], 1e-3, dev, layer)

    def steps(layer, optimizer, gs):
        for g in gs:
            layer.weight.grad = g.clone()
            optimizer.step()

    straight, optimizer = fresh()
    steps(straight, optimizer, grads[:2])
    saved = torch.load(_roundtrip(optimizer.state_dict()), weights_only=True)
    halfway = straight.weight.detach().clone()
    steps(straight, optimizer, grads[2:])

    resumed, optimizer2 = fresh()
    with torch.no_grad():
        resumed.weight.copy_(halfway)
    optimizer2.load_state_dict(saved)
    after_load(optimizer2)
    state = optimizer2.state[resumed.weight]
    paged = all(getattr(state[k], "is_paged", False) for k in ("state1", "state2"))
    steps(resumed, optimizer2, grads[2:])
    torch.cuda.synchronize()
    diff = (resumed.weight - straight.weight).abs().max().item()
    return {"check": "paged", "elements": 512 * 512, "paged_threshold": PAGED_MIN_ELEMENTS,
            "states_paged_after_load": paged, "max_weight_diff_vs_uninterrupted": diff,
            "ok": paged and diff == 0.0}


def _tensor_bytes(tensors) -> int:
    """Bytes of the distinct tensors among ``tensors`` (a shared one counted once)."""
    import torch

    seen: set[int] = set()
    total = 0
    for t in tensors:
        if isinstance(t, torch.Tensor) and t.data_ptr() not in seen:
            seen.add(t.data_ptr())
            total += t.numel() * t.element_size()
    return total


def bytes_check(device: str) -> list[dict]:
    """Bytes of quantized base weights and of 8-bit AdamW state, built by the engine for the
    built-in tiny model, against the calculator's ``base_weights`` and ``optimizer_states``."""
    import torch

    from aios_tui.config import resolve
    from aios_tui.engine.optim import build_optimizer
    from aios_tui.engine.peft_setup import apply_peft
    from aios_tui.engine.task import CausalLMTask
    from aios_tui.vram import estimate_for_run

    dev = torch.device(device)
    rows = []
    common = {"model": "tiny", "device": device, "max_seq_len": 32, "batch_size": 2}
    for kind in ("8bit", "4bit"):
        cfg = resolve(overrides={**common, "use_peft": True, f"load_in_{kind}": True,
                                 "lora_target_modules": "q_proj,v_proj"})
        base, _ = CausalLMTask().build(cfg, dev)
        parts = list(base.parameters())
        for m in base.modules():
            qs = getattr(getattr(m, "weight", None), "quant_state", None)
            if qs is not None:
                parts += [qs.absmax, qs.code, qs.offset] + ([qs.state2.absmax, qs.state2.code] if qs.nested else [])
            parts.append(getattr(getattr(m, "weight", None), "SCB", None))
        estimate = estimate_for_run(cfg, base.config.to_dict()).to_dict()["breakdown"]["base_weights"]
        rows.append({"check": f"{kind} base weights", "actual": _tensor_bytes(parts), "estimate": estimate})
    for label, extra in (("8-bit AdamW state, LoRA r=32 q,v,down", {"use_peft": True, "lora_r": 32,
                                                                     "lora_target_modules": "q_proj,v_proj,down_proj"}),
                         ("8-bit AdamW state, full fine-tuning", {})):
        cfg = resolve(overrides={**common, "use_8bit_optimizer": True, **extra})
        model, _ = CausalLMTask().build(cfg, dev)
        model = apply_peft(model, cfg, cfg.train.steps)
        optimizer = build_optimizer(model, cfg, dev)
        ids = torch.randint(0, 256, (2, 32), device=dev)
        model(input_ids=ids, labels=ids).loss.backward()
        optimizer.step()
        states = [v for st in optimizer.state.values() for v in st.values()]
        estimate = estimate_for_run(cfg, model.config.to_dict()).to_dict()["breakdown"]["optimizer_states"]
        rows.append({"check": label, "actual": _tensor_bytes(states), "estimate": estimate})
    for row in rows:
        row["difference"] = row["estimate"] - row["actual"]
    return rows


def _roundtrip(state: dict):
    import io

    import torch

    buffer = io.BytesIO()
    torch.save(state, buffer)
    buffer.seek(0)
    return buffer


def versions() -> dict:
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from vram_groundtruth import versions as measured_versions  # one definition for both benches

    return measured_versions()


def _gib(x) -> str:
    return f"{x / 2**30:7.2f}" if x else "    n/a"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cases", default=",".join(DEFAULT_CASES), help=f"comma-separated, of: {', '.join(CASES)}")
    ap.add_argument("--steps", type=int, default=4,
                    help="training steps per case, at least 3 (the first two are not measured)")
    ap.add_argument("--workdir", default="/tmp/aios-memory-savers", help="models and runs go here")
    ap.add_argument("--paged-check", action="store_true", help="only the paged-state resume check (CUDA)")
    ap.add_argument("--bytes", action="store_true",
                    help="only count quantized-weight and 8-bit-state bytes on tiny against the calculator "
                         "(runs on the CPU too)")
    ap.add_argument("--smoke", action="store_true", help="CPU, small shapes, 2 steps: checks the script runs")
    ap.add_argument("--json", default="", help="write every figure to this file")
    ap.add_argument("--llama8b-dir", default="", metavar="DIR",
                    help="qlora-8b: use this saved bf16 model of the 8B shape (e.g. the one "
                         "bench/throughput.py --config 8b --workdir W keeps in W/model-8b-bf16) "
                         "instead of writing a new 16 GB one; if it holds none, one is written as usual")
    args = ap.parse_args(argv)
    if args.steps < 3:
        ap.error("--steps must be at least 3: the peak is measured from the third step on")
    global LLAMA8B_DIR
    LLAMA8B_DIR = args.llama8b_dir

    import torch

    device = "cpu" if args.smoke or not torch.cuda.is_available() else "cuda"
    if device == "cpu" and not (args.smoke or args.bytes):
        print("no CUDA device: use --smoke for a CPU run of the same code (no figures)", file=sys.stderr)
        return 2
    workdir = Path(args.workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    report = {"date": time.strftime("%Y-%m-%dT%H:%M:%S"), "device": torch.cuda.get_device_name() if device == "cuda"
              else platform.processor() or "cpu", **versions(), "rows": []}
    print(f"# {report['date']}  {report['device']}  torch {report['torch']}  transformers {report['transformers']}  "
          f"peft {report['peft']}  bitsandbytes {report['bitsandbytes']}")
    if args.paged_check:
        row = paged_check(device)
        report["rows"].append(row)
        print(json.dumps(row))
    elif args.bytes:
        print(f"{'bytes on ' + device:42s} {'actual':>10s} {'estimate':>10s} {'difference':>10s}")
        for row in bytes_check(device):
            report["rows"].append(row)
            print(f"{row['check']:42s} {row['actual']:10,d} {row['estimate']:10,d} {row['difference']:+10,d}")
    else:
        unknown = [c for c in args.cases.split(",") if c not in CASES]
        if unknown:
            print(f"unknown case(s): {', '.join(unknown)}; choose from {', '.join(CASES)}", file=sys.stderr)
            return 2
        print(f"{'case':15s} {'trainable':>12s} {'total':>13s} {'peak GiB':>8s} {'est GiB':>8s} {'err':>7s} "
              f"{'nvml GiB':>8s} {'est used':>8s} {'err':>7s}  loss")
        for name in args.cases.split(","):
            row = run_case(name, workdir, args.smoke, device, 2 if args.smoke else args.steps)
            report["rows"].append(row)
            p = row["parameters"] or {}
            err = row.get("error_peak_allocated")
            err_used = row.get("error_device_used")
            print(f"{name:15s} {p.get('trainable', 0):12,d} {p.get('total', 0):13,d} {_gib(row['peak_allocated'])} "
                  f"{_gib(row['estimate_peak_allocated'])} {f'{err:+.1%}' if err is not None else 'n/a':>7s} "
                  f"{_gib(row['nvml_peak'])} {_gib(row['estimate_device_used'])} "
                  f"{f'{err_used:+.1%}' if err_used is not None else 'n/a':>7s}  {row['last_loss']}", flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
