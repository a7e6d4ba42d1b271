#!/usr/bin/env python3
"""Measure the GPU memory of real training steps, for the VRAM calculator to be checked against.

    python3 bench/vram_groundtruth.py --quick [--out bench/calibration/<gpu>-<date>.jsonl]
    python3 bench/vram_groundtruth.py --only 1b-lora-qkvo-bf16,8b-qlora-all   # a few by name
    python3 bench/vram_groundtruth.py --list
    python3 bench/vram_groundtruth.py --device cpu --dry-run                  # CI: tiny shape, no GPU

Models are built from configs (0.5B-8B shapes with grouped-query attention and 128K-152K
vocabularies, GPT-2 124M, the 152M calibration shape) with random weights, straight on the GPU;
nothing is downloaded. Each configuration is trained the way the engine trains: AdamW fused
(or bitsandbytes 8-bit AdamW, paged), bf16 autocast or bf16 weights, non-reentrant gradient
checkpointing with the embedding output requiring grad for adapters, 4-/8-bit base weights
with peft's k-bit preparation, and the loss through the engine's own ``causal_lm_loss`` (fused
chunked cross-entropy or the plain path) or the model's own loss with its output kept (``hf``,
as the first calibration file was measured). After one warm-up step the peak statistics are
reset and two more steps measured: ``torch.cuda.max_memory_allocated`` / ``_reserved`` and
NVML's device memory used. Every configuration appends one JSON line (same fields as
bench/calibration/h200-gpt2ish-124m.jsonl, plus the model config, loss path and versions), so
an interrupted run keeps what it measured; a configuration that runs out of memory is written
with ``"oom": true``. --quick (about 5 minutes on an H200) covers every method, precision,
quantization, optimizer and loss path once or twice.
"""

from __future__ import annotations

import argparse
import gc
import warnings
import json
import os
import platform
import sys
import time
from dataclasses import asdict, dataclass, field

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

from aios_tui.vram.known import KNOWN  # noqa: E402

ALL7 = "q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj,down_proj"
SHAPES = {
    "0.5b": KNOWN["Qwen/Qwen2.5-0.5B"],
    "1b": KNOWN["meta-llama/Llama-3.2-1B"],
    "3b": KNOWN["meta-llama/Llama-3.2-3B"],
    "8b": KNOWN["meta-llama/Llama-3.1-8B"],
    "gpt2": KNOWN["gpt2"],
    "cal152m": {"model_type": "llama", "hidden_size": 768, "num_hidden_layers": 12, "num_attention_heads": 12,
                "num_key_value_heads": 12, "intermediate_size": 3072, "vocab_size": 50257,
                "tie_word_embeddings": True, "max_position_embeddings": 2048},
    # CPU dry runs
    "tiny": {"model_type": "llama", "hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4,
             "num_key_value_heads": 2, "intermediate_size": 128, "vocab_size": 300,
             "tie_word_embeddings": True, "max_position_embeddings": 256},
}


@dataclass
class Case:
    name: str
    shape: str
    method: str = "lora"
    targets: str = "q_proj,v_proj"
    r: int = 16
    weights: str = "bf16"
    amp: bool = False
    gc: bool = False
    batch: int = 4
    seq: int = 1024
    loss: str = "chunked"
    quant: str | None = None
    optimizer: str = "adamw"
    dropout: float = 0.05
    ia3_feedforward: str = ""
    quick: bool = True
    tags: list[str] = field(default_factory=list)


