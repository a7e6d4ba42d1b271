"""The `presets` and `config` commands, as a user types them."""

from __future__ import annotations

import tomllib

from aios_tui.config import build
from aios_tui.config.presets import user_dir


def test_presets_list_shows_seed_five(cli):
    code, out, err = cli("presets", "list")
    assert code == 0 and err == ""
    for key in ("budget", "efficient", "balanced", "high-quality", "adaptive"):
        assert key in out
    assert "adalora" in out and "ia3" in out


def test_config_efficient_print_toml(cli):
    code, out, _ = cli("config", "--preset", "efficient", "--print-toml")
    assert code == 0
    doc = tomllib.loads(out)
    peft = doc["peft"]
    assert (peft["lora_r"], peft["lora_alpha"], peft["lora_dropout"], peft["lora_target_modules"],
            peft["peft_method"], peft["use_peft"]) == (16, 32, 0.05, "q_proj,v_proj", "lora", True)
    assert build([(doc, "")]).to_dict() == doc_without_meta(doc)


def doc_without_meta(doc):
    return {k: v for k, v in doc.items() if k != "version"}


def test_seed_flags_override(cli):
    code, out, _ = cli("config", "--use-peft", "--peft-method", "adalora", "--lora-r", "8",
                       "--lora-alpha", "16", "--lora-dropout", "0.1", "--lora-target-modules", "q_proj,v_proj",
                       "--model", "gpt2", "--dataset-file", "x.txt", "--steps", "200", "--batch-size", "4",
                       "--halt-max-steps", "1", "--amp", "--gradient-checkpointing", "--log-file", "m.jsonl",
                       "--max-seq-len", "256", "--model-dtype", "bf16", "--lr", "1e-4", "--seed", "7")
    assert code == 0
    doc = tomllib.loads(out)
    assert doc["peft"]["peft_method"] == "adalora" and doc["peft"]["lora_r"] == 8
    assert doc["hrm"]["halt_max_steps"] == 1 and doc["memory"]["amp"] is True
    assert doc["train"]["lr"] == 1e-4 and doc["model"]["model_dtype"] == "bf16"


def test_bad_flags_exit_2_with_every_problem(cli):
    code, out, err = cli("config", "--lora-r", "0", "--lora-dropout", "1.5", "--steps", "abc")
    assert code == 2 and out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 3 and all(l.startswith("aios-tui: error: ") for l in lines)


def test_unknown_preset_and_malformed_toml_exit_2(cli, tmp_path):
    code, _, err = cli("config", "--preset", "efficent")
    assert code == 2 and "did you mean 'efficient'" in err
    bad = tmp_path / "bad.toml"
    bad.write_text("[peft\nlora_r = 3\n")
    code, _, err = cli("config", "--config", str(bad))
    assert code == 2 and "malformed TOML" in err and "Traceback" not in err
    code, _, err = cli("config", "--config", str(tmp_path / "missing.toml"))
    assert code == 2 and "no such file" in err


def test_config_output_writes_loadable_file(cli, tmp_path):
    out_file = tmp_path / "run.toml"
    code, _, _ = cli("config", "--preset", "balanced", "--steps", "9", "-o", str(out_file))
    assert code == 0
    code, out, _ = cli("config", "--config", str(out_file))
    assert tomllib.loads(out)["train"]["steps"] == 9
    code, _, _ = cli("config", "--lora-r", "999", "-o", str(tmp_path / "never.toml"))
    assert code == 2 and not (tmp_path / "never.toml").exists()


def test_user_preset_save_show_force_delete(cli):
    code, out, _ = cli("presets", "save", "My Run", "--preset", "efficient", "--lora-r", "8",
                       "--description", "small rank")
    assert code == 0
    path = user_dir() / "my-run.toml"
    assert path.is_file() and str(path) in out
    before = path.read_text()
    code, _, err = cli("presets", "save", "my run", "--lora-r", "4")
    assert code == 2 and "--force" in err and path.read_text() == before
    code, out, _ = cli("presets", "list")
    assert "my-run" in out and "user" in out and "small rank" in out
    code, out, _ = cli("config", "--preset", "my-run")
    assert tomllib.loads(out)["peft"]["lora_r"] == 8
    code, _, _ = cli("presets", "save", "my run", "--lora-r", "4", "--force")
    assert code == 0 and 'lora_r = 4' in path.read_text()
    code, _, err = cli("presets", "save", "efficient", "--lora-r", "4")
    assert code == 2 and "shipped" in err
    code, _, err = cli("presets", "delete", "efficient")
    assert code == 2 and "shipped presets cannot be deleted" in err
    code, _, _ = cli("presets", "delete", "my-run")
    assert code == 0 and not path.exists()
    code, _, err = cli("presets", "save", "bad", "--lora-dropout", "2")
    assert code == 2 and not (user_dir() / "bad.toml").exists()


