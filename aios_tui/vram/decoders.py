"""The decoders the estimate lays out exactly (``DECODERS``, one per model_type): how each reads
its config.json beyond the common fields, as transformers builds the model from it, and the
configs transformers cannot run, which are refused.

A type listed here is laid out exactly: its linear layers carry the names peft matches, with
their real widths and biases, and its norms, embedding and head are its own.
"""

from __future__ import annotations

from fractions import Fraction
from importlib import metadata
from typing import Any, Mapping

from aios_tui.errors import UserError
from aios_tui.vram.layouts import LLAMA, Decoder, Layout, flag


def _neox_head() -> str:
    """GPT-NeoX's output head: ``embed_out`` until transformers 5 renamed it ``lm_head``."""
    try:
        major = int(metadata.version("transformers").split(".")[0])
    except (metadata.PackageNotFoundError, ValueError):
        return "lm_head"
    return "embed_out" if major < 5 else "lm_head"


def _neox_layout(c: Mapping[str, Any]) -> Layout:
    return Layout(attn="attention", qkv=("query_key_value",), out="dense", mlp=("dense_h_to_4h", "dense_4h_to_h"),
                  embed="embed_in", head=_neox_head(), parallel=flag(c, "use_parallel_residual", True),
                  rope_cat=True)


def _stablelm_layout(c: Mapping[str, Any]) -> Layout:
    parallel = flag(c, "use_parallel_residual", False)
    return Layout(norms=1 if parallel else 2, parallel=parallel, resid_drop=("mlp",), rope_cat=True,
                  qk_norm="per_head" if flag(c, "qk_layernorm", False) else "")


def _rotary(c: Mapping[str, Any], default: float) -> float:
    rope = c.get("rope_parameters") if isinstance(c.get("rope_parameters"), Mapping) else {}
    v = rope.get("partial_rotary_factor", c.get("partial_rotary_factor", c.get("rotary_pct", default)))
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) and 0 < v <= 1 else default


def _gemma3_ropes(c: Mapping[str, Any]) -> int:
    """Gemma 3 keeps one cos/sin pair per attention type its layers use (local and global)."""
    kinds = c.get("layer_types")
    if isinstance(kinds, list) and kinds:
        return len(set(map(str, kinds)))
    layers, every = c.get("num_hidden_layers") or 0, c.get("sliding_window_pattern") or 6
    return 2 if isinstance(layers, int) and isinstance(every, int) and layers >= every else 1


def _softcap(c: Mapping[str, Any], name: str, default: float = 0.0) -> float:
    v = c.get(name, default)
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) and v > 0 else 0.0


def _opt_layout(c: Mapping[str, Any]) -> Layout:
    return Layout(out="out_proj", mlp=("fc1", "fc2"), mlp_parent="",
                  order="pre" if flag(c, "do_layer_norm_before", True) else "post_add",
                  positions="learned", q_scaled=True)


def _opt_extra(c: Mapping[str, Any]) -> dict:
    proj, hidden = c.get("word_embed_proj_dim"), c.get("hidden_size")
    if proj is not None and (not isinstance(proj, int) or isinstance(proj, bool) or proj <= 0):
        raise UserError(f"model config: word_embed_proj_dim must be a positive whole number, not {proj!r}")
    # OPT-350m: embedding and tied head at word_embed_proj_dim, project_in/project_out around the blocks
    embed_dim = proj if proj is not None and proj != hidden else 0
    affine = flag(c, "layer_norm_elementwise_affine", True)
    return {"learned_positions": True, "pos_offset": 2, "rope_tables": 0,
            "max_positions": int(c.get("max_position_embeddings") or 2048),
            "activation": str(c.get("activation_function") or "relu"),
            "resid_pdrop": float(c.get("dropout", 0.1) or 0), "norm_affine": affine, "embed_dim": embed_dim,
            "final_norm": flag(c, "do_layer_norm_before", True) and not flag(c, "_remove_final_layer_norm", False)}