CASES = [
    # 0.5B, GQA 14/2, 152K vocabulary
    Case("0.5b-full-amp-plain", "0.5b", "full", "", weights="fp32", amp=True, batch=4, seq=1024, loss="plain"),
    Case("0.5b-full-amp-chunked", "0.5b", "full", "", weights="fp32", amp=True, batch=4, seq=1024),
    Case("0.5b-lora-qv-bf16", "0.5b", batch=8, seq=1024),
    Case("0.5b-lora32-all-amp-gc", "0.5b", targets=ALL7, r=32, weights="fp32", amp=True, gc=True, batch=8, seq=2048),
    Case("0.5b-ia3-bf16", "0.5b", "ia3", "q_proj,v_proj,down_proj", ia3_feedforward="down_proj", batch=8, seq=1024),
    Case("0.5b-adalora-qkvo-amp-plain", "0.5b", "adalora", "q_proj,k_proj,v_proj,o_proj", r=24, weights="fp32",
         amp=True, batch=4, seq=1024, loss="plain"),
    Case("0.5b-lora-qv-fp32-gqa-math", "0.5b", weights="fp32", batch=2, seq=512, loss="plain"),
    # 1B
    Case("1b-lora-qkvo-bf16", "1b", targets="q_proj,k_proj,v_proj,o_proj", batch=4, seq=2048),
    Case("1b-lora-qv-amp-plain", "1b", weights="fp32", amp=True, batch=8, seq=1024, loss="plain"),
    Case("1b-full-bf16", "1b", "full", "", batch=2, seq=1024),
    Case("1b-full-amp-adam8bit", "1b", "full", "", weights="fp32", amp=True, batch=2, seq=1024, optimizer="adamw8bit"),
    Case("1b-qlora-all-amp-gc", "1b", targets=ALL7, amp=True, gc=True, batch=4, seq=2048, quant="4bit"),
    Case("1b-lora-qv-8bit-amp", "1b", amp=True, batch=4, seq=1024, quant="8bit"),
    # 3B
    Case("3b-lora-all-bf16-gc", "3b", targets=ALL7, gc=True, batch=2, seq=4096),
    Case("3b-ia3-bf16-plain", "3b", "ia3", "k_proj,v_proj,down_proj", ia3_feedforward="down_proj", batch=4,
         seq=1024, loss="plain"),
    # 8B
    Case("8b-lora-qv-bf16", "8b", batch=1, seq=2048),
    Case("8b-qlora-all-gc-adam8bit", "8b", targets=ALL7, amp=True, gc=True, batch=4, seq=2048, quant="4bit",
         optimizer="adamw8bit"),
    Case("8b-lora-qkvo-bf16-gc", "8b", targets="q_proj,k_proj,v_proj,o_proj", gc=True, batch=8, seq=1024),
    # the seed's GPT-2 124M comparison, batch 8 x 1024
    Case("gpt2-full-fp32", "gpt2", "full", "", weights="fp32", batch=8, seq=1024, loss="plain"),
    Case("gpt2-lora16-fp32", "gpt2", targets="c_attn,c_proj", weights="fp32", batch=8, seq=1024, loss="plain"),
    Case("gpt2-lora16-8bit-adam8bit-gc", "gpt2", targets="c_attn,c_proj", amp=True, gc=True, batch=8, seq=1024,
         quant="8bit", optimizer="adamw8bit"),
    Case("gpt2-full-fp32-hf", "gpt2", "full", "", weights="fp32", batch=8, seq=1024, loss="hf"),
    # the first calibration file's shape, again, with each loss path
    Case("cal152m-lora16-qkvo-amp-hf", "cal152m", targets="q_proj,k_proj,v_proj,o_proj", weights="fp32", amp=True,
         batch=8, seq=1024, loss="hf"),
    Case("cal152m-lora16-qkvo-amp-chunked", "cal152m", targets="q_proj,k_proj,v_proj,o_proj", weights="fp32",
         amp=True, batch=8, seq=1024),
    # longer runs (without --quick)
    Case("0.5b-lora-qv-bf16-s4096", "0.5b", batch=2, seq=4096, quick=False),
    Case("1b-lora-all-amp-b1", "1b", targets=ALL7, weights="fp32", amp=True, batch=1, seq=4096, quick=False),
    Case("1b-adalora-all-bf16", "1b", "adalora", ALL7, r=12, batch=4, seq=1024, quick=False),
    Case("3b-full-bf16-adam8bit-gc", "3b", "full", "", gc=True, batch=2, seq=1024, optimizer="adamw8bit", quick=False),
    Case("3b-qlora-qv-8bit-gc", "3b", amp=True, gc=True, batch=8, seq=1024, quant="8bit", quick=False),
    Case("8b-lora-all-bf16-gc-s4096", "8b", targets=ALL7, gc=True, batch=2, seq=4096, quick=False),
    Case("gpt2-lora16-fp32-hf", "gpt2", targets="c_attn,c_proj", weights="fp32", batch=8, seq=1024, loss="hf",
         quick=False),
    # CPU dry runs
    Case("tiny-lora-qv", "tiny", batch=2, seq=32, weights="fp32", loss="plain", quick=False, tags=["cpu"]),
    Case("tiny-full-chunked", "tiny", "full", "", batch=2, seq=32, weights="fp32", quick=False, tags=["cpu"]),
    Case("tiny-adalora-gc", "tiny", "adalora", "q_proj,v_proj", r=4, gc=True, batch=2, seq=32, weights="fp32",
         quick=False, tags=["cpu"]),
    Case("tiny-ia3-hf", "tiny", "ia3", "v_proj,down_proj", ia3_feedforward="down_proj", batch=2, seq=32,
         weights="fp32", loss="hf", quick=False, tags=["cpu"]),
    Case("tiny-qlora-4bit-adam8bit", "tiny", batch=2, seq=32, quant="4bit", optimizer="adamw8bit", gc=True,
         quick=False, tags=["cpu"]),
    Case("tiny-lora-8bit", "tiny", batch=2, seq=32, quant="8bit", quick=False, tags=["cpu"]),
]


