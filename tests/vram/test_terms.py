"""Each term of the budget on its own (pure arithmetic, no torch)."""

from __future__ import annotations

import json

import pytest

from aios_tui.errors import UserError
from aios_tui.vram import KEYS, Setup, compute, count_params, estimate, parse_size, shape_from_hf_config
from aios_tui.vram.estimate import saved_for_backward
from aios_tui.vram.params import optimizer_bytes, quantized_linear_bytes, resolve_plan, weight_bytes

GiB = 1 << 30


def lora(**kw) -> Setup:
    return Setup(method="lora", r=16, targets=("q_proj", "v_proj"), **kw)


def test_doubling_the_batch_doubles_activations(big_shape):
    s = lora(weights="bf16", batch=2, seq=1024)
    one = saved_for_backward(big_shape, s)
    two = saved_for_backward(big_shape, s.with_(batch=4))
    rope = 2 * 1024 * big_shape.head_dim * 2          # cos/sin tables: per sequence length, not per batch
    assert two - rope == 2 * (one - rope)
    e1, e2 = compute(big_shape, s), compute(big_shape, s.with_(batch=4))
    assert e2.breakdown["activations"] > 1.9 * e1.breakdown["activations"]


def test_doubling_the_sequence_at_least_doubles_activations(big_shape):
    s = lora(weights="bf16", batch=2, seq=1024)
    assert saved_for_backward(big_shape, s.with_(seq=2048)) >= 2 * saved_for_backward(big_shape, s) - 1


def test_checkpointing_keeps_one_input_per_block(big_shape):
    s = lora(weights="bf16", batch=4, seq=2048)
    off, on = compute(big_shape, s), compute(big_shape, s.with_(grad_ckpt=True))
    assert on.details["checkpointed block inputs"] == big_shape.layers * 4 * 2048 * big_shape.hidden * 2
    assert on.breakdown["activations"] < off.breakdown["activations"] / 5
    assert on.peak_allocated_bytes < off.peak_allocated_bytes


def test_lora_adds_r_times_in_plus_out_per_target_per_layer(big_shape):
    base = count_params(big_shape, Setup())
    h, kv = big_shape.hidden, big_shape.kv_width
    for r in (4, 16):
        q = count_params(big_shape, Setup(method="lora", r=r, targets=("q_proj",)))
        assert q.trainable == big_shape.layers * r * (h + big_shape.q_width)
        k = count_params(big_shape, Setup(method="lora", r=r, targets=("k_proj",)))
        assert k.trainable == big_shape.layers * r * (h + kv)          # GQA: k is narrower
        assert q.total == base.total + q.trainable
    # and adapter weights are fp32 (4 bytes each) even on a bf16 base
    e = compute(big_shape, Setup(method="lora", r=16, targets=("q_proj",), weights="bf16"))
    assert e.breakdown["adapter_weights"] == 4 * big_shape.layers * 16 * (h + big_shape.q_width)


def test_adalora_adds_a_singular_value_per_rank(big_shape):
    c = count_params(big_shape, Setup(method="adalora", r=12, targets=("v_proj",)))
    assert c.trainable == big_shape.layers * 12 * (big_shape.hidden + big_shape.kv_width + 1)


def test_ia3_adds_in_features_for_feed_forward_and_out_features_otherwise(big_shape):
    L, h, i = big_shape.layers, big_shape.hidden, big_shape.intermediate
    c = count_params(big_shape, Setup(method="ia3", targets=("k_proj", "down_proj"), ia3_feedforward=("down_proj",)))
    assert c.trainable == L * (big_shape.kv_width + i)
    c2 = count_params(big_shape, Setup(method="ia3", targets=("down_proj",)))
    assert c2.trainable == L * h


def test_adamw_8bit_states_are_a_quarter_of_adamw(big_shape):
    full = Setup(method="full", weights="fp32")
    counts = count_params(big_shape, full)
    adam, _ = optimizer_bytes(full, counts)
    alloc8, paged8 = optimizer_bytes(full.with_(optimizer="adamw8bit"), counts)
    emb = sum(counts.embedding_tables) * 8     # embedding tables keep 32-bit state
    assert emb == big_shape.vocab * big_shape.hidden * 8
    ratio = (alloc8 + paged8 - emb) / (adam - emb)
    assert 0.25 < ratio < 0.26                 # 2 bytes per parameter + one fp32 absmax per 256
    # paged by default: the big states sit in managed memory, outside PyTorch's allocator
    assert paged8 > 0.9 * (alloc8 + paged8)
    unpaged, none = optimizer_bytes(full.with_(optimizer="adamw8bit", paged=False), counts)
    assert none == 0 and unpaged == alloc8 + paged8


