"""The estimate refuses what `train --check` refuses before loading weights, in the same words,
and never suggests it."""

from __future__ import annotations

import json

import pytest

from aios_tui.vram import decoders, estimate_for_run, shape_from_hf_config
from aios_tui.vram.known import known_config

TINY = {
    "falcon": ("FalconConfig", {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 4}),
    "gpt2": ("GPT2Config", {"n_embd": 32, "n_layer": 2, "n_head": 4, "n_positions": 64}),
    "gptj": ("GPTJConfig", {"n_embd": 32, "n_layer": 2, "n_head": 4, "n_positions": 64, "rotary_dim": 4}),
    "opt": ("OPTConfig", {"hidden_size": 32, "ffn_dim": 64, "num_hidden_layers": 2, "num_attention_heads": 4,
                          "max_position_embeddings": 64}),
    "llama": ("LlamaConfig", {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2,
                              "num_attention_heads": 4, "max_position_embeddings": 64}),
}


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory):
    made: dict = {}

    def get(arch: str):
        if arch not in made:
            import transformers

            from aios_tui.engine.tokenizer import byte_tokenizer
            from aios_tui.tiny import TINY_VOCAB

            cls, kwargs = TINY[arch]
            path = tmp_path_factory.mktemp(arch)
            model = transformers.AutoModelForCausalLM.from_config(getattr(transformers, cls)(vocab_size=TINY_VOCAB,
                                                                                            **kwargs))
            model.save_pretrained(path)
            byte_tokenizer().save_pretrained(path)
            made[arch] = path
        return made[arch]

    return get


def _errors(err: str) -> list[str]:
    return [line for line in err.splitlines() if line.startswith("aios-tui: error:")]


# (model, flags): what train refuses for the model's layers or positions alone
REFUSED = [
    ("falcon", ["--use-peft", "--load-in-4bit"]),
    ("falcon", ["--use-peft", "--load-in-8bit"]),
    ("falcon", ["--use-peft", "--fp8"]),
    ("gpt2", ["--use-peft", "--fp8"]),
    ("gpt2", ["--max-seq-len", "128"]),
    ("gptj", ["--max-seq-len", "128"]),
    ("opt", ["--use-peft", "--max-seq-len", "128"]),
    ("llama", ["--use-peft", "--load-in-4bit", "--fp8"]),
]


@pytest.mark.parametrize("arch,flags", REFUSED, ids=[f"{a}{''.join(f)}" for a, f in REFUSED])
def test_estimate_refuses_what_train_check_refuses_in_its_words(cli, tiny_dir, text_file, arch, flags):
    if any(f.startswith("--load-in") for f in flags):
        pytest.importorskip("bitsandbytes")
    if "--fp8" in flags:
        pytest.importorskip("torchao")
    model = str(tiny_dir(arch))
    code, _, train_err = cli("train", "--model", model, "--dataset-file", str(text_file), "--device", "cpu",
                             "--max-seq-len", "32", *flags, "--check")
    assert code == 2 and _errors(train_err), train_err
    code, out, err = cli("estimate", "--model", model, "--max-seq-len", "32", *flags)
    assert code == 2 and not out
    assert _errors(err) == _errors(train_err)


@pytest.mark.parametrize("arch,flags", [("gpt2", ["--load-in-4bit"]), ("gpt2", ["--load-in-8bit"]),
                                        ("llama", ["--fp8"])])
def test_what_train_accepts_the_estimate_counts(cli, tiny_dir, text_file, arch, flags):
    pytest.importorskip("bitsandbytes" if "--fp8" not in flags else "torchao")
    model = str(tiny_dir(arch))
    code, _, err = cli("train", "--model", model, "--dataset-file", str(text_file), "--device", "cpu",
                       "--max-seq-len", "32", "--use-peft", *flags, "--check")
    assert code == 0, err
    code, out, err = cli("estimate", "--model", model, "--max-seq-len", "32", "--use-peft", *flags)
    assert code == 0 and "peak allocated by PyTorch" in out, err


