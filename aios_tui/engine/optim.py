"""The optimizer and the learning-rate schedule.

The schedule is a pure function of the step (``lr_at``), not a stateful scheduler object: the
loop sets the rate before every update, so a resumed run, even one whose total steps or peak
rate changed, lands on the right value with nothing to restore.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from aios_tui.config import RunConfig


def lr_at(update: int, peak: float, warmup: int, total: int, schedule: str) -> float:
    """The rate for update number ``update`` (0-based): linear warm-up, then the decay.

    Warm-up reaches ``peak`` on its last step (the first update already moves, unlike a
    schedule that starts at 0). Cosine and linear decay towards 0 over the remaining updates.
    """
    if warmup > 0 and update < warmup:
        return peak * (update + 1) / warmup
    if schedule == "constant":
        return peak
    progress = min(1.0, (update - warmup) / max(1, total - warmup))
    if schedule == "linear":
        return peak * (1.0 - progress)
    return peak * 0.5 * (1.0 + math.cos(math.pi * progress))


def schedule_of(cfg: RunConfig) -> dict:
    return {"name": cfg.train.lr_schedule, "peak_lr": cfg.train.effective_lr(cfg.peft),
            "warmup_steps": cfg.train.effective_warmup(), "total_steps": cfg.train.steps}


def param_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """Decay on matrices only: biases, norms and scaling vectors (IA3) keep their scale."""
    decay, keep = [], []
    for p in model.parameters():
        if p.requires_grad:
            (decay if p.dim() >= 2 else keep).append(p)
    return [g for g in ({"name": "decay", "params": decay, "weight_decay": weight_decay},
                        {"name": "no_decay", "params": keep, "weight_decay": 0.0}) if g["params"]]


def build_optimizer(model: nn.Module, cfg: RunConfig, device: torch.device) -> torch.optim.Optimizer:
    """AdamW (fused on CUDA), or bitsandbytes' 8-bit AdamW with ``use_8bit_optimizer``."""
    groups = param_groups(model, cfg.train.weight_decay)
    lr = cfg.train.effective_lr(cfg.peft)
    if cfg.memory.use_8bit_optimizer:
        from aios_tui.engine.optim_bnb import build_adamw8bit

        return build_adamw8bit(groups, lr, device, model)
    fused = device.type == "cuda" and all(p.is_cuda and p.is_floating_point() for g in groups for p in g["params"])
    return torch.optim.AdamW(groups, lr=lr, betas=(0.9, 0.999), eps=1e-8, fused=fused or None)


def apply_options(optimizer: torch.optim.Optimizer, cfg: RunConfig) -> None:
    """Re-apply what the config decides after loading a saved state (which brings its own)."""
    for group in optimizer.param_groups:
        group["weight_decay"] = cfg.train.weight_decay if group.get("name") == "decay" else 0.0
    if cfg.memory.use_8bit_optimizer:
        from aios_tui.engine.optim_bnb import after_load

        after_load(optimizer)


def set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    for group in optimizer.param_groups:
        group["lr"] = lr
