"""Architectures other than Llama through the real train / resume / export / generate path.

Each model is a random-init transformers model with the byte tokenizer, saved to disk, its
weights nudged off their init values so biases, norm gains and Gemma's (1 + weight) norms all
count. The fused loss must give the loss the model's own head gives, an interrupted run must
resume onto the same losses, and an export must reload with plain transformers/peft giving
the run's logits.
"""

from __future__ import annotations

import json

import pytest
import torch

from aios_tui.tiny import BOS_ID, EOS_ID, PAD_ID, TINY_VOCAB

HIDDEN = {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4,
          "num_key_value_heads": 2, "max_position_embeddings": 64}

# model type -> (config class, its keyword arguments, LoRA targets that exist in it)
ARCHS = {
    "gpt_neox": ("GPTNeoXConfig", {**HIDDEN, "tie_word_embeddings": False}, "query_key_value,dense_4h_to_h"),
    "phi3": ("Phi3Config", {**HIDDEN, "tie_word_embeddings": False}, "qkv_proj,gate_up_proj,down_proj"),
    "qwen3": ("Qwen3Config", {**HIDDEN, "head_dim": 8}, "q_proj,v_proj,down_proj"),
    "gemma": ("GemmaConfig", {**HIDDEN, "head_dim": 8}, "q_proj,v_proj,down_proj"),
    "gemma2": ("Gemma2Config", {**HIDDEN, "head_dim": 8, "final_logit_softcapping": 5.0, "sliding_window": 8},
               "q_proj,v_proj,down_proj"),
    "starcoder2": ("Starcoder2Config", HIDDEN, "q_proj,v_proj,c_fc"),
    "olmo2": ("Olmo2Config", HIDDEN, "q_proj,v_proj,down_proj"),
    "stablelm": ("StableLmConfig", {**HIDDEN, "tie_word_embeddings": False}, "q_proj,v_proj,down_proj"),
    "gpt2": ("GPT2Config", {"n_embd": 32, "n_layer": 2, "n_head": 4, "n_positions": 64}, "c_attn,c_fc"),
    "falcon": ("FalconConfig", {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 4},
               "query_key_value,dense_4h_to_h"),
    "opt": ("OPTConfig", {"hidden_size": 32, "ffn_dim": 64, "num_hidden_layers": 2, "num_attention_heads": 4,
                          "max_position_embeddings": 64, "word_embed_proj_dim": 32}, "q_proj,v_proj,fc2"),
    # GPT-2's config names on blocks of their own: q/k/v_proj or one qkv_proj, fc_in/fc_out
    "gptj": ("GPTJConfig", {"n_embd": 32, "n_layer": 2, "n_head": 4, "n_positions": 64, "rotary_dim": 4},
             "q_proj,v_proj,fc_out"),
    "codegen": ("CodeGenConfig", {"n_embd": 64, "n_layer": 2, "n_head": 8, "n_positions": 64, "rotary_dim": 4},
                "qkv_proj,fc_out"),
    # ALiBi, eager attention only: one fused q/k/v layer each
    "bloom": ("BloomConfig", {"hidden_size": 32, "n_layer": 2, "n_head": 4}, "query_key_value,dense_4h_to_h"),
    "mpt": ("MptConfig", {"d_model": 32, "n_layers": 2, "n_heads": 4, "max_seq_len": 64}, "Wqkv,down_proj"),
    # phi's lm_head has a bias (fused with it); the others do more than lm_head(h), so the fused
    # loss stays off
    "phi": ("PhiConfig", {**HIDDEN, "num_key_value_heads": 4}, "q_proj,v_proj"),
    "cohere": ("CohereConfig", {**HIDDEN, "logit_scale": 0.5}, "q_proj,v_proj"),
    "granite": ("GraniteConfig", {**HIDDEN, "logits_scaling": 4.0}, "q_proj,v_proj"),
}
TRAINED = [a for a in ARCHS if a not in ("cohere", "granite")]

# Runs interrupted and resumed, exported, merged and sampled: LoRA on each, IA3 and full
# fine-tuning on two untied heads, full on two tied ones.
END_TO_END = [(a, "lora") for a in TRAINED] + [("gpt_neox", "ia3"), ("phi3", "ia3"), ("gpt_neox", "full"),
                                               ("phi3", "full"), ("gemma", "full"), ("gpt2", "full")]


