"""ACT training loss: deep supervision over segments plus Q-learned halting.

For one batch the model runs up to ``halt_max_steps`` segments, each from the previous
segment's detached carry. Every segment a sequence takes part in gets the next-token loss.
A sequence stops at the last segment, or in training when ``q_halt > q_continue`` after its
minimum number of segments (usually none; with probability ``halt_exploration_prob`` a
random number from 2 to the maximum, so the halting head sees what more thinking buys).

The halting head learns from two binary targets:

- ``q_halt`` against "this segment predicts every supervised token of the sequence";
- ``q_continue`` against the value of going on, bootstrapped from the next segment's Q
  values: ``sigmoid(q_halt')`` when the next segment is the last (it must halt there), else
  ``sigmoid(max(q_halt', q_continue'))``. At the last segment continuing is not possible, so
  ``q_continue`` gets no target there.

The returned objective is the mean next-token loss over every (segment, token) pair that
was trained, plus ``q_weight`` times the mean binary cross-entropy over every (segment,
sequence) Q target. Averaging over segments keeps it on the scale of a plain
cross-entropy whatever ``halt_max_steps`` is. In evaluation (``training=False``) every
sequence runs all segments and the loss is the next-token loss of the final segment: the
prediction the model actually makes.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor

from aios_tui.engine.hrm.model import IGNORE_INDEX, HRMForCausalLM

Q_WEIGHT = 0.5


@dataclass
class ACTResult:
    loss: Tensor
    n_tokens: Tensor
    metrics: dict[str, Tensor] = field(default_factory=dict)


def linear_weight(module: torch.nn.Module) -> tuple[Tensor, Tensor | None]:
    """Weight and bias of a linear layer, through peft's modules_to_save wrapper if present."""
    inner = getattr(module, "modules_to_save", None)
    if inner is not None and not getattr(module, "disable_adapters", False):
        for name in getattr(module, "active_adapters", []):
            if name in inner:
                module = inner[name]
                break
        else:
            module = module.original_module
    return module.weight, getattr(module, "bias", None)


@torch.no_grad()
def _token_stats(hidden: Tensor, weight: Tensor, bias: Tensor | None, targets: Tensor) -> tuple[Tensor, Tensor]:
    """Per-token cross-entropy and argmax-correctness, a chunk of rows at a time, no graph.

    Chunks are sized as the fused loss sizes its own, so this pass never holds more logits
    than the loss itself does.
    """
    from aios_tui.engine.fused_ce import default_chunk_rows

    b, t, h = hidden.shape
    flat_h = hidden.reshape(-1, h)
    flat_t = targets.reshape(-1)
    rows = default_chunk_rows(flat_h.shape[0], weight.shape[0])
    ce = torch.empty(flat_t.shape, device=hidden.device, dtype=torch.float32)
    right = torch.empty(flat_t.shape, device=hidden.device, dtype=torch.bool)
    for i in range(0, flat_h.shape[0], rows):
        logits = F.linear(flat_h[i:i + rows], weight, bias).float()
        tgt = flat_t[i:i + rows]
        ce[i:i + len(tgt)] = F.cross_entropy(logits, tgt, ignore_index=IGNORE_INDEX, reduction="none")
        right[i:i + len(tgt)] = logits.argmax(-1) == tgt
    return ce.view(b, t), right.view(b, t)


def _lm_terms(hrm: HRMForCausalLM, out, labels: Tensor, targets: Tensor, active: Tensor,
              fused: bool) -> tuple[Tensor, Tensor, Tensor]:
    """(summed next-token loss over active sequences, per-sequence loss sums, per-token correct)."""
    if fused:
        from aios_tui.engine.fused_ce import causal_lm_fused_cross_entropy

        weight, bias = linear_weight(hrm.lm_head)
        masked = labels.masked_fill(~active[:, None], IGNORE_INDEX)
        loss_sum, _ = causal_lm_fused_cross_entropy(out.hidden_states, weight, masked, bias=bias)
        tok_ce, right = _token_stats(out.hidden_states[:, :-1].detach(), weight.detach(),
                                     None if bias is None else bias.detach(), targets)
        return loss_sum, tok_ce.sum(-1), right
    logits = out.logits[:, :-1].float()
    tok_ce = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1),
                             ignore_index=IGNORE_INDEX, reduction="none").view(targets.shape)
    seq_ce = tok_ce.sum(-1)
    right = logits.detach().argmax(-1) == targets
    return (seq_ce * active).sum(), seq_ce.detach(), right


