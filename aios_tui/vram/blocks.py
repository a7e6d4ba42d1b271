"""Each family's block, walked in forward order for what backward keeps (the ops, and what
each keeps, are in activations.py).

One walk serves the decoders in decoders.py (RoPE, OPT's learned positions, or BLOOM's and MPT's
ALiBi): q, k and v as three layers or one fused matmul (with RoPE q and k are rotated into new
tensors, v stays a view of the fused output, so the whole output is kept; without, all three
stay views of it; OLMo's clip_qkv clamps them in place, and each clamp keeps a copy); the MLP
gated (gate and up as two layers or one) or plain; norms before, around or after each sublayer;
attention and MLP reading the same input (parallel residual).
GPT-2, HRM ACTv1 and Falcon (falcon.py) have walks of their own.
"""

from __future__ import annotations

from aios_tui.vram.activations import Act, BlockWalk
from aios_tui.vram.shape import HRM


def block(w: BlockWalk, x: Act) -> Act:
    fam = w.c.shape.family
    if fam == "gpt2":
        return gpt2_block(w, x)
    if fam == HRM:
        return hrm_block(w, x)
    if fam == "falcon":
        from aios_tui.vram.falcon import falcon_block   # it builds on this module's mlp

        return falcon_block(w, x)
    return decoder_block(w, x)


def attention(w: BlockWalk, y: Act) -> Act:
    sh = w.c.shape
    lay = sh.layout
    ins = w.reading("attn_in")
    outs = [w.linear(y, lp, lp.lin.name, "attention") for lp in ins]
    if lay.clip_qkv:
        outs = [w.clamp(o, lp.lin.name, lay.clip_qkv == "in_place") for o, lp in zip(outs, ins)]
    fused = None
    if len(outs) == 1:
        qkv = outs[0]
        q, k, v = (Act(qkv.key, qkv.dt, width, qkv.g) for width in (sh.q_width, sh.kv_width, sh.kv_width))
        if lay.qkv_copied:
            v = Act(w.k("v.copy"), qkv.dt, sh.kv_width, qkv.g)
        elif qkv.dt == (2 if w.c.amp else qkv.dt):
            fused = qkv.key
    else:
        q, k, v = outs
    if lay.qk_norm:
        q, k = _qk_norm(w, q, "q_norm", sh.heads), _qk_norm(w, k, "k_norm", sh.kv_heads)
    if lay.positions == "rope":
        q, k = w.rope(q, "q"), w.rope(k, "k")
    elif lay.q_scaled:   # q * scaling: a new tensor; k and v stay the projections' outputs
        q = Act(w.k("q.scaled"), q.dt, q.width, q.g)
    if q.key == k.key:   # no RoPE: q, k and v are all still views of the fused output
        o_in = w.attention(q, k, v, attn_dropout=sh.attn_pdrop, fused_qkv=fused)
    else:
        o_in = w.attention(q, k, v, attn_dropout=sh.attn_pdrop, fused_v=fused)
    out = w.reading("attn_out")[0]
    o = w.linear(o_in, out, out.lin.name, "attention")
    return w.dropout(o, sh.resid_pdrop, "resid1", "attention") if "attn" in lay.resid_drop else o


def _qk_norm(w: BlockWalk, x: Act, name: str, heads: int) -> Act:
    sh = w.c.shape
    if sh.layout.qk_norm == "width":
        return w.norm(x, name)
    if sh.layout.qk_norm == "per_head":
        return w.norm(x, name, rows=heads)
    return w.norm(x, name, rows=heads, weight=sh.head_dim)


