"""Config and preset files that are wrong in odd ways: each is one short problem per line and exit
status 2, never a traceback, and a preset that cannot be used is skipped, not listed."""

from __future__ import annotations

import pytest

from aios_tui.cli import MAX_REPORTED
from aios_tui.config.presets import user_dir
from aios_tui.config.validate import SHOWN_CHARS


def refused(cli, path, *command: str) -> list[str]:
    """The error lines of `aios-tui COMMAND --config PATH`, checked to be a refusal."""
    code, out, err = cli(*(command or ("config",)), "--config", str(path))
    lines = err.splitlines()
    assert code == 2 and out == "", err
    assert lines and all(line.startswith("aios-tui: error: ") for line in lines), err
    return lines


@pytest.mark.parametrize("text, problem", [
    ("lr = " + "9" * 400 + "\n", "train.lr: 9999"),  # past a float's range
    ("lr = " + "[" * 3000 + "]" * 3000 + "\n", "malformed TOML: arrays or tables nested too deeply"),
    ("lora_r = " + "9" * 5000 + "\n", "malformed TOML: a number too long to read"),
    ("num_heads = 0\n", "hrm.num_heads: 0 is out of range; valid: 1 to 256"),
    ("seed = 18446744073709551616\n", "train.seed: 18446744073709551616 is out of range; valid: 0 to 4294967295"),
    # a run of 2**70 steps would train, with an ETA of trillions of days
    ("steps = 1180591620717411303424\n", "train.steps: 1180591620717411303424 is out of range; valid: 1 to 1000000000"),
    ("version = true\n", "version True is not supported"),
    ("order = \"first\"\n", "order: 'first' is not a whole number"),
    ("name = {a = 1}\n", "name: {'a': 1} is not a string"),
    ('description = "one\\ntwo"\n', "description: 'one\\ntwo' has a line break"),
])
def test_a_file_the_parser_or_a_rule_refuses_is_one_line(cli, tmp_path, text, problem):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    lines = refused(cli, path)
    assert len(lines) == 1 and problem in lines[0]


@pytest.mark.parametrize("text, problem", [
    ("lora_r: " + "[" * 3000 + "]" * 3000 + "\n", "malformed YAML: arrays or tables nested too deeply"),
    ("steps: 2024-13-45\n", "malformed YAML: month must be in 1..12"),
    ("lr: !!float abc\n", "malformed YAML: could not convert string to float: 'abc'"),
])
def test_a_yaml_file_the_parser_refuses_is_one_line(cli, tmp_path, text, problem):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    lines = refused(cli, path)
    assert lines == [f"aios-tui: error: {path}: {problem}"]


def test_a_huge_value_is_quoted_short(cli, tmp_path):
    path = tmp_path / "long.toml"
    path.write_text(f'lora_r = "{"x" * 5000}"\nlr_schedule = "{"y" * 5000}"\n{"z" * 5000} = 1\n'
                    f"steps = -{'9' * 400}\n")
    for line in refused(cli, path):
        assert len(line) < len(f"aios-tui: error: {path}: ") + 2 * SHOWN_CHARS + 60, line


def test_a_line_break_or_escape_in_a_key_stays_on_its_line(cli, tmp_path):
    path = tmp_path / "keys.toml"
    path.write_text('"lora\\nr" = 8\n["peft\\u001b[31m"]\nx = 1\n')
    lines = refused(cli, path)
    assert len(lines) == 2 and "\x1b" not in "".join(lines)
    assert "unknown key 'lora\\nr'" in lines[0] and "unknown section [peft\\x1b[31m]" in lines[1]


def test_a_file_with_thousands_of_problems_says_how_many_it_left_out(cli, tmp_path):
    path = tmp_path / "data.toml"
    path.write_text("".join(f"k{i} = {i}\n" for i in range(500)))
    lines = refused(cli, path)
    assert len(lines) == MAX_REPORTED
    assert lines[-1] == f"aios-tui: error: ... and {500 - MAX_REPORTED + 1} more problems"


def test_a_byte_order_mark_is_not_part_of_the_settings(cli, tmp_path):
    path = tmp_path / "bom.toml"
    path.write_bytes("\ufeffversion = 1\n[peft]\nlora_r = 8\n".encode())
    code, out, err = cli("config", "--config", str(path))
    assert code == 0 and err == "" and "lora_r = 8" in out


def test_a_file_that_is_not_utf8_says_so(cli, tmp_path):
    path = tmp_path / "utf16.toml"
    path.write_bytes("version = 1\n".encode("utf-16"))
    assert refused(cli, path) == [f"aios-tui: error: {path}: not a text file (a TOML file is UTF-8 text)"]


def test_a_shipped_preset_with_a_bad_order_is_skipped_not_a_traceback(cli, tmp_path, monkeypatch):
    shipped = tmp_path / "shipped"
    shipped.mkdir()
    (shipped / "one.toml").write_text('order = "first"\n')
    (shipped / "two.toml").write_text("order = 2\n")
    monkeypatch.setenv("AIOS_TUI_PRESETS_DIR", str(shipped))
    code, out, err = cli("presets", "list")
    assert code == 0 and "two" in out and "one" not in out
    assert err == f"aios-tui: warning: skipping preset {shipped / 'one.toml'}: order: 'first' is not a whole number\n"


def test_user_presets_no_name_can_pick_are_skipped_with_a_warning(cli):
    user_dir().mkdir(parents=True)
    (user_dir() / "balanced.toml").write_text("lora_r = 4\n")  # the shipped preset's name
    (user_dir() / "Mine.toml").write_text("lora_r = 5\n")
    (user_dir() / "mine.toml").write_text("lora_r = 6\n")  # the same name as Mine.toml
    (user_dir() / "___.toml").write_text("lora_r = 7\n")  # no name at all
    code, out, err = cli("presets", "list")
    rows = [line.split()[:2] for line in out.splitlines()[1:]]
    assert code == 0 and rows.count(["balanced", "shipped"]) == 1 and ["balanced", "user"] not in rows
    assert ["mine", "user"] in rows and len(rows) == 6
    warnings = err.splitlines()
    assert len(warnings) == 3 and all(w.startswith("aios-tui: warning: skipping preset ") for w in warnings)
    assert "already names the preset in" in err and "has no letters or digits" in err
    code, out, _ = cli("presets", "show", "mine")
    assert code == 0 and "lora_r = 5" in out


def test_saving_a_preset_its_file_could_not_load_back_is_refused(cli):
    code, out, err = cli("presets", "save", "two lines", "--description", "one\ntwo", "--lora-r", "8")
    assert code == 2 and out == ""
    assert err == "aios-tui: error: description: 'one\\ntwo' has a line break or control character; keep it to one line\n"
    assert not (user_dir() / "two-lines.toml").exists()
