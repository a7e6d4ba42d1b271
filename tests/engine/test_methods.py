"""Each method trains for real: the loss falls, the trainable share is what the method implies,
and only the adapter (and declared extra modules) receive gradients."""

from __future__ import annotations

import pytest
import torch

from aios_tui.config import resolve

METHODS = {
    # method: (overrides, learning rate that moves a small random base in a dozen steps)
    "lora": ({"use_peft": True, "peft_method": "lora", "lora_r": 4, "lora_alpha": 8,
              "lora_target_modules": "q_proj,v_proj,down_proj"}, 1e-2),
    "adalora": ({"use_peft": True, "peft_method": "adalora", "lora_r": 4, "lora_alpha": 8,
                 "lora_target_modules": "q_proj,v_proj,down_proj"}, 5e-2),
    "ia3": ({"use_peft": True, "peft_method": "ia3", "lora_target_modules": "k_proj,v_proj,down_proj"}, 3e-1),
    "full": ({"use_peft": False}, 3e-3),
}


def expected_trainable(model: torch.nn.Module, cfg) -> int:
    """The adapter size from the layer shapes alone, as each method's paper defines it."""
    p = cfg.peft
    targets = p.target_list()
    total = 0
    for name, module in model.named_modules():
        if not isinstance(module, torch.nn.Linear) or name.rsplit(".", 1)[-1] not in targets:
            continue
        i, o = module.in_features, module.out_features
        if p.peft_method == "lora":
            total += p.lora_r * (i + o)
        elif p.peft_method == "adalora":
            r = p.adalora_init_rank()
            total += r * (i + o) + r  # A, B and the singular values E
        elif p.peft_method == "ia3":
            total += i if name.rsplit(".", 1)[-1] in p.ia3_feedforward_list() else o
    return total


@pytest.mark.slow
@pytest.mark.parametrize("method", list(METHODS))
def test_method_trains_and_only_its_parameters_learn(method, make_cfg, tmp_path, losses_of):
    from aios_tui.engine.peft_setup import apply_peft, is_adapter_param, parameter_counts
    from aios_tui.engine.task import CausalLMTask
    from aios_tui.engine.train import run_training
    from aios_tui.engine.data import make_batch
    from safetensors.torch import load_file

    overrides, lr = METHODS[method]
    cfg = make_cfg(steps=16, lr=lr, batch_size=8, max_seq_len=64, **overrides)
    result = run_training(cfg, tmp_path / "run", progress="none")
    assert result.state == "finished" and result.step == 16
    losses = losses_of(tmp_path / "run" / "metrics.jsonl")
    first, last = sum(losses[s] for s in (1, 2, 3)) / 3, sum(losses[s] for s in (14, 15, 16)) / 3
    assert first - last > 0.3, f"{method}: loss {first:.3f} -> {last:.3f}"

    # Trainable share, checked against the layer shapes rather than against peft.
    task = CausalLMTask()
    base, tok = task.build(cfg, torch.device("cpu"))
    base_total = sum(p.numel() for p in base.parameters())
    want = expected_trainable(base, cfg) if cfg.peft.use_peft else base_total
    model = apply_peft(base, cfg, cfg.train.steps)
    trainable, total = parameter_counts(model)
    assert trainable == want
    adapted = sum(1 for n, m in base.named_modules() if n.rsplit(".", 1)[-1] in cfg.peft.target_list())
    ranknum = adapted if method == "adalora" else 0  # AdaLoRA keeps one frozen rank counter per layer
    assert total == base_total + (want if cfg.peft.use_peft else 0) + ranknum
    header = (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()[0]
    assert f'"trainable":{want},' in header and f'"peft":"{"enabled" if cfg.peft.use_peft else "disabled"}"' in header

    # One backward pass: exactly the adapter's tensors get gradients (all of them, for full).
    torch.manual_seed(0)
    model.train()
    data = task.load_data(cfg, tok)
    batch = make_batch(data.train_ids, data.train_labels, [0, 1], tok.pad_token_id)
    task.loss(model, batch, 0).loss.backward()
    with_grad = {n for n, p in model.named_parameters() if p.grad is not None}
    moved = {n for n, p in model.named_parameters() if p.grad is not None and p.grad.abs().sum() > 0}
    if cfg.peft.use_peft:
        assert with_grad and all(is_adapter_param(n) for n in with_grad)
        assert with_grad == {n for n, p in model.named_parameters() if p.requires_grad}
    else:
        assert with_grad == {n for n, _ in model.named_parameters()}
    assert moved  # (a fresh LoRA's A gets a zero gradient: its B starts at zero)

    # The checkpoint holds the trainable tensors only.
    saved = load_file(str(result.checkpoint / "trainable.safetensors"))
    assert set(saved) == {n for n, p in model.named_parameters() if p.requires_grad}


@pytest.mark.slow
def test_modules_to_save_are_trained_in_full_beside_the_adapter(make_cfg, tmp_path):
    from aios_tui.engine.peft_setup import apply_peft
    from aios_tui.engine.task import CausalLMTask
    from aios_tui.engine.data import make_batch

    cfg = make_cfg(use_peft=True, lora_r=2, lora_target_modules="q_proj", modules_to_save="norm")
    task = CausalLMTask()
    base, tok = task.build(cfg, torch.device("cpu"))
    model = apply_peft(base, cfg, 10)
    data = task.load_data(cfg, tok)
    task.loss(model, make_batch(data.train_ids, data.train_labels, [0], tok.pad_token_id), 0).loss.backward()
    with_grad = {n for n, p in model.named_parameters() if p.grad is not None}
    assert any("modules_to_save" in n and n.endswith("norm.modules_to_save.default.weight") for n in with_grad)
    assert all("lora_" in n or "modules_to_save" in n for n in with_grad)


def test_tiny_peft_presets_train_under_five_percent():
    """On the built-in model the seed's lightweight presets stay under 5% trainable."""
    from aios_tui.engine.models import build_tiny
    from aios_tui.engine.peft_setup import apply_peft, parameter_counts

    for preset, extra in (("efficient", {"lora_r": 8}), ("budget", {}), ("efficient", {})):
        cfg = resolve(preset=preset, overrides=extra)
        trainable, total = parameter_counts(apply_peft(build_tiny(), cfg, 100))
        assert 0 < 100 * trainable / total < 5, (preset, extra, trainable, total)


def test_tiny_is_one_fixed_model():
    from aios_tui.engine.models import build_tiny

    a, b = build_tiny(), build_tiny()
    torch.manual_seed(123)
    before = torch.rand(3)
    torch.manual_seed(123)
    build_tiny()
    assert torch.equal(torch.rand(3), before)  # building it leaves the global RNG alone
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))


@pytest.mark.slow
@pytest.mark.parametrize("steps", [1, 2])
def test_adalora_runs_of_one_or_two_steps(make_cfg, tmp_path, steps):
    """The seed's one-step dry run: AdaLoRA must not reach its final allocation unmeasured."""
    from aios_tui.engine.train import run_training

    result = run_training(make_cfg(steps=steps, warmup_steps=0, use_peft=True, peft_method="adalora"),
                          tmp_path / "run", progress="none")
    assert (result.state, result.step) == ("finished", steps)
