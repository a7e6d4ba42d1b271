"""`aios-tui compare RUN RUN [RUN ...]`: runs side by side, with the settings that differ."""

from __future__ import annotations

import argparse
import textwrap
from typing import Any, Sequence

NAME_WIDTH = 20          # a longer run name is shortened to the part that tells it apart
MARKS = "•o+x*#@%abcdefghijklmnopqrstuvwxyz"  # one chart mark per run
SEPARATORS = "-_."


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "compare", help="compare runs side by side: losses, speed, memory and the settings that differ",
        description=textwrap.fill(
            "Sets two or more runs side by side: state, steps, final train loss (a mean over the last "
            "steps, one step's loss being noisy), best and last eval loss, median tokens/s, peak "
            "memory, wall time and trainable parameters; then the settings that differ between "
            "them as each last ran, and what each resume changed. Runs still training show their figures so far. Reads only the run directories.",
            78),
        epilog="examples:\n  aios-tui compare lora-lr1e-4 lora-lr3e-4 lora-lr1e-3\n"
               "  aios-tui compare artifacts/runs/a /data/runs/b --chart\n"
               "  aios-tui compare sweep-r8 sweep-r16 --json",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("runs", metavar="RUN", nargs="+",
                   help="run name (under the runs root, else among runs started from other directories) "
                        "or run directory; two or more")
    p.add_argument("--chart", action="store_true",
                   help="also chart the runs' train loss (and eval loss) over each other")
    p.add_argument("--json", action="store_true",
                   help="print a JSON list, one object per run (its figures and the settings that differ)")
    p.add_argument("--root", metavar="DIR", default=None,
                   help="runs root to look names up in (default $AIOS_TUI_RUNS or artifacts/runs)")
    p.set_defaults(func=run)


def _resolve(args: argparse.Namespace) -> list:
    import os
    from pathlib import Path

    from aios_tui.errors import UserError
    from aios_tui.metrics.summary import find_run

    if args.chart and args.json:
        raise UserError("--chart draws text for a terminal and --json prints data; give one of them")
    if args.chart and len(args.runs) > len(MARKS):
        raise UserError(f"--chart tells at most {len(MARKS)} runs apart; compare fewer runs at a time")
    if len(args.runs) < 2:
        raise UserError(f"{args.runs[0]}: give two or more runs to compare")
    if args.root is not None and not Path(args.root).expanduser().is_dir():
        exists = Path(args.root).expanduser().exists()
        raise UserError(f"--root {args.root}: {'not a directory' if exists else 'no such directory'}")
    runs, seen = [], {}
    for arg in args.runs:
        run = find_run(arg, args.root)
        real = os.path.realpath(run.path)
        if real in seen:
            raise UserError(f"{seen[real]} and {arg} are the same run ({run.path}); give each run once")
        seen[real] = arg
        runs.append(run)
    return runs


def run(args: argparse.Namespace) -> int:
    import json

    from aios_tui.metrics.compare import read_figures

    runs = _resolve(args)
    figs = [read_figures(r) for r in runs]
    if args.json:
        print(json.dumps(json_report(figs), indent=2))
        return 0
    import shutil

    width = shutil.get_terminal_size((80, 24)).columns
    print("\n".join(report_lines(figs, width)))
    if args.chart:
        print()
        print("\n".join(chart_lines(figs, min(width, 120))))
    return 0


# -- names -------------------------------------------------------------------------------

def _word_break(name: str, i: int) -> bool:
    """Whether ``name`` may be cut at its separator ``i``: not inside a number (``1e-3``)."""
    if name[i] not in SEPARATORS:
        return False
    exponent = name[i] == "-" and 2 <= i < len(name) - 1 and name[i - 1] in "eE"
    return not (exponent and name[i - 2].isdigit() and name[i + 1].isdigit())


def _shared_ends(names: Sequence[str]) -> tuple[int, int]:
    """How long a prefix and suffix every name shares, each ending between words."""
    import os

    if len(set(names)) < 2:
        return 0, 0
    first = names[0]
    prefix = len(os.path.commonprefix(list(names)))
    suffix = len(os.path.commonprefix([n[::-1] for n in names]))
    head = max((i + 1 for i in range(prefix) if _word_break(first, i)), default=0)
    tail = max((len(first) - i for i in range(len(first) - suffix, len(first)) if _word_break(first, i)),
               default=0)
    return head, tail


