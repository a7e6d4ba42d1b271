"""`aios-tui presets list|show|save|delete`."""

from __future__ import annotations

import argparse

from aios_tui.config import (
    add_config_args, config_from_args, config_to_toml, delete_user_preset, find_preset,
    list_presets, save_user_preset,
)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("presets", help="list, show, save or delete presets",
                       description="Shipped presets come from presets/; user presets live in "
                                   "$XDG_CONFIG_HOME/aios-tui/presets (default ~/.config/aios-tui/presets).")
    psub = p.add_subparsers(dest="presets_command", metavar="ACTION", required=True)

    lst = psub.add_parser("list", help="shipped and user presets with their key settings",
                          description="Lists the shipped presets, then your own, with each one's "
                                      "method, rank, alpha, target modules and description.")
    lst.set_defaults(func=run_list)

    show = psub.add_parser("show", help="print a preset as TOML (full resolved config with --full)",
                           description="Prints a preset as TOML: the settings it changes from the "
                                       "defaults, or with --full every field.")
    show.add_argument("name", metavar="NAME|PATH",
                      help="a preset name from `aios-tui presets list`, or a preset TOML file")
    show.add_argument("--full", action="store_true", help="print every field, defaults included")
    show.set_defaults(func=run_show)

    save = psub.add_parser("save", help="save the given settings as a user preset",
                           description="Resolves the settings (defaults < --preset < --config < "
                                       "flags) and saves what differs from the defaults as a user "
                                       "preset, usable as --preset NAME.")
    save.add_argument("name", metavar="NAME",
                      help="the preset's name: letters, digits, spaces, '-' and '_'")
    save.add_argument("--description", default="", help="one line shown by `presets list`")
    save.add_argument("--force", action="store_true", help="overwrite an existing user preset")
    add_config_args(save)
    save.set_defaults(func=run_save)

    delete = psub.add_parser("delete", help="delete a user preset",
                             description="Deletes one of your presets; shipped presets stay.")
    delete.add_argument("name", metavar="NAME", help="a user preset's name (see `aios-tui presets list`)")
    delete.set_defaults(func=run_delete)


def run_list(args: argparse.Namespace) -> int:
    rows = [("NAME", "SOURCE", "METHOD", "R", "ALPHA", "TARGETS", "DESCRIPTION")]
    for p in list_presets():
        cfg = p.config()
        method = cfg.method_label()
        lora_like = method in ("lora", "adalora")
        rows.append((p.key, "user" if p.user else "shipped", method,
                     str(cfg.peft.lora_r) if lora_like else "-",
                     str(cfg.peft.lora_alpha) if lora_like else "-",
                     cfg.peft.lora_target_modules if cfg.peft.use_peft else "-", p.description))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
    for r in rows:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths)) + "  " + r[-1])
    return 0


def run_show(args: argparse.Namespace) -> int:
    p = find_preset(args.name)
    cfg = p.config()
    print(f"# {p.name} ({'user' if p.user else 'shipped'}): {p.path}")
    print(config_to_toml(cfg, name=p.name, description=p.description, only_changed=not args.full), end="")
    return 0


def run_save(args: argparse.Namespace) -> int:
    cfg = config_from_args(args)
    path = save_user_preset(args.name, cfg, description=args.description, force=args.force)
    # The file is named by the slug, which is what show, delete and --preset take.
    as_key = f" as '{path.stem}'" if path.stem != args.name else ""
    print(f"saved preset '{args.name}'{as_key} to {path}")
    return 0


def run_delete(args: argparse.Namespace) -> int:
    path = delete_user_preset(args.name)
    print(f"deleted {path}")
    return 0
