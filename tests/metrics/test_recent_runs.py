"""`aios-tui attach` finds a live run started from another directory (a new SSH shell starts in ~)."""

from __future__ import annotations

import json
import os
import shutil

import pytest

from aios_tui.config import resolve
from aios_tui.errors import UserError
from aios_tui.metrics.recent import KEPT, recent_file, recent_run_paths, remember
from aios_tui.metrics.rundir import RunDir, prepare_run
from aios_tui.metrics.summary import find_run

from runfiles import T0, write_run


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


@pytest.fixture
def two_places(tmp_path, monkeypatch):
    """A runs root here with run `here`; runs `a` and `b` under another directory's root (`b`
    begun later), and `gone`, started there and deleted since; all noted in recent-runs."""
    root, other = tmp_path / "runs", tmp_path / "proj" / "artifacts" / "runs"
    for where, name, begun in ((root, "here", 3), (other, "a", 1), (other, "b", 2), (other, "gone", 4)):
        write_run(where, name, state="finished", pid=0).write_status(started_at=T0 + begun)
        remember(where / name)
    shutil.rmtree(other / "gone")
    remember(root / "." / "here")  # the same run by another spelling: still listed once
    return root, other


def test_runs_lists_the_runs_started_elsewhere_under_their_directory(cli, two_places):
    root, other = two_places
    code, out, err = cli("runs")
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0].split()[0] == "NAME" and lines[1].split()[:2] == ["here", "finished"]
    assert lines[2:] == ["", f"in {other}:", lines[4], lines[5]]
    assert [l.split()[0] for l in lines[4:]] == ["b", "a"]
    assert lines[1].index("finished") == lines[4].index("finished")  # one table, aligned


def test_runs_json_marks_the_runs_started_elsewhere(cli, two_places):
    root, other = two_places
    code, out, _ = cli("runs", "--json")
    data = json.loads(out)
    assert [(r["name"], r["elsewhere"]) for r in data] == [("here", False), ("b", True), ("a", True)]
    assert data[1]["path"] == str(other / "b") and data[1]["state"] == "finished"


def test_runs_with_a_root_lists_only_that_root(cli, two_places, tmp_path):
    root, other = two_places
    code, out, _ = cli("runs", "--root", str(other))
    assert [l.split()[0] for l in out.splitlines()] == ["NAME", "b", "a"]
    code, out, _ = cli("runs", "--root", str(root), "--json")
    assert [(r["name"], r["elsewhere"]) for r in json.loads(out)] == [("here", False)]
    empty = tmp_path / "empty"
    empty.mkdir()
    assert cli("runs", "--root", str(empty)) == (0, f"no runs under {empty}\n", "")


def test_runs_with_none_under_the_root_says_so_and_lists_the_others(cli, two_places, tmp_path, monkeypatch):
    root, other = two_places
    monkeypatch.setenv("AIOS_TUI_RUNS", str(tmp_path / "not-yet"))
    code, out, _ = cli("runs")
    lines = out.splitlines()
    assert lines[0] == f"no runs under {tmp_path / 'not-yet'}; runs started from other directories:"
    # `here` is now elsewhere too, and begun last: its directory comes first
    assert lines[1].split()[0] == "NAME" and lines[2] == f"in {root}:"
    assert lines[3].split()[0] == "here" and lines[4:6] == ["", f"in {other}:"]
    assert [l.split()[0] for l in lines[6:]] == ["b", "a"]


def test_a_hand_edited_index_lists_only_real_runs(cli, two_places, tmp_path):
    root, other = two_places
    with open(recent_file(), "a") as fh:
        fh.write("relative/run\n\n/no/such/run\n" + f"{tmp_path}\n")  # tmp_path: a directory, no run
    code, out, _ = cli("runs", "--json")
    assert code == 0 and [r["name"] for r in json.loads(out)] == ["here", "b", "a"]


def test_a_run_under_the_root_is_listed_once_however_the_root_is_spelt(cli, two_places, tmp_path, monkeypatch):
    root, _ = two_places
    (tmp_path / "link").symlink_to(root)
    monkeypatch.chdir(tmp_path)
    for spelt in (str(tmp_path / "link"), "runs", "link/../runs"):
        monkeypatch.setenv("AIOS_TUI_RUNS", spelt)
        code, out, _ = cli("runs", "--json")
        assert [(r["name"], r["elsewhere"]) for r in json.loads(out)] == [
            ("here", False), ("b", True), ("a", True)], spelt


def test_a_remembered_run_this_user_can_no_longer_look_into_is_passed_over(cli, two_places, monkeypatch):
    # root reads through any permission; a directory a user lost access to raises on is_dir
    from pathlib import Path

    root, other = two_places
    is_dir = Path.is_dir

    def no_entry(self):
        if self == other / "a" or other / "a" in self.parents:
            raise PermissionError(13, "Permission denied", str(self))
        return is_dir(self)

    monkeypatch.setattr(Path, "is_dir", no_entry)
    code, out, err = cli("runs")
    assert code == 0, err
    assert [l.split()[0] for l in out.splitlines() if l.strip()][1:] == ["here", "in", "b"]
    code, _, err = cli("tail", "a")
    assert code == 2 and err.count("\n") == 1 and "a: no such" in err
