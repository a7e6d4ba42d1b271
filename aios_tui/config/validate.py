"""Turning raw mappings into a RunConfig, collecting every problem before raising once."""

from __future__ import annotations

import dataclasses
import difflib
import math
import re
import reprlib
from typing import Any, Iterable, Mapping

from aios_tui.config.schema import SECTIONS, RunConfig, field_index, field_type
from aios_tui.printable import printable

TOP_LEVEL_KEYS = ("version", "name", "description", "order")
CONFIG_VERSION = 1
_MODULE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.]*$")
# A name becomes one directory under a root; anything that could leave the root is refused.
_DIR_NAME = re.compile(r"(?![.-])[\w.-]{1,100}")
PLAIN_NAME_RULE = "letters, digits, '.', '_', '-'; up to 100"


def is_plain_name(name: str) -> bool:
    """A name that is one directory, never a path (run, brain and bundle names)."""
    return bool(_DIR_NAME.fullmatch(name))


class ConfigError(ValueError):
    """One or more problems with a configuration; ``problems`` holds one line each."""

    def __init__(self, problems: Iterable[str]):
        self.problems = list(problems)
        super().__init__("\n".join(self.problems))


SHOWN_CHARS = 60  # of a value quoted in a problem: enough to recognise it, one line at most


_REPR = reprlib.Repr()  # (keyword arguments only from Python 3.12)
_REPR.maxlevel, _REPR.maxstring, _REPR.maxlong, _REPR.maxother = 3, SHOWN_CHARS, SHOWN_CHARS, SHOWN_CHARS


def shown(value: Any) -> str:
    """``repr(value)`` cut to one short line: a problem quotes what was given, not all of it
    (YAML's aliases can make a value whose full repr would never finish)."""
    return _cut(_REPR.repr(value))


def shown_name(name: Any) -> str:
    """A key or section name as it would be typed, control characters escaped, cut like ``shown``."""
    return _cut(printable(str(name)))


def _cut(text: str) -> str:
    return text if len(text) <= SHOWN_CHARS else text[:SHOWN_CHARS - 3] + "..."


def closest(name: str, options: Iterable[str], cutoff: float = 0.5) -> str | None:
    match = difflib.get_close_matches(name, list(options), n=1, cutoff=cutoff)
    return match[0] if match else None


def _did_you_mean(name: str, options: Iterable[str]) -> str:
    guess = closest(name, options)
    return f"; did you mean '{guess}'?" if guess else ""


_MODULE_LISTS = (".lora_target_modules", ".ia3_feedforward_modules", ".modules_to_save")


def coerce(name: str, f: dataclasses.Field, value: Any) -> tuple[Any, str | None]:
    """Check a raw value's type; returns (value, problem)."""
    want = field_type(f)
    if want is bool:
        if isinstance(value, bool):
            return value, None
        return value, f"{name}: {shown(value)} is not true or false"
    if want is int:
        if isinstance(value, bool) or not isinstance(value, int):
            if isinstance(value, float) and value.is_integer():
                return int(value), None
            return value, f"{name}: {shown(value)} is not a whole number"
        return value, None
    if want is float:
        if isinstance(value, str):
            # YAML 1.1 (PyYAML) reads 2e-5 as a string: a float needs a dot there
            try:
                return float(value), None
            except ValueError:
                pass
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return value, f"{name}: {shown(value)} is not a number"
        try:
            return float(value), None
        except OverflowError:  # an int past 1.8e308; the range check would say so, but cannot see it
            return value, f"{name}: {shown(value)} is too large a number"
    if name.endswith(_MODULE_LISTS) and isinstance(value, list) and all(isinstance(v, str) for v in value):
        # A list of names is what TOML and YAML users write; the field keeps its comma form.
        return ",".join(value), None
    if not isinstance(value, str):
        return value, f"{name}: {shown(value)} is not a string"
    return value, None


