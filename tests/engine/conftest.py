"""Fixtures for the engine tests: a small Llama saved to disk, datasets, metrics readers."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from aios_tui.config import resolve

SMALL_SHAPE = {"hidden_size": 48, "intermediate_size": 128, "num_hidden_layers": 2,
               "num_attention_heads": 4, "num_key_value_heads": 2, "max_position_embeddings": 256}


@pytest.fixture(scope="session")
def small_model_dir(tmp_path_factory) -> Path:
    """A small Llama with the byte tokenizer, written with save_pretrained (so loading it runs
    the real from_pretrained path)."""
    from aios_tui.engine.models import tiny_config, tiny_model
    from aios_tui.engine.tokenizer import byte_tokenizer

    path = tmp_path_factory.mktemp("small-llama")
    model = tiny_model(tiny_config(**SMALL_SHAPE), seed=1)
    model.save_pretrained(path)
    byte_tokenizer().save_pretrained(path)
    return path


@pytest.fixture(scope="session")
def qa_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("data") / "qa.jsonl"
    rows = [{"prompt": f"{a} + {b} = ", "completion": f"{a + b}"} for a in range(12) for b in range(12)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


@pytest.fixture
def make_cfg(small_model_dir, text_file):
    """A RunConfig for a short CPU run on the small model; keyword arguments override fields."""

    def make(**overrides):
        base = {"model": str(small_model_dir), "dataset_file": str(text_file), "max_seq_len": 32,
                "batch_size": 4, "steps": 12, "warmup_steps": 2, "eval_every": 0, "save_every": 0,
                "log_every": 1, "seed": 3, "device": "cpu", "lora_dropout": 0.0}
        base.update(overrides)
        return resolve(overrides=base)

    return make


def step_losses(metrics: Path) -> dict[int, float]:
    """step -> loss from a metrics file; a later line for the same step replaces an earlier one."""
    out: dict[int, float] = {}
    for line in metrics.read_text().splitlines():
        rec = json.loads(line)
        if "event" not in rec and "step" in rec and "loss" in rec:
            out[rec["step"]] = rec["loss"]
    return out


def records(metrics: Path) -> list[dict]:
    return [json.loads(line) for line in metrics.read_text().splitlines() if line.strip()]


@pytest.fixture
def losses_of():
    return step_losses


@pytest.fixture
def records_of():
    return records
