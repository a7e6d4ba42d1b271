"""The loop's arithmetic and what it writes: accumulation, fused loss, AMP, checkpointing, metrics."""

from __future__ import annotations

import json

import pytest


def _run(make_cfg, tmp_path, name, losses_of, **overrides):
    from aios_tui.engine.train import run_training

    run_training(make_cfg(**overrides), tmp_path / name, progress="none")
    return losses_of(tmp_path / name / "metrics.jsonl")


@pytest.mark.slow
def test_accumulation_equals_the_bigger_batch(make_cfg, tmp_path, losses_of):
    """4 x 1 and 2 x 2 see the same blocks; weighting micro-batches by tokens makes them agree."""
    common = {"steps": 6, "lr": 1e-2, "use_peft": True, "lora_target_modules": "q_proj,v_proj"}
    one = _run(make_cfg, tmp_path, "one", losses_of, batch_size=4, grad_accum=1, **common)
    two = _run(make_cfg, tmp_path, "two", losses_of, batch_size=2, grad_accum=2, **common)
    assert max(abs(one[s] - two[s]) for s in one) < 1e-5


@pytest.mark.slow
@pytest.mark.parametrize("peft", [True, False])
def test_fused_loss_matches_the_plain_loss(make_cfg, tmp_path, losses_of, peft):
    common = {"steps": 8, "lr": 1e-2 if peft else 3e-3, "use_peft": peft}
    plain = _run(make_cfg, tmp_path, "plain", losses_of, fused_loss=False, **common)
    fused = _run(make_cfg, tmp_path, "fused", losses_of, fused_loss=True, **common)
    assert max(abs(plain[s] - fused[s]) for s in plain) < 1e-4
    assert plain[8] < plain[1]


@pytest.mark.slow
def test_gradient_checkpointing_changes_nothing_but_memory(make_cfg, tmp_path, losses_of):
    common = {"steps": 5, "lr": 1e-2, "use_peft": True}
    off = _run(make_cfg, tmp_path, "off", losses_of, gradient_checkpointing=False, **common)
    on = _run(make_cfg, tmp_path, "on", losses_of, gradient_checkpointing=True, **common)
    assert max(abs(off[s] - on[s]) for s in off) < 1e-5


@pytest.mark.slow
def test_bf16_autocast_on_the_cpu_trains(make_cfg, tmp_path, losses_of):
    amp = _run(make_cfg, tmp_path, "amp", losses_of, amp=True, steps=10, lr=3e-3, batch_size=8, max_seq_len=64)
    assert all(v is not None for v in amp.values())
    assert sum(amp[s] for s in (8, 9, 10)) < sum(amp[s] for s in (1, 2, 3)) - 0.3


@pytest.mark.slow
def test_metrics_and_status_follow_the_documented_schema(make_cfg, tmp_path, records_of):
    from aios_tui.engine.train import run_training

    run = tmp_path / "run"
    cfg = make_cfg(steps=7, log_every=3, eval_every=3, save_every=3, use_peft=True, lora_r=4,
                   lora_target_modules="q_proj,v_proj", torch_compile=True)
    run_training(cfg, run, progress="none")
    recs = records_of(run / "metrics.jsonl")
    header = recs[0]
    assert header["peft"] == "enabled" and header["method"] == "lora" and header["device"] == "cpu"
    import os

    expected = cfg.to_dict() | {  # local paths are stored absolute, so the run resumes from anywhere
        "train": cfg.to_dict()["train"] | {"run_dir": str(run.resolve()), "run_name": "run"},
        "hrm": cfg.to_dict()["hrm"] | {"bundle_dir": os.path.join(os.getcwd(), "artifacts/brains/actv1")}}
    assert header["model"] == cfg.model.model and header["config"] == expected
    params = header["parameters"]
    assert params["trainable"] > 0 and params["trainable_pct"] == round(100 * params["trainable"] / params["total"], 4)
    assert "vram_estimate" in header
    assert all(isinstance(r.get("time"), float) for r in recs)
    steps = [r for r in recs if "loss" in r and "event" not in r]
    assert [r["step"] for r in steps] == [1, 3, 6, 7]  # the first, every 3rd and the last
    for r in steps:
        for key in ("step", "loss", "lr", "grad_norm", "tokens_per_s", "step_time_s", "elapsed_s", "eta_s",
                    "tokens", "rss"):
            assert isinstance(r[key], (int, float)) or (key, r["step"]) == ("eta_s", 1), key
    assert steps[0]["eta_s"] is None  # no rate yet: the first step waits for warm-up
    assert [r["step"] for r in steps if "eval_loss" in r and "event" not in r] == [3, 6, 7]
    assert steps[-1]["eta_s"] == 0 and steps[-1]["tokens"] == 7 * 4 * 32
    events = [r["event"] for r in recs if "event" in r]
    assert events == ["started", "checkpoint", "checkpoint", "checkpoint", "vram_measured", "finished"]
    status = json.loads((run / "status.json").read_text())
    for key in ("pid", "state", "step", "total_steps", "run_name", "method", "metrics", "started_at",
                "heartbeat", "last_loss", "error", "checkpoint"):
        assert key in status, key
    assert (status["state"], status["step"], status["total_steps"], status["method"]) == ("finished", 7, 7, "lora")
    assert status["metrics"] == str((run / "metrics.jsonl").resolve()) and status["last_loss"] == steps[-1]["loss"]


