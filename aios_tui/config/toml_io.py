"""TOML in and out: read with tomllib, write with tomli-w, always atomically."""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path
from typing import Any

import tomli_w

from aios_tui.atomic import atomic_write_text
from aios_tui.config.schema import SECTIONS, RunConfig
from aios_tui.config.validate import CONFIG_VERSION, ConfigError, build

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


def read_toml(path: str | Path) -> dict[str, Any]:
    """Parse a TOML file; a missing or malformed file is a ConfigError, not a traceback."""
    path = Path(path)
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError([f"{path}: no such file"]) from None
    except IsADirectoryError:
        raise ConfigError([f"{path}: is a directory, not a TOML file"]) from None
    except UnicodeDecodeError:
        raise ConfigError([f"{path}: not a text file"]) from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError([f"{path}: malformed TOML: {exc}"]) from None


def load_config(path: str | Path) -> RunConfig:
    return build([(read_toml(path), str(path))])


def config_to_toml(cfg: RunConfig, *, name: str = "", description: str = "",
                   only_changed: bool = False) -> str:
    """TOML text that loads back to ``cfg``; ``only_changed`` keeps just what differs from defaults."""
    doc: dict[str, Any] = {"version": CONFIG_VERSION}
    if name:
        doc["name"] = name
    if description:
        doc["description"] = description
    defaults = RunConfig()
    for section in SECTIONS:
        values = dataclasses.asdict(getattr(cfg, section))
        if only_changed:
            base = dataclasses.asdict(getattr(defaults, section))
            values = {k: v for k, v in values.items() if base[k] != v}
        if values:
            doc[section] = values
    return tomli_w.dumps(doc)


def save_config(cfg: RunConfig, path: str | Path, **kwargs: Any) -> None:
    atomic_write_text(path, config_to_toml(cfg, **kwargs))
