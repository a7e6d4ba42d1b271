"""The causal-LM loss: the one place logits meet labels.

``causal_lm_loss`` returns the mean next-token loss of a micro-batch and its token count. With
``fused=True`` (``train.fused_loss``) it takes the decoder's last hidden states and the lm_head
weight and hands them to ``fused_ce.fused_linear_cross_entropy``, which never holds fp32 logits
for the whole vocabulary; otherwise it runs the model to logits and uses plain cross-entropy.
The fused path is taken only where it computes exactly what the model's own head would: a
plain ``nn.Linear`` head (not adapted, not quantized) on an architecture that adds nothing
after it (no logit soft-capping or scaling).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

# Architectures whose logits are exactly lm_head(last hidden state); the VRAM calculator
# must agree on which runs take the fused path, so the list lives there.
from aios_tui.vram.shape import FUSED_MODEL_TYPES

IGNORE = -100


def unwrap(model: nn.Module) -> nn.Module:
    """The Hugging Face model inside torch.compile and PEFT wrappers."""
    model = getattr(model, "_orig_mod", model)
    get_base = getattr(model, "get_base_model", None)
    return get_base() if callable(get_base) else model


def fused_parts(model: nn.Module) -> tuple[nn.Module, nn.Linear] | None:
    """(decoder, lm_head) when the fused loss computes exactly what the model would, else None."""
    hf = unwrap(model)
    config = getattr(hf, "config", None)
    if config is None or getattr(config, "model_type", None) not in FUSED_MODEL_TYPES:
        return None
    if _changes_logits(config):
        return None
    get_head = getattr(hf, "get_output_embeddings", None)
    head = get_head() if callable(get_head) else None
    decoder = getattr(hf, "base_model", None)
    if type(head) is not nn.Linear or decoder is None or decoder is hf:
        return None
    return decoder, head


def _changes_logits(config) -> bool:
    """Whether the model alters lm_head's output before returning it. The names differ by
    family (Gemma 2/3 soft-cap, Cohere's logit_scale multiplies, Granite's logits_scaling
    divides), so a type added to the list with one of them still falls back to the plain path."""
    if getattr(config, "final_logit_softcapping", None) or getattr(config, "logit_scale", None):
        return True
    return getattr(config, "logits_scaling", None) not in (None, 1, 1.0)


def causal_lm_loss(model: nn.Module, input_ids: Tensor, labels: Tensor, *, fused: bool = False,
                   chunk_size: int | None = None) -> tuple[Tensor, Tensor]:
    """(mean next-token loss, number of predicted tokens) for one micro-batch.

    Position t predicts token t+1; labels of -100 carry no loss. A micro-batch with no
    labelled token gives a loss of 0, not NaN. Nothing here waits on the device.
    """
    parts = fused_parts(model) if fused else None
    if parts is not None:
        from aios_tui.engine.fused_ce import causal_lm_fused_cross_entropy

        decoder, head = parts
        hidden = decoder(input_ids=input_ids, use_cache=False).last_hidden_state
        loss_sum, n = causal_lm_fused_cross_entropy(hidden, head.weight, labels, IGNORE,
                                                    chunk_size=chunk_size, bias=head.bias)
    else:
        logits = model(input_ids=input_ids, use_cache=False).logits
        targets = labels[:, 1:]
        loss_sum = F.cross_entropy(logits[:, :-1].float().reshape(-1, logits.shape[-1]),
                                   targets.reshape(-1), ignore_index=IGNORE, reduction="sum")
        n = (targets != IGNORE).sum()
    return loss_sum / n.clamp(min=1), n


def adalora_penalty_params(model: nn.Module) -> tuple[float, list[tuple[str, Tensor]]]:
    """AdaLoRA's orthogonality weight and the (kind, matrix) pairs it applies to."""
    configs = getattr(model, "peft_config", {})
    name = getattr(model, "active_adapter", "default")
    config = configs.get(name) if isinstance(configs, dict) else None
    weight = float(getattr(config, "orth_reg_weight", 0.0) or 0.0)
    mats = [("A" if "lora_A" in n else "B", p) for n, p in model.named_parameters()
            if p.requires_grad and ("lora_A" in n or "lora_B" in n)]
    return weight, mats


def adalora_orth_penalty(weight: float, mats: list[tuple[str, Tensor]]) -> Tensor | None:
    """AdaLoRA's regulariser: the mean of ||P P^T - I||_F over its singular-vector matrices.

    It keeps A's rows and B's columns near-orthonormal, so lora_E behaves like singular values
    and pruning its smallest entries is meaningful (Zhang et al. 2023, eq. 4). peft adds it
    only when the model computes its own loss, which this engine never asks it to.
    """
    if not mats or weight <= 0:
        return None
    total = None
    for kind, p in mats:
        gram = p @ p.t() if kind == "A" else p.t() @ p
        eye = torch.eye(gram.shape[0], dtype=gram.dtype, device=gram.device)
        term = torch.linalg.matrix_norm(gram - eye)
        total = term if total is None else total + term
    return weight * total / len(mats)
