"""Exact resume: 2N steps straight and N + resume + N give the same per-step losses."""

from __future__ import annotations

import json

import pytest
import torch


def _flags(model_dir, text_file, **extra) -> list[str]:
    flags = {"--model": str(model_dir), "--dataset-file": str(text_file), "--max-seq-len": "32",
             "--batch-size": "2", "--grad-accum": "2", "--warmup-steps": "2", "--eval-every": "3",
             "--save-every": "5", "--seed": "3", "--device": "cpu", "--lora-dropout": "0.1",
             "--lr": "1e-2", "--lora-r": "4", "--lora-target-modules": "q_proj,v_proj,gate_proj",
             "--progress": "none", **extra}
    return [x for kv in flags.items() for x in kv] + ["--use-peft"]


@pytest.mark.slow
def test_lora_resume_from_the_cli_matches_a_straight_run(cli, small_model_dir, text_file, tmp_path, losses_of,
                                                          records_of):
    straight, split = tmp_path / "straight", tmp_path / "split"
    code, _, err = cli("train", "--steps", "16", "--run-dir", str(straight), *_flags(small_model_dir, text_file))
    assert code == 0, err
    code, out, err = cli("train", "--steps", "16", "--stop-after", "8", "--run-dir", str(split),
                         *_flags(small_model_dir, text_file))
    assert code == 0, err
    status = json.loads((split / "status.json").read_text())
    assert status["state"] == "stopped" and status["step"] == 8
    assert status["checkpoint"].endswith("step-000008")
    code, out, err = cli("train", "--resume", str(split), "--progress", "none")
    assert code == 0, err
    a, b = losses_of(straight / "metrics.jsonl"), losses_of(split / "metrics.jsonl")
    assert sorted(a) == sorted(b) == list(range(1, 17))
    assert max(abs(a[s] - b[s]) for s in a) <= 1e-6
    evals = lambda p: {r["step"]: r["eval_loss"] for r in records_of(p) if "eval_loss" in r}
    assert evals(straight / "metrics.jsonl") == pytest.approx(evals(split / "metrics.jsonl"), abs=1e-6)
    events = [r["event"] for r in records_of(split / "metrics.jsonl") if "event" in r]
    assert events.count("stopped") == 1 and events.count("resumed") == 1 and events[-1] == "finished"
    # Checkpoints every 5 steps plus the stop (8) and the end; the last three are kept.
    assert [p.name for p in sorted((split / "checkpoints").iterdir())] == ["step-000010", "step-000015",
                                                                           "step-000016"]


@pytest.mark.slow
@pytest.mark.parametrize("split_at", [7, 13])  # in AdaLoRA's budgeting phase, then in its final phase
def test_adalora_resume_restores_the_rank_allocator(split_at, make_cfg, tmp_path, losses_of):
    from aios_tui.engine.train import run_training

    cfg = make_cfg(use_peft=True, peft_method="adalora", lora_r=2, lora_target_modules="q_proj,v_proj,down_proj",
                   steps=16, batch_size=2, grad_accum=2, lr=1e-2, lora_dropout=0.1, adalora_tinit=2,
                   adalora_tfinal=4, adalora_delta_t=2, eval_every=4, save_every=0)
    run_training(cfg, tmp_path / "a", progress="none")
    first = run_training(cfg, tmp_path / "b", progress="none", stop_after=split_at)
    state = torch.load(first.checkpoint / "trainer_state.pt", weights_only=True)
    if split_at < 12:
        assert state["adalora"]["exp_avg_ipt"]  # importance scores gathered so far
    else:
        assert state["adalora"]["rank_pattern"]  # the final ranks, fixed at step 12
    run_training(None, tmp_path / "b", progress="none", resume=True)
    a, b = losses_of(tmp_path / "a" / "metrics.jsonl"), losses_of(tmp_path / "b" / "metrics.jsonl")
    assert sorted(a) == sorted(b) == list(range(1, 17))
    assert max(abs(a[s] - b[s]) for s in a) <= 1e-6