def _falcon_arch(c: Mapping[str, Any]) -> tuple[bool, bool, int]:
    """(new_decoder_architecture, parallel_attn, norms per block); the combinations the
    transformers code cannot run are refused."""
    new, parallel = flag(c, "new_decoder_architecture", False), flag(c, "parallel_attn", True)
    n_ln = c.get("num_ln_in_parallel_attn")
    n_ln = 2 if n_ln is None and new else n_ln
    if new and not parallel:
        raise UserError("model config: falcon with new_decoder_architecture and parallel_attn false "
                        "does not run in transformers; the estimate refuses it")
    if parallel and n_ln == 2 and not new:
        raise UserError("model config: falcon with num_ln_in_parallel_attn 2 needs new_decoder_architecture; "
                        "transformers cannot run this config, so the estimate refuses it")
    return new, parallel, (2 if n_ln == 2 else 1) if parallel else 2


def _granite_extra(c: Mapping[str, Any]) -> dict:
    v = c.get("logits_scaling", 1.0)
    return {"logits_scale": float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) and v else 1.0}


def _falcon_layout(c: Mapping[str, Any]) -> Layout:
    new, parallel, norms = _falcon_arch(c)
    return Layout(attn="self_attention", qkv=("query_key_value",), out="dense",
                  mlp=("dense_h_to_4h", "dense_4h_to_h"), embed="word_embeddings", norms=norms, parallel=parallel,
                  resid_drop=(),   # falcon.py places Falcon's dropout
                  positions="alibi" if flag(c, "alibi", False) else "rope", linear="FalconLinear")


def _falcon_extra(c: Mapping[str, Any]) -> dict:
    new, _, _ = _falcon_arch(c)
    hidden, heads = c.get("hidden_size") or c.get("n_embed"), c.get("num_attention_heads") or c.get("n_head")
    kv = c.get("num_kv_heads") or c.get("n_head_kv") or heads
    # multi-query without the new architecture: one k and one v head for all
    kv = kv if new or not flag(c, "multi_query", True) else 1
    out = {"kv_heads": kv, "activation": str(c.get("activation") or "gelu"),
           "attn_pdrop": float(c.get("attention_dropout") or 0), "resid_pdrop": float(c.get("hidden_dropout") or 0),
           "rope_tables": 0 if flag(c, "alibi", False) else 1, "falcon_new": new}
    ffn = c.get("ffn_hidden_size")
    if ffn is None and isinstance(hidden, int):
        out["intermediate"] = 4 * hidden
    return out


def _gptj_extra(c: Mapping[str, Any]) -> dict:
    """GPT-J and CodeGen: GPT-2's config names, rotary on the first rotary_dim of each head."""
    hidden, heads = c.get("n_embd") or c.get("hidden_size"), c.get("n_head") or c.get("num_attention_heads")
    mt, rot = c.get("model_type"), c.get("rotary_dim", 64)
    head_dim = hidden // heads if isinstance(hidden, int) and isinstance(heads, int) and heads > 0 else 0
    if not isinstance(rot, int) or isinstance(rot, bool) or rot <= 0 or rot % 2 or rot > head_dim:
        raise UserError(f"model config: {mt} rotary_dim must be an even whole number up to the head width "
                        f"{head_dim}, not {rot!r}; transformers cannot run this config, so the estimate refuses it")
    if mt == "codegen" and hidden % 4:
        raise UserError(f"model config: codegen n_embd {hidden} does not split into its 4 model-parallel shards; "
                        "transformers cannot run this config, so the estimate refuses it")
    inner = c.get("n_inner")
    if inner is not None and (not isinstance(inner, int) or isinstance(inner, bool) or inner <= 0):
        raise UserError(f"model config: n_inner must be a positive whole number (MLP width), not {inner!r}")
    pdrop = {k: float(c.get(k) or 0) for k in ("embd_pdrop", "attn_pdrop", "resid_pdrop")}
    # the tables are exact fractions of the head: rotary_dim is read back as head_dim * rotary
    return {"intermediate": inner or 4 * hidden,
            "max_positions": int(c.get("n_positions") or c.get("max_position_embeddings") or 2048),
            "activation": str(c.get("activation_function") or "gelu_new"), "rotary": Fraction(rot, head_dim),
            "rope_tables": 0, "head_bias": True, **pdrop}


