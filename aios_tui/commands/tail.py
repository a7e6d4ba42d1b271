"""`aios-tui tail RUN|metrics.jsonl`: a run's metrics in a plain shell, one line per step."""

from __future__ import annotations

import argparse
import textwrap


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "tail", help="print a run's metrics, one line per logged step (optionally following it)",
        description=textwrap.fill("Prints a header (method, trainable parameters), then one compact line per "
                    "logged step: loss, eval loss, learning rate, tokens/s, memory, ETA; events "
                    "(checkpoint, stopped, finished, error...) are highlighted. Only the end of "
                    "the file is read, however long it is; a half-written last line is skipped. Of a "
                    "file several runs share (--log-file), a run shows its own lines, and the file "
                    "shows each run's header line where that run's lines begin.", 78),
        epilog="examples:\n  aios-tui tail artifacts/runs/lora-1 --follow\n"
               "  aios-tui tail metrics.jsonl -n 50 --every 10 --chart\n\n"
               "With --follow the exit status is 1 when the run ends in failure, else 0.",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("target", metavar="RUN_DIR|metrics.jsonl",
                   help="a run directory, a run name under the runs root, or a metrics JSONL file")
    p.add_argument("-f", "--follow", action="store_true",
                   help="keep printing new lines until the run is finished, stopped or failed (or Ctrl-C)")
    p.add_argument("-n", "--lines", type=int, default=20, metavar="N",
                   help="lines (steps and events) to show from the end before following (default 20; 0: none)")
    p.add_argument("--every", type=int, default=1, metavar="N",
                   help="show only every Nth step (eval steps and events always show)")
    p.add_argument("--chart", action="store_true",
                   help="draw a loss chart (train and eval) of the whole run at the end, Ctrl-C of --follow included")
    # default None: an --interval without --follow (nothing to wait for) is refused
    p.add_argument("--interval", type=float, default=None, metavar="S",
                   help="seconds between checks with --follow (default 0.5)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from aios_tui.commands.arguments import interval_problem
    from aios_tui.errors import UserError
    from aios_tui.metrics.tailer import tail_command

    if args.interval is not None and not args.follow:
        raise UserError(f"--interval {args.interval:g}: it sets how often --follow checks for new lines, "
                        "and without --follow there is nothing to wait for; add --follow or drop --interval")
    if args.interval is None:
        args.interval = 0.5
    problem = interval_problem(args.interval)
    if problem:
        raise UserError(problem)
    return tail_command(args.target, follow=args.follow, lines=args.lines, every=args.every,
                        chart=args.chart, interval=args.interval)
