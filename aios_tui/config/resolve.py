"""Precedence: defaults < preset < --config FILE < command-line flags."""

from __future__ import annotations

import argparse
from typing import Any, Mapping

from aios_tui.config.presets import find_preset
from aios_tui.config.schema import SECTIONS, RunConfig, field_index, field_type
from aios_tui.config.toml_io import read_config_file
from aios_tui.config.validate import ConfigError, build


def resolve(preset: str | None = None, config_file: str | None = None,
            overrides: Mapping[str, Any] | None = None) -> RunConfig:
    layers: list[tuple[Mapping[str, Any], str]] = []
    problems: list[str] = []
    for loader, arg in ((lambda a: (find_preset(a).data, f"preset {a}"), preset),
                        (lambda a: (read_config_file(a), a), config_file)):
        if arg:
            try:
                layers.append(loader(arg))
            except ConfigError as exc:
                problems += exc.problems
    if problems:
        raise ConfigError(problems)
    if overrides:
        layers.append((dict(overrides), "command line"))
    return build(layers)


def flag_name(name: str) -> str:
    _, f = field_index()[name]
    return f.metadata.get("flag") or "--" + name.replace("_", "-")


def add_config_args(parser: argparse.ArgumentParser) -> None:
    """--preset, --config and one flag per config field, grouped by section.

    Flags default to SUPPRESS so that only what the user typed overrides the lower layers.
    """
    # Seventy flags make argparse's usage a screenful; --help lists them below the short form
    # (and the CLI's parser points an error at --help).
    positionals = " ".join(a.metavar or a.dest for a in parser._actions if not a.option_strings)
    parser.usage = f"%(prog)s {positionals + ' ' if positionals else ''}[options]"
    src = parser.add_argument_group("configuration sources")
    src.add_argument("--preset", metavar="NAME|PATH", default=None,
                     help="start from a preset (see `aios-tui presets list`) or a preset TOML file")
    src.add_argument("--config", metavar="FILE", default=None,
                     help="a TOML (or .yaml) config file; applied over the preset, under the flags")
    index = field_index()
    for section, cls in SECTIONS.items():
        group = parser.add_argument_group(f"{section} settings")
        for name, (sec, f) in index.items():
            if sec != section:
                continue
            meta = f.metadata
            kind = field_type(f)
            default_txt = f" (default: {f.default})" if f.default not in ("", None) else ""
            kwargs: dict[str, Any] = {"dest": f"cfg__{name}", "default": argparse.SUPPRESS,
                                      "help": (meta["help"] + default_txt).replace("%", "%%")}
            if kind is bool:
                kwargs["action"] = argparse.BooleanOptionalAction
            else:
                # Values stay strings here: validation checks them all at once and names
                # every problem, where argparse would stop at the first.
                choices = meta.get("choices")
                kwargs["metavar"] = ("{" + ",".join(choices) + "}" if choices
                                     else meta.get("metavar") or {int: "N", float: "X"}.get(kind, "TEXT"))
            group.add_argument(flag_name(name), **kwargs)


def _typed_overrides(ns: argparse.Namespace) -> tuple[dict[str, Any], list[str]]:
    """The flags the user typed, converted to their fields' types, and a problem per bad one."""
    index = field_index()
    out: dict[str, Any] = {}
    problems: list[str] = []
    for key, raw in vars(ns).items():
        if not key.startswith("cfg__"):
            continue
        name = key[len("cfg__"):]
        section, f = index[name]
        kind = field_type(f)
        if kind in (int, float) and isinstance(raw, str):
            try:
                out[name] = kind(raw)
            except ValueError:
                what = "a whole number" if kind is int else "a number"
                problems.append(f"{flag_name(name)}: {raw!r} is not {what}")
        else:
            out[name] = raw
    return out, problems


def overrides_from_args(ns: argparse.Namespace) -> dict[str, Any]:
    out, problems = _typed_overrides(ns)
    if problems:
        raise ConfigError(problems)
    return out


def config_from_args(ns: argparse.Namespace) -> RunConfig:
    overrides, problems = _typed_overrides(ns)
    try:
        cfg = resolve(getattr(ns, "preset", None), getattr(ns, "config", None), overrides)
    except ConfigError as exc:
        raise ConfigError(problems + exc.problems) from None
    if problems:
        raise ConfigError(problems)
    return cfg
