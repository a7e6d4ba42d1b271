"""Quantized base weights (``--load-in-4bit`` / ``--load-in-8bit``) with LoRA on top, on the CPU:
what gets built, what trains, resume, the calculator's byte counts, and the merged export."""

from __future__ import annotations

import json

import pytest
import torch



def _layer_class(kind: str) -> type:
    import bitsandbytes as bnb

    return bnb.nn.Linear4bit if kind == "4bit" else bnb.nn.Linear8bitLt


def _cfg(model: str, data, kind: str, **extra):
    from aios_tui.config import resolve

    overrides = {"model": model, "dataset_file": str(data), "device": "cpu", "max_seq_len": 32, "batch_size": 2,
                 "use_peft": True, "lora_r": 4, "lora_dropout": 0.0, f"load_in_{kind}": True,
                 "lora_target_modules": "q_proj,v_proj,down_proj", **extra}
    return resolve(overrides=overrides)


def _built(cfg):
    from aios_tui.engine.peft_setup import apply_peft
    from aios_tui.engine.task import CausalLMTask

    task = CausalLMTask()
    base, tokenizer = task.build(cfg, torch.device("cpu"))
    return task, base, apply_peft(base, cfg, cfg.train.steps)


def _lora_grads(model, batch) -> dict[str, torch.Tensor]:
    model.train()
    model.zero_grad(set_to_none=True)
    logits = model(input_ids=batch).logits
    torch.nn.functional.cross_entropy(logits[:, :-1].reshape(-1, logits.shape[-1]).float(),
                                      batch[:, 1:].reshape(-1)).backward()
    return {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


@pytest.mark.parametrize("kind", ["4bit", "8bit"])
def test_the_base_is_quantized_and_only_the_adapter_learns(kind, llama_dir, text_file):
    cfg = _cfg(str(llama_dir), text_file, kind)
    _, base, model = _built(cfg)
    layers = [m for m in model.modules() if isinstance(m, _layer_class(kind))]
    assert len(layers) == 2 * 7                                  # every block linear; lm_head stays as it is
    for layer in layers:
        assert layer.weight.dtype == (torch.uint8 if kind == "4bit" else torch.int8)
    # k-bit preparation: every tensor that is not quantized is fp32 and frozen
    for name, p in model.named_parameters():
        if type(p).__name__ not in ("Params4bit", "Int8Params"):
            assert p.dtype == torch.float32, name
        assert p.requires_grad == ("lora_" in name), name

    batch = torch.randint(0, 256, (2, 24), generator=torch.Generator().manual_seed(0))
    grads = _lora_grads(model, batch)
    lora = {n for n, p in model.named_parameters() if p.requires_grad}
    assert set(grads) == lora and len(lora) == 2 * 3 * 2     # A and B of 3 targets in 2 blocks
    assert all(torch.isfinite(g).all() for g in grads.values())

    # An eval pass must not change how the frozen quantized layers pass gradients on (bitsandbytes'
    # CPU inference layout for 4-bit weights has no backward; the engine keeps it off).
    model.eval()
    with torch.no_grad():
        model(input_ids=batch)
    again = _lora_grads(model, batch)
    assert all(torch.equal(grads[n], again[n]) for n in grads)


@pytest.mark.parametrize("kind", ["8bit", "4bit"])
def test_quantized_weight_bytes_are_what_the_calculator_counts(kind, text_file):
    from aios_tui.vram import estimate_for_run

    cfg = _cfg("tiny", text_file, kind, lora_target_modules="q_proj,v_proj")
    _, base, _ = _built(cfg)
    seen: set[int] = set()
    actual = 0

    def add(t):
        nonlocal actual
        if isinstance(t, torch.Tensor) and t.data_ptr() not in seen:
            seen.add(t.data_ptr())
            actual += t.numel() * t.element_size()

    for name, p in base.named_parameters():
        if "lora_" not in name:
            add(p)
    for module in base.modules():
        if isinstance(module, _layer_class(kind)):
            qs = getattr(module.weight, "quant_state", None)
            if qs is not None:          # 4-bit: block scales, code book, nested scales and their code book
                for t in (qs.absmax, qs.code, qs.offset, *((qs.state2.absmax, qs.state2.code) if qs.nested else ())):
                    add(t)
            add(getattr(module.weight, "SCB", None))   # 8-bit: one scale per output row
    estimate = estimate_for_run(cfg, base.config.to_dict()).to_dict()["breakdown"]
    assert actual == estimate["base_weights"]


def _logits(model, ids):
    model.eval()
    with torch.no_grad():
        return model(input_ids=ids).logits.float()


def _check_merged_export(cli, run, base_dir, records_of):
    """`export --merge` folds the adapter into the base reloaded in full precision, and says so."""
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    code, out, err = cli("export", str(run), "--merge")
    assert code == 0, err
    assert "de-quantized copy" in out and f"reloaded in fp32 from {base_dir}" in out
    record = json.loads((run / "merged" / "export.json").read_text())
    assert record["kind"] == "merged" and record["merged_into"] == f"fp32 base reloaded from {base_dir}"
    config = json.loads((run / "merged" / "config.json").read_text())
    assert "quantization_config" not in config
    merged = AutoModelForCausalLM.from_pretrained(run / "merged")
    assert all(p.dtype == torch.float32 for p in merged.parameters())

    reference = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(base_dir),
                                          run / "checkpoints" / f"step-{record['step']:06d}" / "adapter")
    ids = torch.randint(0, 256, (2, 24), generator=torch.Generator().manual_seed(1))
    expected = _logits(reference, ids)
    got = _logits(merged, ids)
    # fp32 on both sides: the merge is W + BA computed once instead of at every forward
    assert (got - expected).abs().max().item() <= 1e-4
    # and the adapter did something: the merged model is not the bare base
    bare = _logits(AutoModelForCausalLM.from_pretrained(base_dir), ids)
    assert (got - bare).abs().max().item() > 1e-3


