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

# A 1B-class shape for the per-term tests (Llama-3.2-1B's numbers).
BIG = {"model_type": "llama", "hidden_size": 2048, "intermediate_size": 8192, "num_hidden_layers": 16,
       "num_attention_heads": 32, "num_key_value_heads": 8, "head_dim": 64, "vocab_size": 128256,
       "tie_word_embeddings": True, "max_position_embeddings": 131072}


def build_hf(cfg: dict, dtype: str = "fp32"):
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(AutoConfig.for_model(**cfg))
    return model.to({"fp32": torch.float32, "bf16": torch.bfloat16}[dtype])


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


def quiet():
    warnings.filterwarnings("ignore", category=FutureWarning)
    warnings.filterwarnings("ignore", category=UserWarning)


REPO = Path(__file__).resolve().parents[2]


def cpu_setup(**kw) -> Setup:
    return Setup(device="cpu", loss="hf", **kw)
