"""The pieces of the loop that need no model: schedule, resume policy, run-directory rules."""

from __future__ import annotations

import math
import os

import pytest

from aios_tui.config import resolve
from aios_tui.errors import UserError
from aios_tui.metrics.rundir import RunDir


def test_warmup_then_cosine_and_linear():
    from aios_tui.engine.optim import lr_at

    lrs = [lr_at(u, 1.0, 4, 20, "cosine") for u in range(20)]
    assert lrs[:4] == [0.25, 0.5, 0.75, 1.0]
    assert lrs[4] == 1.0 and all(a > b for a, b in zip(lrs[4:], lrs[5:]))
    assert lrs[-1] == pytest.approx(0.5 * (1 + math.cos(math.pi * 15 / 16)))
    assert lr_at(12, 2.0, 4, 20, "linear") == pytest.approx(2.0 * (1 - 8 / 16))
    assert lr_at(12, 2.0, 4, 20, "constant") == 2.0
    assert lr_at(0, 1.0, 0, 10, "cosine") == 1.0


def test_resume_accepts_schedule_changes_and_lists_them():
    from aios_tui.engine.resume import merge

    saved = resolve(overrides={"use_peft": True, "steps": 100})
    want = resolve(overrides={"use_peft": True, "steps": 200, "lr": 1e-4, "eval_every": 5,
                              "run_name": "other"})
    out, changes = merge(saved, want)
    assert out.train.steps == 200 and out.train.lr == 1e-4 and out.train.eval_every == 5
    assert out.train.run_name == saved.train.run_name  # a run keeps its name
    assert sorted(changes) == ["eval_every: 50 -> 5", "lr: auto -> 0.0001", "steps: 100 -> 200"]


def test_resume_refuses_what_the_saved_state_depends_on():
    from aios_tui.engine.resume import merge

    saved = resolve(overrides={"use_peft": True, "lora_r": 16})
    want = resolve(overrides={"use_peft": True, "lora_r": 8, "batch_size": 2, "lora_target_modules": "q_proj",
                              "amp": True, "model_dtype": "bf16"})
    with pytest.raises(UserError) as err:
        merge(saved, want)
    text = "\n".join(err.value.problems)
    for field in ("peft.lora_r: cannot change on resume (16 -> 8)", "train.batch_size", "peft.lora_target_modules",
                  "memory.amp", "model.model_dtype"):
        assert field in text
    assert len(err.value.problems) == 6  # five fields and the advice


def test_adalora_total_steps_cannot_change():
    from aios_tui.engine.resume import merge

    saved = resolve(overrides={"use_peft": True, "peft_method": "adalora", "steps": 100})
    with pytest.raises(UserError, match="AdaLoRA schedules its rank budget"):
        merge(saved, resolve(overrides={"use_peft": True, "peft_method": "adalora", "steps": 120}))


def test_run_dir_rules(tmp_path):
    from aios_tui.engine.session import holds_run, prepare

    cfg = resolve()
    run = RunDir(tmp_path / "r")
    assert holds_run(run) is None
    prepare(run, cfg, pid=os.getpid(), total_steps=10)
    assert holds_run(run) is None  # prepared for a run, not yet one
    assert run.read_status()["state"] == "starting" and run.config_toml.is_file()
    run.write_status(state="finished")
    assert "already holds a run" in holds_run(run)
    other = RunDir(tmp_path / "o")
    other.path.mkdir()
    (other.path / "notes.txt").write_text("x")
    assert "not empty" in holds_run(other)
    cp = RunDir(tmp_path / "c")
    (cp.checkpoints / "step-000001").mkdir(parents=True)
    assert "checkpoints" in holds_run(cp)


def test_generated_run_names_do_not_collide(tmp_path, monkeypatch):
    from aios_tui.engine.session import choose_run_dir

    monkeypatch.setenv("AIOS_TUI_RUNS", str(tmp_path))
    cfg = resolve(overrides={"use_peft": True})
    first = choose_run_dir(cfg)
    assert first.parent == tmp_path and first.name.startswith("lora-")
    first.mkdir()
    second = choose_run_dir(cfg)
    assert second != first and second.name.startswith(first.name)
    assert choose_run_dir(resolve(overrides={"run_name": "mine"})) == tmp_path / "mine"
    assert choose_run_dir(resolve(overrides={"run_dir": str(tmp_path / "x" / "y")})) == tmp_path / "x" / "y"


@pytest.mark.slow
def test_warmup_is_capped_at_a_tenth_of_a_short_run(make_cfg, tmp_path, records_of):
    from aios_tui.engine.train import run_training

    run_training(make_cfg(steps=20, warmup_steps=10, lr=1e-3, lr_schedule="constant"), tmp_path / "run",
                 progress="none")
    lrs = {r["step"]: r["lr"] for r in records_of(tmp_path / "run" / "metrics.jsonl") if "lr" in r and "step" in r}
    # a tenth of 20 steps: warm-up over 2 updates, then the peak
    assert lrs[1] == pytest.approx(5e-4) and lrs[2] == pytest.approx(1e-3) and lrs[20] == pytest.approx(1e-3)
