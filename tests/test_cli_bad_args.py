"""Odd arguments on the command line: one `aios-tui: error:` line and exit status 2, never a
traceback, whichever command first trips over them."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from pathlib import Path

import pytest

from aios_tui.cli import main

LONG = "a" * 300  # longer than a file name may be (255 bytes on Linux filesystems)
NO_USER = "~no-such-user-aios-tui"


def run(capsys, *argv: str) -> tuple[int, str]:
    try:
        code = main(list(argv))
    except SystemExit as exc:  # argparse's own refusals
        code = exc.code
    return code, capsys.readouterr().err


def one_error_line(err: str) -> str:
    lines = err.splitlines()
    assert lines and lines[-1].startswith("aios-tui"), err
    assert "Traceback" not in err and all(line.startswith(("aios-tui", "usage:", " ")) for line in lines), err
    return lines[-1]


@pytest.mark.parametrize("argv", [
    ("runs", "--root", LONG),
    ("runs", "stop", LONG),
    ("eval", LONG),
    ("export", LONG),
    ("tail", LONG),
    ("presets", "show", f"{LONG}.toml"),
    ("train", "--run-dir", LONG, "--check"),
])
def test_a_file_name_too_long_is_named_shortened_in_one_line(capsys, argv):
    code, err = run(capsys, *argv)
    line = one_error_line(err)
    assert code == 2 and "file name too long" in line and "characters)" in line, err
    assert len(line) < 200, line


@pytest.mark.parametrize("argv", [
    ("export", f"{NO_USER}/x"),
    ("tail", f"{NO_USER}/x"),
    ("presets", "show", f"{NO_USER}/x.toml"),
    ("runs", f"--root={NO_USER}"),
    ("train", "--dataset-file", f"{NO_USER}/data.txt", "--check"),
])
def test_a_path_under_the_home_of_an_unknown_user_is_named(capsys, argv):
    code, err = run(capsys, *argv)
    line = one_error_line(err)
    assert code == 2 and "no user 'no-such-user-aios-tui' on this system" in line, err


@pytest.mark.parametrize("argv", [
    ("runs", "--root", "a\nb"),
    ("compare", "x\ny", "z"),
    ("tail", "a\x1b[31mb"),
    ("tail", "somewhere", "--bogus", "a\nb"),  # argparse's error, with the command's usage
])
def test_control_characters_in_a_value_are_escaped_not_printed(capsys, argv):
    code, err = run(capsys, *argv)
    line = one_error_line(err)
    assert code == 2 and "\x1b" not in err and ("a\\nb" in line or "x\\ny" in line or "a\\x1b[31mb" in line), err


@contextlib.contextmanager
def private_dir():
    """(a readable directory, a directory in it this process may not enter). As root nothing
    is refused, so the command then runs with the effective uid of nobody."""
    base = Path(tempfile.mkdtemp(prefix="aios-tui-perm-"))
    base.chmod(0o755)
    private = base / "private"
    private.mkdir(mode=0o700)
    (private / "config.toml").write_text("version = 1\n")
    root = os.geteuid() == 0
    if not root:
        private.chmod(0)
    try:
        yield base, private
    finally:
        private.chmod(0o700)
        shutil.rmtree(base)


@contextlib.contextmanager
def unprivileged():
    if os.geteuid() != 0:
        yield
        return
    os.setegid(65534)
    os.seteuid(65534)
    try:
        yield
    finally:
        os.seteuid(0)
        os.setegid(0)


@pytest.mark.parametrize("argv", [("runs", "--root", "{p}/x"), ("attach", "{p}/run"), ("export", "{p}/run"),
                                  ("presets", "show", "{p}/mine.toml"), ("config", "--config", "{p}/c.toml")])
def test_a_path_the_user_may_not_read_is_named_in_one_line(capsys, argv):
    with private_dir() as (_, private), unprivileged():
        code, err = run(capsys, *(a.format(p=private) for a in argv))
    line = one_error_line(err)
    assert code == 2 and f"{private}" in line and "permission denied" in line.lower(), err


def test_a_runs_root_holding_a_directory_not_ours_lists_the_others(capsys):
    with private_dir() as (base, _):
        mine = base / "mine"
        mine.mkdir()
        (mine / "config.toml").write_text("version = 1\n")
        with unprivileged():
            code = main(["runs", "--root", str(base), "--json"])
        out, err = capsys.readouterr()
    assert code == 0 and "Traceback" not in err
    assert '"mine"' in out and "private" not in out, out
