"""The activation model against the tensors autograd really keeps, on the CPU.

Tiny Hugging Face models (Llama with and without grouped-query attention, Qwen2 with q/k/v
biases, GPT-2 with and without dropout) and the HRM ACTv1 model are run forward; the graph is
walked and every saved tensor counted once. The calculator, told the run is on the CPU
(dropout keeps a float noise tensor there, and the CPU attention kernels differ), must give
exactly the same number of bytes. CUDA-only behaviour (bool dropout masks, the math kernel for
fp32 GQA, autocast) is checked against the GPU measurements in test_calibration.py.
"""

from __future__ import annotations

import pytest

from vram_helpers import (GPT2, GPT2_NO_DROPOUT, GQA, LAYOUTS, LLAMA, QWEN2, build_hf, cpu_setup, packed_bytes, quiet,
                          saved_bytes)

from aios_tui.vram import shape_from_hf_config
from aios_tui.vram.estimate import saved_for_backward

ALL7 = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]

CASES = [
    # (name, config, weights dtype, method, targets, kwargs)
    ("llama-full-fp32", LLAMA, "fp32", "full", [], {}),
    ("llama-full-bf16", LLAMA, "bf16", "full", [], {}),
    ("gqa-full-fp32", GQA, "fp32", "full", [], {}),
    ("qwen2-full-bf16", QWEN2, "bf16", "full", [], {}),
    ("llama-lora-qv", LLAMA, "fp32", "lora", ["q_proj", "v_proj"], {"r": 8, "dropout": 0.0}),
    ("gqa-lora-all-dropout-bf16", GQA, "bf16", "lora", ALL7, {"r": 4, "dropout": 0.1}),
    ("qwen2-lora-all-dropout", QWEN2, "fp32", "lora", ALL7, {"r": 4, "dropout": 0.1}),
    ("llama-lora-mlp-only", LLAMA, "bf16", "lora", ["down_proj"], {"r": 8, "dropout": 0.0}),
    ("gqa-ia3", GQA, "fp32", "ia3", ["k_proj", "v_proj", "down_proj"], {"ia3_feedforward": ("down_proj",)}),
    ("qwen2-ia3-bf16", QWEN2, "bf16", "ia3", ["q_proj", "up_proj"], {"ia3_feedforward": ("up_proj",)}),
    ("llama-adalora", LLAMA, "fp32", "adalora", ["q_proj", "v_proj", "down_proj"], {"r": 6, "dropout": 0.1}),
    ("gqa-adalora-bf16", GQA, "bf16", "adalora", ALL7, {"r": 6, "dropout": 0.1}),
    ("gpt2-full-fp32-no-dropout", GPT2_NO_DROPOUT, "fp32", "full", [], {}),
    ("gpt2-full-bf16-dropout", GPT2, "bf16", "full", [], {}),
    ("gpt2-lora-dropout", GPT2, "fp32", "lora", ["c_attn", "c_proj", "c_fc"], {"r": 4, "dropout": 0.1}),
    # Hugging Face's eager attention: a frozen k leaves q unkept, and the reverse
    ("gqa-eager-lora-qv", GQA, "fp32", "lora", ["q_proj", "v_proj"], {"r": 4, "dropout": 0.0, "attention": "eager"}),
    ("gqa-eager-lora-v-dropout-bf16", {**GQA, "attention_dropout": 0.1}, "bf16", "lora", ["v_proj"],
     {"r": 4, "dropout": 0.0, "attention": "eager"}),
    ("gqa-eager-full-dropout", {**GQA, "attention_dropout": 0.1}, "fp32", "full", [], {"attention": "eager"}),
    # attention dropout takes the CPU's SDPA to the math kernel: a frozen k leaves q unkept there too
    ("gqa-math-lora-qv", {**GQA, "attention_dropout": 0.1}, "fp32", "lora", ["q_proj", "v_proj"],
     {"r": 4, "dropout": 0.0}),
]


