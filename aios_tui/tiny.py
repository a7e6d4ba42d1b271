"""The built-in `tiny` model's shape: a small Llama-architecture causal LM with a byte-level
tokenizer, so the console and the tests run with no download. Stdlib only: the VRAM
calculator reads it too.
"""

from __future__ import annotations

# Byte-level vocabulary: 256 byte values, then <pad>, <bos>, <eos>.
BYTE_VOCAB = 256
PAD_ID, BOS_ID, EOS_ID = 256, 257, 258
TINY_VOCAB = 259

# Keyword arguments for transformers.LlamaConfig.
TINY_CONFIG: dict = {
    "model_type": "llama",
    "architectures": ["LlamaForCausalLM"],
    "vocab_size": TINY_VOCAB,
    "hidden_size": 128,
    "intermediate_size": 352,
    "num_hidden_layers": 4,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "max_position_embeddings": 2048,
    "rms_norm_eps": 1e-5,
    "rope_theta": 10000.0,
    "tie_word_embeddings": True,
    "pad_token_id": PAD_ID,
    "bos_token_id": BOS_ID,
    "eos_token_id": EOS_ID,
    "hidden_act": "silu",
}
