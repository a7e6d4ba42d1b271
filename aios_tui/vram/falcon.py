"""Falcon's block, walked for what backward keeps (the ops are in activations.py).

Falcon differs from the other decoders in ways the shared walk does not take: its fused
query_key_value is split by views (q, and k and v with a head of their own each) or by index
copies (multi-query's one k and v head; the new architecture's k and v, copied out and then
broadcast to every head); the model always hands SDPA a materialised mask, which the CPU's
flash kernel keeps, and with multi-query SDPA falls back to the math kernel; ALiBi folds its
bias into that mask, one [batch, heads, seq, seq] tensor for every layer; and dropout is
applied once to attention plus MLP when the two run in parallel.
"""

from __future__ import annotations

from aios_tui.vram.activations import Act, BlockWalk
from aios_tui.vram.blocks import mlp

K = "attention"


def falcon_block(w: BlockWalk, x: Act) -> Act:
    sh, lay = w.c.shape, w.c.shape.layout
    y1 = w.norm(x, "norm1")
    if lay.parallel:
        y2 = w.norm(x, "norm2") if lay.norms == 2 else y1
        a = attention(w, y1)
        both = w.add(mlp(w, y2), a, "attn+mlp")
        out = w.add(x, w.dropout(both, sh.resid_pdrop, "resid", "mlp"), "x_next")
    else:
        # the attention output's dropout_add takes attention_dropout, not hidden_dropout
        h1 = w.add(x, w.dropout(attention(w, y1), sh.attn_pdrop, "resid1", K), "h1")
        m = mlp(w, w.norm(h1, "norm2"))
        out = w.add(h1, w.dropout(m, sh.resid_pdrop, "resid2", "mlp"), "x_next")
    w.amp_extra(out)
    return out


def _split(w: BlockWalk, qkv: Act, a: int) -> tuple[Act, Act, Act, str | None]:
    """q, k, v as SDPA receives them (the heads it sees) and the fused output when q, k and v
    are all views of it."""
    sh = w.c.shape
    qw, kw = sh.q_width, sh.kv_width
    view = qkv.dt == a       # else SDPA's autocast casts each into a tensor of its own
    if sh.falcon_new:
        # q: its heads are strided through the groups, flattened into a copy; k and v: index
        # copies broadcast to every head, flattened into copies of full width
        return (Act(w.k("q.flat"), qkv.dt, qw, qkv.g), Act(w.k("k.full"), qkv.dt, qw, qkv.g),
                Act(w.k("v.full"), qkv.dt, qw, qkv.g), None)
    if sh.kv_heads < sh.heads:   # multi-query: k and v are index copies
        q = Act(qkv.key if view else w.k("q.cast"), a, qw, qkv.g)
        return q, Act(w.k("k.idx"), qkv.dt, kw, qkv.g), Act(w.k("v.idx"), qkv.dt, kw, qkv.g), None
    if view:
        return (Act(qkv.key, a, qw, qkv.g),) * 3 + (qkv.key,)
    return (Act(w.k("q.cast"), a, qw, qkv.g), Act(w.k("k.cast"), a, kw, qkv.g),
            Act(w.k("v.cast"), a, kw, qkv.g), None)


def attention(w: BlockWalk, y: Act) -> Act:
    c, sh = w.c, w.c.shape
    lp = w.reading("attn_in")[0]
    qkv = w.linear(y, lp, lp.lin.name, K)
    a = 2 if c.amp else qkv.dt
    q, k, v, fused = _split(w, qkv, a)
    alibi = sh.layout.positions == "alibi"
    if not alibi:
        q, k, fused = w.rope(q, "q"), w.rope(k, "k"), None
    out = w.reading("attn_out")[0]
    o_in = _sdpa(w, q, k, v, a, fused, sh.attn_pdrop if alibi else 0.0)   # rotary: SDPA without dropout
    return w.linear(o_in, out, out.lin.name, K)


def _sdpa(w: BlockWalk, q: Act, k: Act, v: Act, a: int, fused: str | None, p: float) -> Act:
    c, sh = w.c, w.c.shape
    qw, nh, s = sh.q_width, sh.heads, c.seq
    if not (q.g or k.g or v.g):
        return Act(w.k("attn.out"), a, qw, False)
    if c.setup.attention == "eager" or k.width < qw or (c.cpu and p > 0):
        # the math kernel (multi-query k and v have one head, which no fused kernel takes without
        # enable_gqa), or eager attention: fp32 on the CPU, k and v repeated to every head
        m = 4 if c.cpu and c.setup.attention != "eager" else a
        for name in ("q.scaled", "k.scaled", "v.mat"):
            w.L.keep(w.k(name), m * qw, K)
        w.L.keep(w.k("probs"), m * nh * s, K)
        if p > 0:
            w.L.keep(w.k("probs.noise") if c.cpu else w.k("probs.mask"), (m if c.cpu else 1) * nh * s, K)
            w.L.keep(w.k("probs.drop"), m * nh * s, K)
        return Act(w.k("attn.out.copy"), a, qw, True)

    def cast(t: Act) -> str:
        return t.key if t.dt == a else t.key + ">attn"

    if fused:   # q, k and v are views of the fused output; the CPU kernel copies k and v
        w.L.keep(fused, a * (qw + 2 * sh.kv_width), K)
        if c.cpu:
            w.L.keep(w.k("k.contig"), a * sh.kv_width, K)
            w.L.keep(w.k("v.contig"), a * sh.kv_width, K)
    else:
        for t in (q, k, v):
            w.L.keep(cast(t), a * t.width, K)
    w.L.keep(w.k("attn.out"), a * qw, K)
    w.L.keep(w.k("lse"), 4 * nh, K)
    if sh.layout.positions != "alibi":
        # the causal mask, made float from bool by each call
        w.L.keep(w.k("mask"), a * s, K)
    elif c.amp:   # autocast casts the shared fp32 ALiBi mask for each call
        w.L.keep(w.k("alibi.mask"), 2 * nh * s, K)
    return Act(w.k("attn.out"), a, qw, True)