def act_loss(hrm: HRMForCausalLM, input_ids: Tensor, labels: Tensor | None = None,
             attention_mask: Tensor | None = None, *, training: bool,
             halt_max_steps: int | None = None, exploration_prob: float | None = None,
             fused: bool = False, q_weight: float = Q_WEIGHT) -> ACTResult:
    """Run the ACT segments for one batch; return the objective, the supervised token count
    and metrics (0-d tensors: ``act_segments``, ``halt_accuracy``, ``lm_loss``, ``q_loss``,
    ``exact_accuracy``, ``token_accuracy``)."""
    cfg = hrm.config
    max_steps = halt_max_steps or cfg.halt_max_steps
    explore_p = cfg.halt_exploration_prob if exploration_prob is None else exploration_prob
    b, t = input_ids.shape
    dev = input_ids.device
    if labels is None:
        labels = input_ids if attention_mask is None else input_ids.masked_fill(attention_mask == 0, IGNORE_INDEX)
    targets = labels[:, 1:]
    tok_mask = targets != IGNORE_INDEX
    seq_tokens = tok_mask.sum(-1)
    n_tokens = seq_tokens.sum()
    pondering = training and max_steps > 1

    if pondering:
        explore = torch.rand(b, device=dev) < explore_p
        min_steps = torch.where(explore, torch.randint(2, max_steps + 1, (b,), device=dev),
                                torch.zeros(b, dtype=torch.long, device=dev))
    carry = hrm.initial_carry(b, t)
    active = torch.ones(b, dtype=torch.bool, device=dev)
    zero = torch.zeros((), device=dev)
    lm_sum, lm_count, q_sum, q_count = zero, zero, zero, zero
    halted_at = torch.full((b,), max_steps, dtype=torch.long, device=dev)
    final_ce = torch.zeros(b, device=dev)
    final_right = torch.zeros(b, device=dev)
    final_correct = torch.zeros(b, dtype=torch.bool, device=dev)
    final_q = torch.zeros(b, device=dev)
    pending: tuple[Tensor, Tensor] | None = None  # q_continue logits awaiting the next segment's Q

    def settle(prev_qc: Tensor, prev_mask: Tensor, q_h: Tensor, q_c: Tensor, next_is_last: bool) -> None:
        nonlocal q_sum, q_count
        nxt = q_h if next_is_last else torch.maximum(q_h, q_c)
        target = torch.sigmoid(nxt.detach())
        bce = F.binary_cross_entropy_with_logits(prev_qc, target, reduction="none")
        q_sum = q_sum + (bce * prev_mask).sum()
        q_count = q_count + prev_mask.sum()

    for step in range(1, max_steps + 1):
        last = step == max_steps
        out = hrm.segment(input_ids, carry, attention_mask, compute_logits=not fused and (training or last))
        carry = out.carry
        q_h, q_c = out.q_halt_logits, out.q_continue_logits
        if pending is not None:
            settle(*pending, q_h, q_c, next_is_last=last)
            pending = None

        if training or last:
            active_f = active.float()
            ce_sum, seq_ce, right = _lm_terms(hrm, out, labels, targets, active, fused)
            right = right & tok_mask
            correct = (right.sum(-1) == seq_tokens) & (seq_tokens > 0)
            lm_sum = lm_sum + ce_sum
            lm_count = lm_count + (seq_tokens * active).sum()
            bce = F.binary_cross_entropy_with_logits(q_h, correct.float(), reduction="none")
            q_sum = q_sum + (bce * active_f).sum()
            q_count = q_count + active_f.sum()

        if pondering and not last:
            halt_now = active & (q_h > q_c) & (step >= min_steps)
        elif last:
            halt_now = active
        else:
            halt_now = torch.zeros_like(active)
        if training or last:
            halted_at = torch.where(halt_now, step, halted_at)
            final_ce = torch.where(halt_now, seq_ce, final_ce)
            final_right = torch.where(halt_now, right.sum(-1).float(), final_right)
            final_correct = torch.where(halt_now, correct, final_correct)
            final_q = torch.where(halt_now, q_h.detach(), final_q)
        if pondering and not last:
            pending = (q_c, active_f)
        active = active & ~halt_now
        # One host sync per segment, only while pondering: skipping segments that no
        # sequence needs is what ACT is for.
        if pondering and not last and not bool(active.any()):
            with torch.no_grad():
                nxt = hrm.segment(input_ids, carry, attention_mask, compute_logits=False)
            settle(*pending, nxt.q_halt_logits, nxt.q_continue_logits, next_is_last=step + 1 == max_steps)
            pending = None
            break

    lm_loss = lm_sum / lm_count.clamp_min(1)
    q_loss = q_sum / q_count.clamp_min(1)
    objective = lm_loss + q_weight * q_loss if training else lm_loss
    has = (seq_tokens > 0).float()
    n_seq = has.sum().clamp_min(1)
    with torch.no_grad():
        metrics = {
            "act_segments": halted_at.float().mean(),
            "halt_accuracy": (((final_q >= 0) == final_correct).float() * has).sum() / n_seq,
            "lm_loss": final_ce.sum() / n_tokens.clamp_min(1),
            "q_loss": q_loss.detach(),
            "exact_accuracy": (final_correct.float() * has).sum() / n_seq,
            "token_accuracy": final_right.sum() / n_tokens.clamp_min(1),
        }
    return ACTResult(loss=objective, n_tokens=n_tokens, metrics=metrics)

