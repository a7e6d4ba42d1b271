"""HRM's weight initialisation: a truncated normal whose standard deviation is the one asked for.

``torch.nn.init.trunc_normal_(std=s, a=-2s, b=2s)`` cuts a normal of std ``s`` at two standard
deviations, which leaves about 0.88 s; HRM (after JAX's default initialiser) widens the normal
before cutting so that what remains has std ``s``, LeCun's 1/sqrt(fan_in) for a linear layer.
Drawing it by the inverse CDF of uniform numbers also keeps one seed's weights the same across
torch versions (2.13 changed how ``trunc_normal_`` samples; ``uniform_`` did not change).
"""

from __future__ import annotations

import math

import torch


def _widened(std: float, cut: float) -> float:
    """The std of a normal that, cut at +-``cut`` of its own std, has std ``std``."""
    mass = math.erf(cut / math.sqrt(2))
    density = math.exp(-0.5 * cut * cut) / math.sqrt(2 * math.pi)
    # variance of a standard normal truncated to [-cut, cut]
    kept = 1 - 2 * cut * density / mass
    return std / math.sqrt(kept)


@torch.no_grad()
def trunc_normal_(tensor: torch.Tensor, std: float, cut: float = 2.0) -> torch.Tensor:
    """Fill ``tensor`` from a normal truncated at +-``cut`` standard deviations whose values have
    std ``std``. A tensor transformers has already loaded from a checkpoint is left alone."""
    if getattr(tensor, "_is_hf_initialized", False):
        return tensor
    edge = math.erf(cut / math.sqrt(2))
    wide = _widened(std, cut)
    # erfinv in float32 whatever the weights' dtype: bf16 has too few bits near the tails
    draw = torch.empty(tensor.shape, dtype=torch.float32, device=tensor.device)
    draw.uniform_(-edge, edge).erfinv_().mul_(math.sqrt(2) * wide).clamp_(-cut * wide, cut * wide)
    return tensor.copy_(draw)