def _layout_cases(name: str, cfg: dict) -> list[tuple]:
    from aios_tui.vram import shape_from_hf_config

    shape = shape_from_hf_config(cfg)
    linears = list(dict.fromkeys(lin.name for lin in shape.block_linears() + shape.outer_linears()))
    mlp = [lin.name for lin in shape.block_linears() if lin.reads.startswith("mlp")]
    return [(f"{name}-full-bf16", cfg, "bf16", "full", [], {}),
            (f"{name}-lora-suggested", cfg, "fp32", "lora", list(shape.suggested_targets()), {"r": 8, "dropout": 0.0}),
            (f"{name}-lora-all-dropout-bf16", cfg, "bf16", "lora", linears, {"r": 4, "dropout": 0.1}),
            (f"{name}-ia3", cfg, "fp32", "ia3", linears, {"ia3_feedforward": tuple(mlp[-1:])})]


# every laid-out decoder, so its block walk (fused layers, q/k norms, norm placement,
# parallel residuals) is checked against the real graph
CASES += [case for name, cfg in LAYOUTS.items() for case in _layout_cases(name, cfg)]


def peft_config(method, targets, kw):
    from peft import AdaLoraConfig, IA3Config, LoraConfig

    if method == "lora":
        return LoraConfig(r=kw["r"], lora_alpha=16, lora_dropout=kw["dropout"], target_modules=targets)
    if method == "adalora":
        return AdaLoraConfig(init_r=kw["r"], target_r=2, lora_alpha=16, lora_dropout=kw["dropout"],
                             target_modules=targets, total_step=100)
    return IA3Config(target_modules=targets, feedforward_modules=list(kw["ia3_feedforward"]))


@pytest.mark.parametrize("name,cfg,weights,method,targets,kw", CASES, ids=[c[0] for c in CASES])
def test_saved_tensors_match_exactly(name, cfg, weights, method, targets, kw):
    import torch

    from aios_tui.vram.decoders import gptj_attention_interface

    if cfg.get("model_type") in ("gptj", "codegen") and not gptj_attention_interface():
        pytest.skip("transformers before 5.24 runs GPT-J and CodeGen with older code the estimate notes as approximate")
    quiet()
    model = build_hf(cfg, weights, kw.get("attention", "sdpa"))
    if method != "full":
        from peft import get_peft_model

        model = get_peft_model(model, peft_config(method, targets, kw))
    model.train()
    ids = torch.randint(0, cfg["vocab_size"], (2, 32), generator=torch.Generator().manual_seed(1))
    out = model(input_ids=ids, labels=ids)
    got = saved_bytes(out.loss, list(model.parameters()))
    setup = cpu_setup(method=method, targets=tuple(targets), weights=weights, batch=2, seq=32, **kw)
    assert saved_for_backward(shape_from_hf_config(cfg), setup) == got


OLMO_CLIP_BIAS = {**LAYOUTS["olmo"], "clip_qkv": 0.5, "attention_bias": True}


@pytest.mark.parametrize("weights,method,targets", [("fp32", "full", []), ("bf16", "lora", ["q_proj", "v_proj"])])
def test_olmo_clip_qkv_on_biased_layers_keeps_a_copy_of_each(weights, method, targets):
    """OLMo's clip_qkv clamps q, k and v in place. A biased layer's output is a view (addmm,
    then a reshape), so the clamp's copy sits inside a CopySlices node the graph walk cannot
    open: what autograd packs is counted instead, and it is what the estimate says."""
    import torch

    quiet()
    model = build_hf(OLMO_CLIP_BIAS, weights)
    kw = {"r": 4, "dropout": 0.0} if method == "lora" else {}
    if method == "lora":
        from peft import get_peft_model

        model = get_peft_model(model, peft_config(method, targets, kw))
    model.train()
    ids = torch.randint(0, 300, (2, 32), generator=torch.Generator().manual_seed(1))
    params = list(model.parameters())
    out, packed = packed_bytes(lambda: model(input_ids=ids, labels=ids), params)
    setup = cpu_setup(method=method, targets=tuple(targets), weights=weights, batch=2, seq=32, **kw)
    assert saved_for_backward(shape_from_hf_config(OLMO_CLIP_BIAS), setup) == packed > saved_bytes(out.loss, params)