def mlp(w: BlockWalk, y: Act) -> Act:
    sh = w.c.shape
    ins, down = w.reading("mlp_in"), w.reading("mlp_mid")[0]
    if sh.mlp == "plain":
        fc = w.linear(y, ins[0], ins[0].lin.name, "mlp")
        prod = w.gelu(fc)
    elif len(ins) == 1:
        # gate and up are halves of one output: the activation and the product keep views of it
        gu = w.linear(y, ins[0], ins[0].lin.name, "mlp")
        if gu.g:
            w.L.keep(gu.key, gu.dt * gu.width, "mlp")
            w.L.keep(w.k("act"), gu.dt * gu.width // 2, "mlp")
        prod = Act(w.k("prod"), gu.dt, gu.width // 2, gu.g)
    else:
        gate = w.linear(y, ins[0], ins[0].lin.name, "mlp")
        up = w.linear(y, ins[1], ins[1].lin.name, "mlp")
        if gate.g:
            w.L.keep(gate.key, gate.dt * gate.width, "mlp")            # the activation's input
        act = Act(w.k("act"), gate.dt, gate.width, gate.g)
        if up.g:
            w.L.keep(act.key, act.dt * act.width, "mlp")
        if act.g:
            w.L.keep(up.key, up.dt * up.width, "mlp")
        prod = Act(w.k("prod"), max(act.dt, up.dt), act.width, act.g or up.g)
    out = w.linear(prod, down, down.lin.name, "mlp")
    return w.dropout(out, w.c.shape.resid_pdrop, "resid2", "mlp") if "mlp" in sh.layout.resid_drop else out


def decoder_block(w: BlockWalk, x: Act) -> Act:
    lay = w.c.shape.layout
    if lay.parallel:
        y1 = w.norm(x, "norm1")
        a = attention(w, y1)
        m = mlp(w, w.norm(x, "norm2") if lay.norms == 2 else y1)
        out = w.add(w.add(x, a, "h1"), m, "x_next")
    elif lay.order == "post_add":
        h1 = w.norm(w.add(x, attention(w, x), "r1"), "norm1")
        out = w.norm(w.add(h1, mlp(w, h1), "r2"), "norm2")
    elif lay.order == "post":
        h1 = w.add(x, w.norm(attention(w, x), "norm1"), "h1")
        out = w.add(h1, w.norm(mlp(w, h1), "norm2"), "x_next")
    else:
        y1 = w.norm(x, "norm1")
        a = attention(w, y1)
        if lay.order == "sandwich":
            a = w.norm(a, "norm1.post")
        h1 = w.add(y1 if lay.residual_normed else x, a, "h1")
        y2 = w.norm(h1, "norm2")
        m = mlp(w, y2)
        if lay.order == "sandwich":
            m = w.norm(m, "norm2.post")
        out = w.add(y2 if lay.residual_normed else h1, m, "x_next")
    w.amp_extra(out)
    return out


def hrm_block(w: BlockWalk, x: Act) -> Act:
    """Post-norm: x = norm(x + attn(x)); x = norm(x + mlp(x)); weightless fp32 RMSNorm."""
    r1 = w.add(x, attention(w, x), "r1")
    n1 = w.rms_norm(r1, "norm1", weighted=False)
    r2 = w.add(n1, mlp(w, n1), "r2")
    out = w.rms_norm(r2, "norm2", weighted=False)
    w.amp_extra(out)
    return out


def gpt2_block(w: BlockWalk, x: Act) -> Act:
    sh, c = w.c.shape, w.c
    y1 = w.layer_norm(x, "ln_1")
    qkv = w.linear(y1, w._lin("c_attn"), "c_attn", "attention")
    third = Act(qkv.key, qkv.dt, sh.hidden, qkv.g)
    fused = qkv.key if qkv.dt == (2 if c.amp else qkv.dt) else None
    o_in = w.attention(third, third, third, attn_dropout=sh.attn_pdrop, fused_qkv=fused)
    o = w.linear(o_in, w._lin("c_proj", "attn_out"), "attn.c_proj", "attention")
    o = w.dropout(o, sh.resid_pdrop, "resid1", "attention")
    h1 = w.add(x, o, "h1")
    y2 = w.layer_norm(h1, "ln_2")
    fc = w.linear(y2, w._lin("c_fc"), "c_fc", "mlp")
    act = w.gelu(fc)
    p = w.linear(act, w._lin("c_proj", "mlp_mid"), "mlp.c_proj", "mlp")
    p = w.dropout(p, sh.resid_pdrop, "resid2", "mlp")
    out = w.add(h1, p, "x_next")
    w.amp_extra(out)
    return out