def versions() -> dict:
    import torch
    import transformers
    import peft

    out = {"torch": torch.__version__, "transformers": transformers.__version__, "peft": peft.__version__,
           "cuda": torch.version.cuda, "python": platform.python_version()}
    try:
        import bitsandbytes

        out["bitsandbytes"] = bitsandbytes.__version__
    except Exception:
        out["bitsandbytes"] = None
    return out


def nvml_used(index: int = 0) -> int | None:
    try:
        import pynvml

        pynvml.nvmlInit()
        try:
            return int(pynvml.nvmlDeviceGetMemoryInfo(pynvml.nvmlDeviceGetHandleByIndex(index)).used)
        finally:
            pynvml.nvmlShutdown()
    except Exception:
        return None


def quantize_linears(model, kind: str, compute_dtype):
    """Replace every block linear (Linear or GPT-2 Conv1D; not lm_head) by a bitsandbytes one."""
    import bitsandbytes as bnb
    import torch
    from transformers.pytorch_utils import Conv1D

    for parent_name, parent in list(model.named_modules()):
        for name, child in list(parent.named_children()):
            full = f"{parent_name}.{name}" if parent_name else name
            if full.endswith("lm_head") or not isinstance(child, (torch.nn.Linear, Conv1D)):
                continue
            w = child.weight.data.t() if isinstance(child, Conv1D) else child.weight.data
            out_f, in_f = w.shape
            bias = child.bias is not None
            if kind == "4bit":
                new = bnb.nn.Linear4bit(in_f, out_f, bias=bias, compute_dtype=compute_dtype,
                                        compress_statistics=True, quant_type="nf4", device="meta")
                new.weight = bnb.nn.Params4bit(w.contiguous(), requires_grad=False, compress_statistics=True,
                                               quant_type="nf4", module=new)._quantize(w.device)
            else:
                new = bnb.nn.Linear8bitLt(in_f, out_f, bias=bias, has_fp16_weights=False, threshold=6.0,
                                          device="meta")
                new.weight = bnb.nn.Int8Params(w.contiguous().to("cpu"), requires_grad=False,
                                               has_fp16_weights=False).to(w.device)
            if bias:
                new.bias = torch.nn.Parameter(child.bias.data.clone(), requires_grad=False)
            setattr(parent, name, new)
            del child, w
    setattr(model, "is_loaded_in_4bit" if kind == "4bit" else "is_loaded_in_8bit", True)
    gc.collect()
    torch.cuda.empty_cache()
    return model


def build(case: Case, device: str):
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    cfg = AutoConfig.for_model(**SHAPES[case.shape])
    cfg._attn_implementation = "sdpa"
    dtype = torch.bfloat16 if (case.weights == "bf16" or case.quant) else torch.float32
    torch.manual_seed(0)
    with torch.device(device):
        model = AutoModelForCausalLM.from_config(cfg, dtype=dtype)
    if case.quant:
        model = quantize_linears(model, case.quant, torch.bfloat16)
    return model, cfg