def _build(arch: str, path):
    import transformers

    from aios_tui.engine.tokenizer import byte_tokenizer

    cls, kwargs, _ = ARCHS[arch]
    config = getattr(transformers, cls)(vocab_size=TINY_VOCAB, pad_token_id=PAD_ID, bos_token_id=BOS_ID,
                                        eos_token_id=EOS_ID, **kwargs)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(1)
        model = transformers.AutoModelForCausalLM.from_config(config)
        with torch.no_grad():
            for p in model.parameters():
                p.add_(torch.randn_like(p), alpha=0.05)
    model.save_pretrained(path)
    byte_tokenizer().save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def arch_dir(tmp_path_factory):
    made: dict = {}

    def get(arch: str):
        if arch not in made:
            made[arch] = _build(arch, tmp_path_factory.mktemp(arch))
        return made[arch]

    return get


def _flags(model_dir, text_file, arch: str, method: str = "lora") -> list[str]:
    flags = {"--model": str(model_dir), "--dataset-file": str(text_file), "--max-seq-len": "32",
             "--batch-size": "2", "--grad-accum": "2", "--warmup-steps": "1", "--eval-every": "2",
             "--save-every": "0", "--seed": "3", "--device": "cpu", "--progress": "none"}
    if method == "full":
        return [x for kv in flags.items() for x in kv] + ["--no-use-peft", "--lr", "2e-3"]
    flags.update({"--peft-method": method, "--lora-target-modules": ARCHS[arch][2], "--lora-r": "4",
                  "--lora-dropout": "0.1", "--lr": "3e-2" if method == "ia3" else "1e-2"})
    return [x for kv in flags.items() for x in kv] + ["--use-peft"]


def _check_against_own_head(model, causal_lm_loss):
    """The engine's loss (fused where it applies) against transformers' own, with its gradients."""
    ids = torch.randint(0, 256, (2, 24), generator=torch.Generator().manual_seed(0))
    labels = ids.clone()
    labels[0, :6] = -100
    torch.manual_seed(5)
    fused, n = causal_lm_loss(model, ids, labels, fused=True)
    fused.backward()
    grads = {k: p.grad.clone() for k, p in model.named_parameters() if p.grad is not None}
    model.zero_grad()
    torch.manual_seed(5)
    own = model(input_ids=ids, labels=labels, use_cache=False).loss  # transformers' own head and loss
    own.backward()
    assert int(n) == int((labels[:, 1:] != -100).sum())
    assert abs(fused.item() - own.item()) < 4e-6
    for k, p in model.named_parameters():
        if p.grad is not None:
            assert torch.allclose(grads[k], p.grad, atol=1e-5, rtol=1e-4), k
    assert set(grads) == {k for k, p in model.named_parameters() if p.grad is not None}


@pytest.mark.parametrize("arch", list(ARCHS))
def test_the_fused_loss_is_the_loss_of_the_models_own_head(arch, arch_dir):
    from transformers import AutoModelForCausalLM

    from aios_tui.engine.loss import FUSED_MODEL_TYPES, causal_lm_loss, fused_parts

    model = AutoModelForCausalLM.from_pretrained(arch_dir(arch)).train()
    takes_fused = fused_parts(model) is not None
    assert takes_fused == (arch in FUSED_MODEL_TYPES)
    assert arch not in ("gemma2", "cohere", "granite") or not takes_fused
    _check_against_own_head(model, causal_lm_loss)


def test_a_head_with_a_bias_is_fused_with_its_bias(arch_dir):
    from transformers import AutoModelForCausalLM

    from aios_tui.engine import loss

    model = AutoModelForCausalLM.from_pretrained(arch_dir("phi")).train()
    parts = loss.fused_parts(model)
    assert parts is not None and parts[1].bias is not None and parts[1].bias.abs().max() > 0.01
    _check_against_own_head(model, loss.causal_lm_loss)
    assert model.lm_head.bias.grad.abs().max() > 0


def test_a_head_that_scales_its_logits_never_takes_the_fused_path(arch_dir, monkeypatch):
    """Listing such a type by mistake must not change its loss: the config says what the head does."""
    from transformers import AutoModelForCausalLM

    from aios_tui.engine import loss

    monkeypatch.setattr(loss, "FUSED_MODEL_TYPES", loss.FUSED_MODEL_TYPES | {"cohere", "granite", "gemma2"})
    for arch in ("cohere", "granite", "gemma2"):
        model = AutoModelForCausalLM.from_pretrained(arch_dir(arch))
        assert loss.fused_parts(model) is None, arch