def short_names(names: Sequence[str], width: int = NAME_WIDTH) -> list[str]:
    """``names``, each at most ``width`` long, keeping what tells them apart: the prefix and
    suffix the long ones share go first (``lora-20250101-120000`` beside ``lora-20250101-130500``
    is ``…120000``), then the middle of what is left."""
    if all(len(n) <= width for n in names) and len(set(names)) == len(names):
        return list(names)
    # what the names to shorten share: a short name beside them (``flat``) keeps its own
    head, tail = _shared_ends([n for n in names if len(n) > width])
    out = []
    for name in names:
        if len(name) <= width:
            out.append(name)
            continue
        core = name[head:len(name) - tail if tail else len(name)]
        text = ("…" if head else "") + core + ("…" if tail else "")
        if len(text) > width:
            keep = width - 1  # more of the end: a sweep's names tell themselves apart there
            text = text[:keep // 3] + "…" + text[len(text) - (keep - keep // 3):]
        out.append(text)
    alike = [out.count(text) > 1 for text in out]  # counted before any is numbered
    for i, text in enumerate(out):  # still alike (one name in two places): number them
        if alike[i]:
            out[i] = f"{text[:width - 3]}#{i + 1}"
    return out


# -- the table ---------------------------------------------------------------------------

def _loss(v: float | None) -> str:
    return "-" if v is None else f"{v:.4f}"


def _cells(figs: Sequence[Any]) -> tuple[list[str], list[list[str]]]:
    """Row labels, and for each run its cells in that order."""
    from aios_tui.metrics.compare import best_eval_runs
    from aios_tui.metrics.fmt import human_bytes, human_count, human_duration

    best = best_eval_runs(figs)
    kinds = {f.peak_memory_kind for f in figs if f.peak_memory_kind}
    labels = ["state", "steps", "final loss", "best eval", "last eval", "tokens/s", "peak memory",
              "wall time", "trainable"]
    columns = []
    for i, f in enumerate(figs):
        steps = "-" if f.step is None else (f"{f.step}/{f.total_steps}" if f.total_steps else str(f.step))
        best_eval = "-" if f.best_eval_loss is None else f"{f.best_eval_loss:.4f} @{f.best_eval_step}"
        if i in best:
            best_eval += " *"
        last_eval = "-" if f.last_eval_loss is None else f"{f.last_eval_loss:.4f} @{f.last_eval_step}"
        memory = human_bytes(f.peak_memory_bytes)
        if len(kinds) > 1 and f.peak_memory_kind:  # a GPU's peak beside a CPU's resident size
            memory += f" {f.peak_memory_kind}"
        columns.append([f.state, steps, _loss(f.final_loss), best_eval, last_eval,
                        human_count(f.tokens_per_s_median), memory, human_duration(f.wall_s),
                        "-" if f.trainable_pct is None else f"{f.trainable_pct:.2f}%"])
    return labels, columns


def _grid(rows: list[list[str]]) -> list[str]:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows]


def table_lines(figs: Sequence[Any], width: int = 80) -> list[str]:
    """One column per run where they fit ``width``; else one row per run where that fits;
    else columns, as many runs at a time as fit."""
    names = short_names([f.name for f in figs])
    labels, columns = _cells(figs)
    by_column = _grid([["", *names], *([label, *(c[i] for c in columns)] for i, label in enumerate(labels))])
    if max(map(len, by_column)) <= width:
        return by_column
    by_row = _grid([["run", *labels], *([n, *c] for n, c in zip(names, columns))])
    if max(map(len, by_row)) <= width:
        return by_row
    label_w = max(map(len, labels)) + 2
    run_w = max(len(x) for c in [names, *columns] for x in c) + 2
    per_block = max(1, (width - label_w) // run_w)
    out: list[str] = []
    for start in range(0, len(figs), per_block):
        if out:
            out.append("")
        part = slice(start, start + per_block)
        out += _grid([["", *names[part]],
                      *([label, *(c[i] for c in columns[part])] for i, label in enumerate(labels))])
    return out


def _shown(value: Any) -> str:
    if value is None:
        return "?"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, str):
        return value if value else '""'
    return str(value)


