"""Parameter counts against real models: the count must be exact, not close."""

from __future__ import annotations

import pytest

from vram_helpers import GPT2, GQA, LAYOUTS, LLAMA, MISTRAL, QWEN2, build_hf, quiet

from aios_tui.tiny import TINY_CONFIG
from aios_tui.vram import Setup, count_params, shape_from_hf_config
from aios_tui.vram.known import ALIASES, KNOWN, known_config

# Published sizes, as sum(p.numel()) over the Hugging Face model.
PUBLISHED = {
    "gpt2": 124_439_808,
    "meta-llama/Llama-3.2-1B": 1_235_814_400,
    "meta-llama/Llama-3.1-8B": 8_030_261_248,
    "Qwen/Qwen2.5-0.5B": 494_032_768,
    "mistralai/Mistral-7B-v0.1": 7_241_732_096,
    "facebook/opt-350m": 331_196_416,
    # Keras Hub's presets, converted from the Hugging Face weights
    "Qwen/Qwen3-0.6B": 596_049_920,
    "Qwen/Qwen3-1.7B": 1_720_574_976,
    "Qwen/Qwen3-4B": 4_022_468_096,
    "Qwen/Qwen3-8B-Base": 8_190_735_360,
    "google/gemma-2b": 2_506_172_416,
    "google/gemma-7b": 8_537_680_896,
    "google/gemma-2-2b": 2_614_341_888,
    "google/gemma-2-9b": 9_241_705_984,
    "microsoft/Phi-3-mini-4k-instruct": 3_821_079_552,
    # the Pythia model cards' table
    "EleutherAI/pythia-160m": 162_322_944,
    "EleutherAI/pythia-410m": 405_334_016,
    "EleutherAI/pythia-1b": 1_011_781_632,
    "EleutherAI/pythia-1.4b": 1_414_647_808,
    "HuggingFaceTB/SmolLM2-135M": 134_515_008,
    "HuggingFaceTB/SmolLM2-360M": 361_821_120,
    # their model cards
    "microsoft/phi-2": 2_779_683_840,
    "bigscience/bloom-560m": 559_214_592,
}


@pytest.mark.parametrize("cfg", [LLAMA, GQA, QWEN2, MISTRAL, GPT2, TINY_CONFIG, *LAYOUTS.values()],
                         ids=["llama", "gqa-untied", "qwen2", "mistral", "gpt2", "tiny", *LAYOUTS])
def test_base_count_matches_transformers(cfg):
    quiet()
    model = build_hf({k: v for k, v in cfg.items() if k != "architectures"})
    assert shape_from_hf_config(cfg).param_count() == sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("name", list(KNOWN))
def test_known_shapes_match_a_model_built_on_meta(name):
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    quiet()
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(AutoConfig.for_model(**KNOWN[name]))
    assert shape_from_hf_config(KNOWN[name]).param_count() == sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("alias,name", sorted(ALIASES.items()))
def test_aliases_name_a_known_model(alias, name):
    assert name in KNOWN and known_config(alias) == KNOWN[name]
    assert known_config(alias.split("/")[-1].upper()) == KNOWN[name]


@pytest.mark.parametrize("name,count", sorted(PUBLISHED.items()))
def test_known_shapes_have_their_published_size(name, count):
    assert shape_from_hf_config(KNOWN[name]).param_count() == count


ADAPTERS = [
    ("lora-qv", LLAMA, "fp32", dict(method="lora", r=8, targets=("q_proj", "v_proj"))),
    ("lora-all-gqa", GQA, "fp32", dict(method="lora", r=4, targets=("q_proj", "k_proj", "v_proj", "o_proj",
                                                                     "gate_proj", "up_proj", "down_proj"))),
    ("lora-gpt2-c_proj-matches-two", GPT2, "fp32", dict(method="lora", r=8, targets=("c_attn", "c_proj"))),
    ("lora-qualified-name", GPT2, "fp32", dict(method="lora", r=8, targets=("mlp.c_proj",))),
    ("lora-lm_head-saved", QWEN2, "fp32", dict(method="lora", r=8, targets=("q_proj",), modules_to_save=("lm_head",))),
    ("adalora-fp32", GQA, "fp32", dict(method="adalora", r=6, targets=("q_proj", "k_proj", "down_proj"))),
    ("adalora-bf16-ranknum-trained", GQA, "bf16", dict(method="adalora", r=6, targets=("v_proj", "up_proj"))),
    ("ia3", QWEN2, "fp32", dict(method="ia3", targets=("k_proj", "v_proj", "down_proj"), ia3_feedforward=("down_proj",))),
    ("ia3-gpt2", GPT2, "fp32", dict(method="ia3", targets=("c_attn", "c_fc"), ia3_feedforward=("c_fc",))),
]




