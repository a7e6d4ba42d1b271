"""A run killed without saying so (kill -9, the OOM killer): status.json, written at most once a
second, trails the metrics; every view shows the step the metrics reached."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from aios_tui.metrics.rundir import RunDir
from aios_tui.metrics.runstate import RunTracker

from runfiles import step_record, write_run


def _gone_pid() -> int:
    gone = subprocess.Popen([sys.executable, "-c", ""])
    gone.wait()  # a pid no process has now, as after kill -9
    return gone.pid


def _status_behind(run: RunDir, step: int, **fields) -> None:
    """status.json as the engine last wrote it: at ``step``, before the lines after it."""
    status = json.loads(run.status_file.read_text())
    status.update(step=step, last_loss=step_record(step)["loss"], **fields)
    run.status_file.write_text(json.dumps(status))


def _append(run: RunDir, *records: dict) -> None:
    with open(run.default_metrics, "a") as fh:
        fh.writelines(json.dumps(r) + "\n" for r in records)


@pytest.fixture
def killed(tmp_path, monkeypatch):
    root = tmp_path / "runs"
    monkeypatch.setenv("AIOS_TUI_RUNS", str(root))
    run = write_run(root, "killed", steps=6, total=12, pid=_gone_pid())
    _status_behind(run, 4)
    return run


def test_runs_and_runs_json_show_the_step_the_metrics_reached(cli, killed):
    code, out, err = cli("runs")
    assert code == 0, err
    assert out.splitlines()[1].split()[:4] == ["killed", "failed", "6/12", f"{step_record(6)['loss']:.4f}"]
    code, out, err = cli("runs", "--json")
    row = json.loads(out)[0]
    assert (row["state"], row["step"], row["loss"]) == ("failed", 6, step_record(6)["loss"])


def test_tail_says_where_it_died(cli, killed):
    code, out, err = cli("tail", str(killed.path), "-n", "1")
    assert code == 0, err
    assert out.splitlines()[-1].startswith("run failed at step 6: its process")


def test_the_run_view_catches_up_when_the_process_dies_while_watched(tmp_path):
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        run = write_run(tmp_path, "r", steps=6, total=12, pid=sleeper.pid)
        _status_behind(run, 4)
        t = RunTracker(run)
        t.poll()
        assert t.view().state == "running" and t.view().status["step"] == 4  # alive: it catches up itself
        sleeper.kill()
        sleeper.wait()
        assert t.poll()
        v = t.view()
        assert v.state == "failed"
        assert (v.step, v.status["step"], v.status["last_loss"]) == (6, 6, step_record(6)["loss"])
    finally:
        sleeper.kill()
        sleeper.wait()


def test_a_resume_killed_before_its_first_step_stays_at_its_checkpoint(cli, tmp_path, monkeypatch):
    monkeypatch.setenv("AIOS_TUI_RUNS", str(tmp_path))
    pid = _gone_pid()
    run = write_run(tmp_path, "r", steps=6, total=12, pid=pid)
    _append(run, {"event": "resumed", "step": 4, "total_steps": 12, "pid": pid})
    _status_behind(run, 4)
    code, out, _ = cli("runs", "--json")
    assert json.loads(out)[0]["step"] == 4


def test_lines_another_process_wrote_after_it_are_not_its_own(cli, tmp_path, monkeypatch):
    # a --log-file a later run shares: its lines follow the dead run's
    monkeypatch.setenv("AIOS_TUI_RUNS", str(tmp_path))
    pid = _gone_pid()
    run = write_run(tmp_path, "r", steps=6, total=12, pid=pid)
    _status_behind(run, 4)
    _append(run, {"event": "started", "step": 0, "pid": pid + 1}, *(step_record(s) for s in range(1, 10)))
    code, out, _ = cli("runs", "--json")
    assert json.loads(out)[0]["step"] == 4


def test_a_live_runs_status_is_left_as_it_was_written(tmp_path):
    run = write_run(tmp_path, "r", steps=6, total=12)  # this process: alive
    _status_behind(run, 4)
    assert run.read_status()["step"] == 4 and run.state() == "running"