def gptj_attention_interface() -> bool:
    """Whether the installed transformers runs GPT-J and CodeGen through its attention interface
    (5.24 on), as laid out here. Before, they had eager attention only, with rotary tables per sequence."""
    try:
        major, minor = (int(x) for x in metadata.version("transformers").split(".")[:2])
    except (metadata.PackageNotFoundError, ValueError):
        return True
    return (major, minor) >= (5, 24)


def _gptj_layout(c: Mapping[str, Any], qkv: tuple[str, ...]) -> Layout:
    """One ln_1 read by attention and MLP in parallel, rotate_every_two. CodeGen's fused qkv_proj
    is viewed as [.., mp_num=4, 3 x hidden/4], split, and reshaped to heads: a view only when
    each shard holds one head; its sin and cos stay in the fp32 buffer, q and k are cast to v's dtype."""
    codegen = len(qkv) == 1
    heads = c.get("n_head") or c.get("num_attention_heads")
    return Layout(attn="attn", qkv=qkv, out="out_proj", mlp=("fc_in", "fc_out"), embed="wte", norms=1,
                  parallel=True, rope_pairs=True, rope_fp32=codegen, qkv_copied=codegen and heads != 4,
                  sdpa=gptj_attention_interface())


_GPTJ = dict(norm="layer", mlp="plain", gqa=False, activation="gelu_new",
             biases=lambda c: (False, False, True), extra=_gptj_extra)
def _bloom_layout(c: Mapping[str, Any]) -> Layout:
    return Layout(attn="self_attention", qkv=("query_key_value",), out="dense",
                  mlp=("dense_h_to_4h", "dense_4h_to_h"), embed="word_embeddings", positions="alibi",
                  sdpa=False, flash=False, embed_norm=True,
                  residual_normed=flag(c, "apply_residual_connection_post_layernorm", False))


def _bloom_extra(c: Mapping[str, Any]) -> dict:
    tp = c.get("pretraining_tp")
    if flag(c, "slow_but_exact", False) and isinstance(tp, int) and tp > 1:
        # dense and dense_4h_to_h are then computed from slices of their weights: an adapter on
        # them never runs, and the graph is another
        raise UserError(f"model config: bloom with slow_but_exact and pretraining_tp {tp} computes dense and "
                        "dense_4h_to_h from slices of their weights, past any adapter on them; the estimate "
                        "refuses it", "set slow_but_exact to false (transformers' default)")
    hidden = c.get("hidden_size") or c.get("n_embed")
    out = {"resid_pdrop": float(c.get("hidden_dropout") or 0), "rope_tables": 0}
    if isinstance(hidden, int):
        out["intermediate"] = 4 * hidden          # the config names no MLP width
    return out


def _mpt_sub(c: Mapping[str, Any], name: str) -> Mapping[str, Any]:
    """One of MPT's nested config dicts (attn_config, ffn_config); absent or null: its defaults."""
    v = c.get(name)
    return v if isinstance(v, Mapping) else {}


def _mpt_layout(c: Mapping[str, Any]) -> Layout:
    return Layout(attn="attn", qkv=("Wqkv",), out="out_proj", mlp=("up_proj", "down_proj"), mlp_parent="ffn",
                  embed="wte", positions="alibi", sdpa=False, flash=False,
                  clip_qkv="copy" if _mpt_sub(c, "attn_config").get("clip_qkv") else "", bool_mask=True)


