"""Quantized base weights with bitsandbytes (``--load-in-8bit`` / ``--load-in-4bit``), for QLoRA.

Loading: ``AutoModelForCausalLM.from_pretrained`` with a ``BitsAndBytesConfig`` (4-bit: NF4,
double quantisation, bf16 compute, or fp16 on a CUDA GPU without bf16, or fp32 on a CPU whose
torch cannot multiply bf16; 8-bit: LLM.int8 with the usual outlier threshold of 6), then
peft's ``prepare_model_for_kbit_training``: everything frozen, every tensor that is not
quantized (embeddings, norms, lm_head, biases) in fp32. The adapter goes on top as usual.
The built-in ``tiny`` is built, saved to a temporary directory and loaded from there the
same way, so it runs the very code path a real model does.

Merging an adapter trained on a quantized base goes into a de-quantized copy: the base is
loaded again in its full-precision dtype from where it came from and the adapter folded into
that (``export.export_run``). The merged weights are the original ones plus the adapter's
update; they differ from what training saw by the quantisation error, and the export says so.

Refused before any weights load (one line each): bitsandbytes that cannot be imported or
cannot run a quantized layer on the training device (tried for real on a 64x64 layer), a
model family that is not a Hugging Face causal LM (HRM ACTv1 brains train in full
precision), a model directory saved already quantized by bitsandbytes in another width
than asked (or with no flag: such weights cannot load in full precision), and a model none of
whose layers transformers would quantize (Falcon's, under transformers 5).
"""

from __future__ import annotations

import json
import tempfile
import warnings
from pathlib import Path
from typing import Any

import torch
from torch import nn

from aios_tui.config import RunConfig
from aios_tui.errors import UserError
from aios_tui.vram.refusals import not_quantized, quant_field as field, quant_flag as flag, quantized_other_task

INT8_THRESHOLD = 6.0

_probed: dict[tuple[str, str], str | None] = {}


def mode(cfg: RunConfig) -> str | None:
    """'4bit', '8bit' or None."""
    if cfg.memory.load_in_4bit:
        return "4bit"
    if cfg.memory.load_in_8bit:
        return "8bit"
    return None


def label(kind: str) -> str:
    return "4-bit NF4 (double quantisation)" if kind == "4bit" else "8-bit LLM.int8"


def a_label(kind: str) -> str:
    return ("an " if kind == "8bit" else "a ") + label(kind)


def compute_dtype(device: torch.device) -> torch.dtype:
    """What 4-bit layers compute in: bf16 where the device can, else fp16 (CUDA) or fp32 (CPU)."""
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    try:
        a = torch.ones(2, 2, dtype=torch.bfloat16)
        if torch.isfinite((a @ a).float()).all():
            return torch.bfloat16
    except (RuntimeError, TypeError):
        pass
    return torch.float32


def bnb_config(kind: str, device: torch.device):
    from transformers import BitsAndBytesConfig

    if kind == "4bit":
        return BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
                                  bnb_4bit_compute_dtype=compute_dtype(device))
    return BitsAndBytesConfig(load_in_8bit=True, llm_int8_threshold=INT8_THRESHOLD)


# -- checks before anything is loaded --------------------------------------------------------

def probe(kind: str, device: torch.device) -> str | None:
    """Quantize a 64x64 layer on ``device``, run it forward and backward in training mode.

    None when that works, else the reason. Remembered per (device, kind).
    """
    from aios_tui.engine.optim_bnb import remembered_probe

    def trial(bnb) -> str | None:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            if kind == "4bit":
                layer = bnb.nn.Linear4bit(64, 64, bias=False, compute_dtype=compute_dtype(device),
                                          compress_statistics=True, quant_type="nf4")
            else:
                layer = bnb.nn.Linear8bitLt(64, 64, bias=False, has_fp16_weights=False,
                                            threshold=INT8_THRESHOLD)
            layer = layer.to(device)
            _keep_training_kernels(layer)
            layer.train()
            x = torch.randn(4, 64).to(device).requires_grad_(True)
            layer(x).float().square().sum().backward()
        ok = x.grad is not None and bool(torch.isfinite(x.grad).all()) and bool(x.grad.abs().sum() > 0)
        return None if ok else "a quantized layer gave no usable gradient"

    return remembered_probe(_probed, (device.type, kind), trial)