def test_tensors_below_bnb_min_size_keep_32bit_state(big_shape):
    s = Setup(method="ia3", targets=("k_proj",), optimizer="adamw8bit")   # 512-element vectors
    counts = count_params(big_shape, s)
    assert all(n < 4096 for n, _, _ in counts.trainable_tensors)
    alloc, paged = optimizer_bytes(s, counts)
    assert alloc - 2 * 256 * 4 == 8 * counts.trainable and paged == 0


def test_4bit_weights_are_a_quarter_of_bf16_plus_scales(big_shape):
    s = Setup(method="lora", targets=("q_proj",), quant="4bit")
    plan = resolve_plan(big_shape, s)
    q = plan.linears[0]
    n = q.params
    dq = quantized_linear_bytes(q, s)
    # packed codes, uint8 absmax, nested fp32 scales and their offset, NF4 and 8-bit code books
    assert dq == n // 2 + n // 64 + 4 * -(-(n // 64) // 256) + 4 + 64 + 256 * 4
    no_dq = quantized_linear_bytes(q, s.with_(double_quant=False))
    assert no_dq == n // 2 + 4 * (n // 64) + 64
    assert 0.25 < dq / (2 * n) < 0.26 < no_dq / (2 * n) < 0.29
    q8 = resolve_plan(big_shape, s.with_(quant="8bit")).linears[0]
    assert quantized_linear_bytes(q8, s.with_(quant="8bit")) == n + 4 * q.lin.fan_out
    counts = count_params(big_shape, s, plan)
    base4, _ = weight_bytes(big_shape, s, plan, counts)
    linears = sum(lp.params for lp in plan.linears) * big_shape.layers
    quantized = sum(quantized_linear_bytes(lp, s) for lp in plan.linears) * big_shape.layers
    # embeddings and norms stay unquantized, in fp32 after peft's k-bit preparation
    assert base4 == quantized + 4 * (big_shape.param_count() - linears)


def test_weights_dtype_halves_the_base_weights(big_shape):
    fp32 = compute(big_shape, lora(weights="fp32"))
    bf16 = compute(big_shape, lora(weights="bf16"))
    assert fp32.breakdown["base_weights"] == 2 * bf16.breakdown["base_weights"] == 4 * big_shape.param_count()


def test_full_fine_tune_gradients_and_states(big_shape):
    s = Setup(method="full", weights="fp32", batch=1, seq=256)
    e = compute(big_shape, s)
    P = big_shape.param_count()
    assert e.params_trainable == P
    assert e.phases["optimizer"] >= 16 * P            # weights + grads + exp_avg + exp_avg_sq
    acc = compute(big_shape, s.with_(grad_accum=4))   # accumulated gradients live through the forward
    assert acc.phases["loss"] - e.phases["loss"] == 4 * P
    bf = compute(big_shape, s.with_(weights="bf16"))  # torch AdamW keeps states in the param dtype
    steps = 512 * count_params(big_shape, s).tensor_count   # fused AdamW's step counters
    assert (bf.breakdown["optimizer_states"] - steps) * 2 == e.breakdown["optimizer_states"] - steps


def test_chunked_loss_drops_the_vocabulary_buffers(big_shape):
    s = lora(weights="bf16", batch=4, seq=2048)
    T, V = 4 * 2048, big_shape.vocab
    n = 4 * 2047
    plain = compute(big_shape, s.with_(loss="plain"))
    hf = compute(big_shape, s.with_(loss="hf"))
    chunked = compute(big_shape, s.with_(loss="chunked"))
    assert plain.breakdown["logits_and_loss"] == max(2 * T * V + 8 * n * V, 12 * n * V)
    assert hf.breakdown["logits_and_loss"] == 14 * T * V
    assert chunked.phases["loss"] < plain.phases["loss"] - 10 * n * V
    assert chunked.peak_allocated_bytes < plain.peak_allocated_bytes


def test_fp32_gqa_attention_falls_back_to_the_math_kernel(big_shape):
    """No fused CUDA kernel takes fp32 with fewer key/value heads: the [heads, s, s] probabilities stay."""
    from dataclasses import replace

    s = lora(weights="fp32", batch=1, seq=1024)
    gqa = saved_for_backward(big_shape, s)
    mha = saved_for_backward(replace(big_shape, kv_heads=big_shape.heads), s)   # memory-efficient kernel
    probs = big_shape.layers * big_shape.heads * 1024 * 1024 * 4
    assert gqa - mha > 0.9 * probs
    # in bf16 the flash kernel takes grouped-query attention as it is
    assert saved_for_backward(big_shape, s.with_(weights="bf16")) < saved_for_backward(
        replace(big_shape, kv_heads=big_shape.heads), s.with_(weights="bf16"))


