"""Every shipped preset loads, validates, matches the seed document and round-trips through TOML."""

from __future__ import annotations

import tomllib

import pytest

from aios_tui.config import build, config_to_toml, find_preset, list_presets, resolve
from aios_tui.config.presets import shipped_dir

# The seed's five presets, value for value.
SEED = {
    "budget": dict(use_peft=True, peft_method="ia3", lora_target_modules="q_proj,v_proj"),
    "efficient": dict(use_peft=True, peft_method="lora", lora_r=16, lora_alpha=32, lora_dropout=0.05,
                      lora_target_modules="q_proj,v_proj"),
    "balanced": dict(use_peft=True, peft_method="lora", lora_r=16, lora_alpha=32, lora_dropout=0.05,
                     lora_target_modules="q_proj,k_proj,v_proj,o_proj"),
    "high-quality": dict(use_peft=True, peft_method="lora", lora_r=32, lora_alpha=64, lora_dropout=0.05,
                         lora_target_modules="q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj,down_proj"),
    "adaptive": dict(use_peft=True, peft_method="adalora", lora_r=16, lora_alpha=32, lora_dropout=0.1,
                     lora_target_modules="q_proj,k_proj,v_proj,o_proj"),
}


def test_shipped_presets_are_the_seed_five_in_order():
    shipped = [p for p in list_presets() if not p.user]
    assert [p.key for p in shipped] == list(SEED)
    assert all(p.description for p in shipped)
    assert {p.path.name for p in shipped} == {f"{k}.toml" for k in SEED}
    assert len(list(shipped_dir().glob("*.toml"))) == 5


@pytest.mark.parametrize("key", list(SEED))
def test_preset_values_match_seed(key):
    cfg = find_preset(key).config()
    for name, value in SEED[key].items():
        assert getattr(cfg.peft, name) == value, name


@pytest.mark.parametrize("key", list(SEED))
def test_preset_round_trips_through_toml(key):
    cfg = find_preset(key).config()
    again = build([(tomllib.loads(config_to_toml(cfg)), "round trip")])
    assert again == cfg
    compact = build([(tomllib.loads(config_to_toml(cfg, only_changed=True)), "compact")])
    assert compact == cfg


def test_preset_lookup_by_display_name_and_path():
    assert find_preset("High Quality").key == "high-quality"
    p = find_preset(str(shipped_dir() / "balanced.toml"))
    assert p.config().peft.lora_target_modules == "q_proj,k_proj,v_proj,o_proj"


def test_a_preset_path_that_is_a_directory_says_so(cli, tmp_path):
    for args in (("presets", "show", str(tmp_path)), ("config", "--preset", str(tmp_path))):
        code, out, err = cli(*args)
        assert (code, out) == (2, "")
        assert err == f"aios-tui: error: {tmp_path}: is a directory, not a TOML file\n"
    code, _, err = cli("presets", "show", str(tmp_path / "none.toml"))
    assert code == 2 and err.endswith("none.toml: no such file\n")


def test_precedence_defaults_preset_file_flags(tmp_path):
    f = tmp_path / "over.toml"
    f.write_text("[peft]\nlora_r = 8\nlora_alpha = 8\n[train]\nsteps = 7\n")
    cfg = resolve("efficient", str(f), {"lora_alpha": 64})
    assert cfg.peft.peft_method == "lora"        # from the preset
    assert cfg.peft.lora_r == 8                  # file over preset
    assert cfg.peft.lora_alpha == 64             # flag over file
    assert cfg.train.steps == 7
    assert cfg.train.batch_size == 4             # default


@pytest.mark.parametrize("name", ["a/b", "mine.toml", "mine.yaml"])
def test_a_preset_name_that_reads_as_a_path_is_refused(cli, name):
    """show and --preset read such a name as a file, so a preset saved under it could not be found."""
    from aios_tui.config.presets import user_dir, user_preset_key
    from aios_tui.config.validate import ConfigError

    code, out, err = cli("presets", "save", name, "--lora-r", "4")
    assert code == 2 and out == ""
    assert err.strip() == (f"aios-tui: error: preset name {name!r} looks like a file path; use letters, digits, "
                           "spaces, '-' and '_' (no '/' and no .toml or .yaml ending)")
    assert not user_dir().exists() or not any(user_dir().iterdir())
    with pytest.raises(ConfigError, match="looks like a file path"):  # what the console's save dialog shows
        user_preset_key(name)
    code, _, err = cli("presets", "delete", name)
    assert code == 2 and "not a path" in err


def test_a_saved_preset_reports_the_name_show_and_delete_take(cli):
    code, out, _ = cli("presets", "save", "Night Run #2", "--lora-r", "4")
    assert code == 0 and out.startswith("saved preset 'Night Run #2' as 'night-run-2' to ")
    code, out, _ = cli("presets", "show", "night-run-2")
    assert code == 0 and "lora_r = 4" in out
    code, out, _ = cli("presets", "show", "Night Run #2")
    assert code == 0 and "lora_r = 4" in out
    code, out, _ = cli("presets", "save", "plain", "--lora-r", "4")
    assert code == 0 and out.startswith("saved preset 'plain' to ")
    code, out, _ = cli("presets", "delete", "Night Run #2")
    assert code == 0


def test_delete_suggests_the_user_preset_a_typo_meant_as_show_does(cli):
    assert cli("presets", "save", "mine", "--lora-r", "4")[0] == 0
    code, _, err = cli("presets", "show", "mien")
    assert code == 2 and "did you mean 'mine'?" in err
    code, out, err = cli("presets", "delete", "mien")
    assert (code, out) == (2, "")
    assert err == "aios-tui: error: cannot delete 'mien': no such user preset; did you mean 'mine'? (user presets: mine)\n"
    assert cli("presets", "show", "mine")[0] == 0


# The guide's settings blocks for the five presets, as printed there.
GUIDE_YAML = {
    "budget": 'use_peft: true\npeft_method: "ia3"\nlora_target_modules: "q_proj,v_proj"\n',
    "efficient": 'use_peft: true\npeft_method: "lora"\nlora_r: 16\nlora_alpha: 32\nlora_dropout: 0.05\n'
                 'lora_target_modules: "q_proj,v_proj"  # or "q_proj,k_proj,v_proj,o_proj"\n',
    "balanced": 'use_peft: true\npeft_method: "lora"\nlora_r: 16\nlora_alpha: 32\nlora_dropout: 0.05\n'
                'lora_target_modules: "q_proj,k_proj,v_proj,o_proj"\n',
    "high-quality": 'use_peft: true\npeft_method: "lora"\nlora_r: 32\nlora_alpha: 64\nlora_dropout: 0.05\n'
                    'lora_target_modules: "q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj,down_proj"\n',
    "adaptive": 'use_peft: true\npeft_method: "adalora"\nlora_r: 16\nlora_alpha: 32\nlora_dropout: 0.1\n'
                'lora_target_modules: "q_proj,k_proj,v_proj,o_proj"\n',
}


@pytest.mark.parametrize("key", list(GUIDE_YAML))
def test_the_guides_yaml_block_loads_as_the_shipped_preset(tmp_path, key):
    from aios_tui.config import load_config

    path = tmp_path / f"{key}.yaml"
    path.write_text(GUIDE_YAML[key])
    assert load_config(path) == find_preset(key).config()
