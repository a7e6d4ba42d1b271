"""Llama target names on models that call those layers otherwise."""

from __future__ import annotations

import pytest

from aios_tui.config import RunConfig
from aios_tui.config.targets import matches, own_names, with_own_targets

ALL7 = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
MODULES = {
    "llama": ["model.layers.0.self_attn.q_proj", "model.layers.0.self_attn.k_proj", "model.layers.0.self_attn.v_proj",
              "model.layers.0.self_attn.o_proj", "model.layers.0.mlp.gate_proj", "model.layers.0.mlp.up_proj",
              "model.layers.0.mlp.down_proj"],
    "opt": ["model.decoder.layers.0.self_attn.q_proj", "model.decoder.layers.0.self_attn.k_proj",
            "model.decoder.layers.0.self_attn.v_proj", "model.decoder.layers.0.self_attn.out_proj",
            "model.decoder.layers.0.fc1", "model.decoder.layers.0.fc2"],
    "phi3": ["model.layers.0.self_attn.qkv_proj", "model.layers.0.self_attn.o_proj",
             "model.layers.0.mlp.gate_up_proj", "model.layers.0.mlp.down_proj"],
    "gpt_neox": ["gpt_neox.layers.0.attention.query_key_value", "gpt_neox.layers.0.attention.dense",
                 "gpt_neox.layers.0.mlp.dense_h_to_4h", "gpt_neox.layers.0.mlp.dense_4h_to_h"],
    "mpt": ["transformer.blocks.0.attn.Wqkv", "transformer.blocks.0.attn.out_proj",
            "transformer.blocks.0.ffn.up_proj", "transformer.blocks.0.ffn.down_proj"],
    "codegen": ["transformer.h.0.attn.qkv_proj", "transformer.h.0.attn.out_proj", "transformer.h.0.mlp.fc_in",
                "transformer.h.0.mlp.fc_out"],
    "gptj": ["transformer.h.0.attn.q_proj", "transformer.h.0.attn.k_proj", "transformer.h.0.attn.v_proj",
             "transformer.h.0.attn.out_proj", "transformer.h.0.mlp.fc_in", "transformer.h.0.mlp.fc_out"],
    "phi": ["model.layers.0.self_attn.q_proj", "model.layers.0.self_attn.k_proj", "model.layers.0.self_attn.v_proj",
            "model.layers.0.self_attn.dense", "model.layers.0.mlp.fc1", "model.layers.0.mlp.fc2"],
    "gpt2": ["transformer.h.0.attn.c_attn", "transformer.h.0.attn.c_proj", "transformer.h.0.mlp.c_fc",
             "transformer.h.0.mlp.c_proj"],
}


def has(kind):
    return lambda t: any(matches(n, t) for n in MODULES[kind])


@pytest.mark.parametrize("kind, targets, expect", [
    ("llama", ALL7, ALL7),
    ("opt", ALL7, ["q_proj", "k_proj", "v_proj", "out_proj", "fc1", "fc2"]),
    ("phi3", ALL7, ["qkv_proj", "o_proj", "gate_up_proj", "down_proj"]),
    ("phi3", ["q_proj", "v_proj"], ["qkv_proj"]),
    ("gpt_neox", ALL7, ["query_key_value", "attention.dense", "dense_h_to_4h", "dense_4h_to_h"]),
    ("gpt2", ALL7, ["c_attn", "attn.c_proj", "c_fc", "mlp.c_proj"]),
    ("mpt", ALL7, ["Wqkv", "out_proj", "up_proj", "down_proj"]),
    ("codegen", ALL7, ["qkv_proj", "out_proj", "fc_in", "fc_out"]),
    ("gptj", ALL7, ["q_proj", "k_proj", "v_proj", "out_proj", "fc_in", "fc_out"]),
    ("phi", ALL7, ["q_proj", "k_proj", "v_proj", "self_attn.dense", "fc1", "fc2"]),
    ("gpt2", ["c_fc", "q_proj"], ["c_fc", "c_attn"]),
    ("gpt2", ["q_proj", "nonesuch"], ["c_attn", "nonesuch"]),  # left for the target check to report
])
def test_llama_names_become_the_models_own_and_its_own_names_stay(kind, targets, expect):
    out, replaced = own_names(targets, has(kind))
    assert out == expect
    assert all(has(kind)(own) for own in replaced.values())
    assert set(replaced) == {t for t in targets if not has(kind)(t) and t != "nonesuch"}


def test_every_replacement_matches_exactly_one_layer_per_block():
    # a dotted name is there to tell GPT-2's two c_proj apart: it must not match both
    for kind in MODULES:
        out, _ = own_names(ALL7, has(kind))
        for name in out:
            assert sum(matches(n, name) for n in MODULES[kind]) == 1, (kind, name)


def test_a_config_keeps_what_the_model_has_and_an_ia3_feedforward_list_follows_its_targets():
    cfg = RunConfig()
    cfg.peft.use_peft = True
    same, note = with_own_targets(cfg, has("llama"), "m")
    assert same is cfg and note is None
    cfg.peft.peft_method = "ia3"
    cfg.peft.lora_target_modules = "k_proj,v_proj,down_proj"
    cfg.peft.ia3_feedforward_modules = "down_proj"
    new, note = with_own_targets(cfg, has("phi3"), "tiny-phi")
    assert new.peft.target_list() == ["qkv_proj", "down_proj"]
    assert new.peft.ia3_feedforward_list() == ["down_proj"]
    assert note.startswith("tiny-phi has its own names") and "k_proj/v_proj -> qkv_proj" in note
    assert cfg.peft.lora_target_modules == "k_proj,v_proj,down_proj"  # the caller's config is not changed
    new, _ = with_own_targets(cfg, has("gpt_neox"), "neox")
    assert new.peft.ia3_feedforward_list() == ["dense_4h_to_h"]
    assert new.peft.ia3_feedforward_list()[0] in new.peft.target_list()
