"""bench/memory_savers.py --llama8b-dir: a saved model of the right shape is reused, any other refused."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def bench():
    spec = importlib.util.spec_from_file_location("memory_savers_bench", REPO / "bench" / "memory_savers.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_a_model_of_the_8b_shape_is_reused(bench, tmp_path):
    model = tmp_path / "model-8b-bf16"
    model.mkdir()
    (model / "config.json").write_text(json.dumps({**bench.LLAMA_8B, "rope_theta": None}))
    bench.LLAMA8B_DIR = str(model)
    assert bench.model_dir(tmp_path / "work", "llama8b", smoke=False, device="cpu") == model


def test_another_shape_is_refused_with_exit_2(bench, tmp_path, capsys):
    model = tmp_path / "model"
    model.mkdir()
    (model / "config.json").write_text(json.dumps({**bench.LLAMA_8B, "num_hidden_layers": 16}))
    bench.LLAMA8B_DIR = str(model)
    with pytest.raises(SystemExit) as exc:
        bench.model_dir(tmp_path / "work", "llama8b", smoke=False, device="cpu")
    assert exc.value.code == 2
    assert "num_hidden_layers=16 (want 32)" in capsys.readouterr().err
