"""A small Llama saved with save_pretrained, so runs load it through the real from_pretrained path."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def small_model_dir(tmp_path_factory):
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from aios_tui.engine.tokenizer import byte_tokenizer
    from aios_tui.tiny import BOS_ID, EOS_ID, PAD_ID, TINY_VOCAB

    path = tmp_path_factory.mktemp("small-llama")
    config = LlamaConfig(vocab_size=TINY_VOCAB, hidden_size=48, intermediate_size=96, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, tie_word_embeddings=True,
                         max_position_embeddings=256, pad_token_id=PAD_ID, bos_token_id=BOS_ID,
                         eos_token_id=EOS_ID)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = LlamaForCausalLM(config)
    model.save_pretrained(path)
    byte_tokenizer().save_pretrained(path)
    return path


@pytest.fixture(autouse=True)
def _one_cpu_thread():
    """Tiny matmuls gain nothing from threads, and on a busy 2-core box OpenMP workers that
    wait for each other make them 5-10x slower; one thread keeps these tests quick and steady."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
