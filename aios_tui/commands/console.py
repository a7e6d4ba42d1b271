"""`aios-tui console` (also plain `aios-tui`): the keyboard-driven console."""

from __future__ import annotations

import argparse

from aios_tui.config import add_config_args


KEYS_HELP = (
    "keys (the footer shows them; ctrl+p lists them all in the command palette): "
    "configure: ctrl+r start a run, ctrl+g start an HRM ACTv1 run, ctrl+s save a preset, "
    "ctrl+o load a TOML, ctrl+t diff vs preset, ctrl+l command line, ctrl+n runs, "
    "ctrl+b back to the current run's view, ctrl+y switch between the VRAM and GPU panes "
    "(terminals under 32 rows); run view: s stop (asks first), c checkpoint, e export, r resume, "
    "g try it (prompt the latest checkpoint in this terminal; Ctrl-D comes back), n runs, "
    "esc back to the form; runs: a or enter attach, r resume, s stop (asks first), e export, g try it, "
    "d delete (asks first), esc back; "
    "anywhere: ctrl+q quit.")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "console", help="open the console: presets, form, VRAM budget, GPU monitor, live runs",
        description="Opens the console on the given configuration (default: the built-in `tiny` "
                    "model and the bundled sample data, which trains on a CPU). Runs started here "
                    "are separate processes: they keep training when the console or the SSH "
                    "session closes; come back with `aios-tui attach`.",
        epilog=KEYS_HELP)
    p.add_argument("--simulate-gpu", action="store_true",
                   help="show a simulated GPU (clearly labelled) where there is none, for demos")
    add_config_args(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from aios_tui.config import config_from_args, find_preset

    cfg = config_from_args(args)
    preset = base = None
    base_file = None
    if args.preset:
        found = find_preset(args.preset)
        if found.user and found.path.parent != _user_dir():
            base_file = str(found.path)  # a preset given as a path: diff against the file
            base = found.config()
        else:
            preset = found.key
    if args.config:
        base_file = args.config
        from aios_tui.config import resolve
        base = resolve(args.preset, args.config)
    return launch(config=cfg, preset=preset, base=base, base_file=base_file,
                  simulate_gpu=args.simulate_gpu)


def _user_dir():
    from aios_tui.config.presets import user_dir
    return user_dir()


def launch(**kwargs) -> int:
    import sys

    from aios_tui.errors import UserError

    if not (sys.stdin.isatty() and sys.stdout.isatty()):
        # Redirected, the full-screen UI would write escape codes into a file and wait for keys.
        raise UserError("the console needs a terminal; from a script or a pipe use `aios-tui train`, "
                        "`aios-tui runs` or `aios-tui tail RUN --follow`")
    from aios_tui.ui.app import AiosApp

    app = AiosApp(**kwargs)
    app.run()
    for line in app.farewell:
        print(line)
    return app.return_code or 0
