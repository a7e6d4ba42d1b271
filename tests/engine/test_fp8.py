"""train.fp8: torchao's FP8 matmuls for the base's linear layers (emulated on the CPU here)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from aios_tui.config import resolve
from aios_tui.engine import fp8

needs_torchao = pytest.mark.skipif(fp8.torchao_float8() is None, reason="torchao is not installed")

STEPS = 50
LORA = {"use_peft": True, "peft_method": "lora", "lora_r": 8, "lora_target_modules": "q_proj,v_proj", "lr": 1e-2}


def _losses(model_dir, run_dir, **overrides) -> list[float]:
    from aios_tui.engine.train import run_training

    cfg = resolve(overrides={"model": str(model_dir), "steps": STEPS, "batch_size": 4, "max_seq_len": 32,
                             "warmup_steps": 5, "eval_every": 0, "save_every": 0, "log_every": 1,
                             "device": "cpu", "seed": 7, **LORA, **overrides})
    records: list[dict] = []
    result = run_training(cfg, run_dir, progress=None, on_step=lambda step, rec: records.append(rec))
    assert result.state == "finished"
    return [r["loss"] for r in records]


def test_only_plain_base_linears_are_taken():
    head = nn.Linear(64, 300)
    assert fp8.eligible("model.layers.0.mlp.down_proj", nn.Linear(128, 64), head)
    assert fp8.eligible("model.layers.0.self_attn.q_proj.base_layer", nn.Linear(64, 64), head)
    assert not fp8.eligible("model.layers.0.self_attn.q_proj.lora_A.default", nn.Linear(64, 64), head)
    assert not fp8.eligible("lm_head", nn.Linear(64, 304), None)
    assert not fp8.eligible("model.embed_out", head, head)                  # the output embedding, by identity
    # a trained head inside peft's modules_to_save wrapper, by its name or the wrapper's
    assert not fp8.eligible("base_model.model.lm_head.modules_to_save.default", nn.Linear(64, 304), None)
    assert not fp8.eligible("base_model.model.embed_out.modules_to_save.default", nn.Linear(64, 304), None,
                            ("base_model.model.embed_out",))
    assert not fp8.eligible("model.layers.0.self_attn.k_proj", nn.Linear(48, 24), head)   # 24: not a multiple of 16

    class Quantized(nn.Linear):
        pass

    assert not fp8.eligible("model.layers.0.mlp.up_proj", Quantized(64, 64), head)


def test_refusals_come_before_any_weights_load(cli, monkeypatch):
    code, _, err = cli("train", "--fp8", "--use-peft", "--load-in-4bit", "--check")
    assert code == 2 and "train.fp8: a quantized base" in err
    monkeypatch.setattr(fp8, "_import", lambda: (None, "needs torchao's float8 training (pip install torchao)"))
    code, _, err = cli("train", "--fp8", "--check")
    assert code == 2 and "needs torchao's float8 training (pip install torchao)" in err
    assert "Traceback" not in err


def test_a_gpu_without_fp8_is_named(monkeypatch):
    monkeypatch.setattr(fp8, "_import", lambda: (object(), None))
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: (8, 0))
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: "NVIDIA A100-SXM4-80GB")
    cfg = resolve(overrides={"fp8": True})
    assert fp8.problems(cfg, torch.device("cuda", 0)) == [
        "train.fp8: NVIDIA A100-SXM4-80GB (compute capability 8.0) has no FP8 matmuls; they need 8.9 or newer "
        "(Ada, Hopper)"]
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: (9, 0))
    assert fp8.problems(cfg, torch.device("cuda", 0)) == []


def test_hrm_is_refused(cli):
    code, _, err = cli("train-actv1", "--fp8", "--check")
    assert code == 2 and "HRM ACTv1 trains without them" in err


@needs_torchao
@pytest.mark.slow
def test_fp8_trains_close_to_the_plain_loss_curve(small_model_dir, tmp_path):
    plain = _losses(small_model_dir, tmp_path / "plain")
    with_fp8 = _losses(small_model_dir, tmp_path / "fp8", fp8=True)
    # FP8 rounds the base's products (e4m3 keeps 3 mantissa bits), so the curves are close, not
    # equal. Stated tolerance, relative: 1% at every step, 0.5% on the last ten steps' mean
    # (measured: 0.25% at most, 0.13% on the mean).
    for step, (a, b) in enumerate(zip(plain, with_fp8), 1):
        assert b == pytest.approx(a, rel=0.01), f"step {step}: plain {a}, fp8 {b}"
    last = sum(with_fp8[-10:]) / 10
    assert last == pytest.approx(sum(plain[-10:]) / 10, rel=0.005)
    assert last < 0.99 * sum(with_fp8[:5]) / 5      # and it learns


@needs_torchao
@pytest.mark.slow
def test_the_run_says_which_layers_run_in_fp8_and_resumes_without_it(cli, tmp_path):
    run = tmp_path / "runs" / "f"
    code, out, err = cli("train", "--fp8", "--use-peft", "--steps", "2", "--save-every", "0",
                         "--run-dir", str(run), "--progress", "lines")
    assert code == 0, err
    # the built-in tiny model: 7 projections in each of its 4 blocks, the adapters and head left
    assert "note: FP8 matmuls for 28 base linear layers" in out + err
    assert "emulated on the CPU" in out + err
    code, out, err = cli("train", "--resume", str(run), "--steps", "3", "--no-fp8", "--progress", "lines")
    assert code == 0, err
    assert "fp8: True -> False" in out + err


@needs_torchao
@pytest.mark.skipif(not torch.cuda.is_available() or torch.cuda.get_device_capability() < fp8.MIN_CAPABILITY,
                    reason="needs an FP8 GPU")
def test_cuda_fp8_compiled_trains_close_to_bf16(small_model_dir, tmp_path):
    # the GPU path as users run it: FP8 kernels, compiled blocks, bf16 autocast
    gpu = {"device": "cuda", "amp": True, "torch_compile": True}
    plain = _losses(small_model_dir, tmp_path / "plain", **gpu)
    with_fp8 = _losses(small_model_dir, tmp_path / "fp8", fp8=True, **gpu)
    assert all(v == v and v < 100 for v in with_fp8)
    last = sum(with_fp8[-10:]) / 10
    assert last == pytest.approx(sum(plain[-10:]) / 10, rel=0.02)


@needs_torchao
def test_a_model_with_no_layer_fp8_can_take_is_refused():
    from aios_tui.errors import UserError

    with pytest.raises(UserError, match="has no linear layer FP8 can take"):
        fp8.apply(nn.Sequential(nn.Linear(24, 24)), "odd-sizes")
