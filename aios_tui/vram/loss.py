"""The model's head and the loss: what the final norm and lm_head keep, and the logits buffers.

Three ways to get the loss, with very different peaks (T tokens, V vocabulary, n = batch x
(seq - 1) predicted positions):

- ``hf``: the model computes the loss itself (``labels=``) and the caller keeps the output,
  so the logits live through backward; cross-entropy upcasts them to fp32 and keeps the
  log-softmax, and its backward makes two more fp32 [T, V] buffers. Peak: logits + 12 T V.
- ``plain``: the engine's unfused path takes the logits, drops the model output, and slices
  off the last position; peak max(logits + 8 n V, 12 n V).
- ``chunked``: the engine's fused loss never makes [T, V]: it keeps the hidden-state gradient
  (and an fp32 head-weight gradient when the head is trained) from forward to backward, plus
  one chunk of logits at a time.
"""

from __future__ import annotations

from dataclasses import dataclass

from aios_tui.vram.activations import Act, BlockWalk, Context, Ledger
from aios_tui.vram.params import LinearPlan
from aios_tui.vram.shape import HRM, Linear


def default_chunk_rows(n_rows: int, vocab: int, budget_bytes: int) -> int:
    """Rows per chunk of the fused loss, as the engine picks them."""
    rows = max(1, budget_bytes // (4 * max(1, vocab)))
    if rows >= 64:
        rows -= rows % 64
    return max(1, min(n_rows, rows))


@dataclass
class HeadCost:
    ledger: Ledger       # saved by the final norm and the head's linear (once per segment)
    loss_saved: int      # bytes kept between forward and backward by the loss
    loss_peak: int       # loss buffers at the loss's peak (includes loss_saved)
    grad_head: int       # gradient of the head / tied embedding weight in backward
    largest: int         # the largest single loss buffer (sets how much cache the allocator keeps)
    autograd_saved: int = 0  # of loss_saved, what autograd itself keeps (not a caller's reference)


def head_plan(ctx: Context) -> LinearPlan:
    lin = Linear(ctx.shape.head_name, ctx.shape.embed_width, ctx.shape.vocab, False, "head")
    return LinearPlan(lin, adapter=ctx.plan.head_adapter, trainable=ctx.plan.head_trainable)


def head_cost(ctx: Context, x_last: Act, segments: int = 1) -> HeadCost:
    sh, s = ctx.shape, ctx.setup
    T, V, h = s.tokens, sh.vocab, sh.embed_width    # h: what the head reads
    n = s.batch * (s.seq - 1)
    walk = BlockWalk(ctx, prefix="head.")
    if sh.family == "gpt2":
        y = walk.layer_norm(x_last, "ln_f")
    elif sh.family == HRM:
        y = x_last                    # z_H leaves the last block already normalised
        if ctx.plan.q_head_trainable:
            # q_head reads one position per sequence: a [batch, hidden] gather kept for its weight
            walk.L.keep("q_head.in", y.dt * h / s.seq, "head")
    elif sh.final_norm:
        y = walk.norm(x_last, "norm")
    else:
        y = x_last                    # post-norm blocks (OPT-350m) end normalised
    out = ctx.plan.outer_reading("final")
    if out is not None:               # OPT-350m's project_out, back to the head's width
        y = walk.linear(y, out, out.lin.name, "projection")
    lt = 2 if ctx.amp else ctx.pb     # logits dtype
    trained_head = ctx.plan.head_trainable
    grad_head = (V * h + (V if sh.head_bias else 0)) * ctx.pb if trained_head else 0
    if s.loss == "chunked" and not ctx.plan.head_adapter:
        cd = 2 if ctx.amp else max(y.dt, ctx.pb)   # compute dtype of the chunk matmuls
        saved = T * h * y.dt                           # grad of the hidden states, from forward
        if trained_head:
            saved += V * h * 4                         # fp32 weight gradient, from forward
        rows = default_chunk_rows(T, V, s.chunk_bytes)
        chunk = rows * V * (cd + 4 if cd != 4 else 4) + rows * h * cd
        if trained_head and cd != 4:
            chunk += V * h * (cd + 4)                  # one chunk's weight-gradient product
        wcast = V * h * cd if ctx.pb != cd else 0
        per_seg = saved
        return HeadCost(walk.L, per_seg * segments, per_seg * segments + wcast + chunk, grad_head,
                        rows * V * 4, per_seg * segments)
    walk.linear(y, head_plan(ctx), "lm_head", "head", wdt=ctx.pb)
    if sh.family == HRM:
        # act.py: per segment, cross_entropy(reduction="none") keeps an fp32 log-softmax
        # until the single backward; the float copy exists while it is made.
        saved = 4 * n * V * segments
        fwd = saved + lt * T * V + 4 * n * V
        bwd = saved + 8 * n * V
        return HeadCost(walk.L, saved, max(fwd, bwd), grad_head, 4 * n * V, saved)
    # soft-capped logits (cap * tanh(logits / cap)): tanh keeps its output for backward. Granite
    # divides the logits by logits_scaling: autograd keeps nothing for it, and the one more
    # [T, V] tensor it holds for a moment, in forward and in backward, stays under the fp32
    # loss buffers' peak, so the peak is Llama's (tests/vram/test_engine_peak_cpu.py measures it).
    # Cohere's product with logit_scale is the same: nothing kept, a [T, V] tensor for a moment
    cap = lt * T * V if sh.softcap else 0
    if s.loss == "hf":
        return HeadCost(walk.L, (lt + 4) * T * V + cap, (lt + 12) * T * V + cap, grad_head, 4 * T * V,
                        4 * T * V + cap)
    peak = max(lt * T * V + 8 * n * V, 12 * n * V) + cap
    return HeadCost(walk.L, 4 * n * V + cap, peak, grad_head, 4 * n * V, 4 * n * V + cap)
