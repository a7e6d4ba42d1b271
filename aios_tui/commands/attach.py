"""`aios-tui attach [RUN]`: open the console on a run's live view."""

from __future__ import annotations

import argparse
import textwrap


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "attach", help="open the console on a run (default: the newest run still training)",
        description=textwrap.fill("Opens the console on the live view of RUN: progress, loss, memory and events "
                    "read from its run directory. Works for runs started by another console, "
                    "by `aios-tui train --detach`, or before an SSH session dropped. Without RUN: "
                    "the newest run still training under the runs root, else the newest still training "
                    "in any directory, else the one most recently started from any directory.", 78),
        epilog="examples:\n  aios-tui attach\n  aios-tui attach lora-20250101-120000\n"
               "  aios-tui attach artifacts/runs/my-run",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run", nargs="?", metavar="RUN",
                   help="run name (under the runs root, $AIOS_TUI_RUNS or artifacts/runs, else among "
                        "runs started from other directories) or a run directory")
    p.add_argument("--simulate-gpu", action="store_true", help="show a simulated GPU (labelled) for demos")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from aios_tui.metrics.summary import find_run

    target = find_run(args.run)
    from aios_tui.commands.console import launch
    return launch(attach=target.path, simulate_gpu=args.simulate_gpu)
