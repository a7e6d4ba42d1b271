#!/usr/bin/env python
"""Training throughput and peak memory: aios-tui's engine against Hugging Face Trainer + peft.

Both sides train the same model shape (built from a config, random init, saved once with
``save_pretrained`` and loaded by each side with ``from_pretrained``), with the same settings
and the very same packed blocks in the same order. Each side runs in its own process, so
peak-memory figures and allocator caches never mix. Prints tokens/s, peak memory and the
ratios, model FLOPs utilisation on a GPU, versions and the date.

    python bench/throughput.py --config 1b             # Llama-3.2-1B shape, LoRA r=16 on all projections
    python bench/throughput.py --config 124m           # 152M Llama shape, fp32 + bf16 autocast, LoRA q,v
    python bench/throughput.py --config 8b             # Llama-3.1-8B shape, LoRA q,v
    python bench/throughput.py --config 1b --method full
    python bench/throughput.py --smoke                 # a tiny CPU run of both sides (CI)

Throughput counts every input token of a step (batch x sequence length, padding included) and
times only steps after the warm-up, between two device syncs and with none in between (ours:
the engine reads a step's metrics once the next step is queued, so its span starts a step
later and holds one step fewer).

MFU (GPU only) divides achieved model FLOP/s by the GPU's dense bf16 peak. Model FLOPs per
token, for N_fwd matmul parameters used in the forward pass (every linear layer, lm_head
included, adapters included; the input embedding lookup is not a matmul) and N_train of them
trained:

    forward      2 * N_fwd                     + 4 * L * T * d_attn   (QK^T and AV over T positions)
    backward     2 * N_fwd (activation grads)  + 8 * L * T * d_attn
                 2 * N_train (weight grads)
    total        4 * N_fwd + 2 * N_train + 12 * L * T * d_attn

With full fine-tuning N_train = N_fwd and this is the usual 6N + 12LTd (PaLM's appendix B);
with LoRA the frozen weights cost no weight-gradient matmul, so a LoRA step is only ~2/3 of a
full one. Causal masking is not subtracted and recomputation under gradient checkpointing is
not counted (both as in PaLM's MFU).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import random
import shutil
import string
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

ALL_PROJ = "q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj,down_proj"
# Byte-level tokenizer ids (aios_tui.tiny): every shape shares it, so one tokenizer serves all;
# throughput does not depend on which ids the data uses.
SPECIAL_IDS = {"pad_token_id": 256, "bos_token_id": 257, "eos_token_id": 258}

# Model shapes (transformers.LlamaConfig kwargs) and the run each one is measured with.
SHAPES: dict[str, dict] = {
    "124m": {
        "about": "152M Llama shape (hidden 768, 12 layers, vocab 50257, tied)",
        "model": dict(vocab_size=50257, hidden_size=768, intermediate_size=3072, num_hidden_layers=12,
                      num_attention_heads=12, num_key_value_heads=12, tie_word_embeddings=True,
                      max_position_embeddings=2048, rope_theta=10000.0),
        "run": dict(model_dtype="fp32", amp=True, lora_target_modules="q_proj,v_proj",
                    batch_size=8, max_seq_len=1024),
    },
    "1b": {
        "about": "Llama-3.2-1B shape (hidden 2048, 16 layers, 32/8 heads, vocab 128256, tied)",
        "model": dict(vocab_size=128256, hidden_size=2048, intermediate_size=8192, num_hidden_layers=16,
                      num_attention_heads=32, num_key_value_heads=8, tie_word_embeddings=True,
                      max_position_embeddings=8192, rope_theta=500000.0),
        "run": dict(model_dtype="bf16", amp=True, lora_target_modules=ALL_PROJ,
                    batch_size=4, max_seq_len=2048),
    },
    "8b": {
        "about": "Llama-3.1-8B shape (hidden 4096, 32 layers, 32/8 heads, vocab 128256, untied)",
        "model": dict(vocab_size=128256, hidden_size=4096, intermediate_size=14336, num_hidden_layers=32,
                      num_attention_heads=32, num_key_value_heads=8, tie_word_embeddings=False,
                      max_position_embeddings=8192, rope_theta=500000.0),
        "run": dict(model_dtype="bf16", amp=True, lora_target_modules="q_proj,v_proj",
                    batch_size=2, max_seq_len=2048),
    },
    "smoke": {
        "about": "tiny Llama shape for a CPU smoke run (hidden 64, 2 layers, vocab 259, tied)",
        "model": dict(vocab_size=259, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, tie_word_embeddings=True,
                      max_position_embeddings=256, rope_theta=10000.0),
        "run": dict(model_dtype="fp32", amp=False, lora_target_modules="q_proj,v_proj",
                    batch_size=4, max_seq_len=64),
    },
}

# Dense bf16 tensor-core peak, FLOP/s, from the vendors' data sheets (no sparsity).
PEAK_BF16 = [("H200", 989.4e12), ("H100 PCIe", 756.0e12), ("H100", 989.4e12), ("A100", 312.0e12),
             ("L40S", 362.1e12), ("L4", 121.0e12), ("A10", 125.0e12), ("RTX 4090", 165.2e12),
             ("RTX 3090", 71.0e12), ("A6000", 154.8e12)]


# --------------------------------------------------------------------------------- the plan --

def build_plan(args: argparse.Namespace, workdir: Path) -> dict:
    shape = SHAPES[args.config]
    run = dict(shape["run"])
    for key in ("batch_size", "max_seq_len", "model_dtype", "lora_target_modules"):
        if getattr(args, key, None) is not None:
            run[key] = getattr(args, key)
    if args.amp is not None:
        run["amp"] = args.amp
    use_peft = args.method == "lora"
    steps = args.warmup + args.steps
    overrides = {
        "dataset_file": "", "max_seq_len": run["max_seq_len"], "eval_fraction": 0.0,
        "model_dtype": run["model_dtype"], "attn_implementation": "sdpa",
        "use_peft": use_peft, "peft_method": "lora", "lora_r": args.lora_r, "lora_alpha": args.lora_alpha,
        "lora_dropout": args.lora_dropout, "lora_target_modules": run["lora_target_modules"],
        "steps": steps, "batch_size": run["batch_size"], "grad_accum": 1, "lr": args.lr,
        "lr_schedule": "cosine", "warmup_steps": min(10, steps), "weight_decay": 0.0, "max_grad_norm": 1.0,
        "seed": args.seed, "eval_every": 0, "save_every": 0, "log_every": 1, "device": args.device,
        "fused_loss": args.fused_loss, "torch_compile": args.torch_compile, "fp8": args.fp8,
        "amp": run["amp"], "gradient_checkpointing": args.gradient_checkpointing,
    }
    return {
        "shape": args.config, "about": shape["about"], "model_kwargs": {**shape["model"], **SPECIAL_IDS},
        "model_dir": str(workdir / f"model-{args.config}-{run['model_dtype']}"),
        "data": args.data, "data_file": str(workdir / f"random-{steps}x{run['batch_size']}x{run['max_seq_len']}.txt"),
        "overrides": overrides, "warmup": args.warmup, "measured": args.steps, "seed": args.seed,
        "workdir": str(workdir), "threads": args.threads, "fused_ce_backend": args.fused_ce_backend,
        "hf_torch_compile": args.hf_torch_compile,
    }


def describe(plan: dict) -> str:
    o = plan["overrides"]
    method = (f"LoRA r={o['lora_r']} alpha={o['lora_alpha']} dropout={o['lora_dropout']} on "
              f"{o['lora_target_modules']}" if o["use_peft"] else "full fine-tuning")
    precision = f"{o['model_dtype']} weights" + (" + autocast" if o["amp"] else "")
    extras = [name for name, on in (
        (f"fused loss ({plan['fused_ce_backend']})", o["fused_loss"]), ("torch.compile", o["torch_compile"]),
        ("gradient checkpointing", o["gradient_checkpointing"]), ("fp8 matmuls", o["fp8"])) if on]
    if plan["hf_torch_compile"]:
        extras.append("Trainer with torch_compile")
    return (f"{plan['about']}\n{method}; {precision}; batch {o['batch_size']} x {o['max_seq_len']}; "
            f"{plan['measured']} measured steps after {plan['warmup']} warm-up; data: {plan['data']}; "
            f"engine options: {', '.join(extras) or 'none'}")


# ------------------------------------------------------------------------------- the sides --

def prepare(plan: dict) -> dict:
    """Save the random-init model (and the byte tokenizer) once; write the random-text data."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from aios_tui.engine.models import DTYPES
    from aios_tui.engine.tokenizer import byte_tokenizer

    model_dir = Path(plan["model_dir"])
    config = LlamaConfig(**plan["model_kwargs"])
    stamp = model_dir / "bench-shape.json"
    wanted = json.dumps(plan["model_kwargs"], sort_keys=True)
    if not (stamp.is_file() and stamp.read_text() == wanted):
        shutil.rmtree(model_dir, ignore_errors=True)
        dtype = DTYPES[plan["overrides"]["model_dtype"]]
        device = "cuda" if plan["overrides"]["device"] != "cpu" and torch.cuda.is_available() else "cpu"
        torch.manual_seed(plan["seed"])
        previous = torch.get_default_dtype()
        torch.set_default_dtype(dtype)  # initialise straight in the target dtype: an 8B model in fp32 is 32 GB
        try:
            with torch.device(device):
                model = LlamaForCausalLM(config)
        finally:
            torch.set_default_dtype(previous)
        tmp = model_dir.with_name(model_dir.name + ".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        model.save_pretrained(tmp)
        byte_tokenizer().save_pretrained(tmp)
        (tmp / "bench-shape.json").write_text(wanted)
        os.replace(tmp, model_dir)
        del model
    if plan["data"] == "random":
        path = Path(plan["data_file"])
        o = plan["overrides"]
        need = (o["steps"] + 1) * o["batch_size"] * o["max_seq_len"]
        if not path.is_file() or path.stat().st_size < need:
            rng = random.Random(plan["seed"])
            alphabet = string.ascii_letters + string.digits + " .,\n"
            path.write_text("".join(rng.choices(alphabet, k=need)))
    return {"side": "prepare", "model_dir": str(model_dir)}


def _config(plan: dict):
    from aios_tui.config import resolve

    overrides = dict(plan["overrides"], model=plan["model_dir"])
    if plan["data"] == "random":
        overrides["dataset_file"] = plan["data_file"]
    return resolve(overrides=overrides)


def _memory(device_type: str) -> dict:
    import resource

    import torch

    out = {"peak_rss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024}
    if device_type == "cuda":
        out.update(peak_allocated=torch.cuda.max_memory_allocated(), peak_reserved=torch.cuda.max_memory_reserved())
    return out


def _matmul_params(model) -> int:
    """Weights of every linear layer the forward pass multiplies by (lm_head included, once)."""
    import torch

    seen: set[int] = set()
    total = 0
    for module in model.modules():
        weight = getattr(module, "weight", None)
        if isinstance(module, torch.nn.Linear) and weight is not None and id(weight) not in seen:
            seen.add(id(weight))
            total += weight.numel()
    return total


def run_ours(plan: dict) -> dict:
    import torch

    from aios_tui.engine.train import run_training

    cfg = _config(plan)
    device_type = "cuda" if torch.cuda.is_available() and cfg.train.device != "cpu" else "cpu"
    records: list[dict] = []
    marks: dict[int, float] = {}
    warmup, last = plan["warmup"], cfg.train.steps

    def on_step(step: int, record: dict) -> None:
        # The engine reads a step's metrics once the next step is queued, so when the warm-up's
        # last line arrives, step warmup+1 is queued too; a sync there and at the last step times
        # steps warmup+2..last, with no per-step sync added to the loop being measured.
        records.append(record)
        if step in (warmup, last):
            if device_type == "cuda":
                torch.cuda.synchronize()
            marks[step] = time.perf_counter()

    run_dir = Path(plan["workdir"]) / f"run-ours-{os.getpid()}"
    shutil.rmtree(run_dir, ignore_errors=True)
    result = run_training(cfg, run_dir, progress=None, on_step=on_step)
    memory = _memory(device_type)
    measured = last - warmup - 1
    seconds = marks[last] - marks[warmup] if warmup in marks and last in marks and measured > 0 else None
    steps = [r for r in records if r["step"] > warmup]
    tokens = max(0, measured) * cfg.train.batch_size * cfg.data.max_seq_len * cfg.train.grad_accum
    header = _read_header(run_dir)
    params = header.get("parameters", {})
    # The engine's own peak (its step records) ignores the checkpoint written after the last step.
    step_peaks = [r["mem_peak"] for r in records if r.get("mem_peak") is not None]
    if step_peaks:
        memory["peak_allocated_steps"] = max(step_peaks)
    shutil.rmtree(run_dir, ignore_errors=True)
    return {
        "side": "ours", "state": result.state, "steps": len(records), "measured_steps": max(0, measured),
        "engine_step_time_s": sum(r["step_time_s"] for r in steps) / len(steps) if steps else None,
        "seconds": seconds, "tokens": tokens, "tokens_per_s": tokens / seconds if seconds else None,
        "first_loss": records[0]["loss"] if records else None,
        "trainable": params.get("trainable"), "total": params.get("total"), **memory,
        "versions": _versions(), "device": _device_name(device_type),
        "fused_ce_backend": _backend_used(plan, device_type),
    }


def _backend_used(plan: dict, device_type: str) -> str | None:
    """The fused loss's kernel as it ran: liger falls back to ours off CUDA or without Triton."""
    if not plan["overrides"]["fused_loss"]:
        return None
    if plan.get("fused_ce_backend") != "liger":
        return "torch"
    from aios_tui.engine.fused_ce import liger_available

    return "liger" if device_type == "cuda" and liger_available() else "torch (liger unavailable)"


def _read_header(run_dir: Path) -> dict:
    from aios_tui.metrics.jsonl import read_header

    return read_header(run_dir / "metrics.jsonl") or {}


def run_hf(plan: dict) -> dict:
    import torch
    from transformers import AutoModelForCausalLM, Trainer, TrainerCallback, TrainingArguments, set_seed

    from aios_tui.engine.data import BlockSampler, load_packed
    from aios_tui.engine.models import DTYPES, load_tokenizer

    cfg = _config(plan)
    t = cfg.train
    device_type = "cuda" if torch.cuda.is_available() and t.device != "cpu" else "cpu"
    tokenizer = load_tokenizer(plan["model_dir"])
    data = load_packed(cfg, tokenizer)
    # The engine's block order, micro-batch by micro-batch, fed to a sequential sampler: both
    # sides see the same blocks in the same order.
    sampler = BlockSampler(data.n_train, t.seed)
    order = [i for _ in range(t.steps * t.grad_accum) for i in sampler.take(t.batch_size)]

    class Blocks(torch.utils.data.Dataset):
        def __len__(self):
            return len(order)

        def __getitem__(self, i):
            j = order[i]
            return {"input_ids": data.train_ids[j].long(), "labels": data.train_labels[j].long()}

    def collate(items):
        return {k: torch.stack([it[k] for it in items]) for k in items[0]}

    set_seed(t.seed)  # the adapter's random init, as the engine seeds before building
    model = AutoModelForCausalLM.from_pretrained(plan["model_dir"], dtype=DTYPES[cfg.model.model_dtype],
                                                 attn_implementation=cfg.model.attn_implementation)
    if cfg.peft.use_peft:
        from peft import LoraConfig, get_peft_model

        model = get_peft_model(model, LoraConfig(
            task_type="CAUSAL_LM", r=cfg.peft.lora_r, lora_alpha=cfg.peft.lora_alpha,
            lora_dropout=cfg.peft.lora_dropout, target_modules=cfg.peft.target_list()))
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in model.parameters())

    times: dict[int, float] = {}
    losses: list[float] = []

    class StepTimer(TrainerCallback):
        # A sync at the two ends of the timed span only, as on our side.
        def on_step_end(self, args, state, control, **kwargs):
            if state.global_step in (plan["warmup"], t.steps):
                if device_type == "cuda":
                    torch.cuda.synchronize()
                times[state.global_step] = time.perf_counter()

        def on_log(self, args, state, control, logs=None, **kwargs):
            if logs and "loss" in logs:
                losses.append(float(logs["loss"]))

    bf16 = bool(cfg.memory.amp) and (device_type == "cpu" or torch.cuda.is_bf16_supported())
    args = TrainingArguments(
        output_dir=str(Path(plan["workdir"]) / f"hf-out-{os.getpid()}"),
        max_steps=t.steps, per_device_train_batch_size=t.batch_size, gradient_accumulation_steps=t.grad_accum,
        learning_rate=t.effective_lr(cfg.peft), lr_scheduler_type=t.lr_schedule, warmup_steps=t.effective_warmup(),
        weight_decay=t.weight_decay, max_grad_norm=t.max_grad_norm, seed=t.seed,
        bf16=bf16, fp16=bool(cfg.memory.amp) and not bf16,
        gradient_checkpointing=cfg.memory.gradient_checkpointing,
        gradient_checkpointing_kwargs={"use_reentrant": False} if cfg.memory.gradient_checkpointing else None,
        # Logging the first step gives a loss to compare with ours; the only other log is the
        # last step, so Trainer's timing is not slowed by per-step logging (ours logs every step).
        logging_first_step=True, logging_steps=t.steps,
        save_strategy="no", eval_strategy="no", report_to="none", disable_tqdm=True,
        use_cpu=device_type == "cpu", remove_unused_columns=False, dataloader_num_workers=0,
        dataloader_pin_memory=device_type == "cuda", train_sampling_strategy="sequential",
        torch_compile=plan["hf_torch_compile"] and device_type == "cuda",
    )
    trainer = Trainer(model=model, args=args, train_dataset=Blocks(), data_collator=collate, callbacks=[StepTimer()])
    trainer.train()
    memory = _memory(device_type)
    shutil.rmtree(args.output_dir, ignore_errors=True)
    measured = t.steps - plan["warmup"]
    seconds = times[t.steps] - times[plan["warmup"]] if plan["warmup"] in times and t.steps in times else None
    tokens = measured * t.batch_size * cfg.data.max_seq_len * t.grad_accum
    return {
        "side": "hf", "steps": t.steps, "measured_steps": measured, "seconds": seconds,
        "tokens": tokens, "tokens_per_s": tokens / seconds if seconds else None,
        "first_loss": losses[0] if losses else None,
        "trainable": trainable, "total": total, "matmul_params": _matmul_params(model), **memory,
        "versions": _versions(), "device": _device_name(device_type),
    }


def _versions() -> dict:
    import torch

    out = {"python": platform.python_version(), "torch": torch.__version__, "cuda": torch.version.cuda}
    for name in ("transformers", "peft", "liger_kernel"):
        try:
            from importlib.metadata import version

            out[name] = version(name.replace("_", "-"))
        except Exception:
            out[name] = None
    return out


def _device_name(device_type: str) -> str:
    import torch

    if device_type == "cuda":
        return torch.cuda.get_device_name()
    return f"CPU ({platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch threads {torch.get_num_threads()})"


# ------------------------------------------------------------------------------- reporting --

def base_matmul_params(model_kwargs: dict) -> int:
    """Weights of a Llama's linear layers: attention, MLP and lm_head (counted once if tied)."""
    h, inter, layers = model_kwargs["hidden_size"], model_kwargs["intermediate_size"], model_kwargs["num_hidden_layers"]
    head_dim = h // model_kwargs["num_attention_heads"]
    kv = model_kwargs["num_key_value_heads"] * head_dim
    per_layer = 2 * h * h + 2 * h * kv + 3 * h * inter
    return layers * per_layer + model_kwargs["vocab_size"] * h


def flops_per_token(plan: dict, matmul_params: int, trainable: int, full: bool) -> float:
    """Model FLOPs per trained token (module docstring): 4 N_fwd + 2 N_train + 12 L T d_attn."""
    m = plan["model_kwargs"]
    d_attn = m["hidden_size"]  # num_heads x head_dim for every shape here
    n_train = matmul_params if full else trainable
    return 4 * matmul_params + 2 * n_train + 12 * m["num_hidden_layers"] * plan["overrides"]["max_seq_len"] * d_attn


def peak_flops(device: str, override_tflops: float | None) -> float | None:
    if override_tflops:
        return override_tflops * 1e12
    for name, value in PEAK_BF16:
        if name.lower() in device.lower():
            return value
    return None


def _gb(x) -> str:
    return f"{x / 1e9:.2f} GB" if isinstance(x, (int, float)) else "n/a"


def report(plan: dict, results: dict, args: argparse.Namespace) -> dict:
    ours, hf = results.get("ours"), results.get("hf")
    any_side = ours or hf
    on_gpu = "CPU (" not in any_side["device"]
    versions = any_side["versions"]
    lines = [
        f"aios-tui throughput bench: --config {plan['shape']}" + (" (smoke, CPU)" if args.smoke else ""),
        describe(plan),
        f"date {dt.datetime.now().astimezone().isoformat(timespec='seconds')}; device {any_side['device']}; "
        + ", ".join(f"{k} {v}" for k, v in versions.items() if v) + f"; aios-tui {_git_rev()}",
        f"command: python bench/throughput.py {' '.join(args.argv)}",
        "",
    ]
    peak = peak_flops(any_side["device"], args.peak_tflops) if on_gpu else None
    mem_key = "peak_allocated" if on_gpu else "peak_rss"
    mem_label = "peak allocated" if on_gpu else "peak RSS"
    header = f"{'side':<22}{'tokens/s':>12}{'step ms':>10}{mem_label:>16}{'MFU':>8}{'first loss':>12}"
    lines.append(header)
    for name, r in (("aios-tui engine", ours), ("HF Trainer + peft" if plan["overrides"]["use_peft"]
                                                    else "HF Trainer", hf)):
        if not r:
            continue
        tps = r.get("tokens_per_s")
        step_ms = 1000 * r["seconds"] / r["measured_steps"] if r.get("seconds") and r["measured_steps"] else None
        mfu = None
        full = not plan["overrides"]["use_peft"]
        # adapters are linear layers too: with LoRA every trainable weight is one
        matmul = base_matmul_params(plan["model_kwargs"]) + (0 if full else r.get("trainable") or 0)
        if peak and tps:
            fpt = flops_per_token(plan, matmul, r.get("trainable") or 0, full)
            mfu = tps * fpt / peak
        r["mfu"] = mfu
        lines.append(f"{name:<22}{_num(tps, '{:,.0f}'):>12}{_num(step_ms, '{:.1f}'):>10}{_gb(r.get(mem_key)):>16}"
                     f"{_num(mfu, '{:.1%}'):>8}{_num(r.get('first_loss'), '{:.4f}'):>12}")
    summary: dict = {}
    if ours and hf and ours.get("tokens_per_s") and hf.get("tokens_per_s"):
        summary["speed_ratio"] = ours["tokens_per_s"] / hf["tokens_per_s"]
        if ours.get(mem_key) and hf.get(mem_key):
            summary["memory_ratio"] = ours[mem_key] / hf[mem_key]
        lines.append("")
        lines.append(f"ratio ours/HF: tokens/s {summary['speed_ratio']:.2f}x"
                     + (f", {mem_label} {summary['memory_ratio']:.2f}x" if "memory_ratio" in summary else ""))
    lines.append("first loss: step 1 on each side; the same weights and blocks give the same value")
    if ours and ours.get("fused_ce_backend"):
        lines.append(f"fused loss kernel as run: {ours['fused_ce_backend']}")
    if on_gpu and not peak:
        lines.append("MFU: unknown GPU peak; pass --peak-tflops")
    if not on_gpu:
        lines.append("CPU figures: a check that both paths run, not a measure of GPU speed")
    print("\n".join(lines), flush=True)
    return {"plan": plan, "results": results, "summary": summary, "argv": args.argv}


def _num(x, fmt: str) -> str:
    return fmt.format(x) if isinstance(x, (int, float)) else "n/a"


def _git_rev() -> str:
    try:
        out = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"],
                             capture_output=True, text=True, timeout=10)
        dirty = subprocess.run(["git", "-C", str(REPO), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10)
        return out.stdout.strip() + ("+local changes" if dirty.stdout.strip() else "") or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


# ------------------------------------------------------------------------------------ main --

class SideFailed(Exception):
    pass


def _child(side: str, plan: dict, timeout: float | None) -> dict:
    """Run one side in a fresh interpreter; its result comes back as JSON in a file."""
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as fh:
        json.dump(plan, fh)
        plan_path = fh.name
    result_path = plan_path + ".result"
    try:
        proc = subprocess.run([sys.executable, str(Path(__file__).resolve()), "--child", side,
                               "--plan", plan_path, "--result", result_path],
                              timeout=timeout, env={**os.environ, "TOKENIZERS_PARALLELISM": "false"})
        if proc.returncode != 0 or not Path(result_path).is_file():
            raise SideFailed(f"the {side} side failed (exit {proc.returncode})")
        return json.loads(Path(result_path).read_text())
    finally:
        for p in (plan_path, result_path):
            Path(p).unlink(missing_ok=True)


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="bench/throughput.py", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", choices=[k for k in SHAPES if k != "smoke"], default="1b",
                   help="model shape and run settings (default 1b)")
    p.add_argument("--smoke", action="store_true", help="a tiny CPU run of both sides: checks they work, prints the ratio")
    p.add_argument("--method", choices=("lora", "full"), default="lora", help="LoRA or full fine-tuning")
    p.add_argument("--lora-r", type=int, default=16)
    p.add_argument("--lora-alpha", type=int, default=32)
    p.add_argument("--lora-dropout", type=float, default=0.05)
    p.add_argument("--lora-target-modules", default=None, help="override the shape's target modules")
    p.add_argument("--batch-size", type=int, default=None)
    p.add_argument("--max-seq-len", type=int, default=None)
    p.add_argument("--model-dtype", choices=("fp32", "bf16", "fp16"), default=None)
    p.add_argument("--amp", action=argparse.BooleanOptionalAction, default=None, help="autocast (default: per shape)")
    p.add_argument("--fused-loss", action=argparse.BooleanOptionalAction, default=True,
                   help="the engine's chunked lm_head + cross-entropy (default on)")
    p.add_argument("--fused-ce-backend", choices=("torch", "liger"), default="torch",
                   help="the fused loss's kernel: chunked torch, or liger-kernel's Triton one where installed")
    p.add_argument("--torch-compile", action=argparse.BooleanOptionalAction, default=False,
                   help="the engine's torch.compile option (CUDA)")
    p.add_argument("--fp8", action=argparse.BooleanOptionalAction, default=False,
                   help="the engine's FP8 matmuls for the base's linear layers (torchao; FP8 GPUs)")
    p.add_argument("--hf-torch-compile", action=argparse.BooleanOptionalAction, default=False,
                   help="TrainingArguments(torch_compile=True) on the Hugging Face side")
    p.add_argument("--gradient-checkpointing", action=argparse.BooleanOptionalAction, default=False)
    p.add_argument("--steps", type=int, default=None, help="measured steps (default 20; smoke 4)")
    p.add_argument("--warmup", type=int, default=None, help="untimed warm-up steps (default 5; smoke 2)")
    p.add_argument("--lr", type=float, default=2e-4)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--data", choices=("random", "sample"), default=None,
                   help="random text or the bundled sample (default: random; smoke: sample)")
    p.add_argument("--device", choices=("auto", "cuda", "cpu"), default=None)
    p.add_argument("--sides", choices=("both", "ours", "hf"), default="both")
    p.add_argument("--workdir", default=None, help="keep the saved model here and reuse it next time")
    p.add_argument("--peak-tflops", type=float, default=None, help="the GPU's dense bf16 peak, for MFU")
    p.add_argument("--json", default=None, metavar="PATH", help="also write every figure as JSON")
    p.add_argument("--threads", type=int, default=None,
                   help="CPU threads for torch on each side (default: torch's choice; smoke: 1)")
    p.add_argument("--timeout", type=float, default=None, help="seconds allowed per side")
    p.add_argument("--child", choices=("prepare", "ours", "hf"), help=argparse.SUPPRESS)
    p.add_argument("--plan", help=argparse.SUPPRESS)
    p.add_argument("--result", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    args.argv = argv
    if args.smoke:
        args.config = "smoke"
        args.device = args.device or "cpu"
    args.device = args.device or "auto"
    args.steps = args.steps if args.steps is not None else (4 if args.smoke else 20)
    args.warmup = args.warmup if args.warmup is not None else (2 if args.smoke else 5)
    args.data = args.data or ("sample" if args.smoke else "random")
    # The smoke model's matmuls are too small to gain from threads, and on a busy CI box
    # OpenMP workers waiting on each other make its timings swing by 5x.
    args.threads = args.threads if args.threads is not None else (1 if args.smoke else None)
    if args.steps < 2 or args.warmup < 1:
        p.error("--steps must be at least 2 and --warmup at least 1 (the first step is never timed)")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(list(sys.argv[1:] if argv is None else argv))
    if args.child:
        plan = json.loads(Path(args.plan).read_text())
        os.environ["AIOS_TUI_FUSED_CE"] = plan.get("fused_ce_backend", "torch")
        if plan.get("threads"):
            import torch

            torch.set_num_threads(plan["threads"])
        result = {"prepare": prepare, "ours": run_ours, "hf": run_hf}[args.child](plan)
        Path(args.result).write_text(json.dumps(result))
        return 0

    workdir = Path(args.workdir) if args.workdir else Path(tempfile.mkdtemp(prefix="aios-bench-"))
    workdir.mkdir(parents=True, exist_ok=True)
    try:
        plan = build_plan(args, workdir)
        print(f"preparing {plan['about']} in {workdir} ...", flush=True)
        try:
            _child("prepare", plan, args.timeout)
        except SideFailed as exc:
            print(f"throughput: {exc}", file=sys.stderr)
            return 1
        results, failures = {}, {}
        for side in ("ours", "hf"):
            if args.sides in ("both", side):
                print(f"running {'aios-tui engine' if side == 'ours' else 'HF Trainer'} ...", flush=True)
                try:
                    results[side] = _child(side, plan, args.timeout)
                except (SideFailed, subprocess.TimeoutExpired) as exc:
                    # one side's failure must not cost the other side's figures
                    failures[side] = str(exc)
                    print(f"throughput: {exc}", file=sys.stderr)
        if not results:
            return 1
        out = report(plan, results, args)
        if failures:
            out["failures"] = failures
        if args.json:
            Path(args.json).write_text(json.dumps(out, indent=2))
    finally:
        if not args.workdir:
            shutil.rmtree(workdir, ignore_errors=True)
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