def _mpt_extra(c: Mapping[str, Any]) -> dict:
    """transformers' MPT builds one block whatever the config says beyond its sizes: a 4 x d_model
    GELU MLP, multi-head attention with ALiBi, no biases, LayerNorms with weights only, and
    attn_pdrop for every dropout. Checkpoints of another width do not load (refused); flags that
    only drop a checkpoint's tensors are named in a note."""
    a = _mpt_sub(c, "attn_config")
    ratio = c.get("expansion_ratio", 4)
    if ratio is not None and ratio != 4:
        raise UserError(f"model config: mpt with expansion_ratio {ratio}: transformers' MPT builds a 4 x d_model "
                        "MLP whatever the config says, so this checkpoint does not load; the estimate refuses it")
    kind = a.get("attn_type") or "multihead_attention"
    if kind != "multihead_attention":
        raise UserError(f"model config: mpt with attn_config.attn_type {kind}: transformers' MPT has multi-head "
                        "attention only (Wqkv 3 x d_model wide), so this checkpoint does not load; the estimate "
                        "refuses it")
    ignored = [text for on, text in (
        (not flag(c, "no_bias", True), "no_bias false (its layers and norms have no biases)"),
        (flag(a, "qk_ln", False), "attn_config.qk_ln (no q/k norms)"),
        (not flag(a, "alibi", True), "attn_config.alibi false (ALiBi all the same, no position table)"),
        (str(_mpt_sub(c, "ffn_config").get("ffn_type") or "mptmlp") != "mptmlp",
         "ffn_config.ffn_type (a plain GELU MLP)"),
    ) if on]
    p = float(a.get("attn_pdrop") or 0)
    hidden = c.get("d_model") or c.get("hidden_size")
    out = {"attn_pdrop": p, "resid_pdrop": p, "rope_tables": 0, "norm_bias": False,
           "max_positions": int(c.get("max_seq_len") or 2048)}
    if isinstance(hidden, int):
        out["intermediate"] = 4 * hidden
    if ignored:
        out["notes"] = (f"mpt: transformers' MPT ignores {'; '.join(ignored)}: the model is counted as it builds "
                        "it, and the checkpoint's tensors for these are not loaded",)
    return out



def _phi_layout(c: Mapping[str, Any]) -> Layout:
    return Layout(out="dense", mlp=("fc1", "fc2"), norms=1, parallel=True, rope_cat=True,
                  qk_norm="head" if flag(c, "qk_layernorm", False) else "")


def _cohere_extra(c: Mapping[str, Any]) -> dict:
    v = c.get("logit_scale", 0.0625)
    return {"logit_scale": float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else 1.0}


def _cohere_layout(c: Mapping[str, Any]) -> Layout:
    return Layout(norms=1, parallel=True, rope_cast=True, qk_norm="per_head" if flag(c, "use_qk_norm", False) else "")


_GEMMA = dict(tied=True, head_dim=256, activation="gelu_pytorch_tanh")

