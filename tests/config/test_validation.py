"""Validation collects every problem, one line each, naming field, value and what is valid."""

from __future__ import annotations

import pytest

from aios_tui.config import ConfigError, RunConfig, build, validate


def problems(**flat) -> list[str]:
    with pytest.raises(ConfigError) as exc:
        build([(flat, "")])
    return exc.value.problems


def test_defaults_are_valid_and_match_seed():
    cfg = RunConfig()
    assert validate(cfg) == []
    assert (cfg.peft.use_peft, cfg.peft.peft_method, cfg.peft.lora_r, cfg.peft.lora_alpha,
            cfg.peft.lora_dropout) == (False, "lora", 16, 32, 0.05)
    assert cfg.peft.target_list() == ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


def test_all_problems_reported_together():
    lines = problems(peft_method="lorra", lora_r=300, lora_dropout=1.5, lora_target_modules=" , ")
    assert len(lines) == 4
    assert any("peft.peft_method: 'lorra'" in l and "did you mean 'lora'" in l for l in lines)
    assert any("peft.lora_r: 300" in l and "1 to 256" in l for l in lines)
    assert any("peft.lora_dropout: 1.5" in l and "0 to 0.5" in l for l in lines)
    assert any("lora_target_modules" in l and "empty" in l for l in lines)


def test_values_checked_even_with_peft_off():
    lines = problems(use_peft=False, lora_alpha=0)
    assert lines == ["peft.lora_alpha: 0 is out of range; valid: 1 to 1024"]


def test_a_range_with_a_special_value_says_what_it_means():
    assert problems(lr=-1.0) == ["train.lr: -1.0 is out of range; valid: 0 to 1 "
                                 "(0: 2e-4 LoRA, 1e-3 AdaLoRA, 3e-3 IA3, 5e-5 full)"]
    assert problems(use_peft=True, adalora_tinit=-3) == [
        "peft.adalora_tinit: -3 is out of range; valid: at least -1 (-1: 10% of steps)"]


def test_unknown_keys_suggest_closest():
    with pytest.raises(ConfigError) as exc:
        build([({"peft": {"lora_rank": 4}, "trian": {"steps": 3}, "lora_alhpa": 3}, "x.toml")])
    lines = exc.value.problems
    assert "x.toml: unknown key 'lora_rank' in [peft]; did you mean 'lora_r'?" in lines
    assert any("unknown section [trian]" in l and "'train'" in l for l in lines)
    assert any("unknown key 'lora_alhpa'" in l and "'lora_alpha'" in l for l in lines)


def test_wrong_types_and_wrong_section():
    with pytest.raises(ConfigError) as exc:
        build([({"peft": {"lora_r": "big", "steps": 3}, "train": {"amp": 1}}, "")])
    lines = exc.value.problems
    assert any("lora_r: 'big' is not a whole number" in l for l in lines)
    assert any("'steps' belongs in [train]" in l for l in lines)
    assert any("'amp' belongs in [memory]" in l for l in lines)


def test_cross_field_rules():
    assert any("exclude each other" in l for l in problems(use_peft=True, load_in_8bit=True, load_in_4bit=True))
    assert any("cannot be trained in full" in l for l in problems(load_in_4bit=True))
    assert any("hidden_size" in l for l in problems(hidden_size=100, num_heads=8))
    assert any("not a module name" in l for l in problems(lora_target_modules="q_proj,v-proj"))


def test_derived_values():
    cfg = build([({"use_peft": True, "peft_method": "adalora", "lora_r": 8, "steps": 100}, "")])
    assert cfg.peft.adalora_init_rank() == 12
    tinit, tfinal, delta = cfg.peft.adalora_schedule(100)
    assert (tinit, tfinal) == (10, 20) and delta >= 1 and tinit + tfinal < 100
    assert cfg.peft.adalora_schedule(2)[0] + cfg.peft.adalora_schedule(2)[1] < 2
    ia3 = build([({"use_peft": True, "peft_method": "ia3",
                   "lora_target_modules": "q_proj,v_proj,down_proj"}, "")])
    assert ia3.peft.ia3_feedforward_list() == ["down_proj"]
    assert ia3.train.effective_lr(ia3.peft) == 3e-3
    assert RunConfig().train.effective_lr(RunConfig().peft) == 5e-5


@pytest.mark.parametrize("field", ["lora_dropout", "lr", "max_grad_norm", "eval_fraction"])
@pytest.mark.parametrize("value", [float("nan"), float("inf")])
def test_a_value_that_is_not_finite_is_refused(field, value):
    assert problems(**{field: value}) == [f"{_section(field)}.{field}: {value!r} is not a number; "
                                          "give a finite value"]


def _section(field: str) -> str:
    from aios_tui.config import field_index

    return field_index()[field][0]


def test_target_modules_are_split_on_commas_with_spaces_and_empty_entries_dropped():
    cfg = build([({"lora_target_modules": " q_proj , ,v_proj,, o_proj "}, "")])
    assert cfg.peft.target_list() == ["q_proj", "v_proj", "o_proj"]


def test_module_lists_may_be_written_as_lists():
    cfg = build([({"peft": {"lora_target_modules": ["q_proj", "v_proj"], "modules_to_save": ["lm_head"]}}, "")])
    assert cfg.peft.target_list() == ["q_proj", "v_proj"]
    assert cfg.peft.modules_to_save_list() == ["lm_head"]
    assert any("is not a string" in l for l in problems(lora_target_modules=["q_proj", 3]))
    assert any("is not a string" in l for l in problems(model=["a", "b"]))


@pytest.mark.parametrize("name", ["../../escape", "a b/c", ".hidden", "-flag", "x" * 101])
def test_run_and_brain_names_cannot_leave_their_root(name):
    assert any("train.run_name" in l and "not a plain name" in l for l in problems(run_name=name))
    assert any("hrm.brain_name" in l and "not a plain name" in l for l in problems(brain_name=name))


def test_plain_names_of_any_script_are_fine():
    assert build([({"run_name": "lora-r8_try.2", "brain_name": "café"}, "")]).train.run_name == "lora-r8_try.2"


def test_type_and_range_problems_are_reported_together():
    lines = problems(lora_r="big", steps=0, load_in_4bit=True)
    assert any("lora_r: 'big' is not a whole number" in l for l in lines)
    assert any("train.steps: 0 is out of range" in l for l in lines)
    # a rule across fields waits until every field parses
    assert not any("cannot be trained in full" in l for l in lines)


def test_a_run_in_a_directory_of_any_name_keeps_that_name():
    cfg = build([({"run_dir": "/tmp/my run", "run_name": "my run"}, "")])
    assert cfg.train.run_name == "my run"
    assert any("not a plain name" in l for l in problems(run_name="run\n"))


@pytest.mark.parametrize("model", ["", "  "])
def test_an_empty_model_name_is_a_problem(model):
    assert any(l.startswith("model.model: empty") for l in problems(model=model))