def wrap(model, case: Case, device: str):
    """The engine's treatment: freeze and adapt (or train everything), checkpointing, k-bit prep."""
    gc_kwargs = {"use_reentrant": False}
    if case.quant:
        from peft import prepare_model_for_kbit_training

        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=case.gc,
                                                gradient_checkpointing_kwargs=gc_kwargs)
    elif case.gc:
        if hasattr(model, "activation_checkpointing_enable"):   # transformers >= 5.2x
            model.activation_checkpointing_enable(activation_checkpointing_kwargs=gc_kwargs)
        else:
            model.gradient_checkpointing_enable(gradient_checkpointing_kwargs=gc_kwargs)
    if case.method == "full":
        for p in model.parameters():
            p.requires_grad_(True)
        return model
    from peft import AdaLoraConfig, IA3Config, LoraConfig, get_peft_model

    targets = case.targets.split(",")
    if case.method == "lora":
        pc = LoraConfig(r=case.r, lora_alpha=2 * case.r, lora_dropout=case.dropout, target_modules=targets,
                        task_type="CAUSAL_LM")
    elif case.method == "adalora":
        pc = AdaLoraConfig(init_r=case.r, target_r=max(1, case.r * 2 // 3), lora_alpha=32, lora_dropout=case.dropout,
                           target_modules=targets, total_step=100, task_type="CAUSAL_LM")
    else:
        pc = IA3Config(target_modules=targets, feedforward_modules=[t for t in case.ia3_feedforward.split(",") if t],
                       task_type="CAUSAL_LM")
    model = get_peft_model(model, pc)
    if case.gc and not case.quant:
        model.enable_input_require_grads()
    return model


def optimizer_for(model, case: Case, device: str):
    import torch

    params = [p for p in model.parameters() if p.requires_grad]
    if case.optimizer == "adamw8bit":
        # The engine's own 8-bit AdamW: embedding tables keep 32-bit state there.
        from aios_tui.engine.optim_bnb import build_adamw8bit

        return build_adamw8bit([{"params": params}], 1e-5, torch.device(device), model)
    return torch.optim.AdamW(params, lr=1e-5, fused=device == "cuda")


def loss_of(model, ids, case: Case):
    import torch.nn.functional as F

    if case.loss == "hf":
        out = model(input_ids=ids, labels=ids)
        return out.loss, out      # the output (and its logits) stays alive through backward
    try:
        from aios_tui.engine.loss import causal_lm_loss
    except ImportError:
        causal_lm_loss = None
    if causal_lm_loss is not None:
        loss, _ = causal_lm_loss(model, ids, ids, fused=case.loss == "chunked")
        return loss, None
    logits = model(input_ids=ids, use_cache=False).logits
    return F.cross_entropy(logits[:, :-1].float().reshape(-1, logits.shape[-1]), ids[:, 1:].reshape(-1)), None


def step(model, opt, ids, case: Case, device: str) -> float:
    import torch

    ctx = torch.autocast(device, dtype=torch.bfloat16) if case.amp else torch.autocast(device, enabled=False)
    with ctx:
        loss, keep = loss_of(model, ids, case)
    loss.backward()
    del keep
    opt.step()
    opt.zero_grad(set_to_none=True)
    return float(loss.detach())


def count(model) -> tuple[int, int]:
    seen, total, trainable = set(), 0, 0
    for p in model.parameters():
        if id(p) in seen:
            continue
        seen.add(id(p))
        n = p.numel() * (2 if type(p).__name__ == "Params4bit" else 1)
        total += n
        trainable += n if p.requires_grad else 0
    return total, trainable


def measure(case: Case, device: str, dry_run: bool, steps: int = 2) -> dict:
    import torch

    cuda = device == "cuda"
    if cuda:
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    t0 = time.perf_counter()
    model, cfg = build(case, device)
    model = wrap(model, case, device)
    model.train()
    total, trainable = count(model)
    mem_after_build = torch.cuda.memory_allocated() if cuda else None
    opt = optimizer_for(model, case, device)
    gen = torch.Generator(device="cpu").manual_seed(0)
    ids = torch.randint(0, cfg.vocab_size, (case.batch, case.seq), generator=gen).to(device)
    build_s = time.perf_counter() - t0
    last = step(model, opt, ids, case, device)            # warm-up: optimizer state exists after it
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    times = []
    for _ in range(1 if dry_run else steps):
        t = time.perf_counter()
        last = step(model, opt, ids, case, device)
        if cuda:
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t)
    row = {"name": case.name, "arch": case.shape, "model_config": SHAPES[case.shape], "method": case.method,
           "r": case.r if case.method in ("lora", "adalora") else 0, "targets": case.targets,
           "weights": case.weights, "autocast_bf16": case.amp, "grad_ckpt": case.gc, "batch": case.batch,
           "seq": case.seq, "loss": case.loss, "dropout": case.dropout if case.method in ("lora", "adalora") else 0.0,
           "quant": case.quant, "optimizer": case.optimizer, "paged": case.optimizer == "adamw8bit" and cuda,
           "ia3_feedforward": case.ia3_feedforward, "input_requires_grad": case.method == "full" or case.gc,
           "params_total": total, "params_trainable": trainable,
           "trainable_pct": round(100.0 * trainable / total, 4), "mem_after_build": mem_after_build,
           "step_s_median": sorted(times)[len(times) // 2], "build_s": build_s, "last_loss": last,
           "tokens_per_s": case.batch * case.seq / (sorted(times)[len(times) // 2] or 1e-9)}
    if cuda:
        row.update(peak_allocated=torch.cuda.max_memory_allocated(), peak_reserved=torch.cuda.max_memory_reserved(),
                   nvml_used=nvml_used(torch.cuda.current_device()), gpu=torch.cuda.get_device_name())
    del model, opt, ids
    gc.collect()
    if cuda:
        torch.cuda.empty_cache()
    return row


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="the short list (about 5 minutes on an H200)")
    ap.add_argument("--only", default="", help="comma-separated case names (see --list)")
    ap.add_argument("--list", action="store_true", help="list the cases and exit")
    ap.add_argument("--device", default="cuda", choices=("cuda", "cpu"))
    ap.add_argument("--dry-run", action="store_true",
                    help="build and step each case once without measuring (with --device cpu: the tiny cases)")
    ap.add_argument("--out", default="", help="JSONL file to append to (default: bench/calibration/<gpu>-<date>.jsonl)")
    ap.add_argument("--steps", type=int, default=2, help="measured steps after the warm-up")
    args = ap.parse_args(argv)
    warnings.filterwarnings("ignore", category=FutureWarning)
    warnings.filterwarnings("ignore", message=".*MatMul8bitLt.*")
    if args.list:
        for c in CASES:
            print(f"{c.name:34s} {'quick' if c.quick else '':5s} {', '.join(f'{k}={v}' for k, v in asdict(c).items() if k not in ('name', 'quick', 'tags'))}")
        return 0
    if args.only:
        wanted = args.only.split(",")
        unknown = [w for w in wanted if w not in {c.name for c in CASES}]
        if unknown:
            print(f"unknown case(s): {', '.join(unknown)}; see --list", file=sys.stderr)
            return 2
        cases = [c for c in CASES if c.name in wanted]
    elif args.device == "cpu":
        cases = [c for c in CASES if "cpu" in c.tags]
    else:
        cases = [c for c in CASES if (c.quick or not args.quick) and "cpu" not in c.tags]
    import torch

    if args.device == "cuda" and not torch.cuda.is_available():
        print("no CUDA device; use --device cpu --dry-run for a smoke run", file=sys.stderr)
        return 2
    out_path = args.out
    if not out_path and not args.dry_run:
        gpu = torch.cuda.get_device_name().split()[-1].lower() if args.device == "cuda" else "cpu"
        out_path = os.path.join(REPO, "bench", "calibration", f"{gpu}-{time.strftime('%Y%m%d')}.jsonl")
    meta = {**versions(), "command": " ".join([os.path.basename(sys.argv[0])] + (argv if argv is not None else sys.argv[1:])),
            "date": time.strftime("%Y-%m-%dT%H:%M:%S")}
    t_start = time.perf_counter()
    failures = 0
    for case in cases:
        try:
            row = measure(case, args.device, args.dry_run, args.steps)
        except torch.OutOfMemoryError as exc:
            row = {"name": case.name, "arch": case.shape, "oom": True, "error": str(exc).splitlines()[0]}
            gc.collect()
            torch.cuda.empty_cache()
        except Exception as exc:  # keep going: one broken case must not lose the others
            failures += 1
            row = {"name": case.name, "arch": case.shape, "error": f"{type(exc).__name__}: {exc}"[:500]}
        row.update(meta)
        line = json.dumps(row)
        if out_path:
            with open(out_path, "a", encoding="utf-8") as fh:
                fh.write(line + "\n")
        peak = row.get("peak_allocated")
        print(f"{case.name:34s} " + (f"peak {peak / 2**30:7.2f} GiB  reserved {row['peak_reserved'] / 2**30:7.2f} GiB"
                                     if peak else ("OOM" if row.get("oom") else row.get("error", "ok (dry run)")))
              + f"  [{time.perf_counter() - t_start:5.0f} s]", flush=True)
    if out_path:
        print(f"wrote {out_path}")
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
