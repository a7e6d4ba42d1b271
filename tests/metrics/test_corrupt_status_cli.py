"""`aios-tui runs` and `aios-tui tail` over run directories whose status.json is malformed."""

from __future__ import annotations

import json

import pytest

from aios_tui.metrics.rundir import RunDir, status_alive

from runfiles import write_run


@pytest.fixture
def runs(tmp_path, monkeypatch):
    root = tmp_path / "runs"
    monkeypatch.setenv("AIOS_TUI_RUNS", str(root))
    write_run(root, "good", state="finished", steps=20, pid=0)
    for name, content in {"listed": b"[1, 2]", "nothing": b"null", "binary": b"\xff\x00\xfe",
                          "textloss": b'{"state": "stopped", "last_loss": "x", "step": "7"}',
                          "textpid": b'{"state": "running", "pid": "abc", "started_at": "yesterday"}'}.items():
        run = RunDir(root / name)
        run.path.mkdir()
        run.config_toml.write_text("version = 1\n")
        run.status_file.write_bytes(content)
    return root


def test_runs_lists_unreadable_runs_in_their_row(cli, runs):
    code, out, err = cli("runs")
    assert code == 0 and not err
    states = {l.split()[0]: l.split()[1:3] for l in out.splitlines()[1:]}
    assert states["listed"] == ["unreadable", "-"] and states["binary"][0] == "unreadable"
    assert states["textloss"] == ["stopped", "-"]
    assert states["textpid"][0] == "failed" and states["good"][0] == "finished"
    code, out, _ = cli("runs", "--json")
    data = {r["name"]: r for r in json.loads(out)}
    assert data["nothing"]["state"] == "unreadable" and "null" in data["nothing"]["error"]
    assert data["textloss"]["loss"] is None and data["textloss"]["step"] is None


def test_stop_and_tail_on_an_unreadable_run_say_so_in_one_line(cli, runs):
    code, out, err = cli("runs", "stop", "listed")
    assert code == 2 and "unreadable" in err and "Traceback" not in err
    code, out, err = cli("tail", "listed")
    assert code == 0 and "Traceback" not in err
    code, out, err = cli("tail", "textpid", "--follow")
    assert code == 1 and out.strip().splitlines()[-1].startswith("run failed")


def test_status_alive_takes_no_pid_of_the_wrong_type():
    for status in ({"pid": "abc"}, {"pid": True}, {"pid": 10 ** 30}, {"pid": 1.5}, {"pid": -4},
                   {"pid": None}):
        assert status_alive(status) is False, status
    # pid 1 always runs; a start time of the wrong type is no evidence either way
    assert status_alive({"pid": 1, "pid_start": "x"}) is True


def test_a_tracker_says_why_it_cannot_read_a_status(tmp_path):
    from aios_tui.metrics.runstate import RunTracker

    run = write_run(tmp_path, "t", state="stopped", pid=0)
    tracker = RunTracker(run)
    tracker.poll()
    assert tracker.view().state == "stopped" and tracker.view().status_problem is None
    run.status_file.write_bytes(b'{"state": "stopp')
    tracker.poll()
    view = tracker.view()
    assert view.state == "unreadable" and "not valid JSON" in view.status_problem
    assert view.step == 120 and view.loss  # the metrics still tell their part
    run.status_file.write_text(json.dumps({"state": 5, "step": "x", "total_steps": [1], "run_name": 3}))
    tracker.poll()
    view = tracker.view()
    assert view.state == "unknown" and view.status_problem is None
    assert view.name == "t" and view.total_steps == 200  # from the metrics header instead
