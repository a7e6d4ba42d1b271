"""HRM ACTv1 as a causal language model.

Two recurrent transformer stacks refine a carry (z_H, z_L): the fast low-level module L
updates from (z_L, z_H + input embedding) ``l_cycles`` times per high-level step, the slow
high-level module H updates from (z_H, z_L) ``h_cycles`` times. One such pass is a
*segment*; ACT runs up to ``halt_max_steps`` segments, each starting from the previous
segment's detached carry.

Differences from the AI-OS implementation, each on purpose:

- attention is causal and the targets are the next tokens, so the model cannot copy its
  input into its output;
- q/k/v/o and gate/up/down are separate ``nn.Linear`` layers, so PEFT target names such
  as ``q_proj,v_proj`` match real modules;
- ``q_head`` reads the *last* position. Under causal attention the first position has seen
  only the first token, so a halting decision taken there would be blind to the sequence;
  the last position has seen all of it.

Gradients follow HRM's one-step approximation: every L and H update of a segment except
the last of each runs under ``torch.no_grad``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from transformers import AutoConfig, AutoModelForCausalLM, PretrainedConfig, PreTrainedModel
from transformers import initialization as hf_init
from transformers.modeling_layers import GradientCheckpointingLayer
from transformers.modeling_outputs import ModelOutput

from aios_tui.engine.hrm.init import trunc_normal_

MODEL_TYPE = "hrm_actv1"
IGNORE_INDEX = -100


def swiglu_width(hidden_size: int, expansion: float) -> int:
    """SwiGLU inner width as in HRM: 2/3 of ``expansion * hidden``, rounded up to a multiple of 256."""
    raw = round(expansion * hidden_size * 2 / 3)
    return -(-raw // 256) * 256


class HRMConfig(PretrainedConfig):
    model_type = MODEL_TYPE

    def __init__(self, vocab_size: int = 259, hidden_size: int = 512, num_heads: int = 8,
                 h_layers: int = 2, l_layers: int = 2, h_cycles: int = 2, l_cycles: int = 2,
                 expansion: float = 2.0, intermediate_size: int | None = None,
                 max_seq_len: int = 128, halt_max_steps: int = 2,
                 halt_exploration_prob: float = 0.1, rope_theta: float = 10000.0,
                 rms_norm_eps: float = 1e-5, pad_token_id: int | None = None,
                 bos_token_id: int | None = None, eos_token_id: int | None = None, **kwargs):
        self.vocab_size = vocab_size
        self.hidden_size = hidden_size
        self.num_heads = num_heads
        self.h_layers = h_layers
        self.l_layers = l_layers
        self.h_cycles = h_cycles
        self.l_cycles = l_cycles
        self.expansion = expansion
        self.intermediate_size = intermediate_size or swiglu_width(hidden_size, expansion)
        self.max_seq_len = max_seq_len
        self.halt_max_steps = halt_max_steps
        self.halt_exploration_prob = halt_exploration_prob
        self.rope_theta = rope_theta
        self.rms_norm_eps = rms_norm_eps
        kwargs["tie_word_embeddings"] = False
        super().__init__(pad_token_id=pad_token_id, bos_token_id=bos_token_id,
                         eos_token_id=eos_token_id, **kwargs)

    @property
    def head_dim(self) -> int:
        return self.hidden_size // self.num_heads

    @property
    def num_hidden_layers(self) -> int:
        # Read by generic tooling (peft, the VRAM calculator) that expects a layer count.
        return self.h_layers + self.l_layers


_WHOLE = ("vocab_size", "hidden_size", "num_heads", "h_layers", "l_layers", "h_cycles", "l_cycles",
          "intermediate_size", "max_seq_len", "halt_max_steps")
_POSITIVE = ("expansion", "rope_theta", "rms_norm_eps")


def config_problem(values: dict) -> str | None:
    """Why a saved HRM configuration (config.json, or brain.json's architecture) cannot build a
    model, or None. Only the fields present are checked: a missing one takes HRMConfig's default."""
    for name in _WHOLE:
        v = values.get(name)
        if v is not None and (not isinstance(v, int) or isinstance(v, bool) or v < 1):
            return f"its {name} is {v!r}, not a whole number of at least 1"
    for name in _POSITIVE:
        v = values.get(name)
        if v is not None and (not isinstance(v, (int, float)) or isinstance(v, bool)
                              or not math.isfinite(v) or v <= 0):
            return f"its {name} is {v!r}, not a positive number"
    p = values.get("halt_exploration_prob")
    if p is not None and (not isinstance(p, (int, float)) or isinstance(p, bool) or not 0 <= p <= 1):
        return f"its halt_exploration_prob is {p!r}, not a probability"
    hidden, heads = values.get("hidden_size"), values.get("num_heads")
    if hidden is not None and heads is not None:
        if hidden % heads:
            return f"its hidden_size {hidden} is not divisible by num_heads {heads}"
        if (hidden // heads) % 2:
            return f"its heads of {hidden // heads} dimensions (hidden_size / num_heads) are odd"
    return None


@dataclass
class HRMCarry:
    """The recurrent state handed from one ACT segment to the next (always detached)."""

    z_H: torch.Tensor
    z_L: torch.Tensor


@dataclass
class HRMOutput(ModelOutput):
    loss: torch.Tensor | None = None
    logits: torch.Tensor | None = None
    q_halt_logits: torch.Tensor | None = None
    q_continue_logits: torch.Tensor | None = None
    carry: HRMCarry | None = None
    hidden_states: torch.Tensor | None = None
    segments: int | None = None


def rms_norm(x: torch.Tensor, eps: float) -> torch.Tensor:
    # Weightless, in fp32, as HRM does: post-norm keeps every state at unit RMS.
    dtype = x.dtype
    x = x.float()
    return (x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps)).to(dtype)


def rotate_half(x: torch.Tensor) -> torch.Tensor:
    a, b = x.chunk(2, dim=-1)
    return torch.cat((-b, a), dim=-1)


def rope_tables(seq_len: int, head_dim: int, theta: float, device, dtype) -> tuple[torch.Tensor, torch.Tensor]:
    inv_freq = 1.0 / (theta ** (torch.arange(0, head_dim, 2, device=device, dtype=torch.float32) / head_dim))
    freqs = torch.outer(torch.arange(seq_len, device=device, dtype=torch.float32), inv_freq)
    emb = torch.cat((freqs, freqs), dim=-1)
    return emb.cos().to(dtype), emb.sin().to(dtype)


class HRMAttention(nn.Module):
    def __init__(self, config: HRMConfig):
        super().__init__()
        h, d = config.hidden_size, config.head_dim
        self.num_heads, self.head_dim = config.num_heads, d
        self.q_proj = nn.Linear(h, config.num_heads * d, bias=False)
        self.k_proj = nn.Linear(h, config.num_heads * d, bias=False)
        self.v_proj = nn.Linear(h, config.num_heads * d, bias=False)
        self.o_proj = nn.Linear(config.num_heads * d, h, bias=False)

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
        b, t, _ = x.shape
        q = self.q_proj(x).view(b, t, self.num_heads, self.head_dim).transpose(1, 2)
        k = self.k_proj(x).view(b, t, self.num_heads, self.head_dim).transpose(1, 2)
        v = self.v_proj(x).view(b, t, self.num_heads, self.head_dim).transpose(1, 2)
        q = q * cos + rotate_half(q) * sin
        k = k * cos + rotate_half(k) * sin
        # Causal with right padding only: a real token never attends to a later pad.
        out = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        return self.o_proj(out.transpose(1, 2).reshape(b, t, -1))


class HRMMLP(nn.Module):
    def __init__(self, config: HRMConfig):
        super().__init__()
        h, i = config.hidden_size, config.intermediate_size
        self.gate_proj = nn.Linear(h, i, bias=False)
        self.up_proj = nn.Linear(h, i, bias=False)
        self.down_proj = nn.Linear(i, h, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))