def layout_cases(name: str, cfg: dict) -> list[tuple]:
    """Every training method on one laid-out decoder, under the layer names it really has."""
    shape = shape_from_hf_config(cfg)
    blocks = shape.block_linears()
    # with the layers outside the blocks (OPT-350m's project_in/project_out)
    linears = tuple(dict.fromkeys(lin.name for lin in blocks + shape.outer_linears()))
    mlp = [lin.name for lin in blocks if lin.reads.startswith("mlp")]
    # the MLP's last layer by its path inside a block (OPT's fc2 sits in the block itself)
    last_mlp = [lin.qualified for lin in blocks if lin.reads == "mlp_mid"][0]
    head, embed = shape.head_name, shape.embed_name
    cases = {
        "full": dict(method="full"),
        "lora-suggested": dict(method="lora", r=8, targets=shape.suggested_targets()),
        "lora-all-and-head": dict(method="lora", r=4, targets=linears + (head,)),
        "lora-saved-head-embed": dict(method="lora", r=4, targets=linears[:1], modules_to_save=(head, embed)),
        "lora-qualified-mlp": dict(method="lora", r=4, targets=(last_mlp,)),
        "adalora-all": dict(method="adalora", r=6, targets=linears),
        "ia3-feedforward-out": dict(method="ia3", targets=linears, ia3_feedforward=(mlp[-1],)),
        "ia3-feedforward-in": dict(method="ia3", targets=linears, ia3_feedforward=(mlp[0],)),
    }
    return [(f"{name}-{case}", cfg, "fp32", kw) for case, kw in cases.items()]


ADAPTERS += [case for name, cfg in LAYOUTS.items() for case in layout_cases(name, cfg)]


@pytest.mark.parametrize("name,cfg,weights,kw", ADAPTERS, ids=[a[0] for a in ADAPTERS])
def test_adapter_counts_match_peft(name, cfg, weights, kw):
    from peft import AdaLoraConfig, IA3Config, LoraConfig, get_peft_model

    quiet()
    model = build_hf(cfg, weights)
    if kw["method"] != "full":
        common = {"target_modules": list(kw["targets"])}
        if kw.get("modules_to_save"):
            common["modules_to_save"] = list(kw["modules_to_save"])
        if kw["method"] == "lora":
            pc = LoraConfig(r=kw["r"], lora_alpha=16, **common)
        elif kw["method"] == "adalora":
            pc = AdaLoraConfig(init_r=kw["r"], target_r=2, total_step=100, **common)
        else:
            pc = IA3Config(feedforward_modules=list(kw["ia3_feedforward"]), **common)
        model = get_peft_model(model, pc)
    counts = count_params(shape_from_hf_config(cfg), Setup(weights=weights, **kw))
    trained = [p.numel() for p in model.parameters() if p.requires_grad]
    assert counts.trainable == sum(trained)
    assert counts.total == sum(p.numel() for p in model.parameters())
    # tensor by tensor too: the optimizer's per-tensor costs depend on it
    assert sorted(n for n, _, k in counts.trainable_tensors for _ in range(k)) == sorted(trained)


def test_hrm_count_matches_the_model():
    from aios_tui.engine.hrm.model import HRMConfig, HRMForCausalLM

    quiet()
    cfg = HRMConfig(vocab_size=259, hidden_size=96, num_heads=4, h_layers=2, l_layers=3, expansion=3.0)
    model = HRMForCausalLM(cfg)
    plain = {"model_type": "hrm_actv1", "hidden_size": 96, "num_heads": 4, "h_layers": 2, "l_layers": 3,
             "h_cycles": 2, "l_cycles": 2, "expansion": 3.0, "vocab_size": 259, "max_seq_len": 128,
             "halt_max_steps": 2}
    assert shape_from_hf_config(plain).param_count() == sum(p.numel() for p in model.parameters())
    assert shape_from_hf_config(cfg.to_dict()).param_count() == sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("cfg,says", [
    ({**LAYOUTS["opt"], "word_embed_proj_dim": 0}, "word_embed_proj_dim"),
    ({**LAYOUTS["falcon"], "new_decoder_architecture": True, "parallel_attn": False}, "parallel_attn"),
    ({**LAYOUTS["falcon"], "num_ln_in_parallel_attn": 2}, "num_ln_in_parallel_attn"),
    ({**LAYOUTS["bloom"], "pretraining_tp": 2, "slow_but_exact": True}, "slow_but_exact"),
    ({**LAYOUTS["mpt"], "expansion_ratio": 2}, "expansion_ratio 2"),
    ({**LAYOUTS["mpt"], "attn_config": {"attn_type": "multiquery_attention"}}, "multiquery_attention"),
])
def test_layouts_transformers_cannot_run_or_the_estimate_does_not_lay_out_are_refused(cfg, says):
    from aios_tui.errors import UserError

    with pytest.raises(UserError, match=says):
        shape_from_hf_config(cfg)


