"""Shared fixtures: every test gets its own XDG config dir and runs root, so nothing leaks."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _isolate(setenv, where: Path) -> None:
    setenv("XDG_CONFIG_HOME", str(where / "xdg"))
    setenv("XDG_STATE_HOME", str(where / "xdg-state"))
    setenv("AIOS_TUI_RUNS", str(where / "runs"))
    # no test writes to the real ~/.cache; subprocesses inherit this too
    setenv("AIOS_TUI_TOKEN_CACHE", str(where / "token-cache"))


@pytest.fixture(autouse=True, scope="session")
def _isolated_session(tmp_path_factory):
    """The same for module- and session-scoped fixtures, which run before a test's own: a run they
    train must not be remembered in the real ~/.local/state (the console would list it)."""
    with pytest.MonkeyPatch.context() as mp:
        _isolate(mp.setenv, tmp_path_factory.mktemp("session-home"))
        yield


@pytest.fixture(autouse=True)
def _isolated_dirs(tmp_path, monkeypatch):
    _isolate(monkeypatch.setenv, tmp_path)
    monkeypatch.setenv("NO_COLOR", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")
    # Tiny models train faster on one thread than two, and subprocesses inherit the env.
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    torch = sys.modules.get("torch")
    if torch is not None:
        torch.set_num_threads(1)


@pytest.fixture
def cli(capsys):
    """Run `aios-tui ARGS` in-process; returns (exit code, stdout, stderr)."""
    from aios_tui.cli import main

    def run(*args: str) -> tuple[int, str, str]:
        code = main(list(args))
        out = capsys.readouterr()
        return code, out.out, out.err

    return run


@pytest.fixture
def cli_subprocess():
    """Run `python -m aios_tui ARGS` as a real process (for exit codes, signals, imports)."""
    import subprocess

    def run(*args: str, timeout: float = 300, **kw) -> subprocess.CompletedProcess:
        env = {**os.environ, **kw.pop("env", {})}
        return subprocess.run([sys.executable, "-m", "aios_tui", *args], capture_output=True,
                              text=True, timeout=timeout, env=env, **kw)

    return run


@pytest.fixture(scope="session")
def text_file(tmp_path_factory) -> Path:
    """Patterned text a small model learns quickly (about 10 KB)."""
    from aios_tui.data.make_sample import build

    path = tmp_path_factory.mktemp("data") / "train.txt"
    path.write_text(build(lines=300, seed=7), encoding="utf-8")
    return path


def _step_losses(metrics: Path) -> dict[int, float]:
    """step -> loss; a later line for the same step (after a resume) replaces an earlier one."""
    import json

    out: dict[int, float] = {}
    for line in metrics.read_text().splitlines():
        rec = json.loads(line) if line.strip() else {}
        if "event" not in rec and "step" in rec and "loss" in rec:
            out[rec["step"]] = rec["loss"]
    return out


@pytest.fixture
def resumed_like_straight(cli, tmp_path):
    """Train ``args`` in one session (tmp_path/straight) and, beside it, stopped after ``stop``
    steps and resumed (tmp_path/split); asserts both give the same loss at every one of their
    ``steps`` steps and returns (straight, split, the straight run's output)."""
    def run(*args: str, steps: int, stop: int) -> tuple[Path, Path, str]:
        straight, split = tmp_path / "straight", tmp_path / "split"
        code, out, err = cli("train", "--run-dir", str(straight), *args)
        assert code == 0, err
        code, _, err2 = cli("train", "--run-dir", str(split), "--stop-after", str(stop), *args)
        assert code == 0, err2
        code, _, err2 = cli("train", "--resume", str(split), "--progress", "none")
        assert code == 0, err2
        a, b = _step_losses(straight / "metrics.jsonl"), _step_losses(split / "metrics.jsonl")
        assert sorted(a) == sorted(b) == list(range(1, steps + 1))
        assert max(abs(a[s] - b[s]) for s in a) <= 1e-6, (a, b)
        return straight, split, out + err

    return run
