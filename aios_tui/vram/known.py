"""config.json fields of well-known hub models, so an estimate needs no download.

Only the fields the shape needs; the values are those of the published config.json files.
Instruct/chat variants share their base model's shape and are listed as aliases.
"""

from __future__ import annotations

_LLAMA = {"model_type": "llama", "hidden_act": "silu"}
_GEMMA2 = {"model_type": "gemma2", "hidden_act": "gelu_pytorch_tanh", "hidden_activation": "gelu_pytorch_tanh",
           "head_dim": 256, "vocab_size": 256000, "max_position_embeddings": 8192, "final_logit_softcapping": 30.0,
           "attn_logit_softcapping": 50.0}
_PYTHIA = {"model_type": "gpt_neox", "hidden_act": "gelu", "vocab_size": 50304, "max_position_embeddings": 2048,
           "rotary_pct": 0.25, "use_parallel_residual": True, "tie_word_embeddings": False}
_QWEN3 = {"model_type": "qwen3", "hidden_act": "silu", "head_dim": 128, "attention_bias": False, "vocab_size": 151936}

KNOWN: dict[str, dict] = {
    "gpt2": {"model_type": "gpt2", "n_embd": 768, "n_layer": 12, "n_head": 12, "vocab_size": 50257,
             "n_positions": 1024, "activation_function": "gelu_new", "tie_word_embeddings": True},
    "gpt2-medium": {"model_type": "gpt2", "n_embd": 1024, "n_layer": 24, "n_head": 16, "vocab_size": 50257,
                    "n_positions": 1024, "activation_function": "gelu_new", "tie_word_embeddings": True},
    "gpt2-large": {"model_type": "gpt2", "n_embd": 1280, "n_layer": 36, "n_head": 20, "vocab_size": 50257,
                   "n_positions": 1024, "activation_function": "gelu_new", "tie_word_embeddings": True},
    "gpt2-xl": {"model_type": "gpt2", "n_embd": 1600, "n_layer": 48, "n_head": 25, "vocab_size": 50257,
                "n_positions": 1024, "activation_function": "gelu_new", "tie_word_embeddings": True},
    "meta-llama/Llama-3.2-1B": {**_LLAMA, "hidden_size": 2048, "intermediate_size": 8192,
                                "num_hidden_layers": 16, "num_attention_heads": 32, "num_key_value_heads": 8,
                                "head_dim": 64, "vocab_size": 128256, "max_position_embeddings": 131072,
                                "tie_word_embeddings": True},
    "meta-llama/Llama-3.2-3B": {**_LLAMA, "hidden_size": 3072, "intermediate_size": 8192,
                                "num_hidden_layers": 28, "num_attention_heads": 24, "num_key_value_heads": 8,
                                "head_dim": 128, "vocab_size": 128256, "max_position_embeddings": 131072,
                                "tie_word_embeddings": True},
    "meta-llama/Llama-3.1-8B": {**_LLAMA, "hidden_size": 4096, "intermediate_size": 14336,
                                "num_hidden_layers": 32, "num_attention_heads": 32, "num_key_value_heads": 8,
                                "head_dim": 128, "vocab_size": 128256, "max_position_embeddings": 131072,
                                "tie_word_embeddings": False},
    "Qwen/Qwen2.5-0.5B": {"model_type": "qwen2", "hidden_act": "silu", "hidden_size": 896,
                          "intermediate_size": 4864, "num_hidden_layers": 24, "num_attention_heads": 14,
                          "num_key_value_heads": 2, "vocab_size": 151936, "max_position_embeddings": 32768,
                          "tie_word_embeddings": True},
    "Qwen/Qwen2.5-1.5B": {"model_type": "qwen2", "hidden_act": "silu", "hidden_size": 1536,
                          "intermediate_size": 8960, "num_hidden_layers": 28, "num_attention_heads": 12,
                          "num_key_value_heads": 2, "vocab_size": 151936, "max_position_embeddings": 131072,
                          "tie_word_embeddings": True},
    "Qwen/Qwen2.5-7B": {"model_type": "qwen2", "hidden_act": "silu", "hidden_size": 3584,
                        "intermediate_size": 18944, "num_hidden_layers": 28, "num_attention_heads": 28,
                        "num_key_value_heads": 4, "vocab_size": 152064, "max_position_embeddings": 131072,
                        "tie_word_embeddings": False},
    "Qwen/Qwen3-0.6B": {**_QWEN3, "hidden_size": 1024, "intermediate_size": 3072, "num_hidden_layers": 28,
                        "num_attention_heads": 16, "num_key_value_heads": 8, "max_position_embeddings": 40960,
                        "tie_word_embeddings": True},
    "Qwen/Qwen3-1.7B": {**_QWEN3, "hidden_size": 2048, "intermediate_size": 6144, "num_hidden_layers": 28,
                        "num_attention_heads": 16, "num_key_value_heads": 8, "max_position_embeddings": 40960,
                        "tie_word_embeddings": True},
    "Qwen/Qwen3-4B": {**_QWEN3, "hidden_size": 2560, "intermediate_size": 9728, "num_hidden_layers": 36,
                      "num_attention_heads": 32, "num_key_value_heads": 8, "max_position_embeddings": 40960,
                      "tie_word_embeddings": True},
    "Qwen/Qwen3-8B-Base": {**_QWEN3, "hidden_size": 4096, "intermediate_size": 12288, "num_hidden_layers": 36,
                           "num_attention_heads": 32, "num_key_value_heads": 8, "max_position_embeddings": 32768,
                           "tie_word_embeddings": False},
    "HuggingFaceTB/SmolLM2-135M": {**_LLAMA, "hidden_size": 576, "intermediate_size": 1536, "num_hidden_layers": 30,
                                   "num_attention_heads": 9, "num_key_value_heads": 3, "head_dim": 64,
                                   "vocab_size": 49152, "max_position_embeddings": 8192, "tie_word_embeddings": True},
    "HuggingFaceTB/SmolLM2-360M": {**_LLAMA, "hidden_size": 960, "intermediate_size": 2560, "num_hidden_layers": 32,
                                   "num_attention_heads": 15, "num_key_value_heads": 5, "head_dim": 64,
                                   "vocab_size": 49152, "max_position_embeddings": 8192, "tie_word_embeddings": True},
    "HuggingFaceTB/SmolLM2-1.7B": {**_LLAMA, "hidden_size": 2048, "intermediate_size": 8192, "num_hidden_layers": 24,
                                   "num_attention_heads": 32, "num_key_value_heads": 32, "head_dim": 64,
                                   "vocab_size": 49152, "max_position_embeddings": 8192, "tie_word_embeddings": True},
    "mistralai/Mistral-7B-v0.1": {"model_type": "mistral", "hidden_act": "silu", "hidden_size": 4096,
                                  "intermediate_size": 14336, "num_hidden_layers": 32,
                                  "num_attention_heads": 32, "num_key_value_heads": 8, "vocab_size": 32000,
                                  "max_position_embeddings": 32768, "tie_word_embeddings": False},
    "TinyLlama/TinyLlama-1.1B-Chat-v1.0": {**_LLAMA, "hidden_size": 2048, "intermediate_size": 5632,
                                           "num_hidden_layers": 22, "num_attention_heads": 32,
                                           "num_key_value_heads": 4, "vocab_size": 32000,
                                           "max_position_embeddings": 2048, "tie_word_embeddings": False},
    # word_embed_proj_dim: embedding and tied head 512 wide, project_in/project_out to the blocks' 1024
    "facebook/opt-350m": {"model_type": "opt", "hidden_size": 1024, "ffn_dim": 4096, "num_hidden_layers": 24,
                          "num_attention_heads": 16, "vocab_size": 50272, "max_position_embeddings": 2048,
                          "word_embed_proj_dim": 512, "do_layer_norm_before": False, "activation_function": "relu",
                          "tie_word_embeddings": True},
    "google/gemma-2b": {"model_type": "gemma", "hidden_act": "gelu", "hidden_size": 2048, "intermediate_size": 16384,
                        "num_hidden_layers": 18, "num_attention_heads": 8, "num_key_value_heads": 1, "head_dim": 256,
                        "vocab_size": 256000, "max_position_embeddings": 8192},
    "google/gemma-7b": {"model_type": "gemma", "hidden_act": "gelu", "hidden_size": 3072, "intermediate_size": 24576,
                        "num_hidden_layers": 28, "num_attention_heads": 16, "num_key_value_heads": 16, "head_dim": 256,
                        "vocab_size": 256000, "max_position_embeddings": 8192},
    "google/gemma-2-2b": {**_GEMMA2, "hidden_size": 2304, "intermediate_size": 9216, "num_hidden_layers": 26,
                          "num_attention_heads": 8, "num_key_value_heads": 4},
    "google/gemma-2-9b": {**_GEMMA2, "hidden_size": 3584, "intermediate_size": 14336, "num_hidden_layers": 42,
                          "num_attention_heads": 16, "num_key_value_heads": 8},
    "microsoft/Phi-3-mini-4k-instruct": {"model_type": "phi3", "hidden_act": "silu", "hidden_size": 3072,
                                         "intermediate_size": 8192, "num_hidden_layers": 32, "num_attention_heads": 32,
                                         "num_key_value_heads": 32, "vocab_size": 32064, "max_position_embeddings": 4096,
                                         "resid_pdrop": 0.0, "embd_pdrop": 0.0, "attention_dropout": 0.0,
                                         "tie_word_embeddings": False},
    "EleutherAI/pythia-160m": {**_PYTHIA, "hidden_size": 768, "intermediate_size": 3072, "num_hidden_layers": 12,
                               "num_attention_heads": 12},
    "EleutherAI/pythia-410m": {**_PYTHIA, "hidden_size": 1024, "intermediate_size": 4096, "num_hidden_layers": 24,
                               "num_attention_heads": 16},
    "EleutherAI/pythia-1b": {**_PYTHIA, "hidden_size": 2048, "intermediate_size": 8192, "num_hidden_layers": 16,
                             "num_attention_heads": 8},
    "EleutherAI/pythia-1.4b": {**_PYTHIA, "hidden_size": 2048, "intermediate_size": 8192, "num_hidden_layers": 24,
                               "num_attention_heads": 16},
    "allenai/OLMo-2-0425-1B": {"model_type": "olmo2", "hidden_act": "silu", "hidden_size": 2048,
                               "intermediate_size": 8192, "num_hidden_layers": 16, "num_attention_heads": 16,
                               "num_key_value_heads": 16, "vocab_size": 100352, "max_position_embeddings": 4096,
                               "attention_bias": False, "tie_word_embeddings": False},
    "bigcode/starcoder2-3b": {"model_type": "starcoder2", "hidden_act": "gelu_pytorch_tanh", "hidden_size": 3072,
                              "intermediate_size": 12288, "num_hidden_layers": 30, "num_attention_heads": 24,
                              "num_key_value_heads": 2, "vocab_size": 49152, "max_position_embeddings": 16384,
                              "use_bias": True, "embedding_dropout": 0.1, "residual_dropout": 0.1,
                              "attention_dropout": 0.1},
    "stabilityai/stablelm-2-1_6b": {"model_type": "stablelm", "hidden_act": "silu", "hidden_size": 2048,
                                    "intermediate_size": 5632, "num_hidden_layers": 24, "num_attention_heads": 32,
                                    "num_key_value_heads": 32, "vocab_size": 100352, "max_position_embeddings": 4096,
                                    "partial_rotary_factor": 0.25, "use_qkv_bias": True, "qk_layernorm": False,
                                    "use_parallel_residual": False, "hidden_dropout": 0.0, "attention_dropout": 0.0,
                                    "tie_word_embeddings": False},
    # multi_query without the new architecture: one k and one v head, whatever num_kv_heads says
    "tiiuae/falcon-7b": {"model_type": "falcon", "hidden_size": 4544, "num_hidden_layers": 32,
                         "num_attention_heads": 71, "num_kv_heads": 71, "multi_query": True, "vocab_size": 65024,
                         "new_decoder_architecture": False, "parallel_attn": True, "alibi": False, "bias": False,
                         "hidden_dropout": 0.0, "attention_dropout": 0.0},
    "facebook/opt-125m": {"model_type": "opt", "hidden_size": 768, "ffn_dim": 3072, "num_hidden_layers": 12,
                          "num_attention_heads": 12, "vocab_size": 50272, "max_position_embeddings": 2048,
                          "word_embed_proj_dim": 768, "do_layer_norm_before": True, "activation_function": "relu",
                          "dropout": 0.1, "attention_dropout": 0.0, "tie_word_embeddings": True},
    "facebook/opt-1.3b": {"model_type": "opt", "hidden_size": 2048, "ffn_dim": 8192, "num_hidden_layers": 24,
                          "num_attention_heads": 32, "vocab_size": 50272, "max_position_embeddings": 2048,
                          "word_embed_proj_dim": 2048, "do_layer_norm_before": True, "activation_function": "relu",
                          "dropout": 0.1, "attention_dropout": 0.0, "tie_word_embeddings": True},
    "EleutherAI/gpt-j-6b": {"model_type": "gptj", "n_embd": 4096, "n_layer": 28, "n_head": 16, "rotary_dim": 64,
                            "n_inner": None, "vocab_size": 50400, "n_positions": 2048,
                            "activation_function": "gelu_new", "embd_pdrop": 0.0, "attn_pdrop": 0.0,
                            "resid_pdrop": 0.0, "tie_word_embeddings": False},
    "Salesforce/codegen-350M-mono": {"model_type": "codegen", "n_embd": 1024, "n_layer": 20, "n_head": 16,
                                     "rotary_dim": 32, "n_inner": None, "vocab_size": 51200, "n_positions": 2048,
                                     "activation_function": "gelu_new", "embd_pdrop": 0.0, "attn_pdrop": 0.0,
                                     "resid_pdrop": 0.0, "tie_word_embeddings": False},
    "microsoft/phi-2": {"model_type": "phi", "hidden_size": 2560, "intermediate_size": 10240, "num_hidden_layers": 32,
                        "num_attention_heads": 32, "num_key_value_heads": 32, "vocab_size": 51200,
                        "max_position_embeddings": 2048, "partial_rotary_factor": 0.4, "qk_layernorm": False,
                        "hidden_act": "gelu_new", "embd_pdrop": 0.0, "resid_pdrop": 0.1, "attention_dropout": 0.0,
                        "tie_word_embeddings": False},
    "bigscience/bloom-560m": {"model_type": "bloom", "hidden_size": 1024, "n_layer": 24, "n_head": 16,
                              "vocab_size": 250880, "hidden_dropout": 0.0, "attention_dropout": 0.0,
                              "apply_residual_connection_post_layernorm": False, "pretraining_tp": 1,
                              "slow_but_exact": False},
    "mosaicml/mpt-7b": {"model_type": "mpt", "d_model": 4096, "n_layers": 32, "n_heads": 32, "vocab_size": 50432,
                        "max_seq_len": 2048, "expansion_ratio": 4, "no_bias": True,
                        "attn_config": {"alibi": True, "clip_qkv": None, "qk_ln": False, "attn_pdrop": 0}},
}