def nothing_to_quantize(cfg: RunConfig, kind: str, device: torch.device) -> str | None:
    """Why loading would quantize none of the model's layers, told on the model built without
    weights by transformers' own layer replacement: transformers 5 takes nn.Linear and Conv1D
    but not their subclasses, so Falcon's FalconLinear layers would all stay in full precision.
    None when some layer would be quantized, or when that cannot be told before loading."""
    from aios_tui.engine.models import meta_model

    model = meta_model(cfg)
    if model is None:
        return None
    try:
        from transformers.integrations.bitsandbytes import replace_with_bnb_linear
        from transformers.utils import logging as hf_logging

        head = model.get_output_embeddings()
        level = hf_logging.get_verbosity()
        hf_logging.set_verbosity_error()  # its "no linear modules were found" names another method
        try:
            replace_with_bnb_linear(model, modules_to_not_convert=[n for n, m in model.named_modules() if m is head],
                                    quantization_config=bnb_config(kind, device))
        finally:
            hf_logging.set_verbosity(level)
        if quantized_layers(model):
            return None
    except Exception:  # another transformers' signature, or a model it cannot build: the load will tell
        return None
    return not_quantized(cfg.model.model, kind,
                         [type(m).__name__ for m in model.modules() if isinstance(m, nn.Linear) and m is not head])


