"""Fixtures for the memory-saver tests: small models saved to disk, a dataset, config helpers."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

# Output sizes of 48 and 24 are not multiples of 32: bitsandbytes' CPU inference layout for
# 4-bit weights cannot take them, so these shapes also prove the engine keeps it off.
LLAMA_SHAPE = {"hidden_size": 48, "intermediate_size": 128, "num_hidden_layers": 2,
               "num_attention_heads": 4, "num_key_value_heads": 2, "max_position_embeddings": 256}


@pytest.fixture(scope="session")
def llama_dir(tmp_path_factory) -> Path:
    """A small Llama with the byte tokenizer, saved with save_pretrained."""
    from aios_tui.engine.models import tiny_config, tiny_model
    from aios_tui.engine.tokenizer import byte_tokenizer

    path = tmp_path_factory.mktemp("llama")
    tiny_model(tiny_config(**LLAMA_SHAPE), seed=1).save_pretrained(path)
    byte_tokenizer().save_pretrained(path)
    return path


@pytest.fixture(scope="session")
def gpt2_dir(tmp_path_factory) -> Path:
    """A small GPT-2 (Conv1D layers, learned positions) with the byte tokenizer."""
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    from aios_tui.engine.tokenizer import byte_tokenizer
    from aios_tui.tiny import BOS_ID, EOS_ID, PAD_ID, TINY_VOCAB

    path = tmp_path_factory.mktemp("gpt2")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(2)
        model = GPT2LMHeadModel(GPT2Config(n_embd=64, n_layer=2, n_head=4, n_positions=128, vocab_size=TINY_VOCAB,
                                           bos_token_id=BOS_ID, eos_token_id=EOS_ID, pad_token_id=PAD_ID))
    model.save_pretrained(path)
    byte_tokenizer().save_pretrained(path)
    return path


def records(metrics: Path) -> list[dict]:
    return [json.loads(line) for line in metrics.read_text().splitlines() if line.strip()]


def step_losses(metrics: Path) -> dict[int, float]:
    """step -> loss; a later line for the same step (after a resume) replaces an earlier one."""
    return {r["step"]: r["loss"] for r in records(metrics) if "event" not in r and "loss" in r and "step" in r}


def run_flags(model: str, data: Path, **extra: str) -> list[str]:
    """Flags for a short, deterministic CPU run; keyword arguments add or replace (--a-b as a_b)."""
    flags = {"--model": model, "--dataset-file": str(data), "--max-seq-len": "32", "--batch-size": "2",
             "--warmup-steps": "1", "--eval-every": "3", "--save-every": "0", "--seed": "5", "--device": "cpu",
             "--lr": "1e-2", "--lora-dropout": "0.0", "--progress": "none"}
    flags.update({"--" + k.replace("_", "-"): v for k, v in extra.items()})
    return [x for kv in flags.items() for x in kv]


@pytest.fixture
def records_of():
    return records


@pytest.fixture
def losses_of():
    return step_losses


@pytest.fixture
def flags_for():
    return run_flags
