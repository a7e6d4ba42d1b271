"""The engine skips peft's fp32 cast of LoRA inputs exactly where autocast makes it pointless."""

from __future__ import annotations

import pytest

from aios_tui.config import resolve
from aios_tui.vram.run import setup_from_config, shape_for_run, skips_lora_input_cast


def _casts(model) -> list[bool]:
    from peft.tuners.lora.layer import LoraLayer

    return [getattr(m, "cast_input_dtype_enabled", True) for m in model.modules() if isinstance(m, LoraLayer)]


@pytest.mark.parametrize("overrides,skipped", [
    ({"amp": True}, True),
    ({"amp": False}, False),
    ({"amp": True, "peft_method": "adalora"}, False),
    ({"amp": True, "peft_method": "ia3"}, False),
])
def test_which_runs_skip_it_and_the_calculator_agrees(overrides, skipped):
    import torch

    from aios_tui.engine.peft_setup import apply_peft
    from aios_tui.engine.task import CausalLMTask

    cfg = resolve(overrides={"model": "tiny", "use_peft": True, "lora_target_modules": "q_proj,v_proj",
                             "max_seq_len": 32, "device": "cpu", **overrides})
    assert skips_lora_input_cast(cfg) is skipped
    assert setup_from_config(cfg, shape_for_run(cfg)).lora_input_cast is (not skipped)
    model, _ = CausalLMTask().build(cfg, torch.device("cpu"))
    model = apply_peft(model, cfg, 10, {}, "tiny")
    casts = _casts(model)
    if overrides.get("peft_method", "lora") == "lora":
        assert casts and all(c is (not skipped) for c in casts)
    else:
        assert all(casts)


def test_quantized_bases_keep_peft_s_cast():
    cfg = resolve(overrides={"model": "tiny", "use_peft": True, "amp": True, "load_in_8bit": True})
    assert not skips_lora_input_cast(cfg)
