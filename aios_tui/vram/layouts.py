"""How a decoder names and arranges its layers (``Layout``), and what a model type sets beyond
the common config fields (``Decoder``). The types laid out exactly are in decoders.py; any other
decoder is read as Llama's block (``LLAMA``), and the estimate says so.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Mapping

@dataclass(frozen=True)
class Layout:
    """Names as peft matches them (module name or dotted tail of its path) and the arrangement
    of one block, for parameter counts and the activation walk (blocks.py)."""

    attn: str = "self_attn"            # the attention module's name inside a block
    qkv: tuple[str, ...] = ("q_proj", "k_proj", "v_proj")   # one name: q, k and v in one matmul
    out: str = "o_proj"
    # gated MLP: gate, up, down, or two names when gate and up are one matmul; plain: in, out
    mlp: tuple[str, ...] = ("gate_proj", "up_proj", "down_proj")
    mlp_parent: str = "mlp"            # the MLP's module ("": its layers sit in the block, OPT)
    embed: str = "embed_tokens"
    head: str = "lm_head"
    norms: int = 2                     # hidden-wide norms in a block
    # where a block's norms sit: "pre" (before each sublayer), "sandwich" (before and after
    # each), "post" (after each sublayer's output, before the residual add), "post_add" (after
    # each residual add, OPT-350m's do_layer_norm_before=False)
    order: str = "pre"
    # q/k norms in the model's norm: "head" (one [head_dim] norm each for q and k, applied per
    # head), "width" (over q's and k's whole width), "per_head" (a bias-free norm of its own per head)
    qk_norm: str = ""
    # RMSNorm flavour: "llama" w * x.to(dtype); "cast" (w * x).to(dtype); "gemma" (1 + w) * x
    # in fp32, cast after
    rms: str = "llama"
    parallel: bool = False             # attention and MLP both read the block input
    # RoPE applied with torch.cat (partial rotary): q comes out contiguous per head, so the CPU
    # kernel's output is too, and merging the heads back copies it
    rope_cat: bool = False
    rope_fp32: bool = False            # cos/sin stay fp32; rotated q and k are cast back (OLMo 2)
    rope_cast: bool = False            # q and k rotated in fp32 and cast back to their dtype (Cohere)
    sdpa: bool = True                  # has an SDPA path (else the engine falls back to eager)
    flash: bool = True                 # has a flash_attention_2 path (BLOOM and MPT: eager only)
    # positions: "rope", "learned" (a table added to the embedding: q and k stay as projected),
    # "alibi" (a per-head bias folded into the attention mask)
    positions: str = "rope"
    q_scaled: bool = False             # q is multiplied by 1/sqrt(head_dim) into a new tensor (OPT)
    resid_drop: tuple[str, ...] = ("attn", "mlp")    # sublayer outputs that go through dropout
    ln_fp32: bool = False              # LayerNorm of an fp32 copy of its input, cast back after (OLMo)
    # clip_qkv: the q/k/v outputs clamped "in_place" (OLMo: autograd keeps a copy of each as it
    # was) or into a new tensor, "copy" (MPT's fused output: its input is kept)
    clip_qkv: str = ""
    # rotate_every_two (GPT-J, CodeGen): each rotation of q or k repeats sin and cos into
    # [seq, rotary] tables of its own, which its products keep
    rope_pairs: bool = False
    # q, k and v are copied out of the fused output rather than viewed (CodeGen, whose mp_num
    # shards each hold more than one head: the reshape to heads cannot be a view)
    qkv_copied: bool = False
    embed_norm: bool = False           # a norm on the embedding output (BLOOM's word_embeddings_layernorm)
    # each residual adds the norm's output, not the block's input (BLOOM's
    # apply_residual_connection_post_layernorm)
    residual_normed: bool = False
    # the scores are masked_fill'ed with one bool causal mask all layers share, which each keeps (MPT)
    bool_mask: bool = False
    # the class of the block's linear layers in transformers: "Linear" (plain nn.Linear),
    # "Conv1D" (GPT-2), "FalconLinear"; what bitsandbytes and FP8 take (refusals.py)
    linear: str = "Linear"


LLAMA = Layout()
GPT2 = Layout(attn="attn", qkv=("c_attn",), out="c_proj", mlp=("c_fc", "c_proj"), embed="wte", linear="Conv1D")


def flag(cfg: Mapping[str, Any], name: str, default: bool) -> bool:
    v = cfg.get(name)
    return default if v is None else bool(v)


@dataclass(frozen=True)
class Decoder:
    """What one model type sets beyond the common fields, and the defaults its config class has."""

    layout: Callable[[Mapping[str, Any]], Layout]
    norm: str = "rms"
    mlp: str = "gated"
    tied: bool = False
    head_dim: int | None = None        # transformers' default when config.json has none
    gqa: bool = True                   # reads num_key_value_heads (GPT-NeoX has as many as heads)
    activation: str = "silu"
    biases: Callable[[Mapping[str, Any]], tuple[bool, bool, bool]] = \
        lambda c: (flag(c, "attention_bias", False),) * 2 + (flag(c, "mlp_bias", False),)
    extra: Callable[[Mapping[str, Any]], dict] = lambda c: {}
    # config.max_position_embeddings when config.json has none (the config class's default);
    # None: the config has no such attribute (ALiBi's BLOOM and MPT), so no length is refused
    max_positions: int | None = 2048
