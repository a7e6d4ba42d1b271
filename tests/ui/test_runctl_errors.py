"""What the console shows of a failed child process (a settings check, an export)."""

from __future__ import annotations

import subprocess

from aios_tui.ui.runctl import child_problems


def _proc(code: int, out: str = "", err: str = "") -> subprocess.CompletedProcess:
    return subprocess.CompletedProcess(["aios-tui"], code, out, err)


def test_the_tool_s_own_error_lines_are_shown_as_they_are():
    proc = _proc(2, out="loading...\n", err="note: x\naios-tui: error: train.fp8: needs torchao\n"
                                             "aios-tui: error: --batch-size 0: must be at least 1\n")
    assert child_problems(proc, "the settings check") == ["train.fp8: needs torchao",
                                                          "--batch-size 0: must be at least 1"]


def test_a_crash_shows_its_last_line_named_for_what_failed():
    proc = _proc(1, err="Traceback (most recent call last):\n  ...\nRuntimeError: CUDA driver too old\n\n")
    assert child_problems(proc, "export of 'lora-a'") == ["export of 'lora-a' failed: RuntimeError: CUDA driver too old"]


def test_silence_shows_the_exit_status():
    assert child_problems(_proc(-9), "the settings check") == ["the settings check failed with exit status -9"]
