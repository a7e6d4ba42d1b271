"""`aios-tui eval`: score a run's checkpoints (loss and perplexity) on held-out data."""

from __future__ import annotations

import argparse
import json
import math
import sys
import textwrap

from aios_tui.errors import UserError

EPILOG = """\
examples:
  aios-tui eval NAME                              # latest checkpoint, the run's eval split
  aios-tui eval NAME --dataset-file test.jsonl    # on a held-out file
  aios-tui eval NAME --all-checkpoints --base     # which checkpoint to export; the base too
  aios-tui eval NAME --checkpoint 200 --json      # one object per row"""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("eval", help="score a run's checkpoints (loss, perplexity) on held-out data",
                       formatter_class=argparse.RawDescriptionHelpFormatter, epilog=EPILOG,
                       description=textwrap.fill(
                           "Loads the base model with the run's adapter (or its fully trained weights) and "
                           "prints the mean loss per target token and the perplexity on text packed with the "
                           "run's own tokenizer and max_seq_len. Without --dataset-file it scores the run's "
                           "eval split, the very blocks training evaluated, so a checkpoint's loss is the "
                           "eval_loss the run logged at its step.", 78))
    p.add_argument("run_dir", metavar="RUN_DIR", help="the run directory or run name")
    p.add_argument("--dataset-file", metavar="PATH", default=None,
                   help="score every block of this file (text or JSONL, as training reads it; "
                        "hf://datasets/OWNER/NAME/FILE too) instead of the run's eval split")
    which = p.add_mutually_exclusive_group()
    which.add_argument("--checkpoint", metavar="STEP", type=int, default=None,
                       help="score this step's checkpoint instead of the latest")
    which.add_argument("--all-checkpoints", action="store_true",
                       help="score every kept checkpoint, the base model loaded once, and mark the best")
    p.add_argument("--base", action="store_true",
                   help="add a row for the base model without the adapter (adapter runs only)")
    p.add_argument("--max-batches", metavar="N", type=int, default=None,
                   help="score at most N micro-batches (default: the eval split as training scored it, "
                        "its eval_batches; all of a --dataset-file)")
    p.add_argument("--batch-size", metavar="N", type=int, default=None,
                   help="blocks per micro-batch (default: the run's batch_size); the loss is the same, "
                        "memory and speed are not")
    p.add_argument("--device", choices=("auto", "cuda", "cpu"), default="auto", help="where to run (default: auto)")
    p.add_argument("--json", action="store_true",
                   help="print one JSON object per row (step, loss, perplexity, tokens, best) instead of a table")
    p.set_defaults(func=run)


def _check(args: argparse.Namespace) -> None:
    from aios_tui.commands.arguments import device_problem

    problems = []
    if args.max_batches is not None and args.max_batches < 1:
        problems.append(f"--max-batches: {args.max_batches} is out of range; valid: at least 1")
    if args.batch_size is not None and args.batch_size < 1:
        problems.append(f"--batch-size: {args.batch_size} is out of range; valid: at least 1")
    if args.checkpoint is not None and args.checkpoint < 0:
        problems.append(f"--checkpoint: {args.checkpoint} is not a step; give one of the run's checkpoint steps")
    if args.dataset_file is not None:
        problem = _dataset_problem(args.dataset_file)
        if problem:
            problems.append(problem)
    problem = device_problem(args.device)
    if problem:
        problems.append(problem)
    if problems:
        raise UserError(problems)


def _dataset_problem(name: str) -> str | None:
    from aios_tui.data import dataset_path, path_problem

    if not name.strip():
        return "--dataset-file: give a file name"
    try:
        path = dataset_path(name)
    except UserError as exc:
        return "; ".join(exc.problems)
    problem = path_problem(path)
    return f"--dataset-file {name}: {problem}" if problem else None


def _number(x: float) -> float | None:
    return x if math.isfinite(x) else None  # JSON has no infinity


def run(args: argparse.Namespace) -> int:
    from aios_tui.commands.arguments import run_path

    args.run_dir = run_path(args.run_dir)
    _check(args)
    from aios_tui.engine import evaluate as ev
    from aios_tui.engine.progress import Progress

    plan = ev.plan(args.run_dir, step=args.checkpoint, all_checkpoints=args.all_checkpoints, base=args.base)
    progress = Progress("auto", stream=sys.stderr, unit="batch", rate=False)

    def said(found) -> None:
        print(f"scoring {found.what}: {found.n_blocks} block(s) of {found.ids.shape[1]} tokens, "
              f"{found.targets():,} target tokens, {found.n_batches} batch(es) of {found.batch_size}",
              file=sys.stderr, flush=True)

    try:
        scores = ev.evaluate(plan, dataset_file=args.dataset_file, max_batches=args.max_batches,
                             batch_size=args.batch_size, device=args.device, progress=progress, on_blocks=said)
    finally:
        progress.close()
    top = ev.best(scores) if len(scores) > 1 else None
    if args.json:
        for s in scores:
            print(json.dumps({"step": s.step, "base": s.step is None, "loss": _number(s.loss),
                              "perplexity": _number(s.perplexity), "tokens": s.tokens,
                              "best": s is top, "checkpoint": s.checkpoint}), flush=True)
        return 0
    rows = [("base" if s.step is None else str(s.step), f"{s.loss:.4f}", f"{s.perplexity:.2f}",
             "best" if s is top else "") for s in scores]
    widths = [max(len(r[i]) for r in [("STEP", "LOSS", "PPL", ""), *rows]) for i in range(3)]
    for step, loss, ppl, mark in [("STEP", "LOSS", "PPL", ""), *rows]:
        print(f"{step:<{widths[0]}}  {loss:>{widths[1]}}  {ppl:>{widths[2]}}" + (f"  {mark}" if mark else ""))
    return 0
