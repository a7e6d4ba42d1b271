"""Shared by the VRAM calculator's tests: tiny shapes, and the tensors autograd really saves."""

from __future__ import annotations

import warnings
from pathlib import Path

from aios_tui.vram import Setup

LLAMA = {"model_type": "llama", "hidden_size": 64, "intermediate_size": 160, "num_hidden_layers": 2,
         "num_attention_heads": 4, "num_key_value_heads": 4, "vocab_size": 300, "tie_word_embeddings": True,
         "max_position_embeddings": 256}
GQA = {**LLAMA, "num_key_value_heads": 2, "tie_word_embeddings": False}
QWEN2 = {"model_type": "qwen2", "hidden_size": 64, "intermediate_size": 160, "num_hidden_layers": 2,
         "num_attention_heads": 4, "num_key_value_heads": 2, "vocab_size": 300, "tie_word_embeddings": True,
         "max_position_embeddings": 256}
MISTRAL = {"model_type": "mistral", "hidden_size": 64, "intermediate_size": 96, "num_hidden_layers": 3,
           "num_attention_heads": 8, "num_key_value_heads": 2, "vocab_size": 500, "tie_word_embeddings": False,
           "max_position_embeddings": 256}
GPT2 = {"model_type": "gpt2", "n_embd": 64, "n_layer": 2, "n_head": 4, "vocab_size": 300, "n_positions": 64,
        "bos_token_id": 0, "eos_token_id": 0}
GPT2_NO_DROPOUT = {**GPT2, "embd_pdrop": 0.0, "attn_pdrop": 0.0, "resid_pdrop": 0.0}

# One tiny config per decoder laid out in aios_tui/vram/decoders.py: grouped-query attention,
# an MLP wider than the model (so IA3's [in] and [out] vectors differ), token ids in the vocabulary.
_TINY = {"hidden_size": 64, "intermediate_size": 96, "num_hidden_layers": 2, "num_attention_heads": 4,
         "num_key_value_heads": 2, "vocab_size": 300, "max_position_embeddings": 256, "pad_token_id": 0,
         "bos_token_id": 0, "eos_token_id": 0}
_BASE = {k: v for k, v in _TINY.items() if k not in ("intermediate_size", "num_key_value_heads")}
_GPT_NAMES = {"n_embd": 64, "n_layer": 2, "n_head": 4, "vocab_size": 300, "n_positions": 256, "pad_token_id": 0,
              "bos_token_id": 0, "eos_token_id": 0}