@pytest.mark.parametrize("method,targets", [("full", []), ("lora", ["Wqkv", "down_proj"])])
def test_mpt_drops_out_with_attn_pdrop_everywhere(method, targets):
    """MPT's attention probabilities and both sublayer outputs go through dropout with
    attn_config.attn_pdrop. transformers' MptAttentionConfig takes it as an int, so the model is
    built without dropout and given it after."""
    import torch

    from vram_helpers import LAYOUTS

    quiet()
    p = 0.1
    model = build_hf(LAYOUTS["mpt"])
    for block in model.transformer.blocks:
        block.attn.attn_dropout_p = block.ffn.hidden_dropout = block.resid_attn_dropout.p = p
    kw = {"r": 4, "dropout": 0.0}
    if method != "full":
        from peft import get_peft_model

        model = get_peft_model(model, peft_config(method, targets, kw))
    model.train()
    ids = torch.randint(0, 300, (2, 32), generator=torch.Generator().manual_seed(1))
    got = saved_bytes(model(input_ids=ids, labels=ids).loss, list(model.parameters()))
    cfg = {**LAYOUTS["mpt"], "attn_config": {"attn_pdrop": p}}
    setup = cpu_setup(method=method, targets=tuple(targets), weights="fp32", batch=2, seq=32,
                      **(kw if method != "full" else {}))
    assert saved_for_backward(shape_from_hf_config(cfg), setup) == got


@pytest.mark.parametrize("cfg,weights,method", [(LLAMA, "fp32", "lora"), (LAYOUTS["opt-350m-like"], "fp32", "lora"),
                                                 (LAYOUTS["opt-350m-like"], "bf16", "full")],
                         ids=["llama-lora", "opt-350m-like-lora", "opt-350m-like-full-bf16"])
def test_chunked_loss_keeps_only_the_hidden_gradient(cfg, weights, method):
    """The engine's fused loss: the graph keeps the hidden gradient at the head's width (OPT-350m's
    project_out narrows it) and a trained head's fp32 weight gradient, no [T, V] buffer."""
    import torch

    from aios_tui.engine.loss import causal_lm_loss

    quiet()
    model = build_hf(cfg, weights)
    kw = dict(method="full", weights=weights)
    if method == "lora":
        from peft import LoraConfig, get_peft_model

        model = get_peft_model(model, LoraConfig(r=8, lora_alpha=16, lora_dropout=0.0, target_modules=["q_proj"]))
        kw = dict(method="lora", r=8, targets=("q_proj",), dropout=0.0, weights=weights)
    model.train()
    ids = torch.randint(0, 300, (2, 32), generator=torch.Generator().manual_seed(1))
    loss, _ = causal_lm_loss(model, ids, ids, fused=True)
    got = saved_bytes(loss, list(model.parameters()))
    setup = cpu_setup(batch=2, seq=32, **kw).with_(loss="chunked")
    assert saved_for_backward(shape_from_hf_config(cfg), setup) == got


@pytest.mark.parametrize("segments,method", [(1, "full"), (2, "lora")])
def test_hrm_act_segments(segments, method):
    """HRM ACTv1: only the last L and H pass of each segment keep activations, and every
    segment's graph waits for the one backward over the ACT objective."""
    import torch

    from aios_tui.engine.hrm.act import act_loss
    from aios_tui.engine.hrm.model import HRMConfig, HRMForCausalLM

    quiet()
    torch.manual_seed(0)
    cfg = HRMConfig(vocab_size=259, hidden_size=64, num_heads=4, h_layers=2, l_layers=1, h_cycles=2,
                    l_cycles=3, expansion=2.0, max_seq_len=32, halt_max_steps=segments,
                    halt_exploration_prob=0.0)
    model = HRMForCausalLM(cfg)
    shape = shape_from_hf_config(cfg.to_dict())
    assert shape.param_count() == sum(p.numel() for p in model.parameters())
    setup = cpu_setup(method="full", weights="fp32", batch=2, seq=32).with_(loss="plain")
    hrm = model
    if method == "lora":
        from peft import LoraConfig, get_peft_model

        model = get_peft_model(model, LoraConfig(r=4, lora_alpha=8, lora_dropout=0.0,
                                                 target_modules=["q_proj", "v_proj"], modules_to_save=["q_head"]))
        hrm = model.base_model.model
        setup = setup.with_(method="lora", r=4, targets=("q_proj", "v_proj"), dropout=0.0, modules_to_save=("q_head",))
    model.train()
    ids = torch.randint(0, 259, (2, 32), generator=torch.Generator().manual_seed(1))
    res = act_loss(hrm, ids, training=True, fused=False)
    got = saved_bytes(res.loss, list(model.parameters()))
    # what is left out: the halting head's per-sequence BCE scalars, a few bytes per segment
    assert 0 <= got - saved_for_backward(shape, setup) <= 48 * segments