def test_opt_350m_layers_outside_the_blocks_are_targets_and_saved_modules():
    """project_in and project_out are adapted or trained like any linear layer, once per model,
    under their own names and their dotted paths."""
    quiet()
    cfg = LAYOUTS["opt-350m-like"]
    shape = shape_from_hf_config(cfg)
    assert [(l.name, l.fan_in, l.fan_out) for l in shape.outer_linears()] == [("project_in", 32, 64),
                                                                               ("project_out", 64, 32)]
    assert shape.has_module("project_out") and shape.has_module("decoder.project_in")
    assert not shape_from_hf_config(LAYOUTS["opt"]).has_module("project_in")
    from peft import LoraConfig, get_peft_model

    model = get_peft_model(build_hf(cfg), LoraConfig(r=4, target_modules=["decoder.project_in", "q_proj"],
                                                     modules_to_save=["project_out"]))
    counts = count_params(shape, Setup(method="lora", r=4, targets=("decoder.project_in", "q_proj"),
                                       modules_to_save=("project_out",)))
    assert counts.trainable == sum(p.numel() for p in model.parameters() if p.requires_grad)
    assert counts.total == sum(p.numel() for p in model.parameters())


def test_opt_and_falcon_suggest_targets_they_have():
    for name in ("opt", "falcon", "falcon-new-decoder"):
        shape = shape_from_hf_config(LAYOUTS[name])
        assert all(shape.has_module(t) for t in shape.suggested_targets())
        assert shape.has_module("fc2" if name == "opt" else "dense_4h_to_h")


def test_gptj_and_codegen_are_laid_out_as_themselves_not_as_gpt2():
    from aios_tui.config.targets import own_names
    from aios_tui.vram.estimate import assumptions

    all7 = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
    for name, suggested, own in (("gptj", ("q_proj", "v_proj"), ["q_proj", "k_proj", "v_proj", "out_proj",
                                                                   "fc_in", "fc_out"]),
                                 ("codegen", ("qkv_proj",), ["qkv_proj", "out_proj", "fc_in", "fc_out"])):
        shape = shape_from_hf_config(LAYOUTS[name])
        assert shape.family == name and shape.head_bias and not shape.tied
        assert shape.intermediate == (4 * 64 if name == "gptj" else 96)   # 4 x n_embd, else n_inner
        assert shape.suggested_targets() == suggested
        assert own_names(all7, shape.has_module)[0] == own
        assert not any(shape.has_module(t) for t in ("c_attn", "c_fc", "c_proj"))
        assert not any("counted as" in line for line in assumptions(shape, Setup()))
    # other types with GPT-2's config names (GPT-BigCode) are still read as GPT-2's block, and say so
    shape = shape_from_hf_config({**GPT2, "model_type": "gpt_bigcode"})
    assert shape.family == "gpt2"
    assert any("counted as GPT-2's block" in line for line in assumptions(shape, Setup()))


@pytest.mark.parametrize("cfg,says", [
    ({**LAYOUTS["gptj"], "rotary_dim": 32}, "rotary_dim"),   # wider than a head (16)
    ({**LAYOUTS["gptj"], "rotary_dim": 7}, "rotary_dim"),
    ({**LAYOUTS["codegen"], "rotary_dim": None}, "rotary_dim"),
    ({**LAYOUTS["codegen"], "n_embd": 66, "n_head": 6}, "shards"),
])
def test_gptj_and_codegen_configs_transformers_cannot_run_are_refused(cfg, says):
    from aios_tui.errors import UserError

    with pytest.raises(UserError, match=says):
        shape_from_hf_config(cfg)


def test_gptj_under_an_older_transformers_is_counted_with_eager_attention_and_says_it_is_approximate(monkeypatch):
    from aios_tui.vram import decoders
    from aios_tui.vram.estimate import assumptions

    real = decoders.metadata.version
    monkeypatch.setattr(decoders.metadata, "version", lambda name: "5.23.0" if name == "transformers" else real(name))
    shape = shape_from_hf_config(LAYOUTS["gptj"])
    assert not shape.layout.sdpa
    assert any("activations are approximate" in line for line in assumptions(shape, Setup()))


def test_bloom_and_mpt_default_targets_are_their_own_layers():
    from aios_tui.config.targets import own_names

    llama = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
    for name, fused, rest in (("bloom", "query_key_value", ["self_attention.dense", "dense_h_to_4h",
                                                             "dense_4h_to_h"]),
                              ("mpt", "Wqkv", ["out_proj", "up_proj", "down_proj"])):
        shape = shape_from_hf_config(LAYOUTS[name])
        assert shape.suggested_targets() == (fused,)
        assert own_names(llama, shape.has_module)[0] == [fused, *rest]


def test_mpt_flags_transformers_does_not_build_are_counted_as_built_and_named():
    """transformers' MPT has no biases, q/k norms or position table whatever the config says;
    the checkpoint's tensors for them are not loaded, and the estimate says so."""
    quiet()
    cfg = {**LAYOUTS["mpt"], "no_bias": False, "attn_config": {"qk_ln": True, "alibi": False}}
    shape = shape_from_hf_config(cfg)
    assert shape.param_count() == sum(p.numel() for p in build_hf(cfg).parameters())
    note, = shape.notes
    assert all(flag in note for flag in ("no_bias false", "qk_ln", "alibi false"))
    assert shape_from_hf_config(LAYOUTS["mpt"]).notes == ()