@pytest.mark.slow
def test_resume_policy_at_the_cli(cli, small_model_dir, text_file, tmp_path, records_of):
    run = tmp_path / "run"
    code, _, err = cli("train", "--steps", "6", "--stop-after", "3", "--run-dir", str(run),
                       *_flags(small_model_dir, text_file, **{"--save-every": "0"}))
    assert code == 0, err
    code, _, err = cli("train", "--resume", str(run), "--lora-r", "8", "--batch-size", "4")
    assert code == 2
    assert "peft.lora_r: cannot change on resume (4 -> 8)" in err and "train.batch_size" in err
    code, _, err = cli("train", "--resume", str(run), "--preset", "efficient")
    assert code == 2 and "--preset cannot be combined with --resume" in err
    code, _, err = cli("train", "--resume", str(run), "--steps", "8", "--lr", "0.005", "--progress", "none")
    assert code == 0, err
    resumed = [r for r in records_of(run / "metrics.jsonl") if r.get("event") == "resumed"]
    assert resumed[0]["step"] == 3 and resumed[0]["changes"] == ["steps: 6 -> 8", "lr: 0.01 -> 0.005"]
    code, out, _ = cli("tail", str(run))  # says what changed, as the console's run view does
    assert code == 0 and "== resumed  step 3  changed=steps: 6 -> 8; lr: 0.01 -> 0.005  " in out
    status = json.loads((run / "status.json").read_text())
    assert status["state"] == "finished" and status["step"] == 8 and status["total_steps"] == 8
    code, _, err = cli("train", "--resume", str(run))
    assert code == 2 and "has done all 8 of its steps" in err and "--steps (more than 8)" in err
    code, _, err = cli("train", "--resume", str(run), "--steps", "5")
    assert code == 2 and "already at step 8, so --steps 5 leaves nothing to train" in err
    # a wrong value and a refused change are reported together
    code, _, err = cli("train", "--resume", str(run), "--lora-r", "8", "--lr", "-1")
    assert code == 2 and "train.lr" in err and "peft.lora_r: cannot change on resume" in err
    # a resume continues the run it names, in place
    before = sorted(p.name for p in tmp_path.iterdir())
    for flags in (["--run-name", "other"], ["--run-dir", str(tmp_path / "elsewhere")]):
        code, _, err = cli("train", "--resume", str(run), "--steps", "10", *flags)
        assert code == 2 and flags[0] in err and "Traceback" not in err
    assert sorted(p.name for p in tmp_path.iterdir()) == before
    code, _, err = cli("train", "--resume", str(run), "--steps", "10", "--run-dir", str(run), "--check")
    assert code == 0, err
    not_a_run = tmp_path / "plain"
    not_a_run.mkdir()
    code, _, err = cli("train", "--resume", str(not_a_run))
    assert code == 2 and "not a run directory" in err


@pytest.mark.slow
def test_resume_refuses_changed_data(make_cfg, text_file, tmp_path, cli):
    from aios_tui.engine.train import run_training

    data = tmp_path / "data.txt"
    data.write_text(text_file.read_text())
    run = tmp_path / "run"
    run_training(make_cfg(steps=6, dataset_file=str(data), use_peft=True), run, progress="none", stop_after=2)
    data.write_text(text_file.read_text().replace("count", "COUNT"))  # same size, other text
    before = (run / "metrics.jsonl").read_text()
    code, _, err = cli("train", "--resume", str(run))
    assert code == 2 and "its contents changed since step-000002" in err
    assert (run / "metrics.jsonl").read_text() == before
    data.write_text(text_file.read_text()[:2000])
    code, _, err = cli("train", "--resume", str(run))
    assert code == 2 and "resume needs the same dataset" in err


def test_resuming_a_run_that_is_still_training_says_so(cli, tmp_path):
    import subprocess

    from aios_tui.metrics.rundir import RunDir

    other = subprocess.Popen(["sleep", "60"])
    try:
        run = RunDir(tmp_path / "live")
        run.path.mkdir()
        run.write_status(state="running", pid=other.pid, step=3)
        code, _, err = cli("train", "--resume", str(run.path))
        assert code == 2 and f"run 'live' is still running (pid {other.pid}); stop it first" in err
    finally:
        other.kill()
        other.wait()


@pytest.mark.slow
def test_a_raised_total_survives_a_crash_before_the_next_checkpoint(cli, small_model_dir, text_file, tmp_path):
    from aios_tui.metrics.rundir import RunDir

    run = tmp_path / "run"
    code, _, err = cli("train", "--steps", "6", "--stop-after", "3", "--run-dir", str(run),
                       *_flags(small_model_dir, text_file, **{"--save-every": "0"}))
    assert code == 0, err
    # a session asked for 9 steps in all, then died before it wrote a checkpoint
    RunDir(run).write_status(state="failed", total_steps=9, error="Killed")
    code, _, err = cli("train", "--resume", str(run), "--progress", "none")
    assert code == 0, err
    status = json.loads((run / "status.json").read_text())
    assert status["state"] == "finished" and status["step"] == 9


