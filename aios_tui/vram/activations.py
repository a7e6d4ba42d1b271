"""Tensors autograd keeps for backward, counted op by op.

Each block is walked forward in the order its code runs. Every op records the tensors its
backward formula needs, and only when they are needed: PyTorch saves an op's input for a
weight gradient only if that weight is trained, and saves nothing at all for an op none of
whose inputs requires grad. That is why a frozen base layer under LoRA keeps no input, and
why the first block of a PEFT model (whose input comes from a frozen embedding) keeps less.

Tensors are keyed, so one tensor kept by several ops (q/k/v reading the same norm output in
fp32, a flash-attention output that o_proj also keeps) counts once. Sizes are bytes per token
of the micro-batch unless marked per layer (weight copies). dtypes are byte widths: 4 = fp32,
2 = bf16/fp16, 1 = bool/int8.

What each kernel keeps (CUDA; the CPU differs where noted):
- RMSNorm: its fp32 input (a copy when the input is bf16) and the [T, 1] rsqrt; the normalised
  value too when its weight is trained.
- linear: the input, cast to bf16 under autocast (each layer casts separately; autocast caches
  only parameter casts), when the weight is trained; the weight, which under autocast with fp32
  weights is a bf16 copy made per forward and kept until backward.
- bitsandbytes 8-bit linear: its input whenever the input needs a gradient, held on the autograd
  node itself, so checkpointing keeps it too (tests/memory_savers/test_quantized_base.py walks
  the graph for them). 4-bit: nothing.
- peft LoRA: the dropout mask (bool on CUDA; the CPU keeps a full-size float noise tensor),
  the fp32 dropout output (cast to bf16 under autocast) for lora_A, and A's [T, r] output.
  Without peft's fp32 cast (the engine under autocast with a bf16 base), lora_A keeps its bf16
  input itself, one copy for all the layers that read the same tensor.
- SDPA flash / memory-efficient: q, k, v (k and v at the key/value head count), the output and
  a log-sum-exp per head. fp32 with grouped-query attention has no fused CUDA kernel and runs the
  math kernel, which keeps the [heads, seq, seq] probabilities; so does eager attention.
- SiLU keeps its input; the gated product keeps both factors.

HRM ACTv1 (aios_tui/engine/hrm): per ACT segment every H and L update but the last of each
runs under no_grad and keeps nothing, so h_cycles and l_cycles cost time, not memory; the
last L pass (l_layers post-norm blocks) and the last H pass (h_layers blocks) keep their
activations, the segment's loss keeps its fp32 log-softmax (or, fused, the hidden-state
gradient) and q_head a [batch, hidden] gather. The ACT objective sums the segments and
backpropagates once, so every segment's graph is alive at the loss: memory grows with
halt_max_steps (``Setup.hrm_segments_in_graph`` overrides it, e.g. 1 for a loop that steps
per segment). tests/vram/test_saved_tensors.py checks all of this against the model.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from aios_tui.vram.refusals import FP8_LAYERS, FP8_MULTIPLE
from aios_tui.vram.params import LinearPlan, Plan
from aios_tui.vram.setup import DTYPE_BYTES, Setup
from aios_tui.vram.shape import Linear, ModelShape

# Under bf16 autocast with fp32 weights, each Llama block measured on an H200 (torch 2.11,
# calibration/) keeps about this many bytes per token per hidden unit more than the tensors
# listed above account for: the equivalent of two fp32 [T, hidden] tensors. It is absent in
# pure bf16 and in fp32 runs and inside checkpointed blocks. Fitted on the autocast lines of
# the calibration file; the single constant of the activation model.
AMP_FP32_BLOCK_EXTRA = 8.36


@dataclass
class Act:
    """An activation flowing forward: its key, dtype width, features per token, requires_grad."""

    key: str
    dt: int
    width: int
    g: bool


@dataclass
class Ledger:
    per_token: dict[str, tuple[float, str]] = field(default_factory=dict)
    per_layer: dict[str, tuple[int, str]] = field(default_factory=dict)
    # keys held by an autograd node's own attributes rather than saved through autograd, so
    # checkpointing (which works through the saved-tensor hooks) cannot drop them
    unhooked: set[str] = field(default_factory=set)
    shared: dict[str, tuple[float, str]] = field(default_factory=dict)   # see keep_shared

    def keep(self, key: str, nbytes: float, kind: str, unhooked: bool = False) -> None:
        if nbytes and key not in self.per_token:
            self.per_token[key] = (nbytes, kind)
        if nbytes and unhooked:
            self.unhooked.add(key)

    def unhooked_token_bytes(self) -> float:
        return sum(self.per_token[k][0] for k in self.unhooked)

    def keep_shared(self, key: str, nbytes: float, kind: str) -> None:
        """Kept once per forward however many blocks keep it (one tensor the model hands every block)."""
        if nbytes:
            self.shared.setdefault(key, (nbytes, kind))

    def keep_fixed(self, key: str, nbytes: int, kind: str) -> None:
        if nbytes and key not in self.per_layer:
            self.per_layer[key] = (nbytes, kind)

    def token_bytes(self) -> float:
        return sum(v for v, _ in self.per_token.values())

    def fixed_bytes(self) -> int:
        return sum(v for v, _ in self.per_layer.values())

    def by_kind(self, tokens: int) -> dict[str, float]:
        out: dict[str, float] = {}
        for v, kind in self.per_token.values():
            out[kind] = out.get(kind, 0) + v * tokens
        for v, kind in self.per_layer.values():
            out[kind] = out.get(kind, 0) + v
        return out


@dataclass
class Context:
    shape: ModelShape
    setup: Setup
    plan: Plan

    def __post_init__(self) -> None:
        s = self.setup
        self.amp = s.amp
        self.wb = DTYPE_BYTES[s.weights]
        self.pb = 4 if s.quant else self.wb       # embeddings, norms, head: fp32 after k-bit prep
        self.cpu = s.device == "cpu"
        self.seq = s.seq
        self.cos_dt = self.pb                     # RoPE tables follow the embedding output's dtype


class BlockWalk:
    """One pass over a block (or the model's head), recording what backward will need."""

    def __init__(self, ctx: Context, ledger: Ledger | None = None, prefix: str = ""):
        self.c = ctx
        self.L = ledger or Ledger()
        self.p = prefix

    # -- generic ops ------------------------------------------------------------------------

    def k(self, name: str) -> str:
        return self.p + name

    def dropout(self, x: Act, p: float, name: str, kind: str) -> Act:
        """nn.Dropout in training: CUDA keeps a bool mask, the CPU a float noise tensor."""
        if p <= 0:
            return x
        if x.g:
            if self.c.cpu:
                self.L.keep(self.k("noise@" + name), x.dt * x.width, kind)
            else:
                self.L.keep(self.k("mask@" + name), x.width, kind)
        return Act(self.k("drop@" + name), x.dt, x.width, x.g)

    def rms_norm(self, x: Act, name: str, weighted: bool = True, rows: int = 1, style: str = "llama",
                 weight: int = 0) -> Act:
        """RMSNorm over ``rows`` groups of each token's features (q/k norms: one per head). Llama
        multiplies the weight into the normalised value cast back to the input's dtype; OLMo 2
        and Gemma multiply in fp32 and cast the product (Gemma by 1 + weight, a tensor it keeps)."""
        c = self.c
        trained = weighted and c.plan.norms_trainable
        if x.g:
            self.L.keep(x.key if x.dt == 4 else x.key + ">f32", 4 * x.width, "norms")
            self.L.keep(self.k("rsqrt@" + name), 4 * rows, "norms")
            if style == "gemma":
                self.L.keep_fixed(self.k("1+w@" + name), 4 * (weight or x.width), "norms")
        if trained:
            self.L.keep(self.k("normed@" + name), (x.dt if style == "llama" else 4) * x.width, "norms")
        dt = max(c.pb, x.dt) if weighted and style == "llama" else x.dt
        return Act(self.k(name + ".out"), dt, x.width, x.g or trained)

    def layer_norm(self, x: Act, name: str, rows: int = 1) -> Act:
        c = self.c
        trained = c.plan.norms_trainable and c.shape.norm_affine
        # layer_norm autocasts to fp32, each call its own copy; OLMo casts to fp32 itself
        fp32 = c.amp or c.shape.layout.ln_fp32
        if x.g or trained:
            if fp32:
                self.L.keep(x.key if x.dt == 4 else f"{x.key}>f32@{self.k(name)}", 4 * x.width, "norms")
            else:
                self.L.keep(x.key, x.dt * x.width, "norms")
            # mean and rstd: fp32 on CUDA; the CPU kernel keeps them in its input's dtype
            stat = (4 if fp32 else x.dt) if c.cpu else 4
            self.L.keep(self.k("stats@" + name), 2 * stat * rows, "norms")
        out_dt = x.dt if c.shape.layout.ln_fp32 else 4 if c.amp else x.dt   # OLMo casts back
        return Act(self.k(name + ".out"), out_dt, x.width, x.g or trained)

    def cohere_norm(self, x: Act, name: str, rows: int = 1) -> Act:
        """Cohere's LayerNorm, op by op in fp32: x - mean is computed twice, one kept by the
        square and one by its product with the rsqrt (kept too); the weight's product keeps the
        normalised value when the weight is trained, and the weight cast to fp32 (a copy per
        layer unless it is fp32) for the input's gradient. The result is cast back to x's dtype."""
        c = self.c
        trained = c.plan.norms_trainable
        if x.g:
            self.L.keep(self.k("centered@" + name), 4 * x.width, "norms")
            self.L.keep(self.k("centered2@" + name), 4 * x.width, "norms")
            self.L.keep(self.k("rsqrt@" + name), 4 * rows, "norms")
            if c.pb != 4:
                self.L.keep_fixed(self.k("w32@" + name), 4 * x.width, "norms")
        if trained:
            self.L.keep(self.k("normed@" + name), 4 * x.width, "norms")
        return Act(self.k(name + ".out"), x.dt, x.width, x.g or trained)

    def norm(self, x: Act, name: str, rows: int = 1, weight: int = 0) -> Act:
        """The model's own norm: LayerNorm, or its flavour of RMSNorm."""
        sh = self.c.shape
        if sh.norm == "layer":
            return self.layer_norm(x, name, rows)
        if sh.norm == "cohere":
            return self.cohere_norm(x, name, rows)
        return self.rms_norm(x, name, rows=rows, style=sh.layout.rms, weight=weight)

    def clamp(self, x: Act, name: str, in_place: bool) -> Act:
        """Backward of a clamp needs the values from before: in place, autograd keeps a copy of
        them; otherwise it keeps the input, and the output is a new tensor."""
        if x.g:
            self.L.keep(self.k("clamped@" + name) if in_place else x.key, x.dt * x.width, "attention")
        return x if in_place else Act(self.k(name + ".clamped"), x.dt, x.width, x.g)

    def add(self, a: Act, b: Act, name: str) -> Act:
        return Act(self.k(name), max(a.dt, b.dt), a.width, a.g or b.g)

    # -- linear layers and their adapters --------------------------------------------------

    def linear(self, x: Act, lp: LinearPlan, name: str, kind: str, wdt: int | None = None) -> Act:
        c, lin = self.c, lp.lin
        wdt = wdt or c.wb
        if lp.adapter == "ia3" and lp.ia3_ff:
            # feed-forward IA3 scales the input: x (as fp32) is kept for the scale's gradient,
            # and the scale vector (a fresh product of the adapter's vectors) for x's
            self.L.keep(x.key if x.dt == 4 else self.k(f"{x.key}>f32@{name}"), 4 * lin.fan_in, "adapters")
            if x.g:
                self.L.keep_fixed(self.k("ia3@" + name), 4 * lin.fan_in, "adapters")
            x = Act(self.k(name + ".ia3in"), x.dt, lin.fan_in, True)
        if lp.quantized == "8bit":
            if x.g:
                # bitsandbytes keeps the layer input (ctx.tensors) whenever it needs a gradient,
                # as an attribute of its autograd node: it survives checkpointing
                self.L.keep(x.key, x.dt * lin.fan_in, kind, unhooked=True)
            # CUDA's int8 kernel returns the input's dtype; the CPU's dequantizes the weight and
            # calls F.linear, which autocast runs in bf16
            out_dt = 2 if c.amp and c.cpu else x.dt
        elif lp.quantized == "4bit":
            out_dt = x.dt   # computed in bf16, returned in the input's dtype
        elif self._fp8(lin, kind):
            # torchao's Float8Linear: under autocast it casts its input to bf16 itself (a copy
            # per layer), and keeps that input for backward; the weight it keeps is the parameter
            if x.g or lp.trainable:
                cast = c.amp and x.dt != 2
                self.L.keep(self.k(f"{x.key}>bf16@{name}") if cast else x.key, (2 if c.amp else x.dt) * lin.fan_in,
                            kind)
            out_dt = 2 if c.amp else x.dt
        elif c.amp:
            if lp.trainable:
                self.L.keep(x.key if x.dt == 2 else self.k(f"{x.key}>bf16@{name}"), 2 * lin.fan_in, kind)
            if (x.g or lp.trainable) and wdt == 4:
                self.L.keep_fixed(self.k("wcast@" + name), 2 * lin.fan_in * lin.fan_out, "autocast weight copies")
            out_dt = 2
        else:
            if lp.trainable:
                self.L.keep(x.key, x.dt * lin.fan_in, kind)
            out_dt = wdt
        out = Act(self.k(name + ".out"), out_dt, lin.fan_out, x.g or lp.trainable)
        if lp.adapter in ("lora", "adalora"):
            self._low_rank(x, lin, name)
            return Act(self.k(name + ".out+"), out_dt, lin.fan_out, True)
        if lp.adapter == "ia3" and not lp.ia3_ff:
            self.L.keep(out.key, out_dt * lin.fan_out, "adapters")   # kept for the scale's gradient
            if out.g:
                self.L.keep_fixed(self.k("ia3@" + name), 4 * lin.fan_out, "adapters")
            return Act(self.k(name + ".ia3"), out_dt, lin.fan_out, True)
        return out

    def _fp8(self, lin: Linear, kind: str) -> bool:
        """Whether the engine's train.fp8 swaps this layer (engine/fp8.eligible): nn.Linear only
        (GPT-2's Conv1D layers stay), never the head, sizes multiples of 16."""
        return (self.c.setup.fp8 and kind != "head" and self.c.shape.layout.linear in FP8_LAYERS
                and lin.fan_in % FP8_MULTIPLE == 0 and lin.fan_out % FP8_MULTIPLE == 0)

    def _low_rank(self, x: Act, lin: Linear, name: str) -> None:
        c, s = self.c, self.c.setup
        r = s.r
        if c.amp and x.dt == 2 and not s.lora_input_cast and s.method == "lora":
            a_in, a_dt = x.key, 2   # the input as it comes, shared by the layers that read it
        else:   # peft first casts the input to the adapter's dtype (fp32)
            a_in, a_dt = (x.key if x.dt == 4 else self.k(f"{x.key}>f32@{name}")), 4
        if s.dropout > 0:
            if x.g:   # the mask serves only the input's gradient
                if c.cpu:
                    self.L.keep(self.k("noise@" + name), a_dt * lin.fan_in, "adapters")
                else:
                    self.L.keep(self.k("mask@" + name), lin.fan_in, "adapters")
            a_in = self.k("drop@" + name)
        if c.amp:
            self.L.keep(a_in if a_dt == 2 else self.k(f"{a_in}>bf16@{name}"), 2 * lin.fan_in, "adapters")
        else:
            self.L.keep(a_in, 4 * lin.fan_in, "adapters")
        rdt = 2 if c.amp else 4
        self.L.keep(self.k("A.out@" + name), rdt * r, "adapters")
        if s.method == "adalora":
            # (lora_A * lora_E).T, or its bf16 cast, is kept by the first matmul for x's gradient
            if x.g:
                self.L.keep_fixed(self.k("AE@" + name), rdt * r * lin.fan_in, "adapters")
            if s.adalora_ranknum_trained:
                self.L.keep(self.k("scaled@" + name), rdt * lin.fan_out, "adapters")

    # -- attention --------------------------------------------------------------------------

    def kernel(self, a: int, attn_dropout: bool) -> str:
        c, s, sh = self.c, self.c.setup, self.c.shape
        if s.attention == "eager" or (s.attention == "sdpa" and not sh.layout.sdpa) \
                or (s.attention == "flash_attention_2" and not sh.layout.flash):
            return "eager"
        if s.attention == "flash_attention_2":
            return "flash"
        if c.cpu:
            return "math" if attn_dropout else "flash"
        if a == 2 and sh.head_dim <= 256:
            return "flash"
        if sh.kv_heads < sh.heads:
            return "math"          # fp32 + grouped-query: no fused CUDA kernel takes it
        return "flash"             # memory-efficient kernel: keeps the same tensors as flash

    def attention(self, q: Act, k: Act, v: Act, attn_dropout: float = 0.0, fused_qkv: str | None = None,
                  fused_v: str | None = None) -> Act:
        """``fused_qkv``: q, k and v are all views of that one output (GPT-2); ``fused_v``: only v
        is (q and k were rotated into tensors of their own)."""
        c, sh = self.c, self.c.shape
        g = q.g or k.g or v.g
        a = 2 if c.amp else q.dt
        qw, kw, nh = sh.q_width, sh.kv_width, sh.heads
        if not g:
            return Act(self.k("attn.out"), a, qw, False)

        def cast(t: Act) -> str:
            return t.key if t.dt == a else t.key + ">attn"

        kind = self.kernel(a, attn_dropout > 0)
        K = "attention"
        if kind == "flash":
            if fused_qkv:   # GPT-2: q, k, v are views of one c_attn output
                self.L.keep(fused_qkv, a * (qw + 2 * kw), K)
                if c.cpu:   # the CPU kernel makes k and v contiguous and keeps the copies
                    self.L.keep(self.k("k.contig"), a * kw, K)
                    self.L.keep(self.k("v.contig"), a * kw, K)
            else:
                self.L.keep(cast(q), a * qw, K)
                self.L.keep(cast(k), a * kw, K)
                if fused_v and c.cpu:   # the CPU kernel keeps a contiguous copy of v
                    self.L.keep(self.k("v.contig"), a * kw, K)
                elif fused_v:
                    self.L.keep(fused_v, a * (qw + 2 * kw), K)
                else:
                    self.L.keep(cast(v), a * kw, K)
            self.L.keep(self.k("attn.out"), a * qw, K)
            self.L.keep(self.k("lse"), 4 * nh, K)
            merged = "attn.out.copy" if c.cpu and sh.layout.rope_cat else "attn.out"
            return Act(self.k(merged), a, qw, True)
        if kind == "eager":
            return self._eager(q, k, v, a, attn_dropout, fused_qkv)
        # the math kernel computes in fp32 whatever its inputs (torch's default)
        # each matmul keeps an operand only for the other's gradient (a frozen k leaves q unkept)
        s, a = c.seq, 4
        sg = q.g or k.g                                  # the scores need a gradient
        if k.g:
            self.L.keep(self.k("q.scaled"), a * qw, K)
        if q.g:
            self.L.keep(self.k("k.scaled"), a * qw, K)   # repeated to every head, transposed
        if sg:
            self.L.keep(self.k("probs"), a * nh * s, K)
        if attn_dropout > 0:
            if sg:
                self._dropout_mask(a, nh * s)
            if v.g:
                self.L.keep(self.k("probs.drop"), a * nh * s, K)
        elif v.g:
            self.L.keep(self.k("probs"), a * nh * s, K)
        if sg:
            self.L.keep(self.k("v.mat"), a * qw, K)
        # the [b, heads, s, d] result is copied by .transpose(1, 2).contiguous()
        return Act(self.k("attn.out.copy"), 2 if c.amp else q.dt, qw, True)

    def _dropout_mask(self, a: int, elems: int) -> None:
        """What attention dropout keeps for the scores' gradient: CUDA a bool mask, the CPU its
        scaled noise in the activation dtype."""
        if self.c.cpu:
            self.L.keep(self.k("probs.noise"), a * elems, "attention")
        else:
            self.L.keep(self.k("probs.mask"), elems, "attention")

    def _eager(self, q: Act, k: Act, v: Act, a: int, attn_dropout: float, fused_qkv: str | None) -> Act:
        """Hugging Face's eager_attention_forward: each matmul keeps an operand only for the
        other's gradient, so a frozen k (LoRA on q and v) leaves q unkept. q and k still views of
        one fused output (no RoPE) are strided per head: the batched matmul keeps copies."""
        c, sh, K = self.c, self.c.shape, "attention"
        qw, nh, s = sh.q_width, sh.heads, c.seq
        rep = sh.heads // sh.kv_heads
        views = bool(fused_qkv) or q.key == k.key
        sg = q.g or k.g                                  # the scores need a gradient
        if k.g:
            self.L.keep(self.k("q.mat") if views else (q.key if q.dt == a else q.key + ">attn"), a * qw, K)
        if q.g:
            self.L.keep(self.k("k.rep") if rep > 1 or views else (k.key if k.dt == a else k.key + ">attn"),
                        a * qw, K)
        if sg and sh.layout.bool_mask:   # one [batch, 1, seq, seq] bool tensor, whichever layer keeps it
            self.L.keep_shared("causal.mask", s, K)
        if sg and sh.attn_softcap:   # scores = cap * tanh(scores / cap): tanh keeps its output
            self.L.keep(self.k("scores.tanh"), a * nh * s, K)
        if sg:
            self.L.keep(self.k("probs32"), 4 * nh * s, K)    # softmax in fp32 keeps its output
        last, width = self.k("probs32"), 4
        if a != 4:
            last, width = self.k("probs.cast"), a
        if attn_dropout > 0:
            if sg:
                self._dropout_mask(a, nh * s)
            last, width = self.k("probs.drop"), a
        if v.g:
            self.L.keep(last, width * nh * s, K)
        if sg:
            self.L.keep(self.k("v.mat"), a * qw, K)
        # the [b, heads, s, d] result is copied by .transpose(1, 2).contiguous()
        return Act(self.k("attn.out.copy"), 2 if c.amp else q.dt, qw, True)

    def rope(self, x: Act, name: str) -> Act:
        sh = self.c.shape
        dt = x.dt if sh.layout.rope_fp32 or sh.layout.rope_cast else max(x.dt, self.c.cos_dt)
        if sh.layout.rope_pairs and x.g:   # x * cos and rotated(x) * sin keep this call's own tables
            cos_dt = 4 if sh.layout.rope_fp32 else self.c.cos_dt
            for t in ("cos", "sin"):
                self.L.keep_fixed(self.k(f"{t}@{name}"), self.c.seq * sh.rotary_dim * cos_dt, "attention")
        return Act(self.k(name + ".rot"), dt, x.width, x.g)

    # -- blocks -----------------------------------------------------------------------------

    def _lin(self, name: str, reads: str | None = None) -> LinearPlan:
        for lp in self.c.plan.linears:
            if lp.lin.name == name and (reads is None or lp.lin.reads == reads):
                return lp
        raise KeyError(name)

    def reading(self, reads: str) -> list[LinearPlan]:
        """The block's linear layers that read one activation, in forward order."""
        return [lp for lp in self.c.plan.linears if lp.lin.reads == reads]

    def amp_extra(self, x: Act) -> None:
        if self.c.amp and x.dt == 4 and x.g and not self.c.cpu:   # measured on CUDA only
            k = self.c.setup.amp_extra
            self.L.keep(self.k("autocast.extra"), (AMP_FP32_BLOCK_EXTRA if k is None else k) * self.c.shape.hidden,
                        "autocast extra")

    def gelu(self, x: Act) -> Act:
        c, sh = self.c, self.c.shape
        if not x.g:
            return Act(self.k("gelu"), x.dt, x.width, False)
        if sh.activation in ("gelu_new", "gelu_fast", "gelu_pytorch_tanh_python"):
            # 0.5 * x * (1 + tanh(sqrt(2/pi) * (x + 0.044715 * x**3))), op by op; pow autocasts
            # to fp32 on CUDA (the CPU's autocast leaves it in bf16)
            t_dt = 4 if c.amp and not c.cpu else x.dt
            self.L.keep(x.key + ">f32" if c.amp and x.dt != 4 else x.key, t_dt * x.width, "mlp")
            self.L.keep(self.k("tanh"), t_dt * x.width, "mlp")
            self.L.keep(self.k("half_x"), x.dt * x.width, "mlp")
            self.L.keep(self.k("one_plus_t"), t_dt * x.width, "mlp")
            return Act(self.k("gelu"), max(x.dt, t_dt), x.width, True)
        if sh.activation == "relu":   # ReLU's backward reads its output, the tensor the next layer reads
            out = Act(self.k("relu"), x.dt, x.width, True)
            self.L.keep(out.key, x.dt * x.width, "mlp")
            return out
        self.L.keep(x.key, x.dt * x.width, "mlp")
        return Act(self.k("gelu"), x.dt, x.width, True)

    def block(self, x: Act) -> Act:
        from aios_tui.vram.blocks import block   # the blocks are walked with the ops above

        return block(self, x)


def outside_blocks(ctx: Context, x0: Act) -> tuple[Ledger, Act]:
    """Kept once per forward outside the blocks (RoPE tables, the embedding's dropout mask and
    norm), and what the first block receives."""
    led = Ledger()
    sh = ctx.shape
    if sh.family != "gpt2":
        # cos and sin [1, seq, rotary dims], shared by every block's q and k
        cos_dt = 4 if sh.layout.rope_fp32 else ctx.cos_dt
        led.keep_fixed("rope", 2 * ctx.seq * sh.rotary_dim * cos_dt * sh.rope_tables, "attention")
    if sh.layout.positions == "alibi" and sh.family == "falcon" and not ctx.amp:
        # ALiBi folded into one float mask [batch, heads, seq, seq] that every layer's SDPA keeps
        # (under autocast each layer keeps a bf16 cast of its own: falcon.py)
        led.keep("alibi.mask", ctx.pb * sh.heads * ctx.seq, "attention")
    if sh.embd_pdrop > 0 and x0.g:
        BlockWalk(ctx, led).dropout(x0, sh.embd_pdrop, "embd", "norms")
    if sh.layout.embed_norm:
        return led, BlockWalk(ctx, led).norm(x0, "embed_norm")
    return led, x0


def embedding_output(ctx: Context) -> Act:
    g = ctx.plan.embed_trainable or bool(ctx.setup.input_requires_grad)
    return Act("embed", ctx.pb, ctx.shape.embed_width, g)


def block_input(ctx: Context, x0: Act, led: Ledger) -> Act:
    """What the first block reads. OPT-350m widens the embedding with project_in, kept in
    ``led``, and adds the position table to its output (a bf16 output under autocast plus the
    table gives the table's dtype)."""
    lp = ctx.plan.outer_reading("embed")
    if lp is None:
        return x0
    y = BlockWalk(ctx, led, prefix="in.").linear(x0, lp, lp.lin.name, "projection")
    return Act("embed+pos", max(y.dt, ctx.pb), y.width, y.g)


@dataclass
class BlockCost:
    first: Ledger         # the first block (its input may not require grad)
    rest: Ledger          # every later block
    rest_input: Act       # what later blocks receive


def block_costs(ctx: Context, x0: Act) -> BlockCost:
    first = BlockWalk(ctx)
    x1 = first.block(x0)
    rest = BlockWalk(ctx)
    rest.block(x1)
    return BlockCost(first.L, rest.L, x1)


def ledger_bytes(led: Ledger, tokens: int) -> int:
    return int(round(led.token_bytes() * tokens)) + led.fixed_bytes()


def backward_workspace(ctx: Context, tokens: int) -> int:
    """Gradients flowing through one block in backward: a few [T, I] and fp32 [T, H] tensors."""
    sh = ctx.shape
    act_dt = 2 if ctx.amp else (ctx.pb if ctx.setup.quant else ctx.wb)
    return tokens * (3 * act_dt * sh.intermediate + 8 * sh.hidden)
