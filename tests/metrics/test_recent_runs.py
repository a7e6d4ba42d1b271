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
    assert find_run(None).path == newer.path.resolve()
    _start(home / "artifacts" / "runs" / "here").write_status(state="stopped")
    # nothing training anywhere: the run most recently started, from whichever directory
    newer.write_status(state="stopped")
    assert find_run(None).name == "here"
    _start(project / "artifacts" / "runs" / "again").write_status(state="failed")
    assert find_run(None).name == "again"
    _start(project / "artifacts" / "runs" / "older")  # resumed: training again
    assert find_run(None).name == "older"
    (home / "mine").mkdir()
    with pytest.raises(UserError, match="no runs under"):  # a root named on purpose is the only place
        find_run(None, home / "mine")


def test_every_command_finds_a_run_by_name_from_another_directory(cli, tmp_path, monkeypatch):
    monkeypatch.delenv("AIOS_TUI_RUNS")
    project, home = tmp_path / "project", tmp_path / "home"
    home.mkdir()
    monkeypatch.chdir(project.parent)
    run = _start(project / "artifacts" / "runs" / "longrun")
    monkeypatch.chdir(home)
    assert find_run("longrun").path == run.path.resolve()
    code, out, err = cli("tail", "longrun", "-n", "0")
    assert code == 0 and out.startswith("run longrun"), err
    code, _, err = cli("export", "longrun")  # found: what stops it is that nothing is saved yet
    assert code == 2 and "no complete checkpoint" in err and str(run.path.resolve()) in err
    code, out, err = cli("runs", "stop", "longrun")
    assert code == 0 and run.stop_file.exists(), err
    for argv in (("train", "--resume", "longrun"), ("generate", "longrun", "--prompt", "x")):
        code, _, err = cli(*argv)
        assert code == 2 and str(run.path.resolve()) in err and "no such" not in err, err


def test_a_name_two_directories_share_is_refused_with_both(cli, tmp_path, monkeypatch):
    monkeypatch.delenv("AIOS_TUI_RUNS")
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.chdir(tmp_path)
    a = _start(tmp_path / "a" / "artifacts" / "runs" / "same")
    b = _start(tmp_path / "b" / "artifacts" / "runs" / "same")
    monkeypatch.chdir(home)
    for argv in (("runs", "stop", "same"), ("tail", "same"), ("attach", "same"), ("export", "same")):
        code, out, err = cli(*argv)
        assert code == 2 and out == "", argv
        assert err == (f"aios-tui: error: same: 2 runs started from different directories have this name "
                       f"({b.path.resolve()}, {a.path.resolve()}); give the directory of the one you mean\n"), argv
    assert not a.stop_file.exists() and not b.stop_file.exists()
    monkeypatch.chdir(tmp_path / "a")  # the runs root here has it: that one is meant
    assert find_run("same").path.resolve() == a.path.resolve()


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