@pytest.mark.slow
@pytest.mark.parametrize("arch", TRAINED)
def test_first_step_loss_is_the_same_with_and_without_the_fused_loss(arch, arch_dir, text_file, tmp_path, cli,
                                                                     losses_of):
    firsts = []
    for fused in ("--fused-loss", "--no-fused-loss"):
        run = tmp_path / fused
        code, _, err = cli("train", "--steps", "1", "--run-dir", str(run), fused,
                           *_flags(arch_dir(arch), text_file, arch))
        assert code == 0, err
        firsts.append(losses_of(run / "metrics.jsonl")[1])
    assert 4.0 < firsts[0] < 7.0  # about ln(259): a random model, but a real loss
    assert abs(firsts[0] - firsts[1]) < 4e-6


def _logits(model, ids):
    with torch.no_grad():
        return model(input_ids=ids).logits.float()


@pytest.mark.slow
@pytest.mark.parametrize("arch, method", END_TO_END)
def test_resume_export_merge_and_generate(arch, method, arch_dir, text_file, cli, losses_of, resumed_like_straight):
    from transformers import AutoModelForCausalLM

    from aios_tui.engine.export import load_trained

    model_dir = arch_dir(arch)
    straight, split, _ = resumed_like_straight("--steps", "6", *_flags(model_dir, text_file, arch, method),
                                               steps=6, stop=3)
    a = losses_of(straight / "metrics.jsonl")
    assert a[6] < a[1]  # it learned

    ids = torch.tensor([[BOS_ID] + list(b"count 3 to 7: 3 4 5")])
    want = _logits(load_trained(straight).model, ids)
    assert not torch.allclose(want, _logits(AutoModelForCausalLM.from_pretrained(model_dir), ids), atol=1e-3)
    code, _, err = cli("export", str(straight), "--merge")
    assert code == 0, err
    merged = AutoModelForCausalLM.from_pretrained(straight / "merged")
    assert not any("lora" in n or "ia3" in n for n, _ in merged.named_parameters())
    assert torch.allclose(_logits(merged, ids), want, atol=1e-4)
    sources = [straight, straight / "merged"]
    if method != "full":
        from peft import PeftModel

        code, _, err = cli("export", str(straight))
        assert code == 0, err
        adapter = straight / "adapter"
        base = json.loads((adapter / "adapter_config.json").read_text())["base_model_name_or_path"]
        assert base == str(model_dir.resolve())
        reloaded = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(base), adapter)
        assert torch.allclose(_logits(reloaded, ids), want, atol=1e-5)
        sources.append(adapter)
    texts = set()
    for source in sources:
        code, out, err = cli("generate", str(source), "--prompt", "count 3", "--temperature", "0",
                             "--max-new-tokens", "6")
        assert code == 0, err
        texts.add(out)
    assert len(texts) == 1 and len(texts.pop()) > len("count 3")


def test_blocks_longer_than_learned_positions_are_refused_before_loading(arch_dir, text_file, cli):
    """GPT-2 and OPT learn one embedding per position: past them a step dies on an index error."""
    for arch, target in (("gpt2", "c_attn"), ("opt", "q_proj")):
        for extra in (["--check"], ["--detach"]):
            code, _, err = cli("train", "--model", str(arch_dir(arch)), "--dataset-file", str(text_file),
                               "--max-seq-len", "128", "--use-peft", "--lora-target-modules", target, *extra)
            assert code == 2, err
            assert "data.max_seq_len: 128 is longer than the model's 64 positions; use --max-seq-len 64" in err
            assert "Traceback" not in err
    assert _nothing_made()


def _nothing_made() -> bool:
    import os
    from pathlib import Path

    runs = Path(os.environ["AIOS_TUI_RUNS"])
    return not runs.exists() or not any(runs.iterdir())


