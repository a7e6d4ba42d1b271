"""Fixtures for the VRAM calculator's tests (helpers live in vram_helpers.py)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from vram_helpers import BIG, QWEN2  # noqa: E402

from aios_tui.vram import shape_from_hf_config  # noqa: E402


@pytest.fixture
def big_shape():
    return shape_from_hf_config(BIG, "llama-1b")


@pytest.fixture
def config_dir(tmp_path):
    """A model directory holding nothing but a config.json (a Qwen2.5-0.5B shape)."""
    d = tmp_path / "qwen-shape"
    d.mkdir()
    (d / "config.json").write_text(json.dumps({**QWEN2, "hidden_size": 896, "intermediate_size": 4864,
                                                "num_hidden_layers": 24, "num_attention_heads": 14,
                                                "vocab_size": 151936}))
    return d
