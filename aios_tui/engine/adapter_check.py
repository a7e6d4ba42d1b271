"""A checkpoint's adapter: whether it can be read, checked before a base model is loaded for it or
it is copied into an export (peft itself takes any saved value and fails much later), and how
peft is asked to load it."""

from __future__ import annotations

import dataclasses
import json
import warnings
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator

from aios_tui.engine.checkpoint import ADAPTER, ADAPTER_CONFIG, ADAPTER_WEIGHTS, applying, damaged
from aios_tui.errors import UserError

# The field types of peft's config classes whose saved values are checked.
_KINDS = {"int": (int,), "float": (int, float), "bool": (bool,), "str": (str,)}
_NAMES = ("Optional[Union[list[str], str]]", "Optional[list[str]]")
# peft casts whatever it finds into the layers: integers would load as weights without a word
_FLOATS = frozenset({"F64", "F32", "F16", "BF16", "F8_E4M3", "F8_E5M2"})


def _wrong_field(config_class, config: dict) -> str | None:
    for field in dataclasses.fields(config_class):
        value = config.get(field.name)
        if value is None or not isinstance(field.type, str):
            continue
        kinds = _KINDS.get(field.type)
        if kinds is not None:
            ok = isinstance(value, kinds) and (bool in kinds or not isinstance(value, bool))
        elif field.type in _NAMES:
            ok = (isinstance(value, str) and "Union" in field.type) or (
                isinstance(value, list) and all(isinstance(v, str) for v in value))
        else:
            continue
        if not ok:
            return f"its {field.name} is {value!r}, not {field.type}"
    return None


def check_adapter(checkpoint: Path, fail: Callable[[Path, str, BaseException | str], UserError] = damaged) -> None:
    """Refuses a checkpoint's adapter whose config or weights cannot be read, before a base
    model is loaded for it or it is copied into an export. ``fail`` makes the error for a
    directory that is not a checkpoint (a brain bundle, whose adapter/ is laid out the same)."""
    from peft.mapping import PEFT_TYPE_TO_CONFIG_MAPPING
    from safetensors import safe_open

    config_name, weights_name = f"{ADAPTER}/{ADAPTER_CONFIG}", f"{ADAPTER}/{ADAPTER_WEIGHTS}"
    try:
        config = json.loads((checkpoint / ADAPTER / ADAPTER_CONFIG).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise fail(checkpoint, config_name, exc.strerror if isinstance(exc, OSError) and exc.strerror
                      else exc) from None
    if not isinstance(config, dict):
        raise fail(checkpoint, config_name, f"it holds {type(config).__name__}, not an object")
    kind = config.get("peft_type")
    if not isinstance(kind, str) or kind not in PEFT_TYPE_TO_CONFIG_MAPPING:
        raise fail(checkpoint, config_name, f"its peft_type {kind!r} is not an adapter type peft knows")
    problem = _wrong_field(PEFT_TYPE_TO_CONFIG_MAPPING[kind], config)
    if problem:
        raise fail(checkpoint, config_name, problem)
    try:
        with safe_open(str(checkpoint / ADAPTER / ADAPTER_WEIGHTS), framework="pt") as weights:
            dtypes = {name: weights.get_slice(name).get_dtype() for name in weights.keys()}
    except Exception as exc:  # safetensors' own error, or an OSError for a missing file or a directory
        raise fail(checkpoint, weights_name, exc.strerror if isinstance(exc, OSError) and exc.strerror
                      else exc) from None
    odd = next((f"{name} is {dtype}" for name, dtype in dtypes.items() if dtype not in _FLOATS), None)
    if odd:
        raise fail(checkpoint, weights_name, f"{odd}, not floating point")


@contextmanager
def loading_adapter(checkpoint: Path,
                    fail: Callable[[Path, str, BaseException | str], UserError] = damaged) -> Iterator[None]:
    """Around peft loading ``checkpoint``'s adapter: what it cannot use is a damaged checkpoint
    (or whatever ``fail`` says), and two warnings that say nothing wrong are kept quiet."""
    with warnings.catch_warnings(), applying(checkpoint, ADAPTER, fail):
        # AdaLoRA's saved rank pattern names lora_E tensors, which peft's generic check
        # mistakes for unmatched module names; the pattern is applied all the same.
        warnings.filterwarnings("ignore", message=".*rank_pattern keys did not match.*")
        # An adapter trained on a quantized GPT-2 saw Linear layers where the full-precision
        # base has Conv1D; peft transposes the update for it, which is what is wanted.
        warnings.filterwarnings("ignore", message=".*fan_in_fan_out is set to False.*")
        yield
