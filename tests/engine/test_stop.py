"""Stopping cleanly: signals, the STOP and CHECKPOINT files, and resuming afterwards."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from aios_tui.errors import UserError


def _wait_for_steps(metrics, n: int, proc, timeout: float = 240) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"the run exited early: {proc.stdout.read()}")
        if metrics.exists():
            steps = [json.loads(l).get("step") for l in metrics.read_text().splitlines()
                     if l.strip() and "loss" in l and '"event"' not in l]
            if len(steps) >= n:
                return steps[-1]
        time.sleep(0.2)
    raise AssertionError("the run did not log in time")


@pytest.mark.slow
def test_sigterm_saves_a_loadable_checkpoint_and_resume_continues(small_model_dir, text_file, tmp_path, cli,
                                                                  records_of, losses_of):
    from aios_tui.engine.export import load_trained

    run = tmp_path / "run"
    proc = subprocess.Popen(
        [sys.executable, "-m", "aios_tui", "train", "--model", str(small_model_dir), "--dataset-file", str(text_file),
         "--use-peft", "--lora-target-modules", "q_proj,v_proj", "--steps", "100000", "--save-every", "0",
         "--max-seq-len", "32", "--batch-size", "2", "--run-dir", str(run), "--progress", "lines"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        seen = _wait_for_steps(run / "metrics.jsonl", 3, proc)
        proc.send_signal(signal.SIGHUP)  # a hang-up must not end a run
        _wait_for_steps(run / "metrics.jsonl", seen + 2, proc)
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, out
    status = json.loads((run / "status.json").read_text())
    stopped_at = status["step"]
    assert status["state"] == "stopped" and status["checkpoint"].endswith(f"step-{stopped_at:06d}")
    stopped = [r for r in records_of(run / "metrics.jsonl") if r.get("event") == "stopped"]
    assert stopped == [stopped[0]] and stopped[0]["reason"] == "SIGTERM" and stopped[0]["step"] == stopped_at
    assert f"stopped at step {stopped_at}/100000 (SIGTERM)" in out and "--resume" in out
    assert max(losses_of(run / "metrics.jsonl")) == stopped_at  # the last step was logged
    trained = load_trained(run)
    assert trained.meta["step"] == stopped_at

    code, out, err = cli("train", "--resume", str(run), "--steps", str(stopped_at + 2), "--progress", "none")
    assert code == 0, err
    losses = losses_of(run / "metrics.jsonl")
    assert sorted(losses)[-3:] == [stopped_at, stopped_at + 1, stopped_at + 2]
    assert json.loads((run / "status.json").read_text())["state"] == "finished"


@pytest.mark.slow
def test_stop_file_stops_after_saving(make_cfg, tmp_path, records_of):
    from aios_tui.engine.train import run_training

    run = tmp_path / "run"

    def touch_stop(step, record):
        if step == 3:
            (run / "STOP").touch()

    result = run_training(make_cfg(steps=10, use_peft=True), run, progress="none", on_step=touch_stop)
    # A step's metrics are read once the next step is queued, so the file appears during step 4.
    assert (result.state, result.step, result.exit_code) == ("stopped", 4, 0)
    assert result.checkpoint.name == "step-000004" and (result.checkpoint / "COMPLETE").exists()
    assert not (run / "STOP").exists()  # honoured, so a resume does not stop at once
    assert records_of(run / "metrics.jsonl")[-1]["event"] == "stopped"
    assert records_of(run / "metrics.jsonl")[-1]["reason"] == "STOP file"
    resumed = run_training(None, run, resume=True, progress="none")
    assert (resumed.state, resumed.step) == ("finished", 10)


@pytest.mark.slow
def test_checkpoint_file_saves_and_training_goes_on(make_cfg, tmp_path):
    from aios_tui.engine.train import run_training

    run = tmp_path / "run"

    def ask(step, record):
        if step == 2:
            (run / "CHECKPOINT").touch()

    result = run_training(make_cfg(steps=5, use_peft=True, keep_last=5), run, progress="none", on_step=ask)
    assert result.state == "finished" and result.step == 5
    # asked while step 3 runs (metrics are read a step late): saved after step 3
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["step-000003", "step-000005"]
    assert not (run / "CHECKPOINT").exists()


@pytest.mark.slow
def test_ctrl_c_stops_with_status_130_after_saving(make_cfg, tmp_path):
    from aios_tui.engine.train import run_training

    run = tmp_path / "run"

    def interrupt(step, record):
        if step == 2:
            os.kill(os.getpid(), signal.SIGINT)

    before = signal.getsignal(signal.SIGINT)
    result = run_training(make_cfg(steps=6, use_peft=True), run, progress="none", on_step=interrupt)
    assert (result.state, result.step, result.exit_code) == ("stopped", 3, 130)
    assert (run / "checkpoints" / "step-000003" / "COMPLETE").exists()
    assert signal.getsignal(signal.SIGINT) is before  # handlers are put back


def test_checkpoints_are_written_whole(tmp_path):
    """A half-written checkpoint (no COMPLETE) is never listed, and the next save replaces it."""
    import torch

    from aios_tui.config import resolve
    from aios_tui.engine.checkpoint import load_trainer_state, prune, save_checkpoint
    from aios_tui.metrics.rundir import RunDir

    run = RunDir(tmp_path)
    model = torch.nn.Linear(2, 2)
    (run.checkpoints / "step-000001").mkdir(parents=True)  # left by a crash
    assert run.list_checkpoints() == []
    cfg = resolve()
    for step in (1, 2, 3):
        save_checkpoint(run, step, model=model, cfg=cfg, trainer_state={"version": 1, "step": step}, meta={})
    assert [p.name for p in run.list_checkpoints()] == ["step-000001", "step-000002", "step-000003"]
    assert load_trainer_state(run.latest_checkpoint())["step"] == 3
    (run.checkpoints / ".tmp-step-000009-999999999").mkdir()
    prune(run, 2)
    assert sorted(p.name for p in run.checkpoints.iterdir()) == ["step-000002", "step-000003"]
    torch.save({"version": 1, "payload": Payload()}, run.latest_checkpoint() / "trainer_state.pt")
    with pytest.raises(UserError, match="holds objects other than tensors and plain values"):
        load_trainer_state(run.latest_checkpoint())  # arbitrary objects are never unpickled
    assert not Payload.loaded


class Payload:
    """An object whose unpickling would run code."""

    loaded = False

    def __reduce__(self):
        return (Payload._mark, ())

    @staticmethod
    def _mark():
        Payload.loaded = True
        return Payload()


@pytest.mark.slow
def test_a_stop_asked_while_a_resume_loads_is_honoured_and_an_old_one_is_not(make_cfg, tmp_path, monkeypatch):
    from aios_tui.engine.train import run_training
    from aios_tui.metrics.launch import LAUNCHED_AT_ENV

    run = tmp_path / "run"
    first = run_training(make_cfg(steps=8, use_peft=True), run, progress="none", stop_after=2)
    assert (first.state, first.step) == ("stopped", 2)

    # Launched a minute ago; STOP touched since (as a console's `s` during start-up): honoured.
    monkeypatch.setenv(LAUNCHED_AT_ENV, repr(time.time() - 60))
    (run / "STOP").touch()
    resumed = run_training(None, run, resume=True, progress="none")
    assert (resumed.state, resumed.step) == ("stopped", 2)  # before any new step
    assert not (run / "STOP").exists()

    # A STOP and a CHECKPOINT left from before this launch: cleared, and the run goes on.
    for name in ("STOP", "CHECKPOINT"):
        (run / name).touch()
        os.utime(run / name, (time.time() - 120, time.time() - 120))
    again = run_training(None, run, resume=True, progress="none")
    assert (again.state, again.step) == ("finished", 8)
    assert not (run / "STOP").exists() and not (run / "CHECKPOINT").exists()


def test_ctrl_c_while_the_model_is_prepared_leaves_no_half_run(make_cfg, tmp_path, monkeypatch, capsys):
    """Between the run directory and the loop (saving the base, wrapping the adapter) Ctrl-C has
    no step to stop at: a new run leaves nothing and its name stays free; a resume leaves its run
    stopped at its checkpoint, ready to resume again."""
    from aios_tui.engine import train
    from aios_tui.metrics.rundir import RunDir

    real_apply_peft = train.apply_peft

    def ctrl_c_then_apply(*args, **kwargs):
        os.kill(os.getpid(), signal.SIGINT)
        return real_apply_peft(*args, **kwargs)

    run = tmp_path / "run"
    monkeypatch.setattr(train, "apply_peft", ctrl_c_then_apply)
    with pytest.raises(KeyboardInterrupt):
        train.run_training(make_cfg(steps=4, use_peft=True), run, progress="lines")
    assert not run.exists()
    assert "interrupted before the first step: nothing was trained" in capsys.readouterr().out

    monkeypatch.setattr(train, "apply_peft", real_apply_peft)
    assert train.run_training(make_cfg(steps=4, use_peft=True), run, progress="none", stop_after=2).step == 2
    monkeypatch.setattr(train, "apply_peft", ctrl_c_then_apply)
    with pytest.raises(KeyboardInterrupt):
        train.run_training(None, run, resume=True, progress="lines")
    assert f"continue with `aios-tui train --resume {run}`" in capsys.readouterr().out
    status = RunDir(run).load_status()
    assert (status.state(), status.fields["step"], status.fields["error"]) == ("stopped", 2, None)
    monkeypatch.setattr(train, "apply_peft", real_apply_peft)
    assert train.run_training(None, run, resume=True, progress="none").state == "finished"


def test_ctrl_c_while_the_model_loads_says_what_is_left(make_cfg, tmp_path, capsys):
    """Loading the model is most of a start's wait: Ctrl-C there says what became of the run,
    as it does once the run directory is made."""
    from aios_tui.engine import train
    from aios_tui.engine.task import CausalLMTask
    from aios_tui.metrics.rundir import RunDir

    class CtrlCWhileLoading(CausalLMTask):
        def build(self, *args, **kwargs):
            os.kill(os.getpid(), signal.SIGINT)
            return super().build(*args, **kwargs)

    run = tmp_path / "run"
    with pytest.raises(KeyboardInterrupt):
        train.run_training(make_cfg(steps=4, use_peft=True), run, task=CtrlCWhileLoading(), progress="lines")
    assert not run.exists()
    assert capsys.readouterr().out == "interrupted before the first step: nothing was trained\n"

    assert train.run_training(make_cfg(steps=4, use_peft=True), run, progress="none", stop_after=2).step == 2
    with pytest.raises(KeyboardInterrupt):
        train.run_training(None, run, resume=True, task=CtrlCWhileLoading(), progress="lines")
    assert capsys.readouterr().out == ("interrupted before training resumed; the run stays stopped at its "
                                       f"checkpoint: continue with `aios-tui train --resume {run}`\n")
    status = RunDir(run).load_status()
    assert (status.state(), status.fields["step"], status.fields["error"]) == ("stopped", 2, None)
