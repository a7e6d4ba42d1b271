"""Fixtures for the HRM ACTv1 tests: small models that run in milliseconds on a CPU."""

from __future__ import annotations

import pytest
import torch

SMALL = dict(vocab_size=259, hidden_size=64, num_heads=4, h_layers=1, l_layers=1, h_cycles=2,
             l_cycles=2, expansion=2.0, max_seq_len=32, halt_max_steps=2, pad_token_id=256,
             bos_token_id=257, eos_token_id=258)


@pytest.fixture
def make_model():
    """``make_model(**overrides)``: a seeded small HRMForCausalLM in train mode."""
    from aios_tui.engine.hrm.model import HRMConfig, HRMForCausalLM

    def make(seed: int = 0, **overrides) -> HRMForCausalLM:
        torch.manual_seed(seed)
        return HRMForCausalLM(HRMConfig(**{**SMALL, **overrides}))

    return make


@pytest.fixture
def tokens():
    """``tokens(batch, length, seed)``: random byte ids."""

    def make(batch: int = 2, length: int = 16, seed: int = 1) -> torch.Tensor:
        g = torch.Generator().manual_seed(seed)
        return torch.randint(0, 256, (batch, length), generator=g)

    return make


@pytest.fixture(autouse=True)
def _one_thread():
    """These models are tiny: one thread runs them as fast as two, and never fights other work."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