def apply_mapping(cfg: RunConfig, data: Mapping[str, Any], source: str) -> list[str]:
    """Set the fields named in ``data`` (sectioned or flat keys) on ``cfg``; return problems."""
    index = field_index()
    problems: list[str] = []
    where = f"{source}: " if source else ""

    def set_field(key: Any, value: Any, section_hint: str | None) -> None:
        key = str(key)  # YAML allows number keys; they are unknown names like any other
        if key not in index:
            pool = [n for n, (s, _) in index.items() if section_hint in (None, s)] or list(index)
            problems.append(f"{where}unknown key '{shown_name(key)}'"
                            + (f" in [{section_hint}]" if section_hint else "")
                            + _did_you_mean(key, pool))
            return
        section, f = index[key]
        if section_hint is not None and section_hint != section:
            problems.append(f"{where}'{key}' belongs in [{section}], not [{section_hint}]")
            return
        value, problem = coerce(f"{section}.{key}", f, value)
        if problem:
            problems.append(where + problem)
            return
        setattr(getattr(cfg, section), key, value)

    for key, value in data.items():
        key = str(key)
        if key in TOP_LEVEL_KEYS:
            problem = _top_level_problem(key, value)
            if problem:
                problems.append(where + problem)
            continue
        if key in SECTIONS and (isinstance(value, Mapping) or key not in index):
            if not isinstance(value, Mapping):
                problems.append(f"{where}[{key}] must be a table of settings")
                continue
            for sub_key, sub_value in value.items():
                set_field(sub_key, sub_value, key)
        elif isinstance(value, Mapping):
            problems.append(f"{where}unknown section [{shown_name(key)}]"
                            + _did_you_mean(key, SECTIONS) + f" (sections: {', '.join(SECTIONS)})")
        else:
            set_field(key, value, None)
    return problems


def _top_level_problem(key: str, value: Any) -> str | None:
    """What is wrong with a file's version, or the name, description or order it gives a preset."""
    if key == "version":
        if isinstance(value, bool) or value != CONFIG_VERSION:
            return f"version {shown(value)} is not supported; this aios-tui reads version {CONFIG_VERSION}"
        return None
    if key == "order":
        return None if isinstance(value, int) and not isinstance(value, bool) else \
            f"order: {shown(value)} is not a whole number"
    if not isinstance(value, str):
        return f"{key}: {shown(value)} is not a string"
    if not value.isprintable():  # shown on one line in `presets list`, the console's picker and its header
        return f"{key}: {shown(value)} has a line break or control character; keep it to one line"
    return None


def _fmt(v: float | None) -> str:
    if v is None:
        return ""
    return str(int(v)) if float(v).is_integer() else str(v)


def valid_range(meta: Mapping[str, Any]) -> str:
    """A field's range as its help and its problems state it: '1 to 256', 'at least 0' or ''."""
    lo, hi = meta.get("lo"), meta.get("hi")
    if lo is not None and hi is not None:
        return f"{_fmt(lo)} to {_fmt(hi)}"
    return f"at least {_fmt(lo)}" if lo is not None else ""


def validate(cfg: RunConfig) -> list[str]:
    """Every problem with ``cfg``, one line each; empty when it is valid."""
    return field_problems(cfg) + _cross_field_problems(cfg)


def field_problems(cfg: RunConfig) -> list[str]:
    """Each field on its own: its choices and its range."""
    problems: list[str] = []
    for name, (section, f) in field_index().items():
        value = getattr(getattr(cfg, section), name)
        meta = f.metadata
        label = f"{section}.{name}"
        if meta.get("choices") and value not in meta["choices"]:
            problems.append(f"{label}: {shown(value)} is not one of {', '.join(meta['choices'])}"
                            + _did_you_mean(str(value), meta["choices"]))
        lo, hi = meta.get("lo"), meta.get("hi")
        if isinstance(value, float) and not math.isfinite(value):
            problems.append(f"{label}: {value!r} is not a number; give a finite value")
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            if (lo is not None and value < lo) or (hi is not None and value > hi):
                problems.append(f"{label}: {shown(value)} is out of range; valid: {valid_range(meta)}"
                                f"{_sentinel(meta['help'])}")
    return problems