def test_presets_show(cli):
    code, out, _ = cli("presets", "show", "adaptive")
    assert code == 0 and 'peft_method = "adalora"' in out and "lora_dropout = 0.1" in out


def test_every_presets_action_describes_itself_and_its_argument():
    from aios_tui.cli import build_parser

    sub = build_parser()._subparsers._group_actions[0].choices  # type: ignore[union-attr]
    actions = sub["presets"]._subparsers._group_actions[0].choices  # type: ignore[union-attr]
    for name, parser in actions.items():
        assert parser.description, f"`presets {name} --help` has no description"
        for action in parser._actions:
            if not action.option_strings:
                assert action.help, f"`presets {name} --help`: {action.metavar} is not explained"


def test_options_with_no_command_are_the_consoles(cli):
    # `aios-tui` alone opens the console, so `aios-tui --preset NAME` is the console on that preset
    code, out, err = cli("--preset", "efficeint")
    assert code == 2 and out == ""
    assert err.startswith("aios-tui: error: unknown preset 'efficeint'; did you mean 'efficient'?")
    code, _, err = cli("--lora-r", "0")
    assert code == 2 and err == "aios-tui: error: peft.lora_r: 0 is out of range; valid: 1 to 256\n"


def test_module_entry_point_and_help(cli_subprocess):
    res = cli_subprocess("config", "--help")
    assert res.returncode == 0 and "--lora-target-modules" in res.stdout and "--halt-max-steps" in res.stdout
    res = cli_subprocess("config", "--lora-r", "-3")
    assert res.returncode == 2 and "Traceback" not in res.stderr
    assert "peft.lora_r: -3 is out of range" in res.stderr


def test_a_malformed_user_preset_is_skipped_not_fatal(cli):
    user_dir().mkdir(parents=True)
    (user_dir() / "broken.toml").write_text("[peft\n")
    (user_dir() / "badkey.toml").write_text("version = 1\n[peft]\nlora_rr = 8\n")
    (user_dir() / "mine.toml").write_text("version = 1\n[peft]\nlora_r = 4\n")
    code, out, err = cli("presets", "list")
    assert code == 0 and "efficient" in out and "mine" in out
    assert "broken" not in out and "badkey" not in out
    assert "skipping preset" in err and "broken.toml" in err and "did you mean 'lora_r'" in err
    code, out, err = cli("config", "--preset", "mine", "--print-toml")  # others' problems stay quiet
    assert code == 0 and err == ""
    code, out, err = cli("config", "--preset", "badkey")
    assert code == 2 and "preset 'badkey' cannot be used" in err and "unknown key 'lora_rr'" in err


GUIDE_RECOMMENDED_YAML = """\
use_peft: true
peft_method: "lora"
lora_r: 16
lora_alpha: 32
lora_dropout: 0.05
lora_target_modules: "q_proj,v_proj"
"""


def test_the_guides_yaml_settings_load_as_config_and_as_preset(cli, tmp_path):
    path = tmp_path / "recommended.yaml"
    path.write_text(GUIDE_RECOMMENDED_YAML)
    for source in ("--config", "--preset"):
        code, out, err = cli("config", source, str(path), "--lora-r", "8", "--print-toml")
        assert code == 0, err
        peft = tomllib.loads(out)["peft"]
        assert (peft["use_peft"], peft["lora_r"], peft["lora_alpha"], peft["lora_target_modules"]) == \
            (True, 8, 32, "q_proj,v_proj")


def test_bad_yaml_is_one_line_with_its_position_and_exit_2(cli, tmp_path):
    broken = tmp_path / "broken.yml"
    broken.write_text("use_peft: true\nlora_r: [16\n")
    code, _, err = cli("config", "--config", str(broken))
    assert code == 2
    assert "malformed YAML" in err and "line 3" in err and len(err.strip().splitlines()) == 1
    listed = tmp_path / "list.yaml"
    listed.write_text("- lora_r\n")
    code, _, err = cli("config", "--config", str(listed))
    assert code == 2 and "must hold 'key: value' settings" in err
    wrong = tmp_path / "wrong.yaml"
    wrong.write_text("lora_alpah: 4\n")
    code, _, err = cli("config", "--config", str(wrong))
    assert code == 2 and "did you mean 'lora_alpha'" in err
    wrong.write_text("lora_r: 999\n")
    code, _, err = cli("config", "--config", str(wrong))
    assert code == 2 and "lora_r: 999 is out of range" in err


