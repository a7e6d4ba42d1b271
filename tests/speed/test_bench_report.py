"""The bench's arithmetic: model FLOPs per token and the GPU report (no GPU needed)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("throughput_bench", REPO / "bench" / "throughput.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def plan_for(bench, tmp_path, *argv):
    args = bench.parse_args(list(argv))
    return bench.build_plan(args, tmp_path), args


def test_flops_per_token_reduces_to_6n_for_full_fine_tuning(bench, tmp_path):
    plan, _ = plan_for(bench, tmp_path, "--config", "1b", "--method", "full")
    m = plan["model_kwargs"]
    n = 1_000_000_000
    attention = 12 * m["num_hidden_layers"] * 2048 * m["hidden_size"]
    assert bench.flops_per_token(plan, n, n, full=True) == 6 * n + attention
    # LoRA: frozen weights cost forward and input-gradient matmuls, no weight gradient
    assert bench.flops_per_token(plan, n + 10, 10, full=False) == 4 * (n + 10) + 2 * 10 + attention


def test_shapes_match_the_published_models(bench, tmp_path):
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    expected = {"124m": 152e6, "1b": 1.236e9, "8b": 8.03e9, "smoke": None}
    for name, params in expected.items():
        plan, _ = plan_for(bench, tmp_path, *(["--smoke"] if name == "smoke" else ["--config", name]))
        with torch.device("meta"):
            model = LlamaForCausalLM(LlamaConfig(**plan["model_kwargs"]))
        if params:
            assert sum(p.numel() for p in model.parameters()) == pytest.approx(params, rel=0.01), name
        # the FLOPs formula's parameter count is exactly what the model multiplies by
        assert bench.base_matmul_params(plan["model_kwargs"]) == bench._matmul_params(model), name


def test_gpu_report_prints_ratios_and_mfu(bench, tmp_path, capsys):
    plan, args = plan_for(bench, tmp_path, "--config", "1b")
    common = {"device": "NVIDIA H200", "versions": {"torch": "2.x"}, "measured_steps": 20}
    ours = {**common, "tokens_per_s": 60_000.0, "seconds": 2.0, "peak_allocated": 20e9,
            "trainable": 11_272_192, "first_loss": 11.9}
    hf = {**common, "tokens_per_s": 40_000.0, "seconds": 3.0, "peak_allocated": 32e9,
          "trainable": 11_272_192, "first_loss": 11.9}
    out = bench.report(plan, {"ours": ours, "hf": hf}, args)
    text = capsys.readouterr().out
    assert "ratio ours/HF: tokens/s 1.50x, peak allocated 0.62x" in text
    assert out["summary"]["speed_ratio"] == pytest.approx(1.5)
    # 60K tokens/s x (4 N_fwd + 2 N_lora + 12 x 16 x 2048 x 2048) FLOPs / 989.4 TFLOP/s, where
    # N_fwd is the 1b shape's linear weights (tied lm_head once) plus the adapters
    n_fwd = 16 * (2 * 2048 * 2048 + 2 * 2048 * 512 + 3 * 2048 * 8192) + 128256 * 2048 + 11_272_192
    fpt = 4 * n_fwd + 2 * 11_272_192 + 12 * 16 * 2048 * 2048
    assert ours["mfu"] == pytest.approx(60_000 * fpt / 989.4e12)
    assert f"{ours['mfu']:.1%}" in text


def test_one_side_failing_keeps_the_other_sides_figures(bench, tmp_path, monkeypatch, capsys):
    import json

    ours = {"device": "NVIDIA H200", "versions": {"torch": "2.x"}, "measured_steps": 20, "tokens_per_s": 5e4,
            "seconds": 2.0, "peak_allocated": 20e9, "trainable": 1, "first_loss": 11.9,
            "fused_ce_backend": "torch (liger unavailable)"}

    def child(side, plan, timeout):
        if side == "hf":
            raise bench.SideFailed("the hf side failed (exit 1)")
        return ours if side == "ours" else {}

    monkeypatch.setattr(bench, "_child", child)
    out = tmp_path / "tp.json"
    code = bench.main(["--config", "1b", "--workdir", str(tmp_path / "w"), "--json", str(out)])
    assert code == 1
    data = json.loads(out.read_text())
    assert data["results"]["ours"]["tokens_per_s"] == 5e4 and "hf" not in data["results"]
    assert data["failures"] == {"hf": "the hf side failed (exit 1)"}
    assert "fused loss kernel as run: torch (liger unavailable)" in capsys.readouterr().out
