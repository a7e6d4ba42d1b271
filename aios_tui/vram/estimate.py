"""The budget: persistent memory + what backward needs + the loss buffers, at the worst moment.

A training step passes through a few moments; the peak allocated by PyTorch is the largest:

- ``loss``: the forward is done and every block's saved tensors are alive; the loss makes its
  buffers (and, in backward, their gradients) on top;
- ``backward``: the loss buffers are gone, the head's gradient exists and the top block's
  backward is running (with checkpointing: that block's recomputed activations);
- ``optimizer``: activations are gone, every gradient exists and the optimizer steps.

Persistent memory (weights, adapters, optimizer states, workspaces; the gradients too while
accumulating micro-batches) is there at every moment. The device memory NVML shows adds the
caching allocator's unused cache, the CUDA context and paged optimizer state.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from functools import lru_cache
from typing import Any, Callable

from aios_tui.errors import UserError
from aios_tui.vram import activations as act
from aios_tui.vram import decoders
from aios_tui.vram.loss import HeadCost, head_cost
from aios_tui.vram.refusals import setup_problems
from aios_tui.vram.params import (
    count_params, gradient_bytes, optimizer_bytes, resolve_plan, weight_bytes,
)
from aios_tui.vram.setup import DTYPE_BYTES, LOSSES, METHODS, Setup, adalora_start
from aios_tui.vram.shape import EXACT_TYPES, HRM, ModelShape

MiB = 1 << 20
# cuBLAS and cuBLASLt workspaces, allocated through PyTorch's allocator at the first matmul
# (64 MiB + 1 KiB on an H200 with torch 2.11: mem_after_build in calibration/).
CUDA_WORKSPACE = 64 * MiB
# NVML-visible memory beyond PyTorch's reserved pool: CUDA context, loaded kernels (cuBLAS,
# cuDNN, attention) and the driver's reserve. nvml_used - peak_reserved in calibration/ is
# 1.432-1.449 GB on an H200 with torch 2.11 / CUDA 13; smaller cards and older drivers use less.
CUDA_CONTEXT = 1_449_000_000
# The caching allocator's reserve above the peak it hands out: the large loss buffers come and
# go in sizes that do not tile, gradients of a full fine-tune arrive while activations leave,
# and checkpointing recomputes blocks into the cache. Fitted on calibration/ (9 runs; see
# bench/vram_accuracy.py): reserved - allocated = 1.075 x the largest loss buffer + 0.59 x the
# gradients of a full fine-tune + 0.3 x one block's activations when checkpointing. The last
# was refitted on the three checkpointed runs measured (the calibration line and the engine's
# GPT-2 8-bit and 8B QLoRA runs in bench/RESULTS.md): one block's recompute mostly reuses the
# cache the previous block's left, so it adds little.
RESERVE_PER_BIG_BUFFER = 1.075
RESERVE_GRAD_SHARE = 0.59
RESERVE_RECOMPUTE = 0.3
RESERVE_FLOOR = 256 * MiB

KEYS = ("base_weights", "adapter_weights", "gradients", "optimizer_states", "activations",
        "logits_and_loss", "framework_overhead")
LABELS = {"base_weights": "base weights", "adapter_weights": "adapter weights",
          "gradients": "gradients", "optimizer_states": "optimizer states",
          "activations": "activations (kept for backward)", "logits_and_loss": "logits and loss buffers",
          "framework_overhead": "framework overhead"}


@dataclass
class Suggestion:
    change: str
    flags: str
    peak_allocated_bytes: int
    device_used_bytes: int
    fits: bool | None

    def to_dict(self) -> dict[str, Any]:
        return {"change": self.change, "flags": self.flags, "peak_allocated_bytes": self.peak_allocated_bytes,
                "device_used_bytes": self.device_used_bytes, "fits": self.fits}


@dataclass
class Estimate:
    shape: ModelShape
    setup: Setup
    params_total: int
    params_trainable: int
    peak_allocated_bytes: int
    peak_reserved_bytes: int
    device_used_bytes: int
    phase: str
    breakdown: dict[str, int]
    phases: dict[str, int]
    details: dict[str, int]
    paged_bytes: int = 0            # 8-bit optimizer states in managed memory, outside the allocator
    # the breakdown at every moment of the step (``breakdown`` is the one at the peak)
    phase_breakdowns: dict[str, dict[str, int]] = field(default_factory=dict)
    gpu_memory_bytes: int | None = None
    gpu_label: str | None = None
    fits: bool | None = None
    suggestions: list[Suggestion] = field(default_factory=list)
    assumptions: list[str] = field(default_factory=list)

    @property
    def headroom_bytes(self) -> int | None:
        return None if self.gpu_memory_bytes is None else self.gpu_memory_bytes - self.device_used_bytes

    def to_dict(self) -> dict[str, Any]:
        s = self.setup
        return {
            "peak_allocated_bytes": self.peak_allocated_bytes,
            "peak_reserved_bytes": self.peak_reserved_bytes,
            "device_used_bytes": self.device_used_bytes,
            "paged_optimizer_bytes": self.paged_bytes,
            "breakdown": dict(self.breakdown),
            "peak_phase": self.phase,
            "phases": dict(self.phases),
            "phase_breakdowns": {k: dict(v) for k, v in self.phase_breakdowns.items()},
            "details": dict(self.details),
            "fits": self.fits,
            "gpu_memory_bytes": self.gpu_memory_bytes,
            "gpu": self.gpu_label,
            "headroom_bytes": self.headroom_bytes,
            "suggestions": [x.to_dict() for x in self.suggestions],
            "parameters": {"total": self.params_total, "trainable": self.params_trainable,
                           "trainable_pct": round(100.0 * self.params_trainable / self.params_total, 4)
                           if self.params_total else 0.0},
            "model": self.shape.summary(),
            "setup": {"method": s.method, "r": s.r, **({"target_r": s.target_r} if s.target_r else {}),
                      "targets": list(s.targets), "weights": s.weights,
                      "amp": s.amp, "quant": s.quant, "gradient_checkpointing": s.grad_ckpt,
                      "optimizer": s.optimizer, "batch_size": s.batch, "seq_len": s.seq,
                      "grad_accum": s.grad_accum, "loss": s.loss, "attention": s.attention},
            "assumptions": list(self.assumptions),
        }


def check_setup(shape: ModelShape, s: Setup) -> None:
    problems = []
    if s.method not in METHODS:
        problems.append(f"method must be one of {', '.join(METHODS)}, not {s.method!r}")
    if s.weights not in DTYPE_BYTES:
        problems.append(f"weights dtype must be one of {', '.join(DTYPE_BYTES)}, not {s.weights!r}")
    if s.loss not in LOSSES:
        problems.append(f"loss must be one of {', '.join(LOSSES)}, not {s.loss!r}")
    if s.quant not in (None, "8bit", "4bit"):
        problems.append(f"quantization must be 8bit or 4bit, not {s.quant!r}")
    if s.quant and s.method == "full":
        problems.append("memory.load_in_4bit/load_in_8bit: quantized base weights cannot be trained in full; "
                        "use an adapter (--use-peft)")
    if s.batch < 1 or s.seq < 2 or s.grad_accum < 1:
        problems.append("batch size, sequence length (>= 2) and grad accumulation must be positive")
    if s.method in ("lora", "adalora") and s.r < 1:
        problems.append("lora_r must be at least 1")
    if not problems:
        problems = setup_problems(shape, s, shape.name or shape.model_type)
    if problems:
        raise UserError(problems)


def _reserve(big_buffer: int, grads_in_backward: int, recompute: int) -> int:
    return max(RESERVE_FLOOR, int(RESERVE_PER_BIG_BUFFER * big_buffer + RESERVE_GRAD_SHARE * grads_in_backward
                                  + RESERVE_RECOMPUTE * recompute))


@dataclass
class ActivationParts:
    x0: act.Act
    outside: act.Ledger
    costs: act.BlockCost
    head: HeadCost
    segments: int
    blocks: int            # bytes every block keeps, one segment


def activation_parts(ctx: act.Context) -> ActivationParts:
    shape, s = ctx.shape, ctx.setup
    x0 = act.embedding_output(ctx)
    outside, x_in = act.outside_blocks(ctx, x0)
    x_in = act.block_input(ctx, x_in, outside)
    costs = act.block_costs(ctx, x_in)
    # a tensor every block is handed (MPT's bool mask) is kept once, if any block keeps it
    for led in (costs.first, costs.rest)[:shape.layers]:
        for key, (n, kind) in led.shared.items():
            outside.keep(key, n, kind)
    segments = (s.hrm_segments_in_graph or shape.halt_max_steps) if shape.family == HRM else 1
    blocks = act.ledger_bytes(costs.first, s.tokens) + (shape.layers - 1) * act.ledger_bytes(costs.rest, s.tokens)
    head = head_cost(ctx, costs.rest_input, segments)
    return ActivationParts(x_in, outside, costs, head, segments, blocks)


def saved_for_backward(shape: ModelShape, s: Setup) -> int:
    """Bytes autograd keeps for backward in one step without checkpointing (what a walk of
    the graph finds): every block, the head, the loss; parameters and token ids excluded."""
    check_setup(shape, s)
    ctx = act.Context(shape, s, resolve_plan(shape, s))
    p = activation_parts(ctx)
    T = s.tokens
    per_segment = p.blocks + act.ledger_bytes(p.head.ledger, T) + act.ledger_bytes(p.outside, T)
    return per_segment * p.segments + p.head.autograd_saved


def compute(shape: ModelShape, s: Setup) -> Estimate:
    """The estimate for one shape and setup, without GPU comparison or suggestions."""
    est = _compute(shape, s)
    # a copy: callers fill in the GPU comparison; the cached one stays as computed
    return replace(est, breakdown=dict(est.breakdown), phases=dict(est.phases), details=dict(est.details),
                   phase_breakdowns={k: dict(v) for k, v in est.phase_breakdowns.items()},
                   suggestions=[], assumptions=list(est.assumptions))


@lru_cache(maxsize=1024)
def _compute(shape: ModelShape, s: Setup) -> Estimate:
    check_setup(shape, s)
    plan = resolve_plan(shape, s)
    counts = count_params(shape, s, plan)
    ctx = act.Context(shape, s, plan)
    T = s.tokens
    cuda = s.device == "cuda"

    base_w, adapter_w = weight_bytes(shape, s, plan, counts)
    grads = gradient_bytes(counts)
    opt_alloc, opt_paged = optimizer_bytes(s, counts)
    framework = (CUDA_WORKSPACE if cuda else 0) + 24 * T      # + input ids, labels, positions
    accumulating = s.grad_accum > 1

    parts = activation_parts(ctx)
    embed, costs, head = parts.outside, parts.costs, parts.head
    n_blocks, segments = shape.layers, parts.segments
    rest = act.ledger_bytes(costs.rest, T)
    blocks_saved = parts.blocks
    head_saved = act.ledger_bytes(head.ledger, T) + act.ledger_bytes(embed, T)

    kinds: dict[str, float] = {}
    for led, times in ((costs.first, 1), (costs.rest, n_blocks - 1)):
        for k, v in led.by_kind(T).items():
            kinds[k] = kinds.get(k, 0) + v * times * segments
    for k, v in head.ledger.by_kind(T).items():
        kinds["head"] = kinds.get("head", 0) + v * segments

    ws = act.backward_workspace(ctx, T)
    quant_ws = _quant_workspace(ctx, T)
    # while lm_head's backward runs, the logits' gradient exists (and, when the caller kept the
    # model's output, the logits themselves)
    logits_tv = (2 if s.amp else ctx.pb) * T * shape.vocab
    retained = 0 if s.loss == "chunked" or shape.family == HRM else logits_tv * (2 if s.loss == "hf" else 1)

    persistent = base_w + adapter_w + opt_alloc + framework + (grads if accumulating else 0)
    grad_now = grads if accumulating else 0
    if s.grad_ckpt:
        # each checkpointed block keeps its input, and what its ops hold outside autograd's
        # saved tensors (bitsandbytes' 8-bit layer inputs); backward recomputes one block at a time
        unhooked = int(round((costs.first.unhooked_token_bytes()
                              + (n_blocks - 1) * costs.rest.unhooked_token_bytes()) * T)) * segments
        kept = n_blocks * T * shape.hidden * costs.rest_input.dt * segments + unhooked
        recompute = rest - int(round(costs.rest.unhooked_token_bytes() * T))
        acts_loss = kept + head_saved * segments
        acts_bwd = acts_loss + recompute + ws
    else:
        acts_loss = blocks_saved * segments + head_saved * segments
        acts_bwd = acts_loss + ws
    head_grad = 0 if accumulating else head.grad_head
    phases = {
        "loss": persistent + acts_loss + head.loss_peak,
        "backward": persistent + acts_bwd + retained + head_grad + quant_ws,
        "optimizer": persistent + (0 if accumulating else grads),
    }
    phase = max(phases, key=lambda k: phases[k])
    moments = {}
    for moment in phases:
        bd = dict.fromkeys(KEYS, 0)
        bd["base_weights"] = base_w
        bd["adapter_weights"] = adapter_w
        bd["optimizer_states"] = opt_alloc
        bd["framework_overhead"] = framework
        bd["gradients"] = grad_now
        if moment == "loss":
            bd["activations"] = acts_loss
            bd["logits_and_loss"] = head.loss_peak
        elif moment == "backward":
            bd["activations"] = acts_bwd
            bd["logits_and_loss"] = retained
            bd["gradients"] += head_grad
            bd["framework_overhead"] += quant_ws
        else:
            bd["gradients"] = grads
        moments[moment] = bd      # sums to phases[moment]
    bd = moments[phase]
    peak = sum(bd.values())

    grads_in_bwd = grads if s.method == "full" else 0
    reserved = peak + (_reserve(head.largest, grads_in_bwd, rest if s.grad_ckpt else 0) if cuda else 0)
    device_used = reserved + (CUDA_CONTEXT if cuda else 0) + opt_paged

    details = {k: int(v) for k, v in sorted(kinds.items(), key=lambda kv: -kv[1])}
    if s.grad_ckpt:
        details = {"checkpointed block inputs": kept - unhooked, "one recomputed block": recompute}
        if unhooked:
            details["8-bit layer inputs (kept through checkpointing)"] = unhooked
    details["backward working set"] = ws
    if opt_paged:
        details["paged optimizer states (outside the allocator)"] = opt_paged
    est = Estimate(shape=shape, setup=s, params_total=counts.total, params_trainable=counts.trainable,
                   peak_allocated_bytes=peak, peak_reserved_bytes=reserved, device_used_bytes=device_used,
                   phase=phase, breakdown=bd, phases=phases, details=details, paged_bytes=opt_paged,
                   phase_breakdowns=moments)
    est.assumptions = assumptions(shape, s)
    return est


def _quant_workspace(ctx: act.Context, tokens: int) -> int:
    """bitsandbytes' temporary buffers for the largest quantized layer in backward."""
    if not ctx.setup.quant:
        return 0
    biggest = max(ctx.plan.linears, key=lambda lp: lp.params)
    if ctx.setup.quant == "4bit":
        return biggest.params * 2                       # dequantized bf16 weight
    in_dt = 2 if ctx.amp else ctx.pb
    return max(biggest.params * in_dt,                  # dequantized weight in the input's dtype
               tokens * (4 * biggest.lin.fan_out + 3 * biggest.lin.fan_in))  # int32 out, int8 + fp16 in


