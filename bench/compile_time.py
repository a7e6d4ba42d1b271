#!/usr/bin/env python3
"""How long the first training step waits for torch.compile: the whole decoder against each
decoder block compiled on its own (what ``train.torch_compile`` does).

    python3 bench/compile_time.py                   # 12-layer small Llama with LoRA, on the CPU
    python3 bench/compile_time.py --layers 32 --device cuda --hidden 1024

Each mode runs in a fresh process with an empty inductor cache, so neither reuses the other's
compiled code. Printed per mode: the first step (compilation included), the mean of the next
steps, and the graphs dynamo captured. The loss of every step must agree between the modes.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time


def child(args: argparse.Namespace) -> dict:
    import torch
    from peft import LoraConfig, get_peft_model
    from torch._dynamo.utils import counters
    from transformers import LlamaConfig, LlamaForCausalLM

    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
    from aios_tui.engine.task import compile_blocks

    device = torch.device(args.device)
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=512, hidden_size=args.hidden, intermediate_size=2 * args.hidden,
                         num_hidden_layers=args.layers, num_attention_heads=4, num_key_value_heads=2)
    model = get_peft_model(LlamaForCausalLM(config), LoraConfig(r=8, lora_dropout=0.0,
                                                                target_modules=["q_proj", "v_proj", "down_proj"]))
    model.to(device).train()
    decoder = model.get_base_model().model
    if args.child == "whole":
        decoder.compile()
    elif args.child == "blocks":
        compile_blocks(decoder, like=model)
    ids = torch.randint(0, 512, (2, args.seq), generator=torch.Generator().manual_seed(1)).to(device)
    times, losses = [], []
    for _ in range(args.steps):
        t0 = time.perf_counter()
        loss = decoder(input_ids=ids, use_cache=False).last_hidden_state.float().pow(2).mean()
        loss.backward()
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
        losses.append(loss.item())
    return {"mode": args.child, "first_s": times[0], "next_s": sum(times[1:]) / max(1, len(times) - 1),
            "graphs": counters["stats"]["unique_graphs"], "losses": losses}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--layers", type=int, default=12, help="decoder layers (default 12)")
    ap.add_argument("--hidden", type=int, default=64, help="hidden size, 4 heads (default 64)")
    ap.add_argument("--seq", type=int, default=64, help="sequence length, batch 2 (default 64)")
    ap.add_argument("--steps", type=int, default=4, help="steps per mode; the first is timed alone (default 4)")
    ap.add_argument("--device", default="cpu", choices=("cpu", "cuda"), help="default cpu")
    ap.add_argument("--child", choices=("eager", "whole", "blocks"), help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.steps < 2:
        ap.error("--steps must be at least 2")
    if args.device == "cuda" and not args.child:
        import torch

        if not torch.cuda.is_available():
            ap.error("--device cuda: no CUDA device here")
    if args.child:
        print(json.dumps(child(args)))
        return 0
    rows = []
    for mode in ("eager", "whole", "blocks"):
        with tempfile.TemporaryDirectory() as cache:
            proc = subprocess.run([sys.executable, __file__, "--child", mode, "--layers", str(args.layers),
                                   "--hidden", str(args.hidden), "--seq", str(args.seq), "--steps", str(args.steps),
                                   "--device", args.device],
                                  capture_output=True, text=True, env={**os.environ, "TORCHINDUCTOR_CACHE_DIR": cache})
        if proc.returncode != 0:
            print(f"{mode}: failed\n{proc.stderr[-2000:]}", file=sys.stderr)
            return 1
        rows.append(json.loads(proc.stdout.strip().splitlines()[-1]))
    print(f"{args.layers} layers, hidden {args.hidden}, batch 2 x {args.seq}, LoRA r=8 q,v,down, {args.device}")
    print(f"{'mode':8s} {'first step':>11s} {'next steps':>11s} {'graphs':>7s}  max |loss - eager|")
    for r in rows:
        diff = max(abs(a - b) for a, b in zip(r["losses"], rows[0]["losses"]))
        print(f"{r['mode']:8s} {r['first_s']:10.1f}s {r['next_s'] * 1000:9.1f}ms {r['graphs']:7d}  {diff:.2e}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
