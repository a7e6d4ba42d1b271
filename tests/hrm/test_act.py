"""The ACT loss: segments, halting, exploration and the bootstrapped Q targets."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from aios_tui.engine.hrm.act import act_loss


def _set_q(model, halt: float, cont: float) -> None:
    with torch.no_grad():
        model.q_head.bias.copy_(torch.tensor([halt, cont]))


def test_one_segment_is_plain_next_token_training(make_model, tokens):
    model = make_model(halt_max_steps=1)
    x = tokens(3, 16)
    result = act_loss(model, x, x.clone(), training=True)
    assert result.metrics["act_segments"].item() == 1.0
    assert result.n_tokens.item() == 3 * 15
    with torch.no_grad():
        ref = model.eval()(x, labels=x).loss
    torch.testing.assert_close(result.metrics["lm_loss"], ref)
    # The objective adds only the halting head's loss to the next-token loss.
    torch.testing.assert_close(result.loss.detach(), ref + 0.5 * result.metrics["q_loss"])


def test_evaluation_runs_every_segment_and_scores_the_last(make_model, tokens):
    model = make_model(halt_max_steps=3).eval()
    _set_q(model, 10.0, -10.0)  # would halt at once if evaluation looked at the head
    x = tokens(2, 12)
    with torch.no_grad():
        result = act_loss(model, x, x, training=False)
        ref = model(x, labels=x, segments=3).loss
    assert result.metrics["act_segments"].item() == 3.0
    torch.testing.assert_close(result.loss, ref)


def test_training_halts_where_the_head_says_unless_exploring(make_model, tokens):
    model = make_model(halt_max_steps=4)
    _set_q(model, 10.0, -10.0)
    x = tokens(64, 8)
    calm = act_loss(model, x, x, training=True, exploration_prob=0.0)
    assert calm.metrics["act_segments"].item() == 1.0
    torch.manual_seed(0)
    explored = act_loss(model, x, x, training=True, exploration_prob=1.0)
    # Every sequence explores: a random minimum of 2..4 segments, so the mean lies inside that range.
    mean = explored.metrics["act_segments"].item()
    assert 2.0 < mean < 4.0
    _set_q(model, -10.0, 10.0)
    assert act_loss(model, x, x, training=True, exploration_prob=0.0).metrics["act_segments"].item() == 4.0


def test_q_targets_are_correctness_and_the_next_segments_value(make_model, tokens):
    model = make_model(halt_max_steps=2)
    _set_q(model, -3.0, 3.0)  # keep going to the maximum
    x = tokens(4, 10)
    result = act_loss(model, x, x, training=True, exploration_prob=0.0)

    carry = model.initial_carry(4, 10)
    seg1 = model.segment(x, carry)
    seg2 = model.segment(x, seg1.carry)

    def correct(out):
        return (out.logits[:, :-1].argmax(-1) == x[:, 1:]).all(-1).float()

    def ce(out):
        return F.cross_entropy(out.logits[:, :-1].reshape(-1, 259), x[:, 1:].reshape(-1))

    bce = F.binary_cross_entropy_with_logits
    # Segment 2 is the last, so segment 1's "continue" is worth what halting at 2 is worth.
    terms = torch.cat([
        bce(seg1.q_halt_logits, correct(seg1), reduction="none"),
        bce(seg2.q_halt_logits, correct(seg2), reduction="none"),
        bce(seg1.q_continue_logits, torch.sigmoid(seg2.q_halt_logits), reduction="none"),
    ])
    torch.testing.assert_close(result.metrics["q_loss"], terms.mean().detach())
    # Deep supervision: both segments' next-token losses count, equally.
    expected = (ce(seg1) + ce(seg2)) / 2 + 0.5 * terms.mean()
    torch.testing.assert_close(result.loss, expected)
    assert result.metrics["act_segments"].item() == 2.0


def test_a_halted_sequence_stops_contributing(make_model, tokens):
    """Once a sequence halts, later segments neither train it nor count its tokens."""
    model = make_model(halt_max_steps=2)
    x = tokens(2, 10)
    _set_q(model, 10.0, -10.0)
    halted = act_loss(model, x, x, training=True, exploration_prob=0.0)
    seg1 = model.segment(x, model.initial_carry(2, 10))
    ce1 = F.cross_entropy(seg1.logits[:, :-1].reshape(-1, 259), x[:, 1:].reshape(-1))
    torch.testing.assert_close(halted.metrics["lm_loss"], ce1.detach())
    assert halted.metrics["act_segments"].item() == 1.0


def test_labels_of_minus_100_carry_no_loss(make_model, tokens):
    model = make_model(halt_max_steps=1)
    x = tokens(2, 12)
    labels = x.clone()
    labels[:, :7] = -100  # a prompt: targets 1..6 are not scored
    result = act_loss(model, x, labels, training=True)
    assert result.n_tokens.item() == 2 * 5
    logits = model.segment(x, model.initial_carry(2, 12)).logits
    manual = F.cross_entropy(logits[:, 6:-1].reshape(-1, 259), x[:, 7:].reshape(-1))
    torch.testing.assert_close(result.metrics["lm_loss"], manual.detach())


@pytest.mark.parametrize("chunk_rows", [None, 5])
def test_fused_cross_entropy_matches_the_plain_path(make_model, tokens, monkeypatch, chunk_rows):
    if chunk_rows:  # several chunks, the last one short
        import aios_tui.engine.fused_ce as fused_ce

        monkeypatch.setattr(fused_ce, "default_chunk_rows", lambda n, v, budget=0: chunk_rows)
    x = tokens(3, 14)
    grads, losses, stats = [], [], []
    for fused in (False, True):
        model = make_model(halt_max_steps=2)
        _set_q(model, -3.0, 3.0)
        result = act_loss(model, x, x, training=True, exploration_prob=0.0, fused=fused)
        result.loss.backward()
        losses.append(result.loss.detach())
        stats.append({k: v.item() for k, v in result.metrics.items()})
        grads.append(model.l_level.layers[0].self_attn.q_proj.weight.grad.clone())
    torch.testing.assert_close(losses[0], losses[1], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(grads[0], grads[1], rtol=1e-4, atol=1e-6)
    assert stats[0].keys() == stats[1].keys()
    for key in stats[0]:
        assert abs(stats[0][key] - stats[1][key]) < 1e-4, key


def test_halt_accuracy_counts_agreement_with_correctness(make_model):
    """A sequence the model gets fully right, with a head that says so, scores 1."""
    model = make_model(halt_max_steps=1, vocab_size=259)
    x = torch.full((2, 6), 65)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(60):  # learn "A follows A" and that it is always right
        result = act_loss(model, x, x, training=True)
        opt.zero_grad()
        result.loss.backward()
        opt.step()
    assert result.metrics["exact_accuracy"].item() == 1.0
    assert result.metrics["halt_accuracy"].item() == 1.0
    _set_q(model, -30.0, 0.0)  # now the head claims the opposite
    assert act_loss(model, x, x, training=True).metrics["halt_accuracy"].item() == 0.0