def assumptions(shape: ModelShape, s: Setup) -> list[str]:
    out = []
    if shape.model_type not in EXACT_TYPES:
        block = ("GPT-2's block (c_attn, c_proj, c_fc, learned positions)" if shape.family == "gpt2" else
                 "a Llama-style decoder (RMSNorm, RoPE, gated MLP, layers named q_proj ... down_proj)")
        out.append(f"{shape.model_type}: counted as {block}, so figures and target names are approximate; "
                   "`aios-tui train --check` checks the targets against the real model")
    elif shape.text_of:
        out.append(f"{shape.text_of}: only its {shape.model_type} text model is counted; the rest of the "
                   "multimodal model (a vision tower, whose layers a target name may also match) is not")
    out += shape.notes
    if shape.model_type in ("gptj", "codegen") and not decoders.gptj_attention_interface():
        out.append(f"{shape.model_type}: laid out as transformers 5.24 runs it; the installed transformers is "
                   "older (eager attention, rotary tables per sequence), so activations are approximate")
    elif s.attention == "sdpa" and not shape.layout.sdpa:
        why = " (soft-capped scores)" if shape.attn_softcap else ""
        out.append(f"{shape.model_type}: transformers has no SDPA attention for it{why}; counted "
                   "with eager attention, which the engine falls back to")
    if s.attention == "flash_attention_2" and not shape.layout.flash:
        out.append(f"{shape.model_type}: transformers has no flash_attention_2 for it, so the model does not load "
                   "so (--attn-implementation eager does); counted with eager attention")
    if shape.softcap and s.loss != "chunked":
        out.append("final_logit_softcapping: the logits pass through tanh, which keeps one more [tokens, vocab] "
                   "tensor for backward (and the engine's chunked loss does not apply)")
    if shape.logits_scale != 1 and s.loss != "chunked":
        out.append(f"logits_scaling: the logits are divided by {shape.logits_scale:g}, a [tokens, vocab] copy that "
                   "autograd does not keep and that never sets the peak (and the engine's chunked loss does not apply)")
    if shape.logit_scale != 1 and s.loss != "chunked":
        out.append(f"logit_scale: the logits are multiplied by {shape.logit_scale:g}, a [tokens, vocab] product that "
                   "autograd does not keep and that never sets the peak (and the engine's chunked loss does not apply)")
    if s.loss == "chunked":
        out.append("loss: chunked cross-entropy (train.fused_loss), no full-vocabulary logits")
    if s.quant:
        out.append("quantized base: embeddings, norms and lm_head in fp32 (peft k-bit preparation)")
    if s.quant == "8bit" and s.grad_ckpt:
        out.append("8-bit base: bitsandbytes keeps each 8-bit layer's input on the graph, so checkpointing "
                   "does not drop it (4-bit keeps none)")
    if s.optimizer == "adamw8bit" and s.paged and s.device == "cuda":
        out.append("8-bit AdamW paged: large states live in managed memory, outside PyTorch's allocator")
    if shape.family == HRM:
        seg = s.hrm_segments_in_graph or shape.halt_max_steps
        out.append(f"HRM ACTv1: {seg} ACT segment(s) keep their graph until one backward; per segment "
                   "only the last L-level and last H-level pass keep activations")
    if s.amp and s.weights == "fp32" and not s.fp8:
        out.append("bf16 autocast: weights cast to bf16 per forward and kept for backward")
    if s.fp8:
        out.append("fp8 matmuls: each base linear layer keeps its (bf16) input for backward, as uncompiled; "
                   "a compiled run keeps what the compiler chooses")
    if s.compiled:
        out.append("torch_compile: counted as uncompiled; compiled runs peaked 14-19% lower on an H200 "
                   "(bench/RESULTS.md)")
    return out


