"""torch.compile (train.torch_compile) must not change training, and compiles each block once.

The engine compiles on CUDA only; the same ``Task.compile`` runs here on the CPU (inductor's
C++ backend), which checks the graph capture, the block-by-block compilation and the numbers.
"""

from __future__ import annotations

import shutil

import pytest

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(shutil.which("cc") is None and shutil.which("gcc") is None,
                                 reason="inductor on the CPU needs a C compiler")]

ALL7 = "q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj,down_proj"


def _train(model_dir, compiled: bool, steps: int = 50) -> tuple[list[float], list[str], int]:
    import torch

    from aios_tui.config import resolve
    from aios_tui.engine.loss import causal_lm_loss
    from aios_tui.engine.peft_setup import apply_peft
    from aios_tui.engine.task import CausalLMTask

    torch.manual_seed(0)
    # dropout 0: compiled dropout draws from its own generator, so masks would differ
    cfg = resolve(overrides={"model": str(model_dir), "lora_target_modules": ALL7, "lora_dropout": 0.0,
                             "max_seq_len": 32, "device": "cpu"})
    task = CausalLMTask()
    model, _ = task.build(cfg, torch.device("cpu"))
    model = apply_peft(model, cfg, steps, {}, str(model_dir))
    model.train()
    names = list(model.state_dict())
    blocks = 0
    if compiled:
        from aios_tui.engine.task import compile_blocks
        from aios_tui.engine.loss import fused_parts

        blocks = compile_blocks(fused_parts(model)[0], like=model)
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    ids = torch.randint(0, 256, (4, 32), generator=torch.Generator().manual_seed(1))
    losses = []
    for _ in range(steps):  # one batch over and over: the loss must fall
        loss, _ = causal_lm_loss(model, ids, ids.clone(), fused=True)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        losses.append(loss.item())
    assert list(model.state_dict()) == names  # checkpoints of a compiled run load uncompiled
    return losses, names, blocks


def test_compiled_blocks_keep_the_loss_curve(small_model_dir):
    import torch._dynamo

    torch._dynamo.reset()
    eager, _, _ = _train(small_model_dir, compiled=False)
    compiled, _, blocks = _train(small_model_dir, compiled=True)
    assert blocks == 2  # the two decoder layers, each compiled on its own
    for a, b in zip(eager, compiled):
        assert abs(a - b) <= 1e-5 * abs(a), (eager, compiled)
    assert compiled[-1] < compiled[0]  # and it trains


def test_task_compile_falls_back_to_the_whole_model():
    import torch
    from torch import nn

    from aios_tui.engine.task import compile_blocks

    class NoBlocks(nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = nn.Linear(4, 4)

        def forward(self, x):
            return self.lin(x)

    model = NoBlocks()
    assert compile_blocks(model) == 0
    assert model._compiled_call_impl is not None
    x = torch.randn(2, 4)
    assert torch.allclose(model(x), model.lin(x))


def test_hrm_blocks_compile_and_keep_the_loss():
    import torch

    from aios_tui.engine.hrm.act import act_loss
    from aios_tui.engine.hrm.model import HRMConfig, HRMForCausalLM
    from aios_tui.engine.task import compile_blocks

    small = dict(vocab_size=259, hidden_size=64, num_heads=4, h_layers=1, l_layers=1, h_cycles=2, l_cycles=2,
                 expansion=2.0, max_seq_len=32, halt_max_steps=2, pad_token_id=256, bos_token_id=257,
                 eos_token_id=258)

    def run(compiled: bool) -> tuple[list[float], int]:
        torch.manual_seed(0)
        model = HRMForCausalLM(HRMConfig(**small))
        model.train()
        blocks = compile_blocks(model) if compiled else 0
        opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
        ids = torch.randint(0, 256, (2, 32), generator=torch.Generator().manual_seed(1))
        losses = []
        for _ in range(4):
            result = act_loss(model, ids, ids.clone(), training=True)
            result.loss.backward()
            opt.step()
            opt.zero_grad(set_to_none=True)
            losses.append(result.loss.item())
        return losses, blocks

    eager, _ = run(False)
    compiled, blocks = run(True)
    assert blocks == 2  # one H and one L block; the ACT loop around them stays eager
    for a, b in zip(eager, compiled):
        assert abs(a - b) <= 1e-5 * abs(a), (eager, compiled)
