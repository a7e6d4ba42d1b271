"""`aios-tui export`: write a run's adapter, or a merged model, to a directory."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("export", help="export a run's adapter or a merged model",
                       description="Writes the adapter of a run's latest (or chosen) checkpoint in "
                                   "peft's format, loadable with PeftModel.from_pretrained; with "
                                   "--merge, a full model with the adapter folded in, loadable with "
                                   "AutoModelForCausalLM.from_pretrained. A fully fine-tuned run "
                                   "always exports its model. The tokenizer is written alongside.")
    p.add_argument("run_dir", metavar="RUN_DIR", help="the run directory or run name (or an HRM ACTv1 brain bundle)")
    p.add_argument("--merge", action="store_true", help="fold the adapter into the base weights")
    p.add_argument("--out", metavar="DIR", default=None,
                   help="where to write (default: RUN_DIR/adapter, or RUN_DIR/merged with --merge; "
                        "an older --checkpoint N goes beside it, to adapter-step-NNNNNN or merged-step-NNNNNN); "
                        "an earlier export there is replaced")
    p.add_argument("--checkpoint", metavar="STEP", type=int, default=None,
                   help="export this step's checkpoint instead of the latest")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from aios_tui.commands.arguments import run_path

    args.run_dir = run_path(args.run_dir)
    if (Path(args.run_dir).expanduser() / "brain.json").exists():
        return _export_bundle(args)
    from aios_tui.engine.export import export_run

    out, kind = export_run(args.run_dir, args.out, merge=args.merge, step=args.checkpoint)
    if "hrm" in str(_record(out).get("task", "")):
        # transformers does not know the HRM architecture; this package loads it.
        print(f"{'adapter' if kind == 'adapter' else 'model'} written to {out}")
        print(f"use it with: aios-tui generate {out} --prompt TEXT  (HRM ACTv1 loads through "
              "aios-tui; `aios-tui train-actv1` writes a brain bundle)")
    elif kind == "adapter":
        print(f"adapter written to {out}")
        print("load it with: PeftModel.from_pretrained(base_model, "
              f"'{out}')  (base: see base_model_name_or_path in its adapter_config.json)")
    else:
        print(f"model written to {out}")
        print(f"load it with: AutoModelForCausalLM.from_pretrained('{out}')")
    note = _note(out)
    if note:
        print(f"note: {note}")
    return 0


def _record(out: Path) -> dict:
    import json

    try:
        record = json.loads((Path(out) / "export.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return record if isinstance(record, dict) else {}


def _note(out: Path) -> str | None:
    """What export.json says the user should know (e.g. a merge into a de-quantized base)."""
    return _record(out).get("note")


def _export_bundle(args: argparse.Namespace) -> int:
    """An HRM ACTv1 brain bundle: its adapter, or a new bundle with the adapter merged in."""
    from aios_tui.errors import UserError

    if args.checkpoint is not None:
        raise UserError("--checkpoint: a brain bundle holds one set of weights; export a run "
                        "directory to choose a checkpoint")
    from aios_tui.engine.export import check_parent
    from aios_tui.engine.hrm.bundle import export_bundle

    if args.out:
        check_parent(Path(args.out).expanduser().resolve())
    try:
        out, kind = export_bundle(args.run_dir, args.out, merge=args.merge)
    except OSError as exc:
        where = f"--out {args.out}" if args.out else args.run_dir
        raise UserError(f"{where}: cannot write the export ({exc.strerror or exc})") from None
    print(f"{'merged brain bundle' if kind == 'bundle' else 'adapter'} written to {out}")
    print(f"use it with: aios-tui generate {out} --prompt TEXT"
          + (f", or train it further with: aios-tui train-actv1 --student-init {out}" if kind == "bundle" else ""))
    return 0
