"""A run moved elsewhere whose --log-file others share stayed where it was: `tail`, `compare` and
the console's run view still find its own lines there (the file names it by where it trained);
a log file gone from where the status names it is said in one line."""

from __future__ import annotations

import shutil

import pytest

from aios_tui.metrics.runstate import RunTracker



@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """Two tiny runs that shared one --log-file (trained once): s1 4 steps, then s2 3 steps."""
    from aios_tui.cli import main

    where = tmp_path_factory.mktemp("shared")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("XDG_STATE_HOME", str(where / "state"))
        mp.setenv("OMP_NUM_THREADS", "1")
        for name, steps in (("s1", 4), ("s2", 3)):
            code = main(["train", "--preset", "efficient", "--steps", str(steps), "--run-dir",
                         str(where / "runs" / name), "--log-file", str(where / "logs" / "shared.jsonl"),
                         "--progress", "none"])
            assert code == 0
    return where


@pytest.fixture
def moved(trained, tmp_path):
    """s1 moved to an archive; the shared log left where it was."""
    runs = shutil.copytree(trained / "runs", tmp_path / "runs", symlinks=True)
    shutil.copytree(trained / "logs", tmp_path / "logs")
    for run in ("s1", "s2"):  # each status names this copy of the log (the log and configs name the runs there)
        f = runs / run / "status.json"
        f.write_text(f.read_text().replace(str(trained / "logs"), str(tmp_path / "logs")))
    archive = tmp_path / "archive"
    archive.mkdir()
    return shutil.move(runs / "s1", archive / "s1")


def steps_in(out: str) -> list[int]:
    return [int(line.split()[1].split("/")[0]) for line in out.splitlines() if line.startswith("step ")]


def _read(run):
    tracker = RunTracker(run)
    tracker.poll()
    while tracker.behind:
        tracker.poll()
    return tracker.view()


def test_tail_of_a_moved_run_shows_its_own_lines_in_the_log_it_left(cli, moved):
    code, out, err = cli("tail", str(moved))
    assert code == 0, err
    assert out.splitlines()[0].startswith("run s1 ") and steps_in(out) == [1, 2, 3, 4]


def test_compare_and_the_run_view_read_a_moved_run_s_figures(cli, moved, tmp_path, trained):
    import json

    code, out, err = cli("compare", str(moved), str(tmp_path / "runs" / "s2"), "--json")
    assert code == 0, err
    got = {r["name"]: r for r in json.loads(out)}
    assert got["s1"]["final_loss"] is not None and got["s1"]["trainable_pct"] is not None
    assert got["s2"]["final_loss"] is not None
    view = _read(moved)
    assert [p[0] for p in view.loss] == [1, 2, 3, 4] and view.header["run_dir"] == str(trained / "runs" / "s1")
    assert view.log_gone is None


def test_a_log_file_gone_from_where_it_was_is_said_in_one_line(cli, moved, tmp_path):
    (tmp_path / "logs" / "shared.jsonl").unlink()
    gone = (f"run 's1': its metrics file {tmp_path / 'logs' / 'shared.jsonl'} (named in its status.json) "
            "is gone (moved or deleted?)")
    code, out, err = cli("tail", str(moved))
    assert (code, out, err) == (2, "", f"aios-tui: error: {gone}\n")
    code, out, err = cli("compare", str(moved), str(tmp_path / "runs" / "s2"))
    assert code == 2 and err.splitlines()[0] == f"aios-tui: error: {gone}"
    assert _read(moved).log_gone == gone


def test_a_custom_named_log_inside_the_run_moves_with_it(cli, tmp_path, monkeypatch):
    """--log-file inside the run's own directory travels with the run: after a move its status
    still names the old place, and the file beside it is the one meant."""
    from aios_tui.cli import main

    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    run = tmp_path / "runs" / "own"
    assert main(["train", "--preset", "efficient", "--steps", "3", "--run-dir", str(run),
                 "--log-file", str(run / "train.jsonl"), "--progress", "none"]) == 0
    moved = shutil.move(run, tmp_path / "archive")
    code, out, err = cli("tail", str(moved))
    assert code == 0, err
    assert steps_in(out) == [1, 2, 3]
    view = _read(moved)
    assert [p[0] for p in view.loss] == [1, 2, 3] and view.log_gone is None