LAYOUTS = {
    "phi3": {**_TINY, "model_type": "phi3"},
    "gpt_neox": {**{k: v for k, v in _TINY.items() if k != "num_key_value_heads"}, "model_type": "gpt_neox"},
    "gpt_neox-sequential": {**{k: v for k, v in _TINY.items() if k != "num_key_value_heads"},
                            "model_type": "gpt_neox", "use_parallel_residual": False},
    "starcoder2": {**_TINY, "model_type": "starcoder2"},
    "qwen3": {**_TINY, "model_type": "qwen3", "head_dim": 32},
    "olmo2": {**_TINY, "model_type": "olmo2"},
    "gemma": {**_TINY, "model_type": "gemma", "head_dim": 32},
    "gemma2": {**_TINY, "model_type": "gemma2", "head_dim": 32},
    "gemma3_text": {**_TINY, "model_type": "gemma3_text", "head_dim": 32},
    "stablelm": {**_TINY, "model_type": "stablelm"},
    "stablelm-qk-parallel": {**_TINY, "model_type": "stablelm", "use_qkv_bias": True, "qk_layernorm": True,
                             "use_parallel_residual": True},
    # OPT: learned positions (two rows past max_position_embeddings), biased q/k/v/out_proj, fc1/fc2
    "opt": {**_BASE, "model_type": "opt", "ffn_dim": 96},
    "opt-post-norm-plain": {**_BASE, "model_type": "opt", "ffn_dim": 96, "do_layer_norm_before": False,
                            "enable_bias": False, "layer_norm_elementwise_affine": False, "dropout": 0.0,
                            "tie_word_embeddings": False},
    # OPT-350m: embedding and tied head narrower than the blocks, project_in/project_out between, post-norm
    "opt-350m-like": {**_BASE, "model_type": "opt", "ffn_dim": 96, "word_embed_proj_dim": 32,
                      "do_layer_norm_before": False},
    # Falcon-7B: multi-query, one norm for parallel attention and MLP; Falcon-40B: grouped k/v
    # heads, ln_attn and ln_mlp; Falcon-RW: ALiBi, per-head k/v, sequential, biases
    "falcon": {**_BASE, "model_type": "falcon", "ffn_hidden_size": 96},
    "falcon-new-decoder": {**_BASE, "model_type": "falcon", "new_decoder_architecture": True, "num_kv_heads": 2,
                           "hidden_dropout": 0.1},
    "falcon-alibi-sequential": {**_BASE, "model_type": "falcon", "alibi": True, "multi_query": False,
                                "parallel_attn": False, "bias": True, "ffn_hidden_size": 96},
    # OLMo: weightless LayerNorm in fp32; clip_qkv clamps q, k and v in place
    "olmo": {**_TINY, "model_type": "olmo"},
    "olmo-clip-qkv-tied": {**_TINY, "model_type": "olmo", "clip_qkv": 0.5, "tie_word_embeddings": True},
    # Granite: Llama's block with embedding, residual and attention multipliers, logits divided
    "granite": {**_TINY, "model_type": "granite"},
    "granite-multipliers": {**_TINY, "model_type": "granite", "embedding_multiplier": 12.0,
                            "residual_multiplier": 0.22, "attention_multiplier": 0.0078125, "logits_scaling": 8.0,
                            "attention_bias": True, "mlp_bias": True},
    # GPT-J: GPT-2's config names, q/k/v/out_proj without bias, fc_in/fc_out, one ln_1 for
    # attention and MLP in parallel, rotate_every_two on rotary_dim of each head, lm_head with a
    # bias; n_inner defaults to 4 x n_embd
    "gptj": {**_GPT_NAMES, "model_type": "gptj", "rotary_dim": 8},
    "gptj-dropout-whole-head-tied": {**_GPT_NAMES, "model_type": "gptj", "rotary_dim": 16, "n_inner": 96,
                                     "embd_pdrop": 0.1, "attn_pdrop": 0.1, "resid_pdrop": 0.1,
                                     "tie_word_embeddings": True},
    # CodeGen: one qkv_proj split across 4 model-parallel shards; with 8 heads the reshape to
    # heads copies q, k and v; with 4 (one head per shard) they stay views
    "codegen": {**_GPT_NAMES, "model_type": "codegen", "n_head": 8, "rotary_dim": 4, "n_inner": 96},
    "codegen-head-per-shard-dropout": {**_GPT_NAMES, "model_type": "codegen", "rotary_dim": 8,
                                       "embd_pdrop": 0.1, "attn_pdrop": 0.1, "resid_pdrop": 0.1},
    # BLOOM and MPT: ALiBi, eager attention only, an MLP 4 x hidden wide that no config field names.
    # BLOOM: LayerNorm on the embedding output, biases everywhere; its variant adds the norms'
    # outputs to the residual stream and uses both dropouts
    "bloom": {"model_type": "bloom", "hidden_size": 64, "n_layer": 2, "n_head": 4, "vocab_size": 300,
              "pad_token_id": 0, "bos_token_id": 0, "eos_token_id": 0},
    "bloom-residual-post-norm-dropout": {"model_type": "bloom", "n_embed": 64, "n_layer": 2, "n_head": 4,
                                         "vocab_size": 300, "apply_residual_connection_post_layernorm": True,
                                         "hidden_dropout": 0.1, "attention_dropout": 0.1, "pad_token_id": 0,
                                         "bos_token_id": 0, "eos_token_id": 0},
    # MPT: no biases, weight-only LayerNorms, one bool causal mask every layer keeps; its variant
    # clamps q/k/v (clip_qkv) and scales the scores by a factor of its own (its dropout:
    # test_saved_tensors.py, as transformers' MptAttentionConfig takes attn_pdrop as an int)
    "mpt": {"model_type": "mpt", "d_model": 64, "n_layers": 2, "n_heads": 4, "vocab_size": 300, "max_seq_len": 64,
            "pad_token_id": 0, "bos_token_id": 0, "eos_token_id": 0},
    "mpt-clip-qkv": {"model_type": "mpt", "d_model": 64, "n_layers": 2, "n_heads": 4, "vocab_size": 300,
                     "max_seq_len": 64, "attn_config": {"clip_qkv": 6.0, "softmax_scale": 0.1},
                     "pad_token_id": 0, "bos_token_id": 0, "eos_token_id": 0},
    # Phi: attention and fc1/fc2 in parallel from one LayerNorm, biased layers and head, half the
    # head rotated; the variant adds q/k LayerNorms, dropout everywhere, a tied head and phi-2's 0.4
    "phi": {**_TINY, "model_type": "phi"},
    "phi-qk-dropout-tied": {**_TINY, "model_type": "phi", "qk_layernorm": True, "partial_rotary_factor": 0.4,
                            "embd_pdrop": 0.1, "resid_pdrop": 0.1, "attention_dropout": 0.1,
                            "tie_word_embeddings": True},
    # Cohere (Command-R): parallel block from one fp32 LayerNorm without bias, interleaved rotary,
    # tied head scaled by logit_scale; the variant has per-head q/k norms, biases and its own head
    "cohere": {**_TINY, "model_type": "cohere"},
    "cohere-qk-norm-bias": {**_TINY, "model_type": "cohere", "use_qk_norm": True, "attention_bias": True,
                            "tie_word_embeddings": False},
}