def test_breakdown_sums_to_the_peak_and_serialises(big_shape):
    for s in (lora(), lora(grad_ckpt=True, amp=True), Setup(method="full", weights="bf16", grad_accum=2),
              Setup(method="ia3", targets=("k_proj", "down_proj"), ia3_feedforward=("down_proj",)),
              lora(quant="4bit", optimizer="adamw8bit", amp=True, grad_ckpt=True, loss="chunked")):
        e = estimate(big_shape, s, 24 * GiB)
        assert set(KEYS) <= set(e.breakdown)
        assert sum(e.breakdown.values()) == e.peak_allocated_bytes == max(e.phases.values())
        assert e.peak_allocated_bytes < e.peak_reserved_bytes < e.device_used_bytes
        d = json.loads(json.dumps(e.to_dict()))
        for key in ("peak_allocated_bytes", "device_used_bytes", "breakdown", "fits", "suggestions"):
            assert key in d
        assert d["fits"] is (e.device_used_bytes <= 24 * GiB)


def test_fits_is_unknown_without_a_gpu_size(big_shape):
    assert estimate(big_shape, lora()).fits is None


def test_suggestions_make_it_fit_with_their_own_figures(big_shape):
    s = Setup(method="full", weights="fp32", batch=8, seq=2048)
    e = estimate(big_shape, s, 24 * GiB)
    assert e.fits is False
    assert e.suggestions and any(sg.fits for sg in e.suggestions)
    ckpt = next(sg for sg in e.suggestions if sg.flags == "--gradient-checkpointing")
    assert ckpt.peak_allocated_bytes == compute(big_shape, s.with_(grad_ckpt=True)).peak_allocated_bytes
    assert all(sg.peak_allocated_bytes < e.peak_allocated_bytes for sg in e.suggestions)


def test_an_8bit_checkpointed_base_is_told_that_4bit_keeps_no_layer_inputs(big_shape):
    s = lora(batch=8, seq=2048).with_(quant="8bit", grad_ckpt=True, amp=True)
    e = estimate(big_shape, s, 8 * GiB)
    assert e.fits is False
    four = next(sg for sg in e.suggestions if sg.flags == "--no-load-in-8bit --load-in-4bit")
    assert four.peak_allocated_bytes == compute(big_shape, s.with_(quant="4bit")).peak_allocated_bytes
    kept = e.details["8-bit layer inputs (kept through checkpointing)"]
    assert kept > 0 and e.peak_allocated_bytes - four.peak_allocated_bytes >= kept
    assert any("8-bit base" in a for a in e.assumptions)


def test_unknown_target_is_a_user_error_listing_the_layers(big_shape):
    with pytest.raises(UserError) as err:
        compute(big_shape, Setup(method="lora", targets=("q_proj", "qkv")))
    assert "qkv" in err.value.problems[0] and "q_proj, k_proj" in err.value.problems[1]


def test_quantized_full_fine_tune_is_refused(big_shape):
    with pytest.raises(UserError):
        compute(big_shape, Setup(method="full", quant="4bit"))


@pytest.mark.parametrize("text,value", [
    ("24GiB", 24 * GiB), ("24 GiB", 24 * GiB), ("80G", 80 * GiB), ("24GB", 24 * 10**9), ("1.5TiB", 3 * (1 << 39)),
    ("16000MiB", 16000 << 20), ("12884901888", 12884901888), (12884901888, 12884901888),
    ("rtx4090", 24564 << 20), ("A100 80 GB", 81920 << 20), ("h200", 143771 << 20),
])
def test_parse_size(text, value):
    assert parse_size(text) == value


@pytest.mark.parametrize("text", ["", "lots", "24XB", "-3G", "0", "GiB"])
def test_parse_size_rejects(text):
    with pytest.raises(UserError):
        parse_size(text)


def test_hrm_segments_multiply_what_waits_for_backward():
    cfg = {"model_type": "hrm_actv1", "hidden_size": 512, "num_heads": 8, "h_layers": 2, "l_layers": 2,
           "h_cycles": 2, "l_cycles": 2, "expansion": 2.0, "vocab_size": 32000, "max_seq_len": 1024,
           "halt_max_steps": 1}
    s = Setup(method="full", weights="bf16", batch=4, seq=1024, loss="plain")
    one = saved_for_backward(shape_from_hf_config(cfg), s)
    three = saved_for_backward(shape_from_hf_config({**cfg, "halt_max_steps": 3}), s)
    assert three == 3 * one
    # more cycles cost time, not memory: only the last L and H pass keep activations
    assert saved_for_backward(shape_from_hf_config({**cfg, "h_cycles": 4, "l_cycles": 8}), s) == one


def test_a_compiled_run_is_counted_as_uncompiled_and_says_so(big_shape):
    s = lora(weights="bf16", batch=4, seq=2048)
    compiled = compute(big_shape, s.with_(compiled=True))
    assert compiled.peak_allocated_bytes == compute(big_shape, s).peak_allocated_bytes
    assert any(a.startswith("torch_compile: counted as uncompiled") for a in compiled.assumptions)
    assert not any(a.startswith("torch_compile") for a in compute(big_shape, s).assumptions)
