"""The calculator against the engine's real peak on the CPU, whole runs.

Each case trains three steps through ``run_training`` (evaluation and checkpoint included) under
bench/peak_breakdown.py's tracker, which sees every tensor storage an op creates and when it
dies: the highest total is what a caching allocator would have had to hand out. The calculator,
told the run is on the CPU, must land close to it. Small widths keep each run to seconds; the
shapes still have real vocabularies for the loss and enough layers for the blocks to dominate.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

pytestmark = pytest.mark.slow

GPT2 = {"n_embd": 256, "n_layer": 4, "n_head": 4, "vocab_size": 2000, "n_positions": 512}
LLAMA = {"model_type": "llama", "hidden_size": 256, "intermediate_size": 512, "num_hidden_layers": 4,
         "num_attention_heads": 4, "num_key_value_heads": 2, "vocab_size": 2000, "max_position_embeddings": 512}
ALL7 = "q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj,down_proj"

CASES = [
    # (name, model, settings, tolerance)
    ("gpt2-full-fp32", "gpt2", {"use_peft": False, "model_dtype": "fp32"}, 0.05),
    ("gpt2-lora", "gpt2", {"use_peft": True, "lora_target_modules": "c_attn,c_proj"}, 0.05),
    ("gpt2-qlora-4bit", "gpt2", {"use_peft": True, "lora_target_modules": "c_attn,c_proj", "load_in_4bit": True}, 0.05),
    ("llama-lora-all-bf16", "llama8b", {"use_peft": True, "lora_target_modules": ALL7, "model_dtype": "bf16"}, 0.05),
    # checkpointing: the recomputed block is counted whole; the tracker sees it freed op by op
    ("gpt2-lora-checkpointed", "gpt2", {"use_peft": True, "lora_target_modules": "c_attn,c_proj",
                                        "gradient_checkpointing": True}, 0.10),
    ("llama-lora-fp8", "llama8b", {"use_peft": True, "lora_target_modules": ALL7, "model_dtype": "bf16", "fp8": True},
     0.05),
    # bitsandbytes keeps each 8-bit layer's input on its graph node, which checkpointing cannot
    # drop: the calculator counts that, and the engine drops each step's graph before the next
    # forward (kept, the peak held two steps' worth and sat far over the estimate)
    ("gpt2-8bit-all-savers", "gpt2", {"use_peft": True, "lora_r": 16, "lora_alpha": 32,
                                      "lora_target_modules": "c_attn,c_proj", "model_dtype": "fp32",
                                      "load_in_8bit": True, "use_8bit_optimizer": True,
                                      "gradient_checkpointing": True, "amp": True}, 0.03),
    ("llama-qlora-checkpointed", "llama8b", {"use_peft": True, "lora_target_modules": ALL7, "model_dtype": "bf16",
                                             "load_in_4bit": True, "gradient_checkpointing": True,
                                             "use_8bit_optimizer": True}, 0.10),
]


@pytest.mark.parametrize("name,model,settings,tolerance", CASES, ids=[c[0] for c in CASES])
def test_the_estimate_is_close_to_the_engine_s_peak(name, model, settings, tolerance, tmp_path, monkeypatch):
    import memory_savers as ms
    import peak_breakdown as pb

    from aios_tui.engine.fp8 import torchao_float8

    if settings.get("fp8") and torchao_float8() is None:
        pytest.skip("torchao is not installed")

    for key, value in GPT2.items():
        monkeypatch.setitem(ms.GPT2, key, value)
    monkeypatch.setattr(ms, "LLAMA_8B", LLAMA)
    monkeypatch.setitem(ms.CASES, name, (model, {**settings, "batch_size": 4, "max_seq_len": 256}))
    row = pb.profile_case(name, {}, tmp_path, 3, False, "cpu")
    error = row["estimate_peak_allocated"] / row["tracked_peak"] - 1
    assert abs(error) < tolerance, f"{name}: estimate {error:+.1%} off the engine's peak"


def _tracked_peak(model, loss: str) -> int:
    """The peak of one tracked forward and backward on the CPU, through the model's own loss
    ("hf") or the engine's ("plain")."""
    import peak_breakdown as pb
    import torch

    from aios_tui.engine.loss import causal_lm_loss

    model.train()
    ids = torch.randint(0, 8000, (2, 64), generator=torch.Generator().manual_seed(1))
    tracker = pb.make_tracker("cpu")
    with tracker:
        out = model(input_ids=ids, labels=ids).loss if loss == "hf" else causal_lm_loss(model, ids, ids)[0]
        out.backward()
    return tracker.peak


@pytest.mark.parametrize("loss", ["hf", "plain"])
def test_granite_s_logits_division_leaves_the_peak_as_llama_s(loss):
    """Granite divides the logits by logits_scaling (and scales the embedding and each residual
    branch by a number): each makes a tensor autograd does not keep, and the [T, V] quotient
    is alive only beside a logits tensor that dies, below the loss's fp32 buffers. The tracked
    peak of a forward and backward, and the estimate, are Llama's for the same shape."""
    from vram_helpers import build_hf, cpu_setup, quiet

    from aios_tui.vram import shape_from_hf_config
    from aios_tui.vram.estimate import compute

    quiet()
    base = {"hidden_size": 64, "intermediate_size": 96, "num_hidden_layers": 2, "num_attention_heads": 4,
            "num_key_value_heads": 2, "vocab_size": 8000, "max_position_embeddings": 256,
            "tie_word_embeddings": False}
    granite = {**base, "model_type": "granite", "logits_scaling": 8.0, "embedding_multiplier": 12.0,
               "residual_multiplier": 0.2}
    peaks, estimates = [], []
    for cfg in ({**base, "model_type": "llama"}, granite):
        peaks.append(_tracked_peak(build_hf(cfg, "bf16"), loss))
        setup = cpu_setup(method="full", weights="bf16", batch=2, seq=64).with_(loss=loss)
        estimates.append(compute(shape_from_hf_config(cfg), setup).peak_allocated_bytes)
    assert peaks[0] == peaks[1] and estimates[0] == estimates[1]


class _Unscaled:
    """A logit_scale whose product is the logits themselves: the model without the multiply."""

    def __rmul__(self, logits):
        return logits


@pytest.mark.parametrize("loss", ["hf", "plain"])
@pytest.mark.parametrize("weights", ["bf16", "fp32"])
def test_cohere_s_logit_scale_product_never_sets_the_peak(loss, weights):
    """Cohere multiplies the logits by logit_scale: a [T, V] product alive only beside logits
    that die, below the loss's fp32 buffers, and kept by nothing. The tracked peak of a forward
    and backward is the same as without the multiply, which the estimate leaves out."""
    from vram_helpers import build_hf, quiet

    quiet()
    cfg = {"model_type": "cohere", "hidden_size": 64, "intermediate_size": 96, "num_hidden_layers": 2,
           "num_attention_heads": 4, "num_key_value_heads": 2, "vocab_size": 8000, "max_position_embeddings": 256,
           "bos_token_id": 0, "eos_token_id": 0, "pad_token_id": 0}
    peaks = []
    for scale in (None, _Unscaled()):
        model = build_hf(cfg, weights)
        if scale is not None:
            model.logit_scale = scale
        peaks.append(_tracked_peak(model, loss))
    assert peaks[0] == peaks[1]