def stored_quantization(model: str) -> dict | None:
    """The ``quantization_config`` of a local model directory saved quantized, else None."""
    path = Path(model).expanduser()
    try:
        config = json.loads((path / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    q = config.get("quantization_config")
    return q if isinstance(q, dict) else None


def stored_kind(q: dict) -> str | None:
    if q.get("load_in_4bit") or q.get("_load_in_4bit"):
        return "4bit"
    if q.get("load_in_8bit") or q.get("_load_in_8bit"):
        return "8bit"
    return None


def problems(cfg: RunConfig, task: Any = None) -> list[str]:
    """Every reason the memory savers of ``cfg`` cannot run here; cheap, loads no weights."""
    from aios_tui.engine.models import resolve_device
    from aios_tui.engine import optim_bnb

    out: list[str] = []
    kind = mode(cfg)
    try:
        device = resolve_device(cfg.train.device)
    except UserError:
        return out  # the device itself is reported by the caller
    if kind and task is not None and not getattr(task, "quantized_base", False):
        out.append(quantized_other_task(kind, getattr(task, "name", type(task).__name__)))
        kind = None
    stored = stored_quantization(cfg.model.model) if cfg.model.model != "tiny" else None
    if stored is not None and stored.get("quant_method") == "bitsandbytes":
        have = stored_kind(stored)
        if have is not None and have != kind:
            out.append(f"model.model: {cfg.model.model} is stored quantized in {have[0]}-bit with bitsandbytes; "
                       f"pass {flag(have)}" + (f" instead of {flag(kind)}" if kind else "")
                       + ", or use the full-precision model")
    wanted = ([(field(kind), flag(kind))] if kind else []) \
        + ([("memory.use_8bit_optimizer", "--use-8bit-optimizer")] if cfg.memory.use_8bit_optimizer else [])
    missing = optim_bnb.import_problem() if wanted else None
    if missing:
        return out + [f"{name}: needs bitsandbytes, which cannot be imported here ({missing}); "
                      f"install it (`pip install bitsandbytes`) or train without {switch}" for name, switch in wanted]
    if kind:
        why = probe(kind, device)
        if why:
            out.append(f"{field(kind)}: bitsandbytes cannot run {kind[0]}-bit layers on {device.type} here ({why}); "
                       f"train without {flag(kind)}, or install a bitsandbytes build for this machine")
        elif stored is None:
            why = nothing_to_quantize(cfg, kind, device)
            if why:
                out.append(why)
    if cfg.memory.use_8bit_optimizer:
        why = optim_bnb.probe(device)
        if why:
            out.append(f"memory.use_8bit_optimizer: bitsandbytes' 8-bit AdamW cannot run on {device.type} here "
                       f"({why}); train without --use-8bit-optimizer")
    return out


# -- loading -------------------------------------------------------------------------------------

def _keep_training_kernels(model: nn.Module) -> None:
    """Keep bitsandbytes' CPU 4-bit layers on their training kernels.

    On a CPU with AVX512-BF16, the first forward in eval mode without grad rewrites a 4-bit
    weight in place into an inference-only layout. Training after that loses the gradient
    through the frozen weight (the CPU kernel has no backward), so an eval pass in the middle
    of a run would silently break it; layers whose output size is not a multiple of 32 fail
    outright. Inference on the training layout costs speed, not correctness.
    """
    for module in model.modules():
        if hasattr(module, "support_avx512bf16_for_cpu"):
            module.support_avx512bf16_for_cpu = False


def quantized_layers(model: nn.Module) -> int:
    import bitsandbytes as bnb

    return sum(1 for m in model.modules() if isinstance(m, (bnb.nn.Linear4bit, bnb.nn.Linear8bitLt)))


def load_quantized(cfg: RunConfig, source: str):
    """The causal LM at ``source`` (a directory or hub id) with its linear layers quantized,
    prepared for k-bit training, on the training device."""
    from aios_tui.engine.models import DTYPES, load_hf_model, resolve_device
    from peft import prepare_model_for_kbit_training

    kind = mode(cfg)
    assert kind is not None
    device = resolve_device(cfg.train.device)
    device_map = {"": device.index if device.type == "cuda" else "cpu"}
    extra: dict[str, Any] = {"device_map": device_map}
    if stored_quantization(source) is None:  # a model saved quantized brings its own (checked to match)
        extra["quantization_config"] = bnb_config(kind, device)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*MatMul8bitLt.*")
        model = load_hf_model(source, DTYPES[cfg.model.model_dtype], cfg.model.attn_implementation, **extra)
    if quantized_layers(model) == 0:
        raise UserError(f"{field(kind)}: {cfg.model.model} has no linear layer bitsandbytes can quantize; "
                        f"train without {flag(kind)}")
    _keep_training_kernels(model)
    # Our own checkpointing (task.enable_gradient_checkpointing) comes later, non-reentrant.
    return prepare_model_for_kbit_training(model, use_gradient_checkpointing=False)


def build_quantized_causal_lm(cfg: RunConfig):
    """(model, tokenizer) for ``cfg`` with a quantized base; see the module docstring."""
    from aios_tui.engine.models import load_tokenizer
    from aios_tui.engine.optim_bnb import import_bnb

    import_bnb()  # a clear error where training checked first, but export or generate did not
    name = cfg.model.model
    if name != "tiny":
        return load_quantized(cfg, name), load_tokenizer(name)
    with tempfile.TemporaryDirectory(prefix="aios-tui-tiny-") as tmp:
        full_precision_tiny(cfg).save_pretrained(tmp)
        model = load_quantized(cfg, tmp)
        # Nothing may keep reading the directory once it is gone: own every tensor in memory.
        with torch.no_grad():
            for p in model.parameters():
                if p.device.type == "cpu" and type(p).__name__ not in ("Params4bit", "Int8Params"):
                    p.data = p.data.clone()
    # as the unquantized tiny: no name pointing at a directory that is gone (peft records it)
    model.config._name_or_path = ""
    model.name_or_path = ""
    return model, load_tokenizer("tiny")


def full_precision_tiny(cfg: RunConfig):
    """The built-in ``tiny`` in the run's dtype: what gets quantized, and what a merge goes into."""
    from aios_tui.engine.models import DTYPES, build_tiny

    return build_tiny(DTYPES[cfg.model.model_dtype], cfg.model.attn_implementation)


# -- reporting ---------------------------------------------------------------------------------

def summary(cfg: RunConfig, device: torch.device) -> dict[str, Any] | None:
    """What the memory savers of a run are, for the metrics header and the first output line."""
    from aios_tui.engine.optim_bnb import optimizer_name

    kind = mode(cfg)
    if not kind and not cfg.memory.use_8bit_optimizer:
        return None
    out: dict[str, Any] = {}
    if kind:
        out["quantized_base"] = kind
        out["quantization"] = label(kind)
        if kind == "4bit":
            out["compute_dtype"] = str(compute_dtype(device)).replace("torch.", "")
    if cfg.memory.use_8bit_optimizer:
        out["optimizer"] = optimizer_name(device)
    return out


def describe(info: dict[str, Any] | None) -> str | None:
    if not info:
        return None
    bits = []
    if info.get("quantized_base"):
        extra = f", {info['compute_dtype']} compute" if info.get("compute_dtype") else ""
        bits.append(f"{info['quantization']} base{extra}")
    if info.get("optimizer"):
        bits.append(f"bitsandbytes {info['optimizer']}")
    return "memory savers: " + "; ".join(bits)


def merge_problem(source: str, kind: str) -> str | None:
    """Why an adapter trained on a quantized ``source`` cannot be merged, if it cannot."""
    if stored_quantization(source) is not None:
        return (f"--merge: the base {source} is stored quantized, so there is no full-precision copy to merge "
                f"the adapter into; export the adapter (without --merge) and merge it into the original model")
    return None


def merge_note(kind: str, source: str, dtype: str) -> str:
    return (f"the adapter was trained on {a_label(kind)} base; it was merged into a de-quantized copy: "
            f"the base reloaded in {dtype} from {source}")