def test_falcon_is_never_offered_a_quantized_base(cli):
    """Falcon's FalconLinear layers are not quantized: --load-in-4bit is no way to make it fit."""
    code, out, err = cli("estimate", "--model", "tiiuae/falcon-7b", "--preset", "efficient", "--gpu-memory", "16GiB")
    assert code == 0, err
    assert "DOES NOT FIT" in out and "Changes that lower the peak" in out
    assert "--load-in" not in out and "4-bit" not in out
    code, out, _ = cli("estimate", "--model", "tiiuae/falcon-7b", "--preset", "efficient", "--gpu-memory", "8GiB",
                       "--json")
    suggestions = json.loads(out)["suggestions"]
    assert suggestions and not any("--load-in" in s["flags"] for s in suggestions)
    # Llama's plain nn.Linear layers still get the offer
    code, out, _ = cli("estimate", "--model", "meta-llama/Llama-3.1-8B", "--preset", "efficient",
                       "--gpu-memory", "16GiB")
    assert "--load-in-4bit" in out


def test_hrm_is_refused_a_quantized_base_and_fp8_as_train_actv1_refuses_them(cli, text_file):
    pytest.importorskip("bitsandbytes")
    for flags in (["--use-peft", "--load-in-4bit"], ["--fp8"]):
        code, _, train_err = cli("train-actv1", "--dataset-file", str(text_file), "--device", "cpu", *flags,
                                 "--check")
        assert code == 2
        code, out, err = cli("estimate", "--hrm", *flags)
        assert code == 2 and not out
        assert _errors(err) and set(_errors(err)) <= set(_errors(train_err)), (err, train_err)


def _linear_classes(cfg: dict) -> set[str]:
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    from aios_tui.engine.models import linear_like

    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(AutoConfig.for_model(**cfg))
    head = model.get_output_embeddings()
    return {type(m).__name__ for m in model.modules() if linear_like(m) and m is not head}


def test_each_layout_names_the_linear_class_transformers_builds():
    """What the estimate decides quantization and FP8 on must be what the engine finds on the
    model built without weights."""
    from vram_helpers import LAYOUTS

    configs = {**LAYOUTS, "gpt2": known_config("gpt2")}
    for name, cfg in configs.items():
        shape = shape_from_hf_config(cfg, name)
        assert _linear_classes(cfg) == {shape.layout.linear}, name


def test_position_limit_is_what_transformers_reads():
    """train refuses a max_seq_len above config.max_position_embeddings as transformers reads it:
    the estimate's limit must be the same number, its class default where config.json has none,
    and none where the config has no such attribute (BLOOM, MPT)."""
    from transformers import AutoConfig
    from vram_helpers import LAYOUTS

    configs = {**LAYOUTS, "gpt2": known_config("gpt2"), "falcon-7b": known_config("tiiuae/falcon-7b")}
    for name, cfg in configs.items():
        shape = shape_from_hf_config(cfg, name)
        want = getattr(AutoConfig.for_model(**cfg), "max_position_embeddings", None) or 0
        assert shape.position_limit == want, name
        if cfg["model_type"] in decoders.DECODERS:
            bare = {k: v for k, v in cfg.items() if k != "max_position_embeddings"}
            want = getattr(AutoConfig.for_model(**bare), "max_position_embeddings", None) or 0
            assert shape_from_hf_config(bare, name).position_limit == want, f"{name} without the field"


def test_a_sequence_within_the_positions_is_counted(tiny_dir):
    from aios_tui.config import resolve

    cfg = resolve("efficient", overrides={"model": str(tiny_dir("gpt2")), "max_seq_len": 64,
                                          "lora_target_modules": "c_attn"})
    assert estimate_for_run(cfg).peak_allocated_bytes > 0
