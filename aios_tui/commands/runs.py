"""`aios-tui runs`: the runs under the runs root; stopping or deleting them."""

from __future__ import annotations

import argparse
import textwrap
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("runs", help="list runs (state, step, loss, age, size), stop or delete them",
                       description=textwrap.fill(
                           "Lists the run directories under the runs root ($AIOS_TUI_RUNS, default "
                           "artifacts/runs), newest first, then the runs started from other "
                           "directories that still exist (noted in $XDG_STATE_HOME/aios-tui/recent-runs), "
                           "under the directory each is in. With --root, only the runs under that "
                           "directory.", 78),
                       epilog="examples:\n  aios-tui runs\n  aios-tui runs --json\n"
                              "  aios-tui runs stop lora-20250101-120000\n"
                              "  aios-tui runs delete lora-20250101-120000 full-20250102-090000",
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--json", action="store_true", help="print a JSON list instead of a table")
    p.add_argument("--root", metavar="DIR", default=None,
                   help="list only the runs under DIR (default: $AIOS_TUI_RUNS or artifacts/runs, "
                        "then the runs started from other directories)")
    p.set_defaults(func=run_list)
    rsub = p.add_subparsers(dest="runs_command", metavar="[list|stop|delete]", required=False)
    lst = rsub.add_parser("list", help="list runs (the default)")
    # SUPPRESS: `runs --json list` and `runs list --json` both work.
    lst.add_argument("--json", action="store_true", default=argparse.SUPPRESS,
                     help="print a JSON list instead of a table")
    lst.add_argument("--root", metavar="DIR", default=argparse.SUPPRESS, help="list only the runs under DIR")
    lst.set_defaults(func=run_list)
    stop = rsub.add_parser("stop", help="ask a run to save a checkpoint and stop",
                           description="Creates the run's STOP file; the engine finishes the current "
                                       "step, saves a checkpoint and exits. Resume it later with "
                                       "`aios-tui train --resume RUN_DIR`. A run still loading its "
                                       "model has no new step to save: it stops at the checkpoint it "
                                       "resumes from, or with none if it is new.")
    stop.add_argument("run", metavar="RUN", help="run name (under the runs root, else among runs "
                      "started from other directories) or run directory")
    stop.add_argument("--root", metavar="DIR", default=argparse.SUPPRESS, help="runs root to look in")
    stop.set_defaults(func=run_stop)
    delete = rsub.add_parser(
        "delete", help="delete runs and their checkpoints (asks first)",
        description=textwrap.fill("Deletes each run's directory: config, metrics, checkpoints and "
                                  "exports inside it. A run still training is refused (stop it first); "
                                  "with several runs, none is deleted if any is refused. On a terminal "
                                  "it asks once, naming each run's size and checkpoints; elsewhere "
                                  "pass --yes.", 78),
        epilog="examples:\n  aios-tui runs delete lora-20250101-120000\n"
               "  aios-tui runs delete --yes lora-20250101-120000 /data/old-runs/full-20241201-080000",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    delete.add_argument("runs", metavar="RUN", nargs="+", help="run name (as for `runs stop`) or run directory")
    delete.add_argument("-y", "--yes", action="store_true", help="delete without asking")
    delete.add_argument("--root", metavar="DIR", default=argparse.SUPPRESS, help="runs root to look in")
    delete.set_defaults(func=run_delete)


def _table(rows: list[tuple[str, ...]], fit: int = 80) -> list[str]:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    # long names (an HRM run's generated one) with a long run's step: one space apart still fits
    gap = "  " if sum(widths) + 2 * (len(widths) - 1) <= fit else " "
    return [gap.join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows]


def _check_root(root: str | None) -> None:
    from aios_tui.errors import UserError

    path = Path(root).expanduser() if root else None
    if path is not None and not path.is_dir():
        raise UserError(f"--root {root}: {'not a directory' if path.exists() else 'no such directory'}")
    if path is None:
        # The default root may not exist yet (no run so far), but a file there is a mistake.
        import os

        from aios_tui.metrics.rundir import default_runs_root

        default = default_runs_root().expanduser()
        if default.exists() and not default.is_dir():
            where = "AIOS_TUI_RUNS" if os.environ.get("AIOS_TUI_RUNS") else "the runs root"
            raise UserError(f"{where} {default}: not a directory")


def run_list(args: argparse.Namespace) -> int:
    import json
    import os
    import time

    from aios_tui.metrics.summary import summarize_all

    _check_root(args.root)
    now = time.time()
    # a root named on purpose is the only place looked in, as for every command
    runs = summarize_all(args.root, elsewhere=args.root is None)
    if args.json:
        print(json.dumps([r.to_dict(now) for r in runs], indent=2))
        return 0
    if not runs:
        from aios_tui.metrics.summary import runs_root_shown

        print(f"no runs under {runs_root_shown(args.root)}")
        return 0
    if runs[0].elsewhere:
        from aios_tui.metrics.rundir import default_runs_root

        print(f"no runs under {default_runs_root().absolute()}; runs started from other directories:")
    rows = [("NAME", "STATE", "STEP", "LOSS", "AGE", "SIZE", "METHOD")]
    rows += [(r.name, *r.cells(now)) for r in runs]
    lines = _table(rows)
    # A run's path is too wide for a column at 80: runs from elsewhere come under their directory.
    out, place = lines[:1], None
    for r, line in zip(runs, lines[1:]):
        if r.elsewhere and os.path.dirname(r.path) != place:
            place = os.path.dirname(r.path)
            out += ([""] if len(out) > 1 else []) + [f"in {place}:"]
        out.append(line)
    print("\n".join(out))
    return 0


def run_stop(args: argparse.Namespace) -> int:
    from aios_tui.errors import UserError
    from aios_tui.metrics.rundir import LIVE_STATES, stop_outcome
    from aios_tui.metrics.summary import find_run

    if args.json:  # `runs --json stop NAME`: the flag is the list's
        raise UserError("--json prints the list of runs as JSON; `runs stop` prints no list, so drop --json")
    _check_root(getattr(args, "root", None))
    run = find_run(args.run, args.root)
    state = run.state()
    if state not in LIVE_STATES:
        raise UserError(f"run '{run.name}' is not training (state: {state}); nothing to stop")
    run.request_stop()
    print(f"asked '{run.name}' to stop: {stop_outcome(run)[0]} "
          f"(follow it with `aios-tui tail {run.path} --follow`)")
    return 0


def run_delete(args: argparse.Namespace) -> int:
    import sys

    from aios_tui.errors import UserError
    from aios_tui.metrics import run_delete as rd
    from aios_tui.metrics.fmt import human_bytes

    if args.json:
        raise UserError("--json prints the list of runs as JSON; `runs delete` prints no list, so drop --json")
    _check_root(getattr(args, "root", None))
    doomed = rd.plan(args.runs, args.root)
    if not args.yes:
        if not sys.stdin.isatty():
            raise UserError(f"not asking without a terminal: pass --yes to delete "
                            f"{', '.join(d.name for d in doomed)}")
        print(f"{rd.question(doomed)} [y/N] ", end="", file=sys.stderr, flush=True)
        answer = sys.stdin.readline()
        if answer.strip().lower() not in ("y", "yes"):
            print("nothing deleted")
            return 1
    problems = []
    for done in rd.delete(doomed, args.root):
        print(f"deleted {done.name}: {human_bytes(done.freed)} freed")
        if done.left is not None:
            problems.append(f"{done.name}: {done.why}; what is left ({human_bytes(rd.dir_bytes(done.left))}) "
                            f"is hidden in {done.left}, removed by the next delete there")
    if problems:
        raise UserError(problems)
    return 0
