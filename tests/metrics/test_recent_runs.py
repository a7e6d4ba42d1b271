"""`aios-tui attach` finds a live run started from another directory (a new SSH shell starts in ~)."""

from __future__ import annotations

import os

import pytest

from aios_tui.config import resolve
from aios_tui.errors import UserError
from aios_tui.metrics.recent import KEPT, recent_file, recent_run_paths, remember
from aios_tui.metrics.rundir import RunDir, prepare_run
from aios_tui.metrics.summary import find_run


def _start(path) -> RunDir:
    run = RunDir(path)
    prepare_run(run, resolve(), pid=os.getpid(), total_steps=10)
    return run


def test_attach_finds_a_live_run_started_elsewhere(cli, tmp_path, monkeypatch):
    monkeypatch.delenv("AIOS_TUI_RUNS")
    project, home = tmp_path / "project", tmp_path / "home"
    home.mkdir()
    monkeypatch.chdir(project.parent)
    older = _start(project / "artifacts" / "runs" / "older")
    newer = _start(project / "artifacts" / "runs" / "newer")
    older.write_status(state="finished")
    monkeypatch.chdir(home)
    assert find_run(None, live_only=True).path == newer.path.resolve()
    newer.write_status(state="stopped")
    code, _, err = cli("attach")
    assert code == 2 and "no run is training under" in err
    _start(project / "artifacts" / "runs" / "again")
    assert find_run(None, live_only=True).name == "again"
    (home / "mine").mkdir()
    with pytest.raises(UserError, match="no run is training"):  # a root named on purpose is the only place
        find_run(None, home / "mine", live_only=True)


def test_the_index_keeps_the_newest_runs_once_each(tmp_path):
    for i in range(2 * KEPT + 5):
        remember(tmp_path / f"r{i % (KEPT + 20)}")
    paths = recent_run_paths()
    assert len(recent_file().read_text().splitlines()) <= 2 * KEPT
    assert len(paths) == len(set(paths)) and paths[0] == (tmp_path / f"r{(2 * KEPT + 4) % (KEPT + 20)}")


def test_an_unwritable_index_never_stops_a_run(tmp_path, monkeypatch):
    (tmp_path / "state").write_text("a file where a directory should be")
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    run = _start(tmp_path / "runs" / "r")
    assert run.state() == "starting" and recent_run_paths() == []
