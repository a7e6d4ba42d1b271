"""Commands on a terminal whose locale is not UTF-8 (an ISO-8859-1 or ASCII locale over SSH, a
pipe into an ASCII-only tool): what it cannot show prints as '?', never as a traceback."""

from __future__ import annotations

from runfiles import write_run


def test_charts_print_on_an_ascii_terminal(cli_subprocess, tmp_path):
    root = tmp_path / "runs"
    write_run(root, "a", steps=30, state="finished", pid=0)
    write_run(root, "b", steps=20, state="finished", pid=0)
    env = {"AIOS_TUI_RUNS": str(root), "PYTHONIOENCODING": "ascii"}
    for args in (("tail", "a", "--chart"), ("compare", "a", "b", "--chart")):
        p = cli_subprocess(*args, env=env, timeout=120)
        assert p.returncode == 0 and "Traceback" not in p.stderr, (args, p.stderr)
        assert "?" in p.stdout and "loss" in p.stdout, args  # braille dots as '?', words as they are
