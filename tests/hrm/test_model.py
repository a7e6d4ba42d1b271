"""The HRM ACTv1 model: causality, the one-step gradient, the halting head, PEFT-visible layers."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from aios_tui.engine.hrm.model import HRMBlock, HRMForCausalLM, swiglu_width

SEVEN = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


@pytest.mark.parametrize("segments", [1, 3])
def test_changing_a_later_token_never_changes_earlier_logits(make_model, tokens, segments):
    model = make_model(halt_max_steps=segments).eval()
    x = tokens(2, 20)
    with torch.no_grad():
        base = model(x).logits
        for t in (0, 5, 18):
            changed = x.clone()
            changed[:, t + 1] = (changed[:, t + 1] + 37) % 256
            out = model(changed).logits
            torch.testing.assert_close(out[:, : t + 1], base[:, : t + 1], rtol=0, atol=1e-6)
            # ...while the changed position and what follows do see the change.
            assert (out[:, t + 1:] - base[:, t + 1:]).abs().max() > 1e-3


def test_training_segments_are_causal_too(make_model, tokens):
    """The segment the ACT loss runs (train mode, from a carry) obeys the same rule."""
    model = make_model()
    x = tokens(1, 12)
    changed = x.clone()
    changed[0, 7] = (changed[0, 7] + 1) % 256
    outs = []
    for ids in (x, changed):
        carry = model.initial_carry(1, 12)
        for _ in range(2):
            out = model.segment(ids, carry)
            carry = out.carry
        outs.append(out.logits.detach())
    torch.testing.assert_close(outs[0][:, :7], outs[1][:, :7], rtol=0, atol=1e-6)


def test_targets_are_next_tokens(make_model, tokens):
    model = make_model(halt_max_steps=1).eval()
    x = tokens(2, 10)
    with torch.no_grad():
        out = model(x, labels=x)
    manual = nn.functional.cross_entropy(out.logits[:, :-1].reshape(-1, 259), x[:, 1:].reshape(-1))
    torch.testing.assert_close(out.loss, manual)


def test_only_the_last_l_and_h_updates_carry_gradients(make_model, tokens):
    model = make_model(h_layers=2, l_layers=3, h_cycles=3, l_cycles=2)
    calls: list[tuple[str, bool]] = []
    for level in ("h_level", "l_level"):
        for block in getattr(model, level).layers:
            block.register_forward_hook(lambda m, a, o, level=level: calls.append((level, torch.is_grad_enabled())))
    carry = model.initial_carry(2, 8)
    out = model.segment(tokens(2, 8), carry)
    # 3 H steps x 2 L steps = 6 L passes of 3 blocks and 3 H passes of 2 blocks...
    assert sum(1 for lv, _ in calls if lv == "l_level") == 6 * 3
    assert sum(1 for lv, _ in calls if lv == "h_level") == 3 * 2
    # ...of which only the last L pass and the last H pass are recorded for backward.
    assert [c for c in calls if c[1]] == [("l_level", True)] * 3 + [("h_level", True)] * 2
    assert calls[-5:] == [("l_level", True)] * 3 + [("h_level", True)] * 2
    out.logits.sum().backward()
    assert model.embed_tokens.weight.grad is not None
    assert not out.carry.z_H.requires_grad and not out.carry.z_L.requires_grad


def test_seven_separate_linear_projections_per_block(make_model):
    model = make_model(h_layers=2, l_layers=2)
    blocks = [m for m in model.modules() if isinstance(m, HRMBlock)]
    assert len(blocks) == 4
    for block in blocks:
        names = {n.rsplit(".", 1)[-1]: m for n, m in block.named_modules() if isinstance(m, nn.Linear)}
        assert set(names) == set(SEVEN)
    assert isinstance(model.lm_head, nn.Linear) and model.lm_head.out_features == 259
    assert isinstance(model.q_head, nn.Linear) and model.q_head.out_features == 2


def test_q_head_reads_the_last_real_position(make_model, tokens):
    model = make_model().eval()
    x = tokens(1, 10)
    padded_a = torch.cat([x, torch.full((1, 4), 256)], dim=1)
    padded_b = torch.cat([x, tokens(1, 4, seed=9)], dim=1)
    mask = torch.cat([torch.ones(1, 10), torch.zeros(1, 4)], dim=1)
    carry = model.initial_carry(1, 14)
    with torch.no_grad():
        a = model.segment(padded_a, carry, mask)
        b = model.segment(padded_b, carry, mask)
        plain = model.segment(x, model.initial_carry(1, 10))
    # Whatever follows the last real token changes nothing the halting head reads.
    torch.testing.assert_close(a.q_halt_logits, b.q_halt_logits)
    torch.testing.assert_close(a.q_halt_logits, plain.q_halt_logits, atol=1e-6, rtol=0)
    expected = model.q_head(plain.hidden_states[:, -1])
    torch.testing.assert_close(plain.q_halt_logits, expected[:, 0])
    torch.testing.assert_close(plain.q_continue_logits, expected[:, 1])


def test_q_head_starts_at_never_halt(make_model):
    model = make_model()
    assert torch.count_nonzero(model.q_head.weight) == 0
    assert model.q_head.bias.tolist() == [-5.0, -5.0]


def test_save_and_from_pretrained_give_identical_logits(make_model, tokens, tmp_path):
    model = make_model(halt_max_steps=2).eval()
    model.save_pretrained(tmp_path)
    from transformers import AutoModelForCausalLM

    again = AutoModelForCausalLM.from_pretrained(tmp_path).eval()
    assert isinstance(again, HRMForCausalLM)
    x = tokens(2, 12)
    with torch.no_grad():
        assert torch.equal(model(x).logits, again(x).logits)
    assert torch.equal(model.H_init, again.H_init) and torch.equal(model.L_init, again.L_init)


def test_swiglu_width_follows_the_hrm_rule():
    assert swiglu_width(512, 2.0) == 768     # round(682.7) -> next multiple of 256
    assert swiglu_width(64, 2.0) == 256
    assert swiglu_width(1024, 4.0) == 2816


def test_gradient_checkpointing_gives_the_same_gradients(make_model, tokens):
    x = tokens(2, 12)
    grads = []
    for checkpointing in (False, True):
        model = make_model()
        if checkpointing:
            model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
            assert all(b.gradient_checkpointing for b in model.modules() if isinstance(b, HRMBlock))
        out = model.segment(x, model.initial_carry(2, 12))
        out.logits.square().mean().backward()
        grads.append(model.h_level.layers[0].mlp.down_proj.weight.grad.clone())
    torch.testing.assert_close(grads[0], grads[1])
