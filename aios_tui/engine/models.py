"""Loading the base model: the built-in ``tiny``, a local directory or a Hugging Face id."""

from __future__ import annotations

import os
from pathlib import Path

import torch
from torch import nn

from aios_tui import notes
from aios_tui.config import RunConfig
from aios_tui.errors import UserError, first_line
from aios_tui.offline import hub_offline, offline_reason
from aios_tui.tiny import TINY_CONFIG

TINY_INIT_SEED = 0  # `tiny` is one fixed model: its random init never depends on the run's seed
# Gain of tiny's final norm at init. Its tied head holds embeddings of std 0.02, so with a gain
# of 1 the logits of a random base span about +-1 whatever the hidden state: an adapter on the
# frozen base could barely move the loss (5.55 -> 5.3 nats). A gain of 5 lets it express
# confident predictions, so LoRA and IA3 runs on `tiny` visibly learn.
TINY_NORM_GAIN = 5.0

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


def resolve_device(name: str) -> torch.device:
    if name == "cuda" or (name == "auto" and torch.cuda.is_available()):
        if not torch.cuda.is_available():
            raise UserError("train.device: cuda was asked for but no CUDA GPU is visible to torch; "
                            "use --device cpu or auto")
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def tiny_config(**overrides):
    from transformers import LlamaConfig

    kwargs = {k: v for k, v in TINY_CONFIG.items() if k not in ("model_type", "architectures")}
    kwargs.update(overrides)
    return LlamaConfig(**kwargs)


def tiny_model(config, seed: int = TINY_INIT_SEED):
    """A byte-level Llama with tiny's initialisation, leaving the global RNG untouched."""
    from transformers import LlamaForCausalLM

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = LlamaForCausalLM(config)
    with torch.no_grad():
        model.model.norm.weight.fill_(TINY_NORM_GAIN)
    return model


def build_tiny(dtype: torch.dtype = torch.float32, attn_implementation: str = "sdpa"):
    """The built-in model: ``TINY_CONFIG`` with its fixed initialisation."""
    config = tiny_config()
    config._attn_implementation = attn_implementation if attn_implementation != "flash_attention_2" else "sdpa"
    return tiny_model(config).to(dtype)


def is_hub_id(name: str) -> bool:
    parts = name.split("/")
    return 1 <= len(parts) <= 2 and all(p and not p.startswith(".") for p in parts) and not name.startswith(("/", "~"))


WEIGHT_FILES = ("*.safetensors", "*.bin", "*.safetensors.index.json", "*.bin.index.json")


def model_source_problem(name: str, *, weights: bool = True, tokenizer: bool = True) -> str | None:
    """Why ``--model`` cannot be used, if that is clear without loading anything. ``weights``:
    a local directory must hold them (not where --model only names a tokenizer); ``tokenizer``:
    and a tokenizer (not where only the weights are read)."""
    if name == "tiny":
        return None
    path = Path(name).expanduser()
    if path.is_dir():
        if not (path / "config.json").is_file():
            return f"model.model: {name} is a directory without a config.json"
        if weights and not any(next(path.glob(pattern), None) for pattern in WEIGHT_FILES):
            return (f"model.model: {name} has a config.json but no weights (*.safetensors or *.bin); "
                    "save the model there with save_pretrained, or pass a Hugging Face id")
        missing = missing_shards(path) if weights else []
        if missing:
            return (f"model.model: {name} lacks {missing[0]}{f' (and {len(missing) - 1} more)' if len(missing) > 1 else ''}, "
                    "a weights file its index names; copy the model there completely")
        if tokenizer:
            from aios_tui.engine.tokenizer import missing_tokenizer_problem

            return missing_tokenizer_problem(name)
        return None
    if path.exists():
        return f"model.model: {name} is a file; pass a model directory, a Hugging Face id or 'tiny'"
    if os.sep in name and (name.startswith((".", "/", "~")) or name.count("/") > 1):
        return f"model.model: {name}: no such directory"
    if not is_hub_id(name):
        return f"model.model: {name!r} is not a directory, a Hugging Face id or 'tiny'"
    if hub_offline() and not _in_hub_cache(name, weights):  # from here on a hub id is fetched
        return (f"model.model: {name} is not in the local Hugging Face cache and {offline_reason()}; "
                "pass a local model directory (one with config.json) or 'tiny'")
    return None


def missing_shards(path: Path) -> list[str]:
    """The weights files a sharded checkpoint's index names that are not in ``path``, in order."""
    import json

    named: dict[str, None] = {}
    for index in sorted(path.glob("*.index.json")):
        try:
            weight_map = json.loads(index.read_text(encoding="utf-8")).get("weight_map")
        except (OSError, ValueError, AttributeError):
            continue  # unreadable: loading says what is wrong with it
        if isinstance(weight_map, dict):
            named.update(dict.fromkeys(f for f in weight_map.values() if isinstance(f, str)))
    return [f for f in named if not (path / f).is_file()]