@pytest.mark.slow
@pytest.mark.parametrize("torn", ["trainable.safetensors", "trainer_state.pt"])
def test_a_damaged_checkpoint_is_named_with_the_way_back(torn, cli, small_model_dir, text_file, tmp_path):
    import shutil

    run = tmp_path / "run"
    code, _, err = cli("train", "--steps", "12", "--stop-after", "7", "--run-dir", str(run),
                       *_flags(small_model_dir, text_file))
    assert code == 0, err
    latest = run / "checkpoints" / "step-000007"
    body = (latest / torn).read_bytes()
    (latest / torn).write_bytes(body[: len(body) // 2])
    code, _, err = cli("train", "--resume", str(run), "--progress", "none")
    assert code == 2 and "Traceback" not in err
    assert f"{torn} cannot be read" in err and f"rm -r {latest}) to use step-000005 instead" in err
    status = json.loads((run / "status.json").read_text())
    assert status["step"] == 7 and status["checkpoint"].endswith("step-000007")  # where the run got to
    shutil.rmtree(latest)
    code, _, err = cli("train", "--resume", str(run), "--progress", "none")
    assert code == 0, err
    assert json.loads((run / "status.json").read_text())["step"] == 12


@pytest.mark.slow
@pytest.mark.parametrize("settings", [
    {"use_peft": True, "peft_method": "ia3", "lora_target_modules": "k_proj,v_proj,down_proj"},
    {"use_peft": False, "amp": True, "grad_accum": 2, "lora_dropout": 0.1},  # full, bf16 autocast
], ids=["ia3", "full-amp-accum"])
def test_other_methods_resume_exactly(settings, make_cfg, tmp_path, losses_of):
    from aios_tui.engine.train import run_training

    cfg = make_cfg(steps=10, lr=3e-3, **settings)
    run_training(cfg, tmp_path / "straight", progress="none")
    run_training(cfg, tmp_path / "split", progress="none", stop_after=4)
    run_training(None, tmp_path / "split", progress="none", resume=True)
    a, b = losses_of(tmp_path / "straight" / "metrics.jsonl"), losses_of(tmp_path / "split" / "metrics.jsonl")
    assert sorted(a) == sorted(b) == list(range(1, 11))
    assert max(abs(a[s] - b[s]) for s in a) <= 1e-6


@pytest.mark.slow
def test_a_run_started_with_relative_paths_resumes_from_another_directory(cli, small_model_dir, text_file,
                                                                          tmp_path, monkeypatch):
    import shutil

    project, elsewhere = tmp_path / "project", tmp_path / "elsewhere"
    (project / "data").mkdir(parents=True)
    elsewhere.mkdir()
    shutil.copy(text_file, project / "data" / "train.txt")
    shutil.copytree(small_model_dir, project / "model")
    monkeypatch.chdir(project)
    code, _, err = cli("train", "--steps", "8", "--stop-after", "4", "--run-dir", "runs/r",
                       *_flags("model", "data/train.txt", **{"--log-file": "logs/r.jsonl"}))
    assert code == 0, err
    saved = (project / "runs" / "r" / "config.toml").read_text()
    assert f'dataset_file = "{project}/data/train.txt"' in saved and f'model = "{project}/model"' in saved
    monkeypatch.chdir(elsewhere)
    code, _, err = cli("train", "--resume", str(project / "runs" / "r"), "--progress", "none")
    assert code == 0, err
    status = json.loads((project / "runs" / "r" / "status.json").read_text())
    assert status["state"] == "finished" and status["metrics"] == str(project / "logs" / "r.jsonl")
    assert not (elsewhere / "logs").exists()


def test_a_run_stopped_before_its_first_step_says_how_to_start_it_again(cli, make_cfg, tmp_path):
    from aios_tui.engine.task import CausalLMTask
    from aios_tui.engine.train import run_training

    run = tmp_path / "early"

    class StoppedWhileLoading(CausalLMTask):  # `runs stop` right after `train --detach`
        def save_base(self, *args):
            (run / "STOP").touch()
            return super().save_base(*args)

    cfg = make_cfg(steps=4, use_peft=True, run_dir=str(run))
    result = run_training(cfg, run, task=StoppedWhileLoading(), progress="none")
    assert result.state == "stopped" and result.step == 0 and result.checkpoint is None
    hint = f"to start it again under this name, delete it first: `aios-tui runs delete {run}`"
    code, _, err = cli("train", "--resume", str(run))
    assert code == 2 and "no complete checkpoint to continue from" in err and hint in err
    code, _, err = cli("train", "--run-dir", str(run), "--model", cfg.model.model, "--check")
    assert code == 2 and "already holds a run (stopped)" in err and hint in err
    code, _, err = cli("runs", "delete", "--yes", str(run))
    assert code == 0, err
    assert run_training(cfg, run, progress="none").state == "finished"


def test_checkpoint_files_holding_the_wrong_things_are_a_damaged_checkpoint(cli, tmp_path):
    import shutil

    run = tmp_path / "run"
    code, _, err = cli("train", "--steps", "4", "--save-every", "2", "--run-dir", str(run), "--device", "cpu",
                       "--use-peft", "--progress", "none")
    assert code == 0, err
    latest = run / "checkpoints" / "step-000004"
    kept = tmp_path / "kept.pt"
    shutil.copy(latest / "trainer_state.pt", kept)
    good = torch.load(kept, weights_only=True)
    for state, why in (([1, 2], "it holds list, not a trainer state"),
                       ({**good, "data": None}, "trainer_state.pt cannot be read ("),
                       ({k: v for k, v in good.items() if k != "rng"}, "it has no 'rng'"),
                       ({**good, "optimizer": {"state": {}, "param_groups": "x"}}, "cannot be read (")):
        torch.save(state, latest / "trainer_state.pt")
        code, _, err = cli("train", "--resume", str(run), "--steps", "6", "--device", "cpu", "--progress", "none")
        assert code == 2 and len(err.splitlines()) == 1, err
        assert why in err and "the checkpoint is damaged: remove it" in err and "step-000002 instead" in err
    shutil.copy(kept, latest / "trainer_state.pt")
    meta = (latest / "meta.json").read_text()
    (latest / "meta.json").write_text("[4]")
    for args in (("export", str(run)), ("eval", str(run), "--max-batches", "1", "--device", "cpu"),
                 ("train", "--resume", str(run), "--steps", "6", "--device", "cpu", "--progress", "none")):
        code, _, err = cli(*args)
        assert code == 2 and len(err.splitlines()) == 1, (args, err)
        assert "meta.json cannot be read (it holds list, not an object)" in err, args
    kept_meta = json.loads(meta)
    for changed, why in (({k: v for k, v in kept_meta.items() if k != "step"}, "it has no 'step'"),
                         ({**kept_meta, "step": "4"}, "its step is '4', not a whole number"),
                         ({**kept_meta, "peft": "no"}, "its peft is 'no', not true or false")):
        (latest / "meta.json").write_text(json.dumps(changed))
        for args in (("export", str(run)),
                     ("train", "--resume", str(run), "--steps", "6", "--device", "cpu", "--progress", "none")):
            code, _, err = cli(*args)
            assert code == 2 and len(err.splitlines()) == 1, (args, err)
            assert f"meta.json cannot be read ({why})" in err and "step-000002 instead" in err, (args, err)
    (latest / "meta.json").write_text(json.dumps({**json.loads(meta), "task": 5}))
    code, _, err = cli("eval", str(run), "--max-batches", "1", "--device", "cpu")
    assert code == 2 and err.splitlines() == ["aios-tui: error: unknown task 5 recorded in the run"]
    (latest / "meta.json").write_text(meta)
    code, _, err = cli("train", "--resume", str(run), "--steps", "6", "--device", "cpu", "--progress", "none")
    assert code == 0, err


def test_a_metrics_file_that_is_no_file_is_refused_before_the_resume_loads(cli, tmp_path):
    run = tmp_path / "run"
    code, _, err = cli("train", "--steps", "2", "--run-dir", str(run), "--device", "cpu", "--progress", "none")
    assert code == 0, err
    status = (run / "status.json").read_text()
    (run / "metrics.jsonl").unlink()
    (run / "metrics.jsonl").mkdir()  # a stray `mkdir`, or a copy gone wrong
    code, out, err = cli("train", "--resume", str(run), "--steps", "4", "--device", "cpu", "--progress", "none")
    assert code == 2 and out == ""
    assert err == (f"aios-tui: error: the run's metrics file {(run / 'metrics.jsonl').resolve()}: is not a "
                   "regular file; move it away and resume\n")
    assert (run / "status.json").read_text() == status  # still finished at step 2, not failed