def _setting_shown(key: str, value: Any, config: dict[str, Any] | None) -> str:
    """``value`` as a cell; lr 0 (each method's own default) with the rate the run trained at."""
    if key == "lr" and value == 0 and config is not None:
        from aios_tui.config.schema import PeftConfig, TrainConfig

        peft = PeftConfig(use_peft=bool(config.get("use_peft")), peft_method=str(config.get("peft_method")))
        return f"auto ({TrainConfig(lr=0.0).effective_lr(peft):g})"
    return _shown(value)


def report_lines(figs: Sequence[Any], width: int = 80) -> list[str]:
    from aios_tui.metrics.compare import FINAL_RULE, differing_settings

    lines = table_lines(figs, width)
    lines.append("")
    lines.append(f"{FINAL_RULE}; * best eval loss")
    differ, same = differing_settings(figs)
    unknown = [f.name for f in figs if f.config is None]
    if differ:
        lines.append("")
        lines.append("settings that differ (" + " | ".join(short_names([f.name for f in figs])) + "):")
        key_w = max(map(len, differ))
        for key, values in differ.items():
            lines.append(f"  {key + ':':<{key_w + 1}} "
                         + " | ".join(_setting_shown(key, v, f.config) for v, f in zip(values, figs)))
    elif len(unknown) < len(figs) - 1:
        lines.append("no settings differ")
    if len(unknown) < len(figs):
        lines.append(f"{same} setting{'s' if same != 1 else ''} identical")
    if unknown:
        lines.append(f"settings unknown for {', '.join(unknown)} (no config in its metrics or config.toml)")
    resumed = [(n, f) for n, f in zip(short_names([f.name for f in figs]), figs) if f.resume_changes]
    if resumed:
        lines.append("")
        lines.append("changed on resume (the settings above are as each run last ran):")
        for name, f in resumed:
            for step, changes in f.resume_changes:
                lines.append(f"  {name} at step {'?' if step is None else step}: " + ", ".join(changes))
    return lines


# -- chart and JSON ----------------------------------------------------------------------

def chart_lines(figs: Sequence[Any], width: int = 80) -> list[str]:
    from aios_tui.metrics.chart import line_chart

    names = short_names([f.name for f in figs])
    lines = ["train loss"]
    lines += line_chart({n: f.loss for n, f in zip(names, figs)}, width=width, height=12, marks=MARKS)
    if any(f.eval_loss for f in figs):
        lines += ["", "eval loss"]
        lines += line_chart({n: f.eval_loss for n, f in zip(names, figs)}, width=width, height=8,
                            marks=MARKS)
    return lines


def json_report(figs: Sequence[Any]) -> list[dict[str, Any]]:
    from aios_tui.metrics.compare import FINAL_MAX_LINES, FINAL_SHARE, best_eval_runs, differing_settings

    differ, _ = differing_settings(figs)
    best = best_eval_runs(figs)
    out = []
    for i, f in enumerate(figs):
        out.append({
            "name": f.name, "path": f.path, "state": f.state, "step": f.step, "total_steps": f.total_steps,
            "final_loss": f.final_loss, "final_loss_lines": f.final_loss_lines,
            "final_loss_rule": {"share_of_steps": FINAL_SHARE, "max_lines": FINAL_MAX_LINES},
            "best_eval_loss": f.best_eval_loss, "best_eval_step": f.best_eval_step,
            "best_eval_of_all": i in best,
            "last_eval_loss": f.last_eval_loss, "last_eval_step": f.last_eval_step,
            "tokens_per_s_median": f.tokens_per_s_median,
            "peak_memory_bytes": f.peak_memory_bytes, "peak_memory_kind": f.peak_memory_kind,
            "wall_s": f.wall_s, "trainable_pct": f.trainable_pct,
            "settings": None if f.config is None else {k: v[i] for k, v in differ.items()},
            "resume_changes": [{"step": step, "changes": changes} for step, changes in f.resume_changes],
        })
    return out