class HRMBlock(GradientCheckpointingLayer):
    """Post-norm transformer block: x = norm(x + attn(x)); x = norm(x + mlp(x))."""

    def __init__(self, config: HRMConfig):
        super().__init__()
        self.eps = config.rms_norm_eps
        self.self_attn = HRMAttention(config)
        self.mlp = HRMMLP(config)

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
        x = rms_norm(x + self.self_attn(x, cos, sin), self.eps)
        return rms_norm(x + self.mlp(x), self.eps)


class HRMReasoningModule(nn.Module):
    """A stack of blocks fed ``state + injection``."""

    def __init__(self, config: HRMConfig, num_layers: int):
        super().__init__()
        self.layers = nn.ModuleList(HRMBlock(config) for _ in range(num_layers))

    def forward(self, state: torch.Tensor, injection: torch.Tensor, cos, sin) -> torch.Tensor:
        x = state + injection
        for layer in self.layers:
            x = layer(x, cos, sin)
        return x


class HRMForCausalLM(PreTrainedModel):
    config_class = HRMConfig
    base_model_prefix = "hrm"
    main_input_name = "input_ids"
    supports_gradient_checkpointing = True
    _supports_sdpa = True
    _no_split_modules = ["HRMBlock"]

    def __init__(self, config: HRMConfig):
        super().__init__(config)
        h = config.hidden_size
        self.embed_scale = math.sqrt(h)
        self.embed_tokens = nn.Embedding(config.vocab_size, h)
        self.h_level = HRMReasoningModule(config, config.h_layers)
        self.l_level = HRMReasoningModule(config, config.l_layers)
        self.lm_head = nn.Linear(h, config.vocab_size, bias=False)
        self.q_head = nn.Linear(h, 2, bias=True)
        # Initial carry, learned nowhere but saved with the weights so a bundle reloads exactly.
        self.register_buffer("H_init", torch.zeros(h), persistent=True)
        self.register_buffer("L_init", torch.zeros(h), persistent=True)
        # peft's causal-LM wrapper looks this attribute up. It is set on the instance, not
        # defined on the class, so that transformers does not offer its generate() for a model
        # whose decoding has to run ACT segments (see hrm.generate).
        self.prepare_inputs_for_generation = self._inputs_for_generation
        self.post_init()

    # -- Hugging Face plumbing -------------------------------------------------------------

    @torch.no_grad()
    def _init_weights(self, module: nn.Module) -> None:
        if isinstance(module, nn.Linear):
            if module is self.q_head:
                # Q values start near "never halt" so early training runs every segment.
                hf_init.zeros_(module.weight)
                hf_init.constant_(module.bias, -5.0)
            else:
                trunc_normal_(module.weight, std=1.0 / math.sqrt(module.in_features))  # LeCun, as in HRM
                if module.bias is not None:
                    hf_init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            trunc_normal_(module.weight, std=1.0 / self.embed_scale)  # scaled back up to unit variance in the forward
        elif module is self:
            trunc_normal_(self.H_init, std=1.0)
            trunc_normal_(self.L_init, std=1.0)

    def get_input_embeddings(self) -> nn.Module:
        return self.embed_tokens

    def set_input_embeddings(self, value: nn.Module) -> None:
        self.embed_tokens = value

    def get_output_embeddings(self) -> nn.Module:
        return self.lm_head

    def set_output_embeddings(self, value: nn.Module) -> None:
        self.lm_head = value

    @staticmethod
    def _inputs_for_generation(input_ids, **kwargs):
        return {"input_ids": input_ids, **kwargs}

    # -- the recurrence --------------------------------------------------------------------

    def initial_carry(self, batch_size: int, seq_len: int) -> HRMCarry:
        shape = (batch_size, seq_len, self.config.hidden_size)
        dtype = self.embed_tokens.weight.dtype
        return HRMCarry(z_H=self.H_init.to(dtype).expand(shape).contiguous(),
                        z_L=self.L_init.to(dtype).expand(shape).contiguous())

    def segment(self, input_ids: torch.Tensor, carry: HRMCarry, attention_mask: torch.Tensor | None = None,
                inputs_embeds: torch.Tensor | None = None, compute_logits: bool = True) -> HRMOutput:
        """One ACT segment: h_cycles x l_cycles updates, gradients through the last L and H only."""
        cfg = self.config
        if inputs_embeds is None:
            inputs_embeds = self.embed_tokens(input_ids)
        x = inputs_embeds * self.embed_scale
        t = x.shape[1]
        cos, sin = rope_tables(t, cfg.head_dim, cfg.rope_theta, x.device, x.dtype)
        z_H, z_L = carry.z_H, carry.z_L
        with torch.no_grad():
            for h_step in range(cfg.h_cycles):
                for l_step in range(cfg.l_cycles):
                    if h_step == cfg.h_cycles - 1 and l_step == cfg.l_cycles - 1:
                        break
                    z_L = self.l_level(z_L, z_H + x, cos, sin)
                if h_step < cfg.h_cycles - 1:
                    z_H = self.h_level(z_H, z_L, cos, sin)
        z_L = self.l_level(z_L, z_H + x, cos, sin)
        z_H = self.h_level(z_H, z_L, cos, sin)

        if attention_mask is not None:
            last = attention_mask.long().sum(-1).clamp_min(1) - 1  # right padding
        else:
            last = torch.full((z_H.shape[0],), t - 1, device=z_H.device, dtype=torch.long)
        q = self.q_head(z_H[torch.arange(z_H.shape[0], device=z_H.device), last]).float()
        logits = self.lm_head(z_H) if compute_logits else None
        return HRMOutput(logits=logits, q_halt_logits=q[:, 0], q_continue_logits=q[:, 1],
                         carry=HRMCarry(z_H=z_H.detach(), z_L=z_L.detach()), hidden_states=z_H)

    def forward(self, input_ids: torch.Tensor | None = None, attention_mask: torch.Tensor | None = None,
                inputs_embeds: torch.Tensor | None = None, labels: torch.Tensor | None = None,
                act_carry: HRMCarry | None = None, segments: int | None = None,
                return_dict: bool | None = None, **kwargs) -> HRMOutput:
        """With ``act_carry``: one segment from that carry. Without: a fixed-depth pass of
        ``segments`` (default ``halt_max_steps``) segments from the initial carry, the way
        the model is evaluated; ``labels`` then give the shifted next-token loss."""
        if act_carry is not None:
            return self.segment(input_ids, act_carry, attention_mask, inputs_embeds)
        ref = input_ids if input_ids is not None else inputs_embeds
        carry = self.initial_carry(ref.shape[0], ref.shape[1])
        n = segments or self.config.halt_max_steps
        for _ in range(n):
            out = self.segment(input_ids, carry, attention_mask, inputs_embeds)
            carry = out.carry
        out.segments = n
        if labels is not None:
            logits = out.logits[:, :-1].float()
            out.loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), labels[:, 1:].reshape(-1),
                                       ignore_index=IGNORE_INDEX)
        return out


def register_auto_classes() -> None:
    """Let AutoConfig / AutoModelForCausalLM open directories this model saved."""
    try:
        AutoConfig.register(MODEL_TYPE, HRMConfig)
    except ValueError:  # already registered
        pass
    try:
        AutoModelForCausalLM.register(HRMConfig, HRMForCausalLM)
    except ValueError:
        pass


register_auto_classes()
