"""Shipped presets (``presets/*.toml``) and user presets (XDG config directory)."""

from __future__ import annotations

import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path

from aios_tui.config.schema import RunConfig
from aios_tui.config.toml_io import YAML_SUFFIXES, config_to_toml, read_config_file, write_settings
from aios_tui.config.validate import ConfigError, apply_mapping, build, closest

_SLUG = re.compile(r"[\W_]+")
MAX_NAME = 64


def slug(name: str) -> str:
    """'High Quality' -> 'high-quality': the file stem and the name used on the command line.
    Letters and digits of any script are kept ('Café 日本' -> 'café-日本')."""
    return _SLUG.sub("-", name.strip().lower()).strip("-")


def _looks_like_a_path(name: str) -> bool:
    """What ``find_preset`` reads as a file path rather than a preset name."""
    return name.endswith((".toml",) + YAML_SUFFIXES) or os.sep in name or "/" in name


def user_preset_key(name: str) -> str:
    """The key a user preset called ``name`` is saved under; a ConfigError if it cannot be one."""
    if _looks_like_a_path(name):
        # `presets show` and --preset would read such a name as a file, never find the preset.
        raise ConfigError([f"preset name {name!r} looks like a file path; use letters, digits, spaces, "
                           "'-' and '_' (no '/' and no .toml or .yaml ending)"])
    key = slug(name)
    if not key:
        raise ConfigError([f"preset name {name!r} has no letters or digits"])
    if len(key) > MAX_NAME:
        raise ConfigError([f"preset name is {len(key)} characters long; keep it to {MAX_NAME}"])
    if any(p.key == key and not p.user for p in list_presets([])):
        raise ConfigError([f"'{key}' is a shipped preset; choose another name"])
    return key


def shipped_dir() -> Path:
    env = os.environ.get("AIOS_TUI_PRESETS_DIR")
    if env:
        return Path(env)
    here = Path(__file__).resolve().parent
    for candidate in (here.parents[1] / "presets", here.parent / "presets"):
        if candidate.is_dir():
            return candidate
    return here.parents[1] / "presets"


def user_dir() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "aios-tui" / "presets"


@dataclass(frozen=True)
class Preset:
    key: str            # slug: what `--preset` takes
    name: str           # display name
    description: str
    path: Path
    user: bool
    data: dict

    def config(self) -> RunConfig:
        return build([(self.data, str(self.path))])


def _load(path: Path, user: bool) -> Preset:
    data = read_config_file(path)
    name = str(data.get("name") or path.stem)
    preset = Preset(slug(path.stem), name, str(data.get("description", "")), path, user, data)
    try:
        preset.config()  # a preset that cannot be used is found here, not when it is picked
    except ConfigError as exc:
        where = f"{path}: "
        raise ConfigError([p if p.startswith(where) else where + p for p in exc.problems]) from None
    return preset


def list_presets(problems: list[str] | None = None) -> list[Preset]:
    """Shipped presets in file order, then user presets; a user preset never hides a shipped one.

    An unreadable preset file is skipped: its problem goes into ``problems`` when given, else
    to stderr as a warning.
    """
    out: list[Preset] = []
    taken: dict[str, Path] = {}
    for directory, user in ((shipped_dir(), False), (user_dir(), True)):
        if directory.is_dir():
            for path in sorted(directory.glob("*.toml")):
                try:
                    preset = _load(path, user)
                    # --preset and the console's picker name a preset by its key: one that no key
                    # names, or whose key an earlier one holds, could be listed but never picked.
                    if not preset.key:
                        raise ConfigError([f"{path}: the file name has no letters or digits to name the "
                                           "preset by; rename the file"])
                    if preset.key in taken:
                        raise ConfigError([f"{path}: '{preset.key}' already names the preset in "
                                           f"{taken[preset.key]}; rename the file"])
                    taken[preset.key] = path
                    out.append(preset)
                except ConfigError as exc:
                    # One broken file must not hide every other preset; say so and go on.
                    if problems is None:
                        for problem in exc.problems:
                            print(f"aios-tui: warning: skipping preset {problem}", file=sys.stderr)
                    else:
                        problems += exc.problems
    out.sort(key=lambda p: (p.user, int(p.data.get("order", 0)) if not p.user else 0, p.key))
    return out


def find_preset(name_or_path: str) -> Preset:
    """A preset by name (shipped first, then user) or by path to a TOML (or YAML) file."""
    candidate = Path(name_or_path).expanduser()
    if _looks_like_a_path(name_or_path):
        if not candidate.exists():
            raise ConfigError([f"preset file {name_or_path}: no such file"])
        return _load(candidate, user=True)  # which says what else is wrong with it (a directory...)
    key = slug(name_or_path)
    broken: list[str] = []  # reported only if they could be the one asked for
    presets = list_presets(broken)
    for p in presets:
        if p.key == key:
            return p
    mine = [b for b in broken if any(b.startswith(f"{d / key}.toml: ") for d in (shipped_dir(), user_dir()))]
    if mine:
        raise ConfigError([f"preset '{key}' cannot be used:"] + mine)
    raise ConfigError([f"unknown preset '{name_or_path}'" + _unknown(key, [p.key for p in presets], "presets")])


def _unknown(key: str, names: list[str], what: str) -> str:
    """The end of an unknown-preset message: the likely typo, then the names there are."""
    guess = closest(key, names)
    hint = f"; did you mean '{guess}'?" if guess else ""
    return f"{hint} ({what}: {', '.join(names) or 'none'})"


def save_user_preset(name: str, cfg: RunConfig, description: str = "", force: bool = False) -> Path:
    key = user_preset_key(name)
    unreadable = apply_mapping(RunConfig(), {"name": name, "description": description}, "")
    if unreadable:  # what loading the preset back would refuse
        raise ConfigError(unreadable)
    path = user_dir() / f"{key}.toml"
    if path.exists() and not force:
        raise ConfigError([f"user preset '{key}' exists at {path}; pass --force to overwrite it"])
    write_settings(path, config_to_toml(cfg, name=name, description=description, only_changed=True))
    return path


def delete_user_preset(name: str) -> Path:
    if _looks_like_a_path(name):
        raise ConfigError([f"cannot delete {name!r}: give a user preset's name (see `aios-tui presets list`), "
                           "not a path"])
    key = slug(name)
    path = user_dir() / f"{key}.toml"
    if not path.is_file():
        presets = list_presets([])
        if any(p.key == key and not p.user for p in presets):
            raise ConfigError([f"cannot delete '{name}': shipped presets cannot be deleted"])
        raise ConfigError([f"cannot delete '{name}': no such user preset"
                           + _unknown(key, [p.key for p in presets if p.user], "user presets")])
    path.unlink()
    return path