def test_eval_every_0_evaluates_at_the_last_step_alone_as_its_help_says(make_cfg, tmp_path, records_of):
    from aios_tui.config.schema import TrainConfig
    from aios_tui.engine.train import run_training

    run_training(make_cfg(steps=3, eval_every=0), tmp_path / "run", progress="none")
    evals = [r["step"] for r in records_of(tmp_path / "run" / "metrics.jsonl") if "eval_loss" in r and "event" not in r]
    assert evals == [3]
    assert "(0: only at the last step)" in TrainConfig.__dataclass_fields__["eval_every"].metadata["help"]

@pytest.mark.slow
def test_log_file_flag_moves_the_metrics(make_cfg, tmp_path):
    from aios_tui.engine.train import run_training
    from aios_tui.metrics.rundir import RunDir

    elsewhere = tmp_path / "logs" / "m.jsonl"
    run_training(make_cfg(steps=2, log_file=str(elsewhere)), tmp_path / "run", progress="none")
    assert elsewhere.is_file() and not (tmp_path / "run" / "metrics.jsonl").exists()
    assert RunDir(tmp_path / "run").metrics_path() == elsewhere.resolve()


def test_progress_lines_and_bar(capsys):
    import io

    from aios_tui.engine.progress import Progress

    buf = io.StringIO()
    lines = Progress("lines", stream=buf)
    lines.update(1, 10, 2.5, 1500.0, 30.0)
    lines.update(2, 10, 2.4, 1500.0, 28.0)  # too soon after the last line: skipped
    lines.update(10, 10, 2.0, 1500.0, 0.0)
    assert buf.getvalue().splitlines() == ["step 1/10 loss 2.5000 1.5K tok/s eta 30s",
                                           "step 10/10 loss 2.0000 1.5K tok/s eta 0s"]
    lines = Progress("lines", stream=buf)  # a fast GPU's rate in the unit tail and compare use
    lines.update(10, 10, 2.0, 1_234_567.0, 0.0)
    assert buf.getvalue().splitlines()[-1] == "step 10/10 loss 2.0000 1.2M tok/s eta 0s"
    buf = io.StringIO()
    bar = Progress("bar", stream=buf)
    bar.update(5, 10, 1.0, 100.0, 75.0)
    bar.message("done")
    assert buf.getvalue().startswith("\r[") and " 5/10 loss 1.0000 100 tok/s ETA 1m15s" in buf.getvalue()
    assert buf.getvalue().endswith("\ndone\n")


def test_progress_bar_keeps_its_width_while_the_text_after_it_changes(monkeypatch):
    import io
    import os
    import re

    from aios_tui.engine import progress

    monkeypatch.setattr(progress.shutil, "get_terminal_size", lambda fallback=None: os.terminal_size((80, 24)))
    buf = io.StringIO()
    bar = progress.Progress("bar", stream=buf)
    # The tail grows (loss gains a digit, the rate passes 1k, the ETA gains hours) as the step rises.
    bar.update(950, 3000, 9.8765, 999.0, 59 * 60.0)
    bar.update(1000, 3000, 10.1234, 1200.0, 2 * 3600.0)
    bar.update(1050, 3000, 9.5, 998.0, 50.0)
    frames = buf.getvalue().split("\r")[1:]
    bars = [re.match(r"\[(#*)(-*)\]", f).groups() for f in frames]
    assert len({len(done) + len(left) for done, left in bars}) == 1  # one width for the run
    fills = [len(done) for done, _ in bars]
    assert fills == sorted(fills)  # the fill never goes back
    lengths = [len(f) for f in frames]
    assert lengths == sorted(lengths) and lengths[-1] > len(frames[-1].rstrip())  # a shorter line covers a longer one
    assert all(len(f) < 80 for f in frames)


@pytest.mark.slow
def test_a_loss_that_stays_nan_fails_the_run_clearly(make_cfg, tmp_path, records_of):
    from aios_tui.engine.task import CausalLMTask
    from aios_tui.engine.train import TrainingFailed, run_training

    class Diverging(CausalLMTask):
        def loss(self, model, batch, step):
            out = super().loss(model, batch, step)
            out.loss = out.loss * float("nan") if step >= 2 else out.loss
            return out

    run = tmp_path / "run"
    with pytest.raises(TrainingFailed, match="not finite"):
        run_training(make_cfg(steps=20, use_peft=True), run, task=Diverging(), progress="none")
    status = json.loads((run / "status.json").read_text())
    assert status["state"] == "failed" and "not finite (NaN or inf) at step 5" in status["error"]
    last = records_of(run / "metrics.jsonl")[-1]
    assert last["event"] == "error" and last["step"] == 5
    assert [r["loss"] for r in records_of(run / "metrics.jsonl") if "loss" in r and "event" not in r][2:] == [None] * 3
