"""`aios-tui gpu`: watch the GPUs live in the terminal, or print one snapshot (for scripts)."""

from __future__ import annotations

import argparse
import json
import sys

from aios_tui.commands.arguments import interval_problem
from aios_tui.errors import UserError

EPILOG = """\
examples:
  aios-tui gpu                      live monitor (q or Ctrl-C quits)
  aios-tui gpu --once               one table and exit
  aios-tui gpu --once --json        one JSON snapshot; with no GPU: {"available": false, "reason": ...}
  aios-tui gpu --json --interval 5  a JSON line every 5 s (also when piped)
  aios-tui gpu --simulate           a made-up GPU, to try the views on a machine without one

When stdout is not a terminal the monitor prints one line per GPU per sample instead of
redrawing. NO_COLOR turns colour off.
"""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("gpu", help="live GPU monitor: memory, utilisation, power, processes",
                       description="Watch memory, utilisation, temperature, power, clocks, fan and "
                                   "the processes holding memory on every NVIDIA GPU (via NVML). "
                                   "Processes of this session's runs are marked as ours.",
                       epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--once", action="store_true", help="print one snapshot and exit")
    p.add_argument("--json", action="store_true",
                   help="JSON instead of text: one object with --once, else one line per sample")
    # default None: an --interval given beside --once (one sample, no interval) is refused
    p.add_argument("--interval", type=float, default=None, metavar="S",
                   help="seconds between samples (default 1.0)")
    p.add_argument("--count", type=int, default=None, metavar="N",
                   help="stop after N samples (default: run until q or Ctrl-C)")
    p.add_argument("--simulate", action="store_true",
                   help="show a simulated GPU (demo figures, always labelled simulated)")
    p.set_defaults(func=run)


def _check(args: argparse.Namespace) -> None:
    if args.once:
        given = [flag for flag, value in (("--interval", args.interval), ("--count", args.count)) if value is not None]
        if given:
            them = " and ".join(given)
            raise UserError(f"--once prints one snapshot, so {them} {'has' if len(given) == 1 else 'have'} no "
                            f"effect with it; drop --once to sample repeatedly, or drop {them}")
    if args.interval is None:
        args.interval = 1.0
    problems = [p for p in [interval_problem(args.interval)] if p]
    if args.count is not None and args.count < 1:
        problems.append(f"--count {args.count}: give a number of samples of 1 or more")
    if problems:
        raise UserError(problems)


def run(args: argparse.Namespace) -> int:
    _check(args)
    from aios_tui import gpu_live
    from aios_tui.gpu import GpuSampler, open_backend

    backend = open_backend(simulate=args.simulate)
    try:
        def make_sampler(on_sample=None) -> GpuSampler:
            # History only feeds the live view's sparklines: a screen's width of it is enough.
            return GpuSampler(backend, interval=args.interval,
                              history_seconds=args.interval * 512, on_sample=on_sample)

        if args.once:
            snap = make_sampler().sample_once()
            if args.json:
                print(json.dumps(snap.to_dict(), indent=2))
            else:
                sys.stdout.write(gpu_live.render_table(snap, backend.driver_version))
            return 0
        if args.json or not sys.stdout.isatty():
            return gpu_live.stream(make_sampler, sys.stdout, as_json=args.json, count=args.count)
        return gpu_live.live(make_sampler, sys.stdout, interval=args.interval,
                             driver_version=backend.driver_version, count=args.count)
    finally:
        backend.close()