def _in_hub_cache(name: str, weights: bool) -> bool:
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:
        return True  # cannot tell: loading will say
    # a tokenizer-only repository has no config.json
    files = ("config.json",) if weights else ("config.json", "tokenizer_config.json", "tokenizer.json")
    try:
        return any(isinstance(try_to_load_from_cache(name, f), str) for f in files)
    except Exception:  # a malformed id: loading reports it
        return True


def _hub_failure(name: str, exc: Exception) -> UserError:
    lines = [line.strip() for line in str(exc).strip().splitlines() if line.strip()] or [type(exc).__name__]
    # "Validation error for field 'x':" says what is wrong on the line after it
    reason = " ".join(lines[:2]) if lines[0].endswith(":") else lines[0]
    if Path(name).expanduser().is_dir() or _in_hub_cache(name, True):  # the hint below is about the Hub
        return UserError(f"model.model: could not load {name!r}: {reason}")
    return UserError(f"model.model: could not load {name!r}: {reason}",
                     "a model id needs the Hugging Face hub or its cache; without network, "
                     "pass a local directory (one with config.json) or 'tiny'")


def load_hf_model(name: str, dtype: torch.dtype, attn_implementation: str, **kwargs):
    """AutoModelForCausalLM.from_pretrained with failures turned into one-line errors.

    ``kwargs`` go to from_pretrained as well (``quantization_config``, ``device_map``).
    """
    from transformers import AutoModelForCausalLM

    from transformers.utils import logging as hf_logging

    problem = model_source_problem(name, tokenizer=False)  # the tokenizer is load_tokenizer's
    config = read_config(name) if problem is None else None
    problem = problem or (causal_lm_problem(config, name) if config is not None else None)
    if problem:
        raise UserError(problem)
    level = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()  # its load report: a table of tensors, said in one line below
    try:
        model, info = AutoModelForCausalLM.from_pretrained(
            name, dtype=dtype, attn_implementation=attn_implementation, output_loading_info=True, **kwargs)
    except _LOAD_ERRORS as exc:
        said = str(exc).lower()
        if attn_implementation != "eager" and any(w in said for w in ("attn", "attention")):
            # Some architectures lack SDPA or flash kernels; eager attention always works.
            try:
                model, info = AutoModelForCausalLM.from_pretrained(
                    name, dtype=dtype, attn_implementation="eager", output_loading_info=True, **kwargs)
            except _LOAD_ERRORS:
                pass
            else:
                notes.say(f"{type(model).__name__} has no {attn_implementation} attention in transformers; "
                          "it runs with eager attention")
                return _complete(name, model, info)
        raise _hub_failure(name, exc) from None
    except ImportError as exc:  # a package the model or its attention kernel needs is missing
        raise UserError(f"model.model: could not load '{name}': {first_line(exc)}") from None
    finally:
        hf_logging.set_verbosity(level)
    return _complete(name, model, info)


def _complete(name: str, model, info: dict):
    """``model``, unless its checkpoint lacked tensors it needs: transformers starts those random
    and says so in a table, and training a causal LM on a random head (a BERT encoder's
    checkpoint, a model saved without its head) is never what was meant."""
    missing = sorted(info.get("missing_keys") or ())
    if missing:
        saved = ", ".join(getattr(model.config, "architectures", None) or []) or "unknown"
        raise UserError(f"model.model: {name}: its checkpoint has no {', '.join(missing[:3])}"
                        f"{f' (and {len(missing) - 3} more)' if len(missing) > 3 else ''}, which "
                        f"{type(model).__name__} needs; it was saved as {saved}, not as a causal language "
                        "model with its head: pick one (a ...ForCausalLM checkpoint)")
    return model


def _load_errors() -> tuple[type[BaseException], ...]:
    """What a bad model directory or download raises: a damaged weights file included."""
    import pickle

    from huggingface_hub.errors import StrictDataclassError  # a config.json field of the wrong type

    errors: tuple[type[BaseException], ...] = (OSError, ValueError, KeyError, pickle.UnpicklingError,
                                               StrictDataclassError)
    try:
        from safetensors import SafetensorError
    except ImportError:
        return errors
    return errors + (SafetensorError,)


_LOAD_ERRORS = _load_errors()


def load_tokenizer(name: str):
    from transformers import AutoTokenizer

    from aios_tui.engine.tokenizer import byte_tokenizer, empty_tokenizer_problem, missing_tokenizer_problem

    if name == "tiny":
        return byte_tokenizer()
    problem = missing_tokenizer_problem(name)
    if problem:
        raise UserError(problem)
    from transformers.utils import logging as hf_logging

    # Reading a tokenizer beside a model transformers does not know (HRM ACTv1) warns about the
    # model's type, which says nothing about the tokenizer.
    level = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    try:
        tok = AutoTokenizer.from_pretrained(name)
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:  # the last two: a JSON
        raise _hub_failure(name, exc) from None                              # file of another shape
    finally:
        hf_logging.set_verbosity(level)
    problem = empty_tokenizer_problem(tok, name)
    if problem:
        raise UserError(problem)
    if tok.pad_token_id is None and tok.eos_token_id is not None:
        tok.pad_token = tok.eos_token  # packed blocks need a filler id; its labels are masked anyway
        tok.aios_pad_filler = True
    return tok


