"""TOML in and out (read with tomllib, write with tomli-w, always atomically); YAML read too."""

from __future__ import annotations

import dataclasses
import tomllib
from pathlib import Path
from typing import Any

import tomli_w

from aios_tui.atomic import atomic_write_text
from aios_tui.config.schema import SECTIONS, RunConfig
from aios_tui.config.validate import CONFIG_VERSION, ConfigError, build
from aios_tui.errors import first_line

# Far above any real settings file; a bigger one is a wrong path, not a config to parse.
MAX_CONFIG_BYTES = 1 << 20


def _read_settings_text(path: Path, kind: str) -> str:
    """The text of a settings file; any reason it cannot be one is a ConfigError."""
    try:
        if path.is_dir():
            raise ConfigError([f"{path}: is a directory, not a {kind} file"])
        if not path.exists():
            raise ConfigError([f"{path}: no such file"])
        if not path.is_file():
            raise ConfigError([f"{path}: not a regular file"])
        if path.stat().st_size > MAX_CONFIG_BYTES:
            raise ConfigError([f"{path}: {path.stat().st_size:,} bytes is too big for a {kind} file"])
        # utf-8-sig: a byte-order mark, as some Windows editors write, is not part of the text
        return path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError:
        raise ConfigError([f"{path}: not a text file (a {kind} file is UTF-8 text)"]) from None
    except OSError as exc:
        raise ConfigError([f"{path}: cannot be read ({exc.strerror or exc})"]) from None


def read_toml(path: str | Path) -> dict[str, Any]:
    """Parse a TOML file; a missing or malformed file is a ConfigError, not a traceback."""
    path = Path(path)
    text = _read_settings_text(path, "TOML")
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError([f"{path}: malformed TOML: {exc}"]) from None
    except (ValueError, RecursionError) as exc:
        raise ConfigError([f"{path}: {_parser_limit(exc, 'TOML')}"]) from None


def _parser_limit(exc: ValueError | RecursionError, kind: str) -> str:
    """What a parser gave up on that its own error type does not cover (a date that does not
    exist in YAML, a number of thousands of digits, nesting deeper than Python's stack)."""
    if isinstance(exc, RecursionError):
        return f"malformed {kind}: arrays or tables nested too deeply"
    text = first_line(exc)
    if "integer string conversion" in text:  # Python's int_max_str_digits, not the file's fault to know
        text = "a number too long to read"
    return f"malformed {kind}: {text}"


YAML_SUFFIXES = (".yaml", ".yml")


def read_config_file(path: str | Path) -> dict[str, Any]:
    """Settings from a TOML file or, by its suffix, a YAML one (the form AI-OS documents its
    PEFT settings in); either way a problem is a ConfigError."""
    path = Path(path)
    if path.suffix.lower() not in YAML_SUFFIXES:
        return read_toml(path)
    import yaml

    text = _read_settings_text(path, "YAML")
    try:
        data = yaml.safe_load(text)
    except (ValueError, RecursionError) as exc:
        raise ConfigError([f"{path}: {_parser_limit(exc, 'YAML')}"]) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        raise ConfigError([f"{path}: malformed YAML: {getattr(exc, 'problem', None) or exc}{at}"]) from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError([f"{path}: must hold 'key: value' settings, not a {type(data).__name__}"])
    return data


def load_config(path: str | Path) -> RunConfig:
    return build([(read_config_file(path), str(path))])


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


def write_settings(path: str | Path, text: str) -> None:
    """Write a settings file atomically; a path that cannot take it is a ConfigError."""
    path = Path(path).expanduser()
    if path.is_dir():
        raise ConfigError([f"{path}: is a directory; name a file"])
    try:
        atomic_write_text(path, text)
    except OSError as exc:
        raise ConfigError([f"{path}: cannot be written ({exc.strerror or exc})"]) from None


def save_config(cfg: RunConfig, path: str | Path, **kwargs: Any) -> None:
    write_settings(path, config_to_toml(cfg, **kwargs))