@pytest.mark.slow
def test_qlora_on_tiny_trains_resumes_exactly_and_merges_into_full_precision(cli, text_file, flags_for,
                                                                             losses_of, records_of,
                                                                             resumed_like_straight):
    flags = flags_for("tiny", text_file, steps="6", lora_r="8", lora_target_modules="q_proj,v_proj,down_proj")
    common = ["--use-peft", "--load-in-4bit", "--use-8bit-optimizer", "--gradient-checkpointing"]
    straight, split, _ = resumed_like_straight(*common, *flags, steps=6, stop=3)
    a = losses_of(straight / "metrics.jsonl")
    assert a[6] < a[1], a
    header = records_of(split / "metrics.jsonl")[0]
    assert header["memory_savers"] == {"quantized_base": "4bit", "quantization": "4-bit NF4 (double quantisation)",
                                       "compute_dtype": "bfloat16", "optimizer": "AdamW8bit"}
    # the parameter count is the unquantized model's (two 4-bit values per stored byte)
    from aios_tui.engine.models import build_tiny

    assert header["parameters"]["total"] == sum(p.numel() for p in build_tiny().parameters()) \
        + header["parameters"]["trainable"]
    # the run keeps tiny's full-precision weights: resume quantizes them again, a merge uses them
    saved = json.loads((split / "base" / "config.json").read_text())
    assert "quantization_config" not in saved
    from safetensors.torch import load_file

    trained = load_file(str(split / "checkpoints" / "step-000006" / "trainable.safetensors"))
    assert trained and all("lora_" in n for n in trained)
    # sampling loads the base quantized again, as it was trained
    code, out, err = cli("generate", str(split), "--prompt", "The ", "--max-new-tokens", "8", "--temperature", "0",
                         "--device", "cpu")
    assert code == 0 and out.startswith("The "), err
    _check_merged_export(cli, split, split / "base", records_of)


@pytest.mark.slow
def test_8bit_gpt2_with_every_saver_trains_resumes_and_merges(cli, gpt2_dir, text_file, tmp_path, flags_for,
                                                              losses_of, records_of):
    """The seed's "PEFT + all optimizations" on a GPT-2 shape: 8-bit base (its Conv1D layers
    quantized as Linear), 8-bit AdamW, gradient checkpointing."""
    run = tmp_path / "run"
    flags = flags_for(str(gpt2_dir), text_file, steps="6", lora_r="8", lora_target_modules="c_attn,c_proj")
    code, _, err = cli("train", "--use-peft", "--load-in-8bit", "--use-8bit-optimizer", "--gradient-checkpointing",
                       "--run-dir", str(run), "--stop-after", "3", *flags)
    assert code == 0, err
    code, _, err = cli("train", "--resume", str(run), "--progress", "none")
    assert code == 0, err
    losses = losses_of(run / "metrics.jsonl")
    assert sorted(losses) == list(range(1, 7)) and all(v is not None for v in losses.values())
    assert losses[6] < losses[1], losses
    events = [r["event"] for r in records_of(run / "metrics.jsonl") if "event" in r]
    assert events.count("resumed") == 1 and events[-1] == "finished"
    _check_merged_export(cli, run, gpt2_dir, records_of)


@pytest.mark.parametrize("model_fixture", ["llama_dir", "gpt2_dir"])
def test_8bit_layer_inputs_outlive_checkpointing_as_the_calculator_counts(model_fixture, text_file, request):
    # bitsandbytes keeps an 8-bit layer's input on its autograd node (ctx), outside the
    # saved-tensor hooks checkpointing works through: every block's are alive at backward
    from aios_tui.vram import estimate_for_run

    source = request.getfixturevalue(model_fixture)
    targets = "q_proj,v_proj" if model_fixture == "llama_dir" else "c_attn"
    cfg = _cfg(str(source), text_file, "8bit", lora_target_modules=targets, gradient_checkpointing=True)
    task, base, _ = _built(cfg)
    task.enable_gradient_checkpointing(base, True)
    model = base
    model.train()
    batch = torch.randint(0, 256, (2, 32), generator=torch.Generator().manual_seed(0))
    loss = model(input_ids=batch).logits.float().mean()

    held, seen, stack = {}, set(), [loss.grad_fn]
    while stack:
        node = stack.pop()
        if node is None or node in seen:
            continue
        seen.add(node)
        a = getattr(node, "A", None)  # bitsandbytes' CPU kernel keeps ctx.A; CUDA's keeps it in ctx.tensors
        for t in [a, *(getattr(node, "tensors", None) or [])]:
            if isinstance(t, torch.Tensor):
                held[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
        stack.extend(fn for fn, _ in node.next_functions)
    assert held, "no 8-bit layer kept its input: bitsandbytes changed what its node holds"

    config = json.loads((source / "config.json").read_text())
    details = estimate_for_run(cfg, config, suggestions=False).details
    assert details["8-bit layer inputs (kept through checkpointing)"] == sum(held.values())