ALIASES: dict[str, str] = {
    "openai-community/gpt2": "gpt2",
    "openai-community/gpt2-medium": "gpt2-medium",
    "openai-community/gpt2-large": "gpt2-large",
    "openai-community/gpt2-xl": "gpt2-xl",
    "meta-llama/Llama-3.2-1B-Instruct": "meta-llama/Llama-3.2-1B",
    "meta-llama/Llama-3.2-3B-Instruct": "meta-llama/Llama-3.2-3B",
    "meta-llama/Llama-3.1-8B-Instruct": "meta-llama/Llama-3.1-8B",
    "meta-llama/Meta-Llama-3.1-8B": "meta-llama/Llama-3.1-8B",
    "meta-llama/Meta-Llama-3.1-8B-Instruct": "meta-llama/Llama-3.1-8B",
    "Qwen/Qwen2.5-0.5B-Instruct": "Qwen/Qwen2.5-0.5B",
    "Qwen/Qwen2.5-1.5B-Instruct": "Qwen/Qwen2.5-1.5B",
    "Qwen/Qwen2.5-7B-Instruct": "Qwen/Qwen2.5-7B",
    "mistralai/Mistral-7B-Instruct-v0.1": "mistralai/Mistral-7B-v0.1",
    "TinyLlama/TinyLlama_v1.1": "TinyLlama/TinyLlama-1.1B-Chat-v1.0",
    "TinyLlama/TinyLlama-1.1B-intermediate-step-1431k-3T": "TinyLlama/TinyLlama-1.1B-Chat-v1.0",
    "Qwen/Qwen3-0.6B-Base": "Qwen/Qwen3-0.6B",
    "Qwen/Qwen3-1.7B-Base": "Qwen/Qwen3-1.7B",
    "Qwen/Qwen3-4B-Base": "Qwen/Qwen3-4B",
    "Qwen/Qwen3-8B": "Qwen/Qwen3-8B-Base",
    "HuggingFaceTB/SmolLM2-135M-Instruct": "HuggingFaceTB/SmolLM2-135M",
    "HuggingFaceTB/SmolLM2-360M-Instruct": "HuggingFaceTB/SmolLM2-360M",
    "HuggingFaceTB/SmolLM2-1.7B-Instruct": "HuggingFaceTB/SmolLM2-1.7B",
    "google/gemma-2b-it": "google/gemma-2b",
    "google/gemma-1.1-2b-it": "google/gemma-2b",
    "google/gemma-7b-it": "google/gemma-7b",
    "google/gemma-1.1-7b-it": "google/gemma-7b",
    "google/gemma-2-2b-it": "google/gemma-2-2b",
    "google/gemma-2-9b-it": "google/gemma-2-9b",
    "EleutherAI/pythia-160m-deduped": "EleutherAI/pythia-160m",
    "EleutherAI/pythia-410m-deduped": "EleutherAI/pythia-410m",
    "EleutherAI/pythia-1b-deduped": "EleutherAI/pythia-1b",
    "EleutherAI/pythia-1.4b-deduped": "EleutherAI/pythia-1.4b",
}


def _index() -> dict[str, str]:
    """Lower-cased id, and id without its organisation, -> canonical id."""
    out: dict[str, str] = {}
    for name in list(KNOWN) + list(ALIASES):
        canon = ALIASES.get(name, name)
        out[name.lower()] = canon
        out.setdefault(name.split("/")[-1].lower(), canon)
    return out


_INDEX = _index()


def canonical_name(model: str) -> str | None:
    return _INDEX.get(model.strip().lower())


def known_config(model: str) -> dict | None:
    canon = canonical_name(model)
    return dict(KNOWN[canon]) if canon else None


def known_names() -> list[str]:
    return list(KNOWN)


def known_aliases() -> dict[str, list[str]]:
    """Canonical id -> the other ids that name the same shape."""
    out: dict[str, list[str]] = {name: [] for name in KNOWN}
    for alias, name in ALIASES.items():
        out[name].append(alias)
    return out

