"""A model's shape: the few numbers the budget needs, read from a config dict.

Sources: a Hugging Face ``config.json`` (as a dict), the HRM ACTv1 config dict, the built-in
``tiny`` model, a local directory holding a ``config.json`` (weights not needed), or a
well-known hub id from the table in ``known.py`` so estimates work without a network.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, replace
from typing import Any, Mapping

from aios_tui.config.targets import matches, own_names
from aios_tui.errors import UserError
from aios_tui.vram import decoders
from aios_tui.vram.layouts import GPT2, LLAMA, Layout

# Laid out exactly (decoders.DECODERS, GPT-2, HRM). Any other decoder is read as Llama's block:
# RMSNorm pre-norm, RoPE, separate q/k/v/o and a gated (SwiGLU) MLP with gate/up/down.
HRM = "hrm_actv1"
EXACT_TYPES = (*decoders.DECODERS, "gpt2", HRM)

# Model types whose logits are exactly lm_head(last hidden state): the engine's fused loss
# applies to them (aios_tui/engine/loss.py reads this list), unless a config alters the logits.
FUSED_MODEL_TYPES = frozenset({
    "llama", "mistral", "qwen2", "qwen3", "gpt2", "gpt_neox", "phi3", "olmo", "olmo2", "gemma",
    "smollm3", "starcoder2", "stablelm", "opt", "falcon", "gptj", "codegen", "phi", "bloom", "mpt",
})


@dataclass(frozen=True)
class Linear:
    """One linear layer inside a block, named as peft matches it."""

    name: str
    fan_in: int
    fan_out: int
    bias: bool
    reads: str  # which activation feeds it: "attn_in", "attn_out", "mlp_in", "mlp_mid"
    parent: str = ""  # the module holding it inside a block ("self_attn", "mlp")

    @property
    def qualified(self) -> str:
        return f"{self.parent}.{self.name}" if self.parent else self.name


@dataclass(frozen=True)
class ModelShape:
    # "gpt2", "hrm_actv1", or a RoPE decoder: "llama" (Llama's layers) or its own model_type
    family: str
    model_type: str
    hidden: int
    layers: int
    heads: int
    kv_heads: int
    head_dim: int
    intermediate: int
    vocab: int
    tied: bool
    mlp: str = "gated"               # "gated" (SwiGLU) or "plain" (fc -> GELU -> proj)
    max_positions: int = 0
    qkv_bias: bool = False
    o_bias: bool = False
    mlp_bias: bool = False
    # "rms" (weight only), "layer" (weight + bias), "cohere" (LayerNorm, weight only), "none"
    norm: str = "rms"
    learned_positions: bool = False  # GPT-2's wpe table
    activation: str = "silu"
    name: str = ""
    # dropout probabilities used in training: embedding output, attention probabilities, and
    # the sublayer outputs before each residual add (layout.resid_drop says which)
    embd_pdrop: float = 0.0
    attn_pdrop: float = 0.0
    resid_pdrop: float = 0.0
    # HRM ACTv1 recurrence
    h_layers: int = 0
    l_layers: int = 0
    h_cycles: int = 1
    l_cycles: int = 1
    halt_max_steps: int = 1
    layout: Layout = LLAMA           # layer names and block arrangement
    rotary: float = 1.0              # share of head_dim RoPE rotates (a Fraction where a width is given)
    rope_tables: int = 1             # cos/sin pairs the model keeps (Gemma 3: local and global)
    softcap: float = 0.0             # final_logit_softcapping: tanh on the logits
    attn_softcap: bool = False       # attn_logit_softcapping: tanh on the attention scores
    text_of: str = ""                # the multimodal model_type whose text model this is
    pos_offset: int = 0              # rows of the position table past max_positions (OPT: 2)
    norm_affine: bool = True         # LayerNorm with weight and bias (OPT may have neither)
    final_norm: bool = True          # a norm after the last block
    falcon_new: bool = False         # Falcon's new_decoder_architecture: k/v broadcast to every head
    # the token embedding's and tied head's width when not the blocks' (OPT-350m's
    # word_embed_proj_dim): project_in and project_out change widths around the blocks
    embed_dim: int = 0
    logits_scale: float = 1.0        # Granite's logits_scaling: lm_head's output is divided by it
    logit_scale: float = 1.0         # Cohere's logit_scale: lm_head's output is multiplied by it
    head_bias: bool = False          # lm_head has a bias (GPT-J, CodeGen, Phi), its own even when tied
    norm_bias: bool = True           # LayerNorm bias (MPT's norms have a weight only)
    notes: tuple[str, ...] = ()      # what the config asks for that transformers does not build
    # config.max_position_embeddings as transformers reads it: `train` refuses longer sequences
    # (refusals.positions_problem); 0 where the config names no limit
    position_limit: int = 0

    @property
    def logits_changed(self) -> bool:
        """lm_head's output is altered before the loss (Gemma's soft-cap, Granite's division,
        Cohere's product), so the engine's fused loss does not apply (engine/loss.py's _changes_logits)."""
        return bool(self.softcap) or self.logits_scale != 1 or self.logit_scale != 1

    @property
    def fused_loss_applies(self) -> bool:
        """Whether the engine's chunked (fused) loss runs for this model when asked for (an
        adapter on the head aside): HRM's own head, or a listed type with plain logits."""
        return self.family == HRM or (self.model_type in FUSED_MODEL_TYPES and not self.logits_changed)

    @property
    def q_width(self) -> int:
        return self.heads * self.head_dim

    @property
    def kv_width(self) -> int:
        return self.kv_heads * self.head_dim

    def block_linears(self) -> list[Linear]:
        """The linear layers of one block, in forward order."""
        h, i, lay = self.hidden, self.intermediate, self.layout
        qb, ob, mb = self.qkv_bias, self.o_bias, self.mlp_bias
        if len(lay.qkv) == 1:
            attn = [Linear(lay.qkv[0], h, self.q_width + 2 * self.kv_width, qb, "attn_in", lay.attn)]
        else:
            attn = [Linear(n, h, w, qb, "attn_in", lay.attn)
                    for n, w in zip(lay.qkv, (self.q_width, self.kv_width, self.kv_width))]
        attn.append(Linear(lay.out, self.q_width, h, ob, "attn_out", lay.attn))
        *ins, down = lay.mlp
        width = 2 * i if self.mlp == "gated" and len(ins) == 1 else i
        mlp = [Linear(n, h, width, mb, "mlp_in", lay.mlp_parent) for n in ins]
        return attn + mlp + [Linear(down, i, h, mb, "mlp_mid", lay.mlp_parent)]

    @property
    def embed_width(self) -> int:
        return self.embed_dim or self.hidden

    def outer_linears(self) -> list[Linear]:
        """Linear layers outside the blocks, one each per model: OPT's project_in (embedding to
        the blocks' width, before the positions are added) and project_out (after the last
        block and final norm, back to the head's width); bias-free."""
        e, h = self.embed_width, self.hidden
        if e == h:
            return []
        return [Linear("project_in", e, h, False, "embed", "decoder"),
                Linear("project_out", h, e, False, "final", "decoder")]

    @property
    def norm_tensors(self) -> int:
        """Tensors of one hidden-wide norm: weight, and bias for a LayerNorm that has one."""
        if self.norm == "none" or not self.norm_affine:
            return 0
        return 2 if self.norm == "layer" and self.norm_bias else 1

    def block_norm_tensors(self) -> list[tuple[int, int]]:
        """(elements, how many per block) of the norms' weights and biases."""
        lay, out = self.layout, []
        if self.norm_tensors:
            out.append((self.hidden, lay.norms * self.norm_tensors))
        if lay.qk_norm == "head":
            out.append((self.head_dim, 2 * (2 if self.norm == "layer" else 1)))
        elif lay.qk_norm == "width":
            out += [(self.q_width, 1), (self.kv_width, 1)]
        elif lay.qk_norm == "per_head" and self.norm == "cohere":   # one [heads, head_dim] weight
            out += [(self.q_width, 1), (self.kv_width, 1)]
        elif lay.qk_norm == "per_head":    # a module per head (StableLM)
            out.append((self.head_dim, self.heads + self.kv_heads))
        return out

    def final_norm_tensors(self) -> list[tuple[int, int]]:
        """The norms outside the blocks: the final one, and BLOOM's on the embedding output."""
        k = self.norm_tensors * (self.final_norm + self.layout.embed_norm)
        return [(self.hidden, k)] if k else []

    def block_norm_params(self) -> int:
        return sum(n * k for n, k in self.block_norm_tensors())

    def final_norm_params(self) -> int:
        return sum(n * k for n, k in self.final_norm_tensors())

    @property
    def rotary_dim(self) -> int:
        return int(self.head_dim * self.rotary)

    @property
    def head_name(self) -> str:
        return self.layout.head

    @property
    def embed_name(self) -> str:
        return self.layout.embed

    def suggested_targets(self) -> tuple[str, ...]:
        """AI-OS's advice, q and v, in the model's own names (GPT-2's c_attn, Phi-3's qkv_proj)."""
        return tuple(own_names(["q_proj", "v_proj"], self.has_module)[0])

    def block_params(self) -> int:
        return sum(l.fan_in * l.fan_out + (l.fan_out if l.bias else 0) for l in self.block_linears()) \
            + self.block_norm_params()

    def embedding_params(self) -> int:
        return self.vocab * self.embed_width + (self.position_rows * self.hidden if self.learned_positions else 0)

    @property
    def position_rows(self) -> int:
        return self.max_positions + self.pos_offset

    def head_params(self) -> int:
        """Output head parameters not shared with the embedding (HRM's q_head included)."""
        n = (0 if self.tied else self.vocab * self.embed_width) + (self.vocab if self.head_bias else 0)
        if self.family == HRM:
            n += 2 * self.hidden + 2
        return n

    def param_count(self) -> int:
        """Every parameter of the model, tied tensors once (what ``sum(p.numel())`` gives)."""
        return self.embedding_params() + self.layers * self.block_params() \
            + sum(l.fan_in * l.fan_out for l in self.outer_linears()) + self.final_norm_params() + self.head_params()

    def has_module(self, target: str) -> bool:
        """Whether a peft target name matches one of the model's linear layers or heads."""
        return target in self.linear_names() or any(matches(l.qualified, target)
                                                    for l in self.block_linears() + self.outer_linears())

    def linear_names(self) -> list[str]:
        names = list(dict.fromkeys(l.name for l in self.block_linears() + self.outer_linears()))
        return names + [self.head_name] + (["q_head"] if self.family == HRM else [])

    def summary(self) -> dict[str, Any]:
        d = {"name": self.name, "family": self.family, "model_type": self.model_type,
             "hidden_size": self.hidden, "layers": self.layers, "heads": self.heads,
             "kv_heads": self.kv_heads, "head_dim": self.head_dim,
             "intermediate_size": self.intermediate, "vocab_size": self.vocab,
             "tied_embeddings": self.tied, "mlp": self.mlp, "parameters": self.param_count()}
        if self.embed_dim:
            d["word_embed_proj_dim"] = self.embed_dim
        if self.family == HRM:
            d.update(h_layers=self.h_layers, l_layers=self.l_layers, h_cycles=self.h_cycles,
                     l_cycles=self.l_cycles, halt_max_steps=self.halt_max_steps)
        return d


def swiglu_width(hidden: int, expansion: float) -> int:
    """HRM's SwiGLU inner width: 2/3 of expansion x hidden, rounded up to a multiple of 256."""
    raw = round(expansion * hidden * 2 / 3)
    return -(-raw // 256) * 256


def _get(cfg: Mapping[str, Any], *names: str, default: Any = None) -> Any:
    for n in names:
        if cfg.get(n) is not None:
            return cfg[n]
    return default


def _need(cfg: Mapping[str, Any], what: str, *names: str) -> int:
    v = _get(cfg, *names)
    if not isinstance(v, (int, float)) or isinstance(v, bool) or v <= 0:
        raise UserError(f"model config: no usable {what} (looked for {', '.join(names)})")
    return int(v)


def _opt(cfg: Mapping[str, Any], what: str, *names: str) -> int | None:
    """An optional positive whole number (None when absent); anything else is a UserError."""
    v = _get(cfg, *names)
    if v is None:
        return None
    if not isinstance(v, (int, float)) or isinstance(v, bool) or v <= 0 or v != int(v):
        raise UserError(f"model config: {names[0]} must be a positive whole number ({what}), not {v!r}")
    return int(v)


def _moe_experts(cfg: Mapping[str, Any]) -> int:
    for n in ("num_local_experts", "num_experts", "n_routed_experts", "moe_num_experts"):
        v = cfg.get(n)
        if isinstance(v, int) and not isinstance(v, bool) and v > 1:
            return v
    return 0


def shape_from_hrm_config(cfg: Mapping[str, Any], name: str = "") -> ModelShape:
    """HRM ACTv1: two stacks of post-norm blocks (weightless RMSNorm), untied lm_head, q_head."""
    hidden = _need(cfg, "hidden size", "hidden_size")
    heads = _need(cfg, "number of heads", "num_heads", "num_attention_heads")
    h_layers = _need(cfg, "h_layers", "h_layers")
    l_layers = _need(cfg, "l_layers", "l_layers")
    inter = _get(cfg, "intermediate_size") or swiglu_width(hidden, float(_get(cfg, "expansion", default=2.0)))
    return ModelShape(
        family=HRM, model_type=HRM, hidden=hidden, layers=h_layers + l_layers, heads=heads,
        kv_heads=heads, head_dim=hidden // heads, intermediate=int(inter),
        vocab=_need(cfg, "vocabulary size", "vocab_size"), tied=False, mlp="gated",
        max_positions=int(_get(cfg, "max_seq_len", default=0) or 0), norm="none",
        name=name or HRM, h_layers=h_layers, l_layers=l_layers,
        h_cycles=int(_get(cfg, "h_cycles", default=1)), l_cycles=int(_get(cfg, "l_cycles", default=1)),
        halt_max_steps=int(_get(cfg, "halt_max_steps", default=1)))


# Bidirectional encoders that transformers can load as a causal LM (training refuses them; see
# engine.models.causal_lm_problem): told apart here from config.json alone, without transformers.
_ENCODERS = frozenset({
    "albert", "bert", "big_bird", "camembert", "clip_text_model", "data2vec-text", "deberta", "deberta-v2",
    "distilbert", "electra", "ernie", "megatron-bert", "modernbert", "mpnet", "rembert", "roberta",
    "roberta-prelayernorm", "roc_bert", "roformer", "xlm", "xlm-roberta", "xlm-roberta-xl", "xmod"})


def _not_a_decoder(cfg: Mapping[str, Any], model_type: str) -> str | None:
    """What the model is when config.json shows it is no causal language model, else None."""
    if model_type in _ENCODERS and not cfg.get("is_decoder"):
        return "a bidirectional encoder"
    if "vocab_size" not in cfg and "text_config" not in cfg and ("image_size" in cfg or "num_mel_bins" in cfg):
        return "an image or audio model"
    return None


def shape_from_hf_config(cfg: Mapping[str, Any], name: str = "") -> ModelShape:
    """The shape from a Hugging Face config dict (``config.to_dict()`` or config.json)."""
    if not isinstance(cfg, Mapping):
        raise UserError("model config: expected a mapping of config.json fields")
    model_type = str(cfg.get("model_type") or "")
    if model_type == HRM:
        return shape_from_hrm_config(cfg, name)
    what = _not_a_decoder(cfg, model_type)
    if what:
        saved = ", ".join(str(a) for a in cfg.get("architectures") or []) or model_type or "unknown"
        raise UserError(f"model config: {name or model_type} ({saved}) is {what}, not a causal language "
                        "model; the estimate counts decoders (see `aios-tui estimate --list-models`)")
    if "text_config" in cfg and isinstance(cfg["text_config"], Mapping) and "hidden_size" not in cfg:
        text = cfg["text_config"]
        # the multimodal config names no max_position_embeddings of its own
        return replace(shape_from_hf_config({**text, "model_type": text.get("model_type", model_type)}, name),
                       text_of=model_type, position_limit=0)
    # GPT-J and CodeGen share GPT-2's config names, not its block; another type with those names
    # (GPT-BigCode, a config without a type) is read as GPT-2's block
    if model_type == "gpt2" or (decoders.decoder(model_type) is None and "n_embd" in cfg and "n_layer" in cfg):
        hidden = _need(cfg, "hidden size", "n_embd", "hidden_size")
        heads = _need(cfg, "number of heads", "n_head", "num_attention_heads")
        return ModelShape(
            family="gpt2", model_type=model_type or "gpt2", hidden=hidden,
            layers=_need(cfg, "layer count", "n_layer", "num_hidden_layers"),
            heads=heads, kv_heads=heads, head_dim=hidden // heads,
            intermediate=_opt(cfg, "MLP width", "n_inner") or 4 * hidden,
            vocab=_need(cfg, "vocabulary size", "vocab_size"), tied=bool(cfg.get("tie_word_embeddings", True)),
            mlp="plain", max_positions=_need(cfg, "position count", "n_positions", "max_position_embeddings"),
            qkv_bias=True, o_bias=True, mlp_bias=True, norm="layer", learned_positions=True,
            activation=str(cfg.get("activation_function", "gelu_new")), name=name or model_type,
            embd_pdrop=float(cfg.get("embd_pdrop", 0.1)), attn_pdrop=float(cfg.get("attn_pdrop", 0.1)),
            resid_pdrop=float(cfg.get("resid_pdrop", 0.1)), layout=GPT2,
            position_limit=_need(cfg, "position count", "n_positions", "max_position_embeddings"))
    if experts := _moe_experts(cfg):
        raise UserError(f"model config: {model_type or 'this model'} is a mixture of experts ({experts} experts "
                        "per layer); the estimate counts dense decoders only")
    return _decoder_shape(cfg, model_type, name)


def _decoder_shape(cfg: Mapping[str, Any], model_type: str, name: str) -> ModelShape:
    """A RoPE decoder: its own layout when the type is known, else Llama's."""
    dec = decoders.decoder(model_type)
    head_names = ("num_attention_heads", "n_heads", "n_head")
    if dec is None and model_type and _get(cfg, *head_names) is None:
        # a state-space or recurrent model (Mamba, RWKV): nothing here is laid out like it
        raise UserError(f"model config: model type {model_type!r} is not a decoder the estimate can count "
                        "(it counts transformer decoders, which have attention heads; "
                        "see `aios-tui estimate --list-models`)")
    hidden = _need(cfg, "hidden size", "hidden_size", "d_model", "n_embed", "n_embd")
    heads = _need(cfg, "number of attention heads", *head_names)
    kv = (_opt(cfg, "key/value heads", "num_key_value_heads") if dec is None or dec.gqa else None) or heads
    head_dim = _opt(cfg, "attention head width", "head_dim") or (dec and dec.head_dim) or hidden // heads
    act = str(_get(cfg, "hidden_act", "hidden_activation", default=dec.activation if dec else "silu"))
    if dec is None:   # read as Llama, biases where the config names them
        attention_bias = bool(cfg.get("attention_bias", False))
        biases = (attention_bias, attention_bias, bool(cfg.get("mlp_bias", False)))
        layout, extra, norm, mlp, tied = LLAMA, {}, "rms", "gated", True
    else:
        biases, layout, extra = dec.biases(cfg), dec.layout(cfg), dec.extra(cfg)
        norm, mlp, tied = dec.norm, dec.mlp, dec.tied
    fields: dict[str, Any] = dict(
        family=model_type if layout is not LLAMA else "llama", model_type=model_type or "llama", hidden=hidden,
        layers=_need(cfg, "layer count", "num_hidden_layers", "n_layers", "n_layer"),
        heads=heads, kv_heads=kv, head_dim=head_dim,
        vocab=_need(cfg, "vocabulary size", "vocab_size"),
        tied=bool(cfg.get("tie_word_embeddings", tied)),
        mlp=mlp, max_positions=int(_get(cfg, "max_position_embeddings", default=0) or 0),
        qkv_bias=biases[0], o_bias=biases[1], mlp_bias=biases[2], norm=norm, activation=act,
        name=name or model_type, attn_pdrop=float(cfg.get("attention_dropout") or 0), layout=layout)
    fields.update(extra)   # what a type reads under names of its own
    fields["position_limit"] = (0 if dec is not None and dec.max_positions is None
                                else fields["max_positions"] or (dec.max_positions if dec else 0))
    if "intermediate" not in fields:
        fields["intermediate"] = _need(cfg, "intermediate size", "intermediate_size", "ffn_dim", "ffn_hidden_size")
    return ModelShape(**fields)


def load_config_dir(path: str) -> dict:
    cfg_path = os.path.join(path, "config.json")
    try:
        with open(cfg_path, encoding="utf-8") as fh:
            data = json.load(fh)
    except FileNotFoundError:
        raise UserError(f"model.model: {path} has no config.json",
                        "the estimate needs the model's config.json (the weights are not needed)") from None
    except (OSError, ValueError) as exc:
        raise UserError(f"model.model: cannot read {cfg_path}: {exc}") from None
    if not isinstance(data, dict):
        raise UserError(f"model.model: {cfg_path} does not hold a JSON object")
    return data


def shape_from_model_arg(model: str) -> ModelShape:
    """``tiny``, a directory with a config.json, or a well-known hub id."""
    from aios_tui.vram.known import known_config

    if model == "tiny":
        from aios_tui.tiny import TINY_CONFIG

        return shape_from_hf_config(TINY_CONFIG, "tiny")
    path = os.path.expanduser(model)
    if os.path.isdir(path):
        return shape_from_hf_config(load_config_dir(path), os.path.basename(os.path.normpath(path)))
    if os.path.exists(path):
        raise UserError(f"model.model: {model} is a file; pass a model directory (with config.json), "
                        "a Hugging Face id or 'tiny'")
    cfg = known_config(model)
    if cfg is None:
        hub_cfg = _hub_cache_config(model)
        if hub_cfg is None:
            raise UserError(f"model.model: {model!r} is not a directory and not a model the estimate knows",
                            "pass a local directory that holds the model's config.json "
                            "(no weights needed), or see `aios-tui estimate --list-models`")
        return shape_from_hf_config(hub_cfg, model)
    return shape_from_hf_config(cfg, model)


def _hub_cache_config(model: str) -> dict | None:
    """config.json of ``org/name`` from the local Hugging Face cache, if it is there."""
    if model.count("/") != 1 or model.startswith((".", "/", "~")):
        return None
    home = os.environ.get("HF_HUB_CACHE") or os.path.join(
        os.environ.get("HF_HOME") or os.path.join(os.path.expanduser("~"), ".cache", "huggingface"), "hub")
    snaps = os.path.join(home, "models--" + model.replace("/", "--"), "snapshots")
    try:
        for snap in sorted(os.listdir(snaps)):
            p = os.path.join(snaps, snap, "config.json")
            if os.path.isfile(p):
                with open(p, encoding="utf-8") as fh:
                    data = json.load(fh)
                return data if isinstance(data, dict) else None
    except (OSError, ValueError):
        return None
    return None
