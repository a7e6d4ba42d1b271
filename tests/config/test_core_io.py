"""Atomic writes, run directories and the metrics JSONL reader."""

from __future__ import annotations

import json
import os

from aios_tui.atomic import atomic_write_text
from aios_tui.metrics.jsonl import JsonlLogger, read_from, read_header, tail_records
from aios_tui.metrics.rundir import RunDir, list_runs, process_start


def test_atomic_write_leaves_no_temp_and_keeps_old_on_failure(tmp_path):
    target = tmp_path / "a" / "status.json"
    atomic_write_text(target, "one")
    assert target.read_text() == "one"

    class Boom(str):
        def encode(self, *a, **k):
            raise RuntimeError("disk full")

    try:
        atomic_write_text(target, Boom("two"))
    except RuntimeError:
        pass
    assert target.read_text() == "one"
    assert os.listdir(target.parent) == ["status.json"]


def test_reader_skips_partial_last_line_and_resumes(tmp_path):
    path = tmp_path / "metrics.jsonl"
    with JsonlLogger(path) as log:
        log.write({"peft": "enabled"})
        log.log(1, {"loss": 2.5, "nan": float("nan")})
    with open(path, "a") as fh:
        fh.write('{"step": 2, "lo')
    records, offset = read_from(path)
    assert [r.get("step") for r in records] == [None, 1]
    assert records[1]["nan"] is None
    with open(path, "a") as fh:
        fh.write('ss": 2.0}\n')
    more, offset2 = read_from(path, offset)
    assert more == [{"step": 2, "loss": 2.0}] and offset2 == path.stat().st_size
    assert read_header(path)["peft"] == "enabled"


def test_tail_records_reads_only_the_end(tmp_path):
    path = tmp_path / "m.jsonl"
    with open(path, "w") as fh:
        for i in range(20000):
            fh.write(json.dumps({"step": i, "loss": 1.0}) + "\n")
        fh.write('{"step": 20000')  # partial
    records, end = tail_records(path, 5, chunk=256)
    assert [r["step"] for r in records] == [19995, 19996, 19997, 19998, 19999]
    assert end == path.stat().st_size - len('{"step": 20000')


def test_rundir_status_and_dead_pid(tmp_path):
    run = RunDir(tmp_path / "runs" / "r1")
    run.write_status(state="running", pid=2 ** 22 + 12345, step=3)
    assert run.read_status()["step"] == 3 and "heartbeat" in run.read_status()
    assert run.state() == "failed"  # the pid is not alive
    run.write_status(state="running", pid=os.getpid())
    assert run.state() == "running"
    assert run.read_status()["pid_start"] == process_start(os.getpid()) is not None
    # the same pid, given to a new process after the run died: its start time gives it away
    status = run.read_status()
    run.write_status(pid_start=status["pid_start"] - 1)
    assert run.state() == "failed"
    run.write_status(pid=os.getpid())  # a pid written again gets its start time again
    assert run.state() == "running"
    assert [r.name for r in list_runs(tmp_path / "runs")] == ["r1"]
    (run.checkpoints / "step-000002").mkdir(parents=True)
    assert run.latest_checkpoint() is None  # not COMPLETE
    (run.checkpoints / "step-000002" / "COMPLETE").touch()
    assert run.latest_checkpoint().name == "step-000002"



def test_a_pid_of_another_user_is_still_checked_against_its_start_time(monkeypatch):
    import errno

    from aios_tui.metrics import rundir

    def kill(pid, sig):
        raise PermissionError(errno.EPERM, "Operation not permitted")

    monkeypatch.setattr(rundir.os, "kill", kill)
    monkeypatch.setattr(rundir, "process_start", lambda pid: 1000)
    assert rundir.pid_alive(4242, start=1000) is True   # running, as someone else
    assert rundir.pid_alive(4242, start=999) is False   # someone else's new process, same pid


def test_runs_keep_their_order_and_begin_time_through_heartbeats_and_resumes(tmp_path):
    from aios_tui.config import resolve
    from aios_tui.metrics.rundir import prepare_run

    cfg = resolve()
    first, second = RunDir(tmp_path / "runs" / "first"), RunDir(tmp_path / "runs" / "second")
    prepare_run(first, cfg, pid=os.getpid(), total_steps=10)
    first.write_status(started_at=1000.0)
    prepare_run(second, cfg, pid=os.getpid(), total_steps=10)
    second.write_status(started_at=2000.0)
    order = [r.name for r in list_runs(tmp_path / "runs")]
    first.write_status(step=5)  # a heartbeat of the older run
    assert [r.name for r in list_runs(tmp_path / "runs")] == order == ["second", "first"]
    prepare_run(first, cfg, pid=os.getpid(), total_steps=20, write_config=False)  # a resume
    assert first.read_status()["started_at"] == 1000.0 and first.read_status()["total_steps"] == 20
    assert [r.name for r in list_runs(tmp_path / "runs")] == order
