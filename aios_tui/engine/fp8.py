"""FP8 matmuls for the base model's linear layers (``train.fp8``), through torchao's float8 training.

Every plain ``nn.Linear`` of the decoder becomes torchao's ``Float8Linear``: its input and
weight are cast to float8 (e4m3, one dynamic scale per tensor) for the forward matmul, and the
incoming gradient (e5m2) and the weight for the input gradient in backward. On an FP8 GPU
(compute capability 8.9 and up: Ada, Hopper) those matmuls run at twice the bf16 rate. Left in
their own precision: the lm_head (the loss is where precision matters most, and the fused loss
reads its weight directly), the adapters' own small matrices (``lora_A``/``lora_B`` and the
like), quantized layers, layers that are not plain ``nn.Linear`` (GPT-2's Conv1D, Falcon's
FalconLinear), and layers whose sizes are not multiples of 16 (the FP8 kernels need them); a
model left with none is refused before its weights load. The adapters still learn in
bf16/fp32; only the frozen base's products are rounded, much as a quantized base rounds its
weights.

torchao computes a weight gradient in backward even for a frozen weight; compiled
(``--torch-compile``), the unused product is dropped from the graph, so a LoRA step pays for
the forward and the input gradient only. Uncompiled it pays for all three, and is told so.

The CPU runs the same kernels in emulation: for checking, not for speed.
"""

from __future__ import annotations

import torch
from torch import nn

from aios_tui.config import RunConfig
from aios_tui.errors import UserError
from aios_tui.quiet import quiet_library_warnings
from aios_tui.vram import refusals

FIELD = refusals.FP8
MIN_CAPABILITY = (8, 9)
INSTALL = "pip install torchao"


def torchao_float8():
    """torchao's float8 module, or None when torchao cannot be imported."""
    return _import()[0]


def _import():
    quiet_library_warnings()  # torchao's import logs every optional CUDA extension it cannot load
    try:
        import torchao.float8 as float8
    except ImportError as exc:
        if getattr(exc, "name", "") in ("torchao", "torchao.float8"):
            return None, f"needs torchao's float8 training ({INSTALL})"
        return None, f"torchao cannot be imported with torch {torch.__version__} ({exc}); install a matching torchao"
    except Exception as exc:  # a torchao built for another torch can fail in other ways at import
        return None, f"torchao cannot be imported with torch {torch.__version__} ({type(exc).__name__}: {exc})"
    return float8, None


def problems(cfg: RunConfig, device: torch.device, task_command: str = "train") -> list[str]:
    """Why ``train.fp8`` cannot run here, before any weights load (empty when it can)."""
    if not cfg.train.fp8:
        return []
    out = []
    if task_command != "train":
        out.append(refusals.FP8_OTHER_TASK)
    if cfg.memory.load_in_8bit or cfg.memory.load_in_4bit:
        out.append(refusals.FP8_WITH_QUANT)
    module, why = _import()
    if module is None:
        out.append(f"{FIELD}: {why}")
    if device.type == "cuda" and torch.cuda.is_available():
        cap = torch.cuda.get_device_capability(device)
        if tuple(cap) < MIN_CAPABILITY:
            name = torch.cuda.get_device_name(device)
            out.append(f"{FIELD}: {name} (compute capability {cap[0]}.{cap[1]}) has no FP8 matmuls; "
                       "they need 8.9 or newer (Ada, Hopper)")
    if not out:
        layers = layers_problem(cfg)
        out += [layers] if layers else []
    return out


def eligible(fqn: str, module: nn.Module, head: nn.Module | None, head_names: tuple[str, ...] = ()) -> bool:
    """Whether ``module`` (named ``fqn``) is a base linear layer FP8 can take: not the head (nor
    a trained copy of it inside peft's modules_to_save wrapper), not an adapter's own matrix."""
    if type(module) is not nn.Linear or module is head:
        return False
    parts = fqn.split(".")
    if "lm_head" in parts or any(fqn == h or fqn.startswith(h + ".") for h in head_names):
        return False
    if any(part.startswith(("lora_", "ia3_")) for part in parts):
        return False
    return module.in_features % 16 == 0 and module.out_features % 16 == 0


def _head(model: nn.Module) -> nn.Module | None:
    from aios_tui.engine.loss import unwrap

    get_head = getattr(unwrap(model), "get_output_embeddings", None)
    return get_head() if callable(get_head) else None


def chosen(model: nn.Module) -> set[str]:
    """Names of the layers ``apply`` converts (the model may be on the meta device)."""
    head = _head(model)
    names = {id(m): n for n, m in model.named_modules()}
    head_names = tuple(n for n, m in model.named_modules() if head is not None and m is head)
    return {names[id(m)] for m in model.modules() if id(m) in names and eligible(names[id(m)], m, head, head_names)}


def none_chosen(model: nn.Module, model_name: str) -> str:
    from aios_tui.engine.models import linear_like

    head = _head(model)
    adapter = ("lora_", "ia3_")
    kinds = {type(m) for n, m in model.named_modules()
             if linear_like(m) and m is not head and not any(p.startswith(adapter) for p in n.split("."))}
    # GPT-2's Conv1D and nn.Linear subclasses stay as they are: Falcon's FalconLinear, for one,
    # has its output added into in place, which the view torchao's layer returns forbids.
    foreign = [k.__name__ for k in kinds] if kinds and nn.Linear not in kinds else []
    return refusals.no_fp8_layers(model_name, foreign)


def layers_problem(cfg: RunConfig) -> str | None:
    """``none_chosen``'s refusal, told on the model built without weights (None if it cannot be)."""
    from aios_tui.engine.models import meta_model

    model = meta_model(cfg)
    return none_chosen(model, cfg.model.model) if model is not None and not chosen(model) else None


def apply(model: nn.Module, model_name: str) -> int:
    """Swap the eligible linear layers for torchao's Float8Linear, in place; how many were swapped
    (UserError when there is none)."""
    float8 = torchao_float8()
    assert float8 is not None, "problems() refuses train.fp8 without torchao"
    names = chosen(model)
    if not names:
        raise UserError(none_chosen(model, model_name))
    float8.convert_to_float8_training(model, module_filter_fn=lambda m, fqn: fqn in names)
    return len(names)


def converted(model: nn.Module) -> int:
    return sum(1 for m in model.modules() if type(m).__name__ == "Float8Linear")


def note(layers: int, compiled: bool, device: torch.device) -> str:
    where = "emulated on the CPU (for checking; slower than bf16)" if device.type == "cpu" else "on the GPU"
    text = f"FP8 matmuls for {layers} base linear layers (torchao float8, dynamic scales), {where}"
    if device.type == "cuda" and not compiled:
        text += "; without --torch-compile they also compute the frozen weights' gradients, so turn it on"
    return text