DECODERS: dict[str, Decoder] = {
    "llama": Decoder(lambda c: LLAMA),
    "mistral": Decoder(lambda c: LLAMA, max_positions=131072),
    "qwen2": Decoder(lambda c: LLAMA, max_positions=32768, biases=lambda c: (True, flag(c, "attention_bias", False),
                                                        flag(c, "mlp_bias", False))),
    "phi3": Decoder(lambda c: Layout(qkv=("qkv_proj",), mlp=("gate_up_proj", "down_proj"), rope_cat=True),
                    biases=lambda c: (False, False, False), max_positions=4096,
                    extra=lambda c: {"rotary": _rotary(c, 1.0), "resid_pdrop": float(c.get("resid_pdrop") or 0)}),
    "gpt_neox": Decoder(_neox_layout, norm="layer", mlp="plain", activation="gelu", gqa=False,
                        biases=lambda c: (flag(c, "attention_bias", True),) * 2 + (True,),
                        extra=lambda c: {"rotary": _rotary(c, 0.25), "embd_pdrop": float(c.get("hidden_dropout") or 0),
                                         "resid_pdrop": float(c.get("hidden_dropout") or 0)}),
    "starcoder2": Decoder(lambda c: Layout(mlp=("c_fc", "c_proj")), norm="layer", mlp="plain", tied=True,
                          activation="gelu_pytorch_tanh", max_positions=4096, biases=lambda c: (flag(c, "use_bias", True),) * 3,
                          extra=lambda c: {"embd_pdrop": float(c.get("embedding_dropout") or 0),
                                           "resid_pdrop": float(c.get("residual_dropout") or 0)}),
    "qwen3": Decoder(lambda c: Layout(qk_norm="head"), head_dim=128, max_positions=32768,
                     biases=lambda c: (flag(c, "attention_bias", False),) * 2 + (False,)),
    "olmo2": Decoder(lambda c: Layout(order="post", qk_norm="width", rms="cast", rope_fp32=True),
                     biases=lambda c: (flag(c, "attention_bias", False),) * 2 + (False,)),
    "gemma": Decoder(lambda c: Layout(rms="gemma"), **_GEMMA, max_positions=8192),
    # Gemma 2 has no SDPA path: transformers refuses it for the soft-capped attention scores
    "gemma2": Decoder(lambda c: Layout(rms="gemma", norms=4, order="sandwich", sdpa=False), **_GEMMA, max_positions=8192,
                      extra=lambda c: {"softcap": _softcap(c, "final_logit_softcapping", 30.0),
                                       "attn_softcap": bool(_softcap(c, "attn_logit_softcapping", 50.0))}),
    "gemma3_text": Decoder(lambda c: Layout(rms="gemma", norms=4, order="sandwich", qk_norm="head"), **_GEMMA,
                           max_positions=131072,
                           extra=lambda c: {"softcap": _softcap(c, "final_logit_softcapping"),
                                            "attn_softcap": bool(_softcap(c, "attn_logit_softcapping")),
                                            "rope_tables": _gemma3_ropes(c)}),
    "stablelm": Decoder(_stablelm_layout, norm="layer", max_positions=4096,
                        biases=lambda c: (flag(c, "use_qkv_bias", False), False, False),
                        extra=lambda c: {"rotary": _rotary(c, 0.25), "resid_pdrop": float(c.get("hidden_dropout") or 0)}),
    # OPT's config says head_dim nowhere, and the blocks' width is hidden / heads
    "opt": Decoder(_opt_layout, norm="layer", mlp="plain", tied=True, gqa=False, activation="relu",
                   biases=lambda c: (flag(c, "enable_bias", True),) * 3, extra=_opt_extra),
    "falcon": Decoder(_falcon_layout, norm="layer", mlp="plain", tied=True, gqa=False, activation="gelu",
                      biases=lambda c: (flag(c, "bias", False),) * 3, extra=_falcon_extra),
    # OLMo (first version): LayerNorm with neither weight nor bias, run in fp32; fp32 RoPE tables
    # as OLMo 2; clip_qkv optional; an MLP without biases
    "olmo": Decoder(lambda c: Layout(ln_fp32=True, rope_fp32=True,
                                     clip_qkv="" if c.get("clip_qkv") is None else "in_place"),
                    norm="layer", biases=lambda c: (flag(c, "attention_bias", False),) * 2 + (False,),
                    extra=lambda c: {"norm_affine": False}),
    # Granite: Llama's block. Its embedding and residual multipliers are products with a Python
    # number and its attention multiplier is the attention's scale: autograd keeps nothing more
    # for them. Its logits are divided by logits_scaling (loss.py).
    "granite": Decoder(lambda c: Layout(), extra=_granite_extra),
    # GPT-J and CodeGen: GPT-2's config names, untied lm_head with a bias
    "gptj": Decoder(lambda c: _gptj_layout(c, ("q_proj", "k_proj", "v_proj")), **_GPTJ),
    "codegen": Decoder(lambda c: _gptj_layout(c, ("qkv_proj",)), **_GPTJ),
    # ALiBi decoders with eager attention only; neither config names its MLP width
    "bloom": Decoder(_bloom_layout, norm="layer", mlp="plain", tied=True, gqa=False, activation="bloom_gelu", max_positions=None,
                     biases=lambda c: (True, True, True), extra=_bloom_extra),
    "mpt": Decoder(_mpt_layout, norm="layer", mlp="plain", tied=True, gqa=False, activation="gelu",
                   max_positions=None,
                   biases=lambda c: (False, False, False), extra=_mpt_extra),
    # Phi's head has a bias, tied or not
    "phi": Decoder(_phi_layout, norm="layer", mlp="plain", activation="gelu_new", biases=lambda c: (True,) * 3,
                   extra=lambda c: {"rotary": _rotary(c, 0.5), "head_bias": True,
                                    "embd_pdrop": float(c.get("embd_pdrop") or 0),
                                    "resid_pdrop": float(c.get("resid_pdrop") or 0)}),
    # Cohere's norm is a LayerNorm without bias computed op by op in fp32 (activations.cohere_norm);
    # its logits are multiplied by logit_scale (loss.py)
    "cohere": Decoder(_cohere_layout, norm="cohere", tied=True, extra=_cohere_extra, max_positions=8192,
                      biases=lambda c: (flag(c, "attention_bias", False),) * 2 + (False,)),
}


def decoder(model_type: str) -> Decoder | None:
    return DECODERS.get(model_type)