def _sentinel(help_text: str) -> str:
    """A field's special value as its help states it ("(0: derived)"), so a range that admits 0
    or -1 says what they mean."""
    m = re.search(r"\((-?[\d.]+): ([^)]*)\)", help_text)
    return f" ({m.group(1)}: {m.group(2)})" if m else ""


def _cross_field_problems(cfg: RunConfig) -> list[str]:
    problems: list[str] = []
    if not cfg.model.model.strip():
        # an empty name would be read as the current directory, and fail there in other words
        problems.append("model.model: empty; give a Hugging Face id, a local model directory or 'tiny'")
    peft = cfg.peft
    targets = peft.target_list()
    if not targets:
        problems.append("peft.lora_target_modules: the list is empty; name at least one module, "
                        "e.g. q_proj,v_proj")
    for name in targets + peft.modules_to_save_list():
        if not _MODULE_NAME.match(name):
            problems.append(f"peft: {shown(name)} is not a module name (letters, digits, '_' and '.')")
    if peft.peft_method == "ia3" and peft.ia3_feedforward_modules.strip():
        stray = [m for m in peft.ia3_feedforward_list() if m not in targets]
        if stray:
            problems.append(f"peft.ia3_feedforward_modules: {_cut(', '.join(stray))} not among "
                            f"lora_target_modules ({_cut(', '.join(targets))})")
    if peft.adalora_init_r and peft.adalora_init_r < peft.lora_r:
        problems.append(f"peft.adalora_init_r: {shown(peft.adalora_init_r)} is below the target rank "
                        f"lora_r={shown(peft.lora_r)}; AdaLoRA only prunes rank")
    # run_name names the directory only when run_dir does not (a run in --run-dir takes its name)
    named = [("hrm.brain_name", cfg.hrm.brain_name)]
    if not cfg.train.run_dir.strip():
        named.insert(0, ("train.run_name", cfg.train.run_name))
    for label, name in named:
        if name and not is_plain_name(name):
            problems.append(f"{label}: {shown(name)} is not a plain name ({PLAIN_NAME_RULE}); "
                            "to choose the directory itself, use run_dir or bundle_dir")
    mem = cfg.memory
    if mem.load_in_8bit and mem.load_in_4bit:
        problems.append("memory: load_in_8bit and load_in_4bit exclude each other; choose one")
    if (mem.load_in_8bit or mem.load_in_4bit) and not peft.use_peft:
        problems.append("memory: a quantized base cannot be trained in full; set use_peft = true")
    if cfg.hrm.num_heads > 0 and cfg.hrm.hidden_size % cfg.hrm.num_heads:  # below 1 is a range problem
        problems.append(f"hrm.hidden_size: {shown(cfg.hrm.hidden_size)} is not divisible by "
                        f"num_heads={shown(cfg.hrm.num_heads)}")
    elif cfg.hrm.num_heads > 0 and (cfg.hrm.hidden_size // cfg.hrm.num_heads) % 2:
        # rotary position embedding turns each head's dimensions in pairs
        problems.append(f"hrm.hidden_size: {shown(cfg.hrm.hidden_size)} / num_heads={shown(cfg.hrm.num_heads)} "
                        f"gives heads of {cfg.hrm.hidden_size // cfg.hrm.num_heads} dimensions; "
                        "rotary embeddings need an even number")
    return problems


def build(layers: Iterable[tuple[Mapping[str, Any], str]]) -> RunConfig:
    """Defaults, then each (mapping, source) layer in order; raises ConfigError with all problems."""
    cfg = RunConfig()
    problems: list[str] = []
    for data, source in layers:
        problems += apply_mapping(cfg, data, source)
    # With type errors, the fields that did parse are still range-checked (every problem at
    # once); rules across fields wait, since a field that did not parse may be the cause.
    problems += validate(cfg) if not problems else field_problems(cfg)
    if problems:
        raise ConfigError(problems)
    return cfg