# A 1B-class shape for the per-term tests (Llama-3.2-1B's numbers).
BIG = {"model_type": "llama", "hidden_size": 2048, "intermediate_size": 8192, "num_hidden_layers": 16,
       "num_attention_heads": 32, "num_key_value_heads": 8, "head_dim": 64, "vocab_size": 128256,
       "tie_word_embeddings": True, "max_position_embeddings": 131072}


def build_hf(cfg: dict, dtype: str = "fp32", attention: str = "sdpa"):
    """A random-init model, attention as the engine asks for it (eager where a model has no SDPA
    path, as the engine falls back). Built in ``dtype`` as from_pretrained(dtype=) loads it: a
    buffer the model makes in fp32 (CodeGen's sin/cos table) stays fp32, as it would not after .to()."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    torch.manual_seed(0)
    dt = {"fp32": torch.float32, "bf16": torch.bfloat16}[dtype]
    try:
        model = AutoModelForCausalLM.from_config(AutoConfig.for_model(**cfg), attn_implementation=attention, dtype=dt)
    except ValueError:
        model = AutoModelForCausalLM.from_config(AutoConfig.for_model(**cfg), attn_implementation="eager", dtype=dt)
    return model


def saved_bytes(loss, params) -> int:
    """Bytes of every tensor the autograd graph of ``loss`` keeps for backward, each storage
    once, parameters and integer tensors (token ids, targets) left out."""
    import torch

    param_ptrs = {p.untyped_storage().data_ptr() for p in params}
    seen: dict[int, int] = {}
    stack, visited = [loss.grad_fn], set()
    while stack:
        node = stack.pop()
        if node is None or node in visited:
            continue
        visited.add(node)
        for attr in dir(node):
            # generated nodes expose _saved_<name>; custom autograd Functions, saved_tensors
            if not (attr.startswith("_saved_") or (attr == "saved_tensors" and hasattr(node, "apply"))):
                continue
            try:
                value = getattr(node, attr)
            except Exception:  # a saved value already freed, or not a tensor
                continue
            for t in value if isinstance(value, (tuple, list)) else [value]:
                if isinstance(t, torch.Tensor) and t.numel() > 1 and t.dtype != torch.int64:
                    st = t.untyped_storage()
                    if st.data_ptr() not in param_ptrs:
                        seen.setdefault(st.data_ptr(), st.nbytes())
        stack.extend(nxt for nxt, _ in node.next_functions)
    return sum(seen.values())


def packed_bytes(forward, params) -> tuple[object, int]:
    """(what ``forward()`` returns, bytes of every tensor autograd packed while it ran), counted
    as ``saved_bytes`` counts. Saved-tensor hooks also see what an in-place op on a view keeps
    inside its CopySlices node, which the graph walk cannot open."""
    import torch

    param_ptrs = {p.untyped_storage().data_ptr() for p in params}
    seen: dict[int, int] = {}

    def pack(t):
        if t.numel() > 1 and t.dtype != torch.int64:
            st = t.untyped_storage()
            if st.data_ptr() not in param_ptrs:
                seen.setdefault(st.data_ptr(), st.nbytes())
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = forward()
    return out, sum(seen.values())


def quiet():
    warnings.filterwarnings("ignore", category=FutureWarning)
    warnings.filterwarnings("ignore", category=UserWarning)


REPO = Path(__file__).resolve().parents[2]


def cpu_setup(**kw) -> Setup:
    return Setup(device="cpu", loss="hf", **kw)
