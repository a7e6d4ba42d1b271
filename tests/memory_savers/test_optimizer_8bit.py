"""bitsandbytes' 8-bit AdamW (``--use-8bit-optimizer``): it trains, resumes exactly, and its
state takes the bytes the VRAM calculator says it takes."""

from __future__ import annotations

import pytest
import torch


def _optimizer_state(checkpoint) -> list[dict]:
    """Per parameter (in optimizer order): the saved state tensors by name."""
    saved = torch.load(checkpoint / "trainer_state.pt", weights_only=True)["optimizer"]
    out = []
    for index in sorted(saved["state"]):
        state = dict(saved["state"][index])
        state.update(state.pop("__bnb_optimizer_quant_state__", {}))
        out.append(state)
    return out


@pytest.mark.slow
def test_full_fine_tuning_of_tiny_trains_and_resumes_exactly(text_file, flags_for, losses_of, records_of,
                                                              resumed_like_straight):
    flags = flags_for("tiny", text_file, steps="8", lr="1e-3", progress="lines")
    straight, split, out = resumed_like_straight("--use-8bit-optimizer", *flags, steps=8, stop=4)
    assert "memory savers: bitsandbytes AdamW8bit" in out
    a = losses_of(straight / "metrics.jsonl")
    assert a[8] < a[1] - 0.5, a
    evals = lambda p: {r["step"]: r["eval_loss"] for r in records_of(p) if "eval_loss" in r}
    assert evals(straight / "metrics.jsonl") == pytest.approx(evals(split / "metrics.jsonl"), abs=1e-6)

    header = records_of(split / "metrics.jsonl")[0]
    assert header["memory_savers"] == {"optimizer": "AdamW8bit"}
    # The state really is 8-bit where bitsandbytes allows it: uint8 moments with fp32 block
    # scales for the block matrices; fp32 moments for the norms (under 4096 elements) and the
    # embedding table (kept in 32-bit on purpose).
    states = _optimizer_state(split / "checkpoints" / "step-000008")
    from aios_tui.engine.models import build_tiny

    params = [p for p in build_tiny().parameters()]
    decay = [p for p in params if p.dim() >= 2]
    keep = [p for p in params if p.dim() < 2]
    assert len(states) == len(decay) + len(keep)
    for p, state in zip(decay + keep, states):
        assert state["step"] == 8
        if p.dim() >= 2 and p.shape[0] != 259:          # block matrices
            assert state["state1"].dtype == state["state2"].dtype == torch.uint8
            assert state["absmax1"].numel() == -(-p.numel() // 256)
        else:                                              # the embedding, the norms
            assert state["state1"].dtype == state["state2"].dtype == torch.float32
            assert "absmax1" not in state


@pytest.mark.slow
def test_lora_state_bytes_are_what_the_calculator_counts(text_file, tmp_path, records_of):
    """LoRA r=32 on tiny: A and B of q_proj/down_proj reach bitsandbytes' 4096-element
    threshold (8-bit state), v_proj's B (64 x 32) stays under it (32-bit state)."""
    from aios_tui.config import resolve
    from aios_tui.engine.train import run_training

    cfg = resolve(overrides={"model": "tiny", "dataset_file": str(text_file), "device": "cpu", "max_seq_len": 32,
                             "batch_size": 2, "steps": 2, "eval_every": 0, "use_8bit_optimizer": True,
                             "use_peft": True, "lora_r": 32, "lora_target_modules": "q_proj,v_proj,down_proj"})
    result = run_training(cfg, tmp_path / "run", progress="none")
    states = _optimizer_state(result.checkpoint)
    assert {str(s["state1"].dtype) for s in states} == {"torch.uint8", "torch.float32"}
    seen, actual = set(), 0
    for state in states:
        for value in state.values():
            if isinstance(value, torch.Tensor) and value.data_ptr() not in seen:   # shared code books once
                seen.add(value.data_ptr())
                actual += value.numel() * value.element_size()
    estimate = records_of(tmp_path / "run" / "metrics.jsonl")[0]["vram_estimate"]
    assert estimate["breakdown"]["optimizer_states"] == actual


def test_the_embedding_override_stays_with_its_own_optimizer():
    import bitsandbytes as bnb

    from aios_tui.engine.optim_bnb import build_adamw8bit

    model = torch.nn.Sequential(torch.nn.Embedding(300, 32), torch.nn.Linear(32, 300))
    groups = [{"params": list(model.parameters()), "weight_decay": 0.0}]
    global_manager = bnb.optim.GlobalOptimManager.get_instance()
    before = dict(global_manager.pid2config)
    optimizer = build_adamw8bit(groups, 1e-3, torch.device("cpu"), model)
    assert global_manager.pid2config == before
    x = torch.randint(0, 300, (4, 8))
    model(x).square().mean().backward()
    optimizer.step()
    assert optimizer.state[model[0].weight]["state1"].dtype == torch.float32    # 9600 elements, but an embedding
    assert optimizer.state[model[1].weight]["state1"].dtype == torch.uint8      # 9600 elements
    # A second optimizer over other tensors sees no override.
    other = torch.nn.Linear(32, 300)
    plain = build_adamw8bit([{"params": list(other.parameters())}], 1e-3, torch.device("cpu"), other)
    other(torch.randn(2, 32)).sum().backward()
    plain.step()
    assert plain.state[other.weight]["state1"].dtype == torch.uint8
