"""`aios-tui generate`: sample text from a trained run (or an exported model)."""

from __future__ import annotations

import argparse
import math

from aios_tui.config import ConfigError


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("generate", help="sample text from a trained run",
                       description="Loads the base model with the run's adapter (latest checkpoint "
                                   "unless --checkpoint) and prints the prompt and its continuation. "
                                   "Also takes a directory written by `aios-tui export`.")
    p.add_argument("run_dir", metavar="RUN_DIR", help="a run directory or run name, an exported adapter or a model directory")
    p.add_argument("--prompt", required=True, metavar="TEXT", help="the text to continue")
    p.add_argument("--chat", action="store_true",
                   help="ask --prompt as one user turn of the model's chat template and print the "
                        "answer alone (for a run trained on chat records)")
    p.add_argument("--max-new-tokens", type=int, default=64, metavar="N", help="tokens to sample (default: 64)")
    p.add_argument("--temperature", type=float, default=0.8, metavar="T",
                   help="sampling temperature; 0 picks the likeliest token every time (default: 0.8)")
    p.add_argument("--top-k", type=int, default=50, metavar="K",
                   help="sample among the K likeliest tokens; 0: all (default: 50)")
    p.add_argument("--seed", type=int, default=0, metavar="S", help="sampling seed (default: 0)")
    p.add_argument("--checkpoint", type=int, default=None, metavar="STEP", help="use this step's checkpoint")
    p.add_argument("--device", choices=("auto", "cuda", "cpu"), default="auto", help="where to run (default: auto)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from aios_tui.commands.arguments import run_path

    args.run_dir = run_path(args.run_dir, "run or model directory")
    problems = []
    if args.max_new_tokens < 1:
        problems.append(f"--max-new-tokens: {args.max_new_tokens} is out of range; valid: at least 1")
    if not math.isfinite(args.temperature) or args.temperature < 0:
        problems.append(f"--temperature: {args.temperature} is out of range; valid: 0 or more")
    if args.top_k < 0:
        problems.append(f"--top-k: {args.top_k} is out of range; valid: 0 or more")
    if args.device == "cuda":
        import torch

        # Said here, under the flag the user gave; the engine's own check names train.device.
        if not torch.cuda.is_available():
            problems.append("--device: cuda was asked for but no CUDA GPU is visible to torch; "
                            "use --device cpu or auto")
    if problems:
        raise ConfigError(problems)

    from aios_tui.engine.generate import generate

    text = generate(args.run_dir, args.prompt, max_new_tokens=args.max_new_tokens,
                    temperature=args.temperature, top_k=args.top_k, seed=args.seed,
                    step=args.checkpoint, device=args.device, chat=args.chat)
    print(text if args.chat else args.prompt + text)
    if not text:
        import sys

        print("note: the model ended the text at once (end of sequence); try another --seed, "
              "--temperature 0, or a prompt like the training data", file=sys.stderr)
    return 0
