"""config.json fields of well-known hub models, so an estimate needs no download.

Only the fields the shape needs; the values are those of the published config.json files.
Instruct/chat variants share their base model's shape and are listed as aliases.
"""

from __future__ import annotations

_LLAMA = {"model_type": "llama", "hidden_act": "silu"}

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