def test_an_unknown_flag_is_named_with_the_closest_one_and_the_commands_usage(capsys):
    import pytest

    from aios_tui.cli import main

    for argv, usage, hint in ((["train", "--lora-rr", "8"], "usage: aios-tui train [options]", "did you mean --lora-r?"),
                              (["presets", "save", "x", "--lora-alpah", "3"], "usage: aios-tui presets save NAME",
                               "did you mean --lora-alpha?")):
        with pytest.raises(SystemExit) as exc:
            main(argv)
        err = capsys.readouterr().err
        assert exc.value.code == 2 and usage in err and hint in err and len(err.splitlines()) == 2


def test_yaml_numbers_as_yaml_writes_them_and_keys_of_any_type(cli, tmp_path):
    path = tmp_path / "s.yaml"
    path.write_text("lr: 2e-5\nlora_dropout: .1\n")
    code, out, err = cli("config", "--config", str(path), "--print-toml")
    assert code == 0, err
    assert tomllib.loads(out)["train"]["lr"] == 2e-5
    path.write_text("1: x\ntrain: {2: 3}\n")
    code, _, err = cli("config", "--config", str(path))
    assert code == 2 and "unknown key '1'" in err and "unknown key '2' in [train]" in err


def test_a_user_preset_out_of_range_is_named_by_its_file(cli):
    user_dir().mkdir(parents=True)
    (user_dir() / "big.toml").write_text("version = 1\n[peft]\nlora_r = 99999\n")
    code, out, err = cli("presets", "list")
    assert code == 0 and f"skipping preset {user_dir() / 'big.toml'}: peft.lora_r: 99999 is out of range" in err
    code, _, err = cli("config", "--preset", "big")
    assert code == 2 and "preset 'big' cannot be used" in err


def test_help_shows_the_short_usage_plainly_and_an_error_points_at_help(capsys):
    import pytest

    from aios_tui.cli import main

    for argv, usage in ((["estimate"], "usage: aios-tui estimate [options]"),
                        (["train"], "usage: aios-tui train [options]"),
                        (["presets", "save"], "usage: aios-tui presets save NAME [options]")):
        with pytest.raises(SystemExit) as exc:
            main([*argv, "--help"])
        out = capsys.readouterr().out
        assert exc.value.code == 0 and out.splitlines()[0] == usage and "every option" not in out
        with pytest.raises(SystemExit) as exc:
            main([*argv, "--steps"])
        err = capsys.readouterr().err
        assert exc.value.code == 2 and err.splitlines()[0] == usage + "  (every option: --help)"
    # a usage that lists every option already needs no pointer
    with pytest.raises(SystemExit):
        main(["tail", "--bogus"])
    assert "every option" not in capsys.readouterr().err


def test_run_dir_help_names_the_runs_root_a_run_goes_under(monkeypatch, tmp_path):
    from aios_tui.config.schema import TrainConfig
    from aios_tui.config import resolve
    from aios_tui.engine.session import choose_run_dir

    monkeypatch.setenv("AIOS_TUI_RUNS", str(tmp_path / "root"))
    assert choose_run_dir(resolve(overrides={"run_name": "r"})) == tmp_path / "root" / "r"
    monkeypatch.delenv("AIOS_TUI_RUNS")
    assert choose_run_dir(resolve(overrides={"run_name": "r"})).parts[-3:] == ("artifacts", "runs", "r")
    assert TrainConfig.__dataclass_fields__["run_dir"].metadata["help"] == (
        "run directory (empty: <run_name> under $AIOS_TUI_RUNS, else artifacts/runs)")


def test_an_empty_model_is_refused_by_every_command_not_read_as_the_current_directory(cli):
    for argv in (("train", "--model", "", "--check"), ("config", "--model", ""),
                 ("presets", "save", "no-model", "--model", "")):
        code, out, err = cli(*argv)
        assert code == 2 and out == ""
        assert "model.model: empty" in err and "directory without a config.json" not in err
    assert not (user_dir() / "no-model.toml").exists()
