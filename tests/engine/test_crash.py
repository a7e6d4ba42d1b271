"""A run killed at an unlucky moment or out of disk: what is left stays readable and resumable."""

from __future__ import annotations

import fcntl
import json
import os
import resource
import signal
import time

import pytest

from aios_tui.metrics.jsonl import iter_records
from aios_tui.metrics.rundir import RunDir


def test_a_torn_last_metrics_line_does_not_swallow_what_the_resume_writes(make_cfg, tmp_path):
    from aios_tui.engine.train import run_training

    cfg = make_cfg(steps=4)
    run_training(cfg, tmp_path / "r", progress="none", stop_after=2)
    metrics = tmp_path / "r" / "metrics.jsonl"
    with open(metrics, "a") as fh:  # the process died halfway through a line
        fh.write('{"step":3,"loss":4.1,"grad_n')
    run_training(None, tmp_path / "r", resume=True, progress="none")
    recs = list(iter_records(metrics))
    events = [r["event"] for r in recs if "event" in r]
    assert events.index("stopped") < events.index("resumed") < events.index("finished")
    assert [r["step"] for r in recs if "loss" in r and "event" not in r] == [1, 2, 3, 4]


@pytest.fixture
def file_size_limit():
    """Set RLIMIT_FSIZE for this process (Python ignores SIGXFSZ: a write past it fails with EFBIG)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    yield lambda n: resource.setrlimit(resource.RLIMIT_FSIZE, (n, hard))
    resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))


def test_a_full_disk_at_a_checkpoint_fails_in_one_line_and_keeps_the_last_good_one(
        make_cfg, tmp_path, file_size_limit):
    from aios_tui.engine.train import TrainingFailed, run_training

    run = tmp_path / "r"
    cfg = make_cfg(steps=6, save_every=2)
    # after the checkpoint at step 2, no file may grow past 16 KiB: the weights of step 4 cannot be written
    on_step = lambda step, rec: file_size_limit(16 << 10) if step == 3 else None
    with pytest.raises(TrainingFailed) as failed:
        run_training(cfg, run, progress="none", on_step=on_step)
    file_size_limit(resource.RLIM_INFINITY)
    [line] = failed.value.problems
    assert line.startswith(f"checkpoint step-000004 could not be written in {run / 'checkpoints'}: a file grew "
                           "past the size limit")
    assert line.endswith(f"its last good checkpoint is step-000002: make room, then continue with "
                         f"`aios-tui train --resume {run}`")
    status = json.loads((run / "status.json").read_text())
    assert status["state"] == "failed" and status["error"] == line
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["step-000002"]  # no torn leftovers
    result = run_training(None, run, resume=True, progress="none")
    assert result.state == "finished" and result.step == 6


def test_a_full_disk_before_the_first_step_leaves_nothing_and_says_so(cli, text_file, tmp_path,
                                                                     file_size_limit):
    run = tmp_path / "r"
    file_size_limit(16 << 10)  # the config and status fit, the built-in base model does not
    code, out, err = cli("train", "--model", "tiny", "--dataset-file", str(text_file), "--max-seq-len", "32",
                         "--steps", "2", "--run-dir", str(run), "--progress", "none")
    file_size_limit(resource.RLIM_INFINITY)
    assert code == 1
    assert err == (f"aios-tui: error: writing the run's files in {run} failed: a file grew past the size "
                   "limit (ulimit -f, or the filesystem's largest file)\n")
    assert not run.exists()


def test_a_second_resume_while_one_trains_the_run_is_refused(cli, make_cfg, tmp_path):
    from aios_tui.engine.train import run_training

    run = tmp_path / "r"
    run_training(make_cfg(steps=4), run, progress="none", stop_after=2)
    before = (run / "metrics.jsonl").read_bytes()
    # what a first `train --resume` holds while it loads the model, before its status says so
    with open(run / ".engine.lock", "ab") as held:
        fcntl.flock(held.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        code, out, err = cli("train", "--resume", str(run), "--progress", "none")
    assert code == 2
    assert err.splitlines()[0] == ("aios-tui: error: run 'r' is being trained by another process right now "
                                   f"(a resume); stop it first (`aios-tui runs stop {ref(run)}`) or follow it "
                                   f"with `aios-tui tail {ref(run)} --follow`")
    assert (run / "metrics.jsonl").read_bytes() == before
    assert json.loads((run / "status.json").read_text())["state"] == "stopped"


def test_checkpoints_a_kill_cut_short_are_cleared_before_the_next_is_written(make_cfg, tmp_path):
    import os
    import subprocess
    import sys

    from aios_tui.engine.train import run_training

    run = tmp_path / "r"
    run_training(make_cfg(steps=4), run, progress="none", stop_after=1)
    gone = subprocess.Popen([sys.executable, "-c", ""])
    gone.wait()
    # one from a writer that is gone, one whose pid this process was given (as after a reboot)
    for pid in (gone.pid, os.getpid()):
        torn = run / "checkpoints" / f".tmp-step-000009-{pid}"
        torn.mkdir()
        (torn / "trainable.safetensors").write_bytes(b"\0" * 100)
    result = run_training(None, run, resume=True, progress="none", stop_after=1)
    assert result.step == 2
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["step-000001", "step-000002"]


def test_a_stop_left_by_a_start_that_died_does_not_stop_a_new_run_there(make_cfg, tmp_path):
    import os
    import time

    from aios_tui.engine.train import run_training

    run = tmp_path / "r"
    run.mkdir()
    (run / "STOP").touch()  # asked of a detached start killed while it loaded
    os.utime(run / "STOP", (time.time() - 120, time.time() - 120))
    result = run_training(make_cfg(steps=2), run, progress="none")
    assert (result.state, result.step) == ("finished", 2)
    assert not (run / "STOP").exists()


def test_a_checkpoint_half_removed_by_a_kill_is_not_taken_for_a_whole_one(tmp_path, monkeypatch):
    import shutil

    from aios_tui.engine import checkpoint as ckpt
    from aios_tui.metrics.rundir import RunDir

    run = RunDir(tmp_path / "r")
    for step in (1, 2):
        cp = run.checkpoints / ckpt.step_name(step)
        cp.mkdir(parents=True)
        (cp / ckpt.TRAINABLE).write_bytes(b"weights")
        (cp / ckpt.COMPLETE).write_text(f"{step}\n")
    # killed as the removal began: rmtree took the weights, then the process was gone
    monkeypatch.setattr(shutil, "rmtree", lambda path, **kw: (path / ckpt.TRAINABLE).unlink(missing_ok=True))
    ckpt.prune(run, keep_last=1)
    assert [p.name for p in run.list_checkpoints()] == ["step-000002"]


@pytest.mark.slow
def test_a_run_killed_with_sigkill_is_listed_at_the_step_its_metrics_reached(cli, small_model_dir, text_file, tmp_path, monkeypatch):
    monkeypatch.setenv("AIOS_TUI_RUNS", str(tmp_path))
    path = tmp_path / "k"
    code, _, err = cli("train", "--detach", "--model", str(small_model_dir), "--dataset-file", str(text_file),
                       "--use-peft", "--lora-target-modules", "q_proj", "--steps", "100000", "--max-seq-len", "16",
                       "--batch-size", "1", "--log-every", "1", "--save-every", "0", "--run-dir", str(path))
    assert code == 0, err
    run = RunDir(path)
    pid = run.read_status()["pid"]
    deadline = time.monotonic() + 240
    try:
        # freeze it until its status trails its metrics (the status waits a second between writes)
        while True:
            assert time.monotonic() < deadline, (path / "engine.log").read_text()
            os.kill(pid, signal.SIGSTOP)
            steps = [r["step"] for r in iter_records(run.default_metrics) if "event" not in r and "loss" in r]
            status = json.loads(run.status_file.read_text())
            if status.get("state") == "running" and steps and steps[-1] > status["step"]:
                break
            os.kill(pid, signal.SIGCONT)
            time.sleep(0.05)
    finally:
        os.kill(pid, signal.SIGKILL)
    while os.path.exists(f"/proc/{pid}") and open(f"/proc/{pid}/stat").read().split(")")[-1].split()[0] != "Z":
        time.sleep(0.01)
    code, out, _ = cli("runs", "--json")
    row = json.loads(out)[0]
    assert (row["state"], row["step"]) == ("failed", steps[-1])
    code, out, _ = cli("tail", str(path), "-n", "1")
    assert out.splitlines()[-2].split()[1] == f"{steps[-1]}/100000"
    assert out.splitlines()[-1].startswith(f"run failed at step {steps[-1]}: its process (pid {pid})")


def ref(run) -> str:
    """How the refusals name ``run`` (its name where that finds it from here, else its path)."""
    from aios_tui.metrics.rundir import RunDir, command_ref

    return command_ref(RunDir(run))


def _held_by_another(run):
    """The lock as another resume holds it while it loads the model, before its status says so."""
    held = open(run / ".engine.lock", "ab")
    try:
        fcntl.flock(held.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        held.close()
        raise
    return held


def test_a_refused_resume_leaves_the_status_to_the_one_that_trains(cli, make_cfg, tmp_path):
    from aios_tui.engine.train import run_training

    run = tmp_path / "r"
    run_training(make_cfg(steps=4), run, progress="none", stop_after=2)
    # a launcher of this process marked the run starting for its engine, as `--detach` does
    RunDir(run).write_status(state="starting", pid=os.getpid())
    before = (run / "status.json").read_bytes()
    with _held_by_another(run):
        code, _, err = cli("train", "--resume", str(run), "--progress", "none")
    assert code == 2 and "is being trained by another process right now (a resume)" in err
    assert (run / "status.json").read_bytes() == before


def test_of_two_detached_resumes_the_one_that_lost_says_so_and_writes_nothing(cli, make_cfg, tmp_path,
                                                                            monkeypatch):
    import aios_tui.metrics.launch as launch
    from aios_tui.engine.train import run_training

    run = tmp_path / "r"
    run_training(make_cfg(steps=4), run, progress="none", stop_after=2)
    before = (run / "status.json").read_bytes()
    started = []
    monkeypatch.setattr(launch, "start_detached", lambda *a, **kw: started.append(a) or 999999)
    with _held_by_another(run):
        code, out, err = cli("train", "--resume", str(run), "--detach")
    assert (code, out, started) == (2, "", [])
    assert err.splitlines() == [
        "aios-tui: error: run 'r' is being trained by another process right now (a resume); stop it first "
        f"(`aios-tui runs stop {ref(run)}`) or follow it with `aios-tui tail {ref(run)} --follow`"]
    assert (run / "status.json").read_bytes() == before


@pytest.mark.slow
def test_a_detached_resume_trains_under_the_lock_its_launcher_took(cli, make_cfg, tmp_path):
    from aios_tui.engine.train import run_training

    run = tmp_path / "r"
    run_training(make_cfg(steps=4), run, progress="none", stop_after=2)
    code, _, err = cli("train", "--resume", str(run), "--detach")
    assert code == 0, err
    with pytest.raises(OSError):  # the engine holds it from the start, not the launcher that exited
        _held_by_another(run)
    deadline = time.monotonic() + 240
    while RunDir(run).state() in ("starting", "running") and time.monotonic() < deadline:
        time.sleep(0.2)
    status = json.loads((run / "status.json").read_text())
    assert (status["state"], status["step"]) == ("finished", 4), (run / "engine.log").read_text()


def test_the_console_s_resume_is_refused_while_another_holds_the_run(make_cfg, tmp_path, monkeypatch):
    import aios_tui.ui.runctl as runctl
    from aios_tui.engine.train import run_training
    from aios_tui.errors import UserError

    run = tmp_path / "r"
    run_training(make_cfg(steps=4), run, progress="none", stop_after=2)
    before = (run / "status.json").read_bytes()
    started = []
    monkeypatch.setattr(runctl, "start_detached", lambda *a, **kw: started.append(kw) or 999999)
    with _held_by_another(run):
        with pytest.raises(UserError, match=r"being trained by another process right now \(a resume\); "
                                            r"stop it first \(s\)$"):
            runctl.resume_run(RunDir(run))
    assert started == [] and (run / "status.json").read_bytes() == before
    runctl.resume_run(RunDir(run))  # free again: the engine it starts is handed the lock
    assert started and started[0]["pass_fds"] and "AIOS_TUI_RUN_LOCK_FD" in started[0]["env"]