def test_layers_the_memory_savers_cannot_take_are_refused_before_loading(arch_dir, text_file, cli):
    """Falcon's linear layers are an nn.Linear subclass and GPT-2's are Conv1D: FP8 takes neither,
    and transformers' bitsandbytes loader skips Falcon's, which would leave nothing quantized."""
    from aios_tui.engine import fp8, quant

    common = ["--dataset-file", str(text_file), "--max-seq-len", "32", "--use-peft", "--device", "cpu"]
    if fp8.torchao_float8() is not None:
        for arch, kind in (("falcon", "FalconLinear"), ("gpt2", "Conv1D")):
            code, _, err = cli("train", "--model", str(arch_dir(arch)), *common, "--lora-target-modules",
                               ARCHS[arch][2], "--fp8")
            assert code == 2 and f"has no linear layer FP8 can take (its linear layers are {kind}, not plain" in err
    if quant.probe("4bit", torch.device("cpu")) is None:
        code, _, err = cli("train", "--model", str(arch_dir("falcon")), *common, "--lora-target-modules",
                           ARCHS["falcon"][2], "--load-in-4bit")
        assert code == 2, err
        assert "memory.load_in_4bit:" in err and "this model's are FalconLinear" in err
        assert "eetq" not in err  # transformers' warning names another method
        code, _, err = cli("train", "--model", str(arch_dir("gpt2")), *common, "--lora-target-modules", "c_attn",
                           "--load-in-4bit", "--check")
        assert code == 0, err  # Conv1D layers do quantize
    assert _nothing_made()


@pytest.mark.slow
@pytest.mark.parametrize("arch, method", [("gpt2", "lora"), ("opt", "lora"), ("falcon", "lora"), ("phi3", "lora"),
                                          ("gpt_neox", "ia3"), ("gpt2", "ia3"), ("gptj", "lora"),
                                          ("codegen", "ia3")])
def test_llama_target_names_train_the_models_own_layers_as_the_estimate_counts(arch, method, arch_dir, text_file,
                                                                                 tmp_path, cli):
    # no --lora-target-modules: the default names Llama's seven projections
    run = tmp_path / "run"
    common = ["--model", str(arch_dir(arch)), "--use-peft", "--peft-method", method, "--max-seq-len", "32",
              "--batch-size", "2"]
    code, _, err = cli("train", *common, "--dataset-file", str(text_file), "--steps", "1", "--eval-every", "0",
                       "--run-dir", str(run), "--progress", "none")
    assert code == 0, err
    assert "has its own names for these layers" in err
    header = json.loads((run / "metrics.jsonl").read_text().splitlines()[0])
    assert "q_proj,k_proj,v_proj,o_proj" not in header["config"]["peft"]["lora_target_modules"]
    code, out, err = cli("estimate", *common, "--json")
    assert code == 0, err
    assert json.loads(out)["parameters"] == header["parameters"]


@pytest.mark.parametrize("impl", ["sdpa", "flash_attention_2"])
def test_a_model_without_sdpa_or_flash_kernels_runs_eager_attention_and_says_so(impl, arch_dir, capsys):
    from aios_tui.engine.models import load_hf_model

    model = load_hf_model(str(arch_dir("bloom")), torch.float32, impl)
    assert model.config._attn_implementation == "eager"
    assert f"BloomForCausalLM has no {impl} attention" in capsys.readouterr().err


@pytest.mark.parametrize("saved", ["BertModel", "LlamaModel"])
def test_a_checkpoint_without_its_causal_lm_head_is_refused_before_a_run_is_made(saved, tmp_path, cli):
    """An encoder's checkpoint (BERT), or a decoder saved without its head, would train from a
    random head: transformers only prints a table of the tensors it made up."""
    import transformers

    from aios_tui.engine.tokenizer import byte_tokenizer

    if saved == "BertModel":
        config = transformers.BertConfig(vocab_size=TINY_VOCAB, hidden_size=32, num_hidden_layers=1,
                                         num_attention_heads=2, intermediate_size=64)
    else:
        config = transformers.LlamaConfig(vocab_size=TINY_VOCAB, tie_word_embeddings=False, **HIDDEN)
    model_dir = tmp_path / "model"
    getattr(transformers, saved)(config).save_pretrained(model_dir)
    byte_tokenizer().save_pretrained(model_dir)
    runs = tmp_path / "runs"
    code, out, err = cli("train", "--model", str(model_dir), "--steps", "1", "--run-dir", str(runs / "r"),
                         "--max-seq-len", "32", "--device", "cpu", "--progress", "none")
    said = err.splitlines()[-1]  # after save_pretrained's progress bar
    assert code == 2 and out == "" and said.startswith("aios-tui: error: model.model: "), err
    if saved == "BertModel":  # known from config.json: refused before the weights are read
        assert f"{model_dir} is a masked-language encoder (BertModel)" in said
    else:
        assert "its checkpoint has no " in said and f"it was saved as {saved}, not as a causal language model" in said
    assert not (runs / "r").exists()