def save_tokenizer(tok, dest) -> None:
    """Save ``tok`` as its model dir had it: the pad token borrowed from EOS for packing stays
    out of what a user's exported model (or a run's copy of the base) carries."""
    if not getattr(tok, "aios_pad_filler", False):
        tok.save_pretrained(str(dest))
        return
    tok.pad_token = None
    try:
        tok.save_pretrained(str(dest))
    finally:
        tok.pad_token = tok.eos_token


def build_causal_lm(cfg: RunConfig):
    """(model, tokenizer) for ``cfg.model``, on the CPU, before PEFT.

    With ``--load-in-8bit``/``--load-in-4bit`` the base is quantized, prepared for k-bit
    training and already on the training device (see ``quant``).
    """
    if cfg.memory.load_in_8bit or cfg.memory.load_in_4bit:
        from aios_tui.engine.quant import build_quantized_causal_lm

        return build_quantized_causal_lm(cfg)
    dtype = DTYPES[cfg.model.model_dtype]
    name = cfg.model.model
    if name == "tiny":
        model = build_tiny(dtype, cfg.model.attn_implementation)
    else:
        model = load_hf_model(name, dtype, cfg.model.attn_implementation)
    return model, load_tokenizer(name)


def read_config(name: str):
    """The transformers config of ``name`` (no weights), or None when it cannot be read (a hub
    id with an empty cache, a model type this transformers does not know)."""
    from transformers import AutoConfig
    from transformers.utils import logging as hf_logging

    level = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()  # its remarks on fields (token ids of another vocabulary)
    try:
        return tiny_config() if name == "tiny" else AutoConfig.from_pretrained(name)
    except _LOAD_ERRORS:
        return None
    finally:
        hf_logging.set_verbosity(level)


def causal_lm_problem(config, name: str) -> str | None:
    """Why the model ``config`` describes cannot be trained as a causal LM, known from config.json
    alone. A BERT-like encoder's checkpoint loads as a causal LM all the same (its ...LMHeadModel
    takes the masked-LM head) but its attention sees the tokens ahead, so it would learn to copy
    the next token rather than predict it; a seq2seq model's decoder would load without its encoder."""
    from transformers.models.auto.modeling_auto import (MODEL_FOR_CAUSAL_LM_MAPPING_NAMES,
                                                        MODEL_FOR_MASKED_LM_MAPPING_NAMES)

    kind = getattr(config, "model_type", "") or "unknown"
    saved = ", ".join(getattr(config, "architectures", None) or []) or kind
    pick = "pick a decoder-only causal language model (a ...ForCausalLM checkpoint: Llama, Qwen, GPT-2, ...)"
    if getattr(config, "is_encoder_decoder", False):
        return (f"model.model: {name} is an encoder-decoder (seq2seq) model ({saved}), not a causal "
                f"language model; {pick}")
    if kind in MODEL_FOR_MASKED_LM_MAPPING_NAMES and not getattr(config, "is_decoder", False):
        return (f"model.model: {name} is a masked-language encoder ({saved}): its attention sees the "
                f"tokens ahead, so it cannot learn to predict the next one; {pick}")
    if kind not in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES:
        return f"model.model: {name} is a {kind} model ({saved}), not a causal language model; {pick}"
    return None


def vocab_size(config) -> int | None:
    """How many token embeddings the model ``config`` describes (a multimodal one's: its text model's)."""
    text = config.get_text_config() if hasattr(config, "get_text_config") else config
    size = getattr(text, "vocab_size", None)
    return size if isinstance(size, int) else None


def positions_problem(config, max_seq_len: int) -> str | None:
    """Why blocks of ``max_seq_len`` tokens do not fit the model ``config`` describes (the
    estimate refuses the same, vram.refusals)."""
    from aios_tui.vram.refusals import positions_problem as too_long

    return too_long(getattr(config, "max_position_embeddings", None), max_seq_len)


def meta_model(cfg: RunConfig):
    """The architecture of ``cfg.model`` with no weights (for checks before anything is loaded).

    None when the config cannot be read locally (a hub id with an empty cache).
    """
    from transformers import AutoModelForCausalLM

    config = read_config(cfg.model.model)
    if config is None:
        return None
    try:
        with torch.device("meta"):
            return AutoModelForCausalLM.from_config(config)
    except Exception:  # an architecture this transformers cannot build: the real load will say why
        return None


def linear_like(module: nn.Module) -> bool:
    from transformers.pytorch_utils import Conv1D

    return isinstance(module, (nn.Linear, Conv1D)) or type(module).__name__ in ("Linear8bitLt", "Linear4bit")


def linear_layer_names(model: nn.Module) -> list[str]:
    """Distinct leaf names of the model's linear layers, in model order ('q_proj', 'c_attn', ...)."""
    seen: dict[str, None] = {}
    for name, module in model.named_modules():
        if name and linear_like(module):
            seen.setdefault(name.rsplit(".", 1)[-1], None)
    return list(seen)
