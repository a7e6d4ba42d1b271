"""`aios-tui config`: resolve preset, config file and flags into one configuration."""

from __future__ import annotations

import argparse

from aios_tui.config import add_config_args, config_from_args, config_to_toml, save_config


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("config", help="resolve and print or save a configuration",
                       description="Applies defaults < --preset < --config FILE < flags, validates "
                                   "the result and prints it as TOML that loads back unchanged.")
    p.add_argument("--print-toml", action="store_true", help="print the resolved config as TOML (the default)")
    p.add_argument("--output", "-o", metavar="FILE", help="write the TOML to FILE instead (atomically)")
    add_config_args(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    cfg = config_from_args(args)
    if args.output:
        save_config(cfg, args.output)
        print(f"wrote {args.output}")
    else:
        print(config_to_toml(cfg), end="")
    return 0