# -- suggestions -----------------------------------------------------------------------------

Change = tuple[str, str, Callable[[Setup], Setup]]


def _half_batch(s: Setup) -> Setup:
    b = s.batch // 2
    return s.with_(batch=b, grad_accum=s.grad_accum * s.batch // b if s.batch % b == 0 else s.grad_accum * 2)


def _candidates(shape: ModelShape, s: Setup) -> list[Change]:
    """Single changes that apply to ``s``: (what, the flags, how)."""
    c: list[Change] = []
    if not s.grad_ckpt:
        c.append(("turn on gradient checkpointing", "--gradient-checkpointing", lambda x: x.with_(grad_ckpt=True)))
    if s.weights == "fp32" and not s.amp and not s.quant:
        c.append(("turn on bf16 autocast", "--amp", lambda x: x.with_(amp=True)))
    if s.weights == "fp32" and not s.quant:
        # autocast stays as it was: the engine autocasts a bf16 base too when --amp is on
        c.append(("load the weights in bf16", "--model-dtype bf16", lambda x: x.with_(weights="bf16")))
    if s.loss != "chunked" and shape.fused_loss_applies and shape.family != HRM:
        c.append(("use the chunked (fused) loss", "--fused-loss", lambda x: x.with_(loss="chunked")))
    if s.loss == "chunked":
        # not always the larger: with short sequences a trained head's gradient buffers can
        # outweigh the whole logits
        c.append(("compute the loss in one piece (no chunks)", "--no-fused-loss", lambda x: x.with_(loss="plain")))
    if s.optimizer != "adamw8bit":
        c.append(("use 8-bit AdamW", "--use-8bit-optimizer", lambda x: x.with_(optimizer="adamw8bit")))
    if s.method == "full" and shape.family != HRM:
        targets = shape.suggested_targets()
        c.append((f"train a LoRA adapter (r=16 on {','.join(targets)}) instead of every weight",
                  f"--use-peft --peft-method lora --lora-r 16 --lora-target-modules {','.join(targets)}",
                  lambda x: x.with_(method="lora", r=16, targets=targets)))
    if s.peft and not s.quant and shape.family != HRM:
        c.append(("load the base weights in 4-bit (QLoRA)", "--load-in-4bit", lambda x: x.with_(quant="4bit")))
    if s.peft and s.quant == "8bit":
        # bitsandbytes' 8-bit layers keep their inputs for backward; its 4-bit ones keep none
        c.append(("load the base in 4-bit instead of 8-bit", "--no-load-in-8bit --load-in-4bit",
                  lambda x: x.with_(quant="4bit")))
    if s.batch > 1:
        h = _half_batch(s)
        c.append((f"batch {h.batch} with grad accumulation {h.grad_accum} (same tokens per step)",
                  f"--batch-size {h.batch} --grad-accum {h.grad_accum}", _half_batch))
    if s.seq >= 256:
        c.append((f"sequence length {s.seq // 2}", f"--max-seq-len {s.seq // 2}",
                  lambda x: x.with_(seq=x.seq // 2)))
    if s.method == "lora" and s.r >= 8:
        c.append((f"rank {s.r // 2}", f"--lora-r {s.r // 2}", lambda x: x.with_(r=x.r // 2)))
    if s.method == "adalora" and s.target_r >= 8:
        # --lora-r is AdaLoRA's target; the starting rank it holds memory for is given with it,
        # so the figure stands whether that was set (--adalora-init-r) or derived
        t = s.target_r // 2
        start = adalora_start(t)
        c.append((f"rank {start}->{t}", f"--lora-r {t} --adalora-init-r {start}",
                  lambda x: x.with_(r=start, target_r=t)))
    return c


def _as_engine(before: Setup, after: Setup) -> Setup:
    """``after`` with the fields the engine derives from the others (vram.run.setup_from_config)
    derived again, where ``before`` had them as the engine would: a suggestion's flags then
    give the figure it shows."""
    def grad_in(x: Setup) -> bool:       # the embedding output requires grad
        return x.method == "full" or x.grad_ckpt

    def cast(x: Setup) -> bool:          # peft's fp32 cast of LoRA inputs stays on
        return not (x.method == "lora" and x.amp and not x.quant)

    kw: dict[str, Any] = {}
    if before.input_requires_grad == grad_in(before):
        kw["input_requires_grad"] = grad_in(after)
    if before.lora_input_cast == cast(before):
        kw["lora_input_cast"] = cast(after)
    return after.with_(**kw) if kw else after


def _fits(device_used: int, gpu: int | None) -> bool | None:
    return None if gpu is None else device_used <= gpu


def suggest(shape: ModelShape, s: Setup, base: Estimate, gpu: int | None, limit: int = 6) -> list[Suggestion]:
    """Single changes that lower the peak, best first; when none fits, a combination that does."""
    found: list[tuple[Suggestion, Change]] = []
    for cand in _candidates(shape, s):
        change, flags, how = cand
        try:
            e = compute(shape, _as_engine(s, how(s)))
        except UserError:
            continue
        if e.peak_allocated_bytes < base.peak_allocated_bytes * 0.98:
            found.append((Suggestion(change, flags, e.peak_allocated_bytes, e.device_used_bytes,
                                     _fits(e.device_used_bytes, gpu)), cand))
    found.sort(key=lambda t: t[0].device_used_bytes)
    out = [sg for sg, _ in found[:limit]]
    if gpu is not None and base.device_used_bytes > gpu and not any(sg.fits for sg in out):
        combo = _combine(shape, s, [cand for _, cand in found], gpu)
        if combo:
            out.insert(0, combo)
    return out


def _combine(shape: ModelShape, s: Setup, ranked: list[Change], gpu: int) -> Suggestion | None:
    """Stack the single changes, best first (never shortening sequences or lowering the rank:
    those change what is learned), until the step fits."""
    cur, changes, flags = s, [], []

    def fitting(e: Estimate) -> Suggestion | None:
        if e.device_used_bytes > gpu:
            return None
        # The batch is named once, with its final size, however often it was halved.
        batch = ([f"batch {cur.batch} with grad accumulation {cur.grad_accum}"],
                 [f"--batch-size {cur.batch} --grad-accum {cur.grad_accum}"]) if cur.batch != s.batch else ([], [])
        return Suggestion(" + ".join(changes + batch[0]), " ".join(flags + batch[1]),
                          e.peak_allocated_bytes, e.device_used_bytes, True)

    # bf16 weights make autocast moot (and switch it off), so a combination names only them.
    moot = ("--amp",) if any(flag == "--model-dtype bf16" for _, flag, _ in ranked) else ()
    for change, flag, how in ranked:
        if flag.startswith(("--max-seq-len", "--lora-r", "--batch-size")) or flag in moot:
            continue
        try:
            nxt = _as_engine(cur, how(cur))
            e = compute(shape, nxt)
        except UserError:
            continue
        cur = nxt
        changes.append(change.split(" (")[0])
        flags.append(flag)
        if (done := fitting(e)) is not None:
            return done
    # still too big: halve the batch while it helps
    while cur.batch > 1:
        cur = _half_batch(cur)
        if (done := fitting(compute(shape, cur))) is not None:
            return done
    return None


def estimate(shape: ModelShape, s: Setup, gpu_memory_bytes: int | None = None, gpu_label: str | None = None,
             suggestions: bool = True) -> Estimate:
    est = compute(shape, s)
    est.gpu_memory_bytes = gpu_memory_bytes
    est.gpu_label = gpu_label
    est.fits = _fits(est.device_used_bytes, gpu_memory_bytes)
    if suggestions and est.fits is not True:   # nothing to suggest for a step that fits
        est.suggestions = suggest(shape, s, est, gpu_memory_bytes)
    return est