@pytest.mark.parametrize("dropout", [0.0, 0.1])
def test_lora_without_peft_input_cast_saves_what_the_calculator_says(dropout):
    """Under autocast with a bf16 base the engine turns off peft's fp32 cast of LoRA inputs:
    the same loss (and, without dropout, the same gradients, bit for bit), and the bytes it no
    longer keeps are the bytes the calculator stops counting (``lora_input_cast=False``)."""
    import torch
    from peft import LoraConfig, get_peft_model

    from aios_tui.engine.peft_setup import skip_lora_input_casts

    quiet()
    runs = {}
    for skip in (False, True):
        model = get_peft_model(build_hf(GQA, "bf16"), LoraConfig(r=4, lora_alpha=16, lora_dropout=dropout,
                                                                 target_modules=ALL7))
        if skip:
            assert skip_lora_input_casts(model) == 14  # 7 projections x 2 layers
        model.train()
        ids = torch.randint(0, 300, (2, 32), generator=torch.Generator().manual_seed(1))
        torch.manual_seed(3)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out = model(input_ids=ids, labels=ids)
        saved = saved_bytes(out.loss, list(model.parameters()))
        out.loss.backward()
        runs[skip] = (out.loss.item(), [p.grad for p in model.parameters() if p.requires_grad], saved)
    (loss_cast, grads_cast, saved_cast), (loss_skip, grads_skip, saved_skip) = runs[False], runs[True]
    assert loss_skip == loss_cast
    if dropout == 0:
        assert all(torch.equal(a, b) for a, b in zip(grads_cast, grads_skip))
    setup = cpu_setup(method="lora", r=4, targets=tuple(ALL7), dropout=dropout, weights="bf16", amp=True,
                      batch=2, seq=32)
    shape = shape_from_hf_config(GQA)
    counted = saved_for_backward(shape, setup) - saved_for_backward(shape, setup.with_(lora_input_cast=False))
    assert saved_cast - saved_skip == counted > 0


FP8_CASES = [
    ("llama-lora-qv-bf16-fp8", LLAMA, "bf16", "lora", ["q_proj", "v_proj"], {"r": 8, "dropout": 0.0}),
    ("gqa-lora-all-fp32-fp8", GQA, "fp32", "lora", ALL7, {"r": 4, "dropout": 0.1}),
    ("llama-full-bf16-fp8", LLAMA, "bf16", "full", [], {}),
]


@pytest.mark.parametrize("name,cfg,weights,method,targets,kw", FP8_CASES, ids=[c[0] for c in FP8_CASES])
def test_fp8_layers_save_what_the_calculator_says(name, cfg, weights, method, targets, kw):
    # train.fp8: torchao's Float8Linear keeps each base layer's input (the weight it keeps is
    # the parameter), where a frozen nn.Linear keeps nothing
    import torch

    from aios_tui.engine import fp8

    if fp8.torchao_float8() is None:
        pytest.skip("torchao is not installed")
    quiet()
    model = build_hf(cfg, weights)
    if method != "full":
        from peft import get_peft_model

        model = get_peft_model(model, peft_config(method, targets, kw))
    assert fp8.apply(model, name) > 0
    model.train()
    ids = torch.randint(0, cfg["vocab_size"], (2, 32), generator=torch.Generator().manual_seed(1))
    out = model(input_ids=ids, labels=ids)
    got = saved_bytes(out.loss, list(model.parameters()))
    setup = cpu_setup(method=method, targets=tuple(targets), weights=weights, batch=2, seq=32, fp8=True, **kw)
    assert saved_for_backward(shape_from_hf_config(cfg), setup) == got
