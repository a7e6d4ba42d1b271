"""Metrics lines are written a step late (their device values read without stalling the GPU):
none may be lost on a crash, and the first step's wait must not leak into the ETA."""

from __future__ import annotations

import math
import time

import pytest
import torch

from aios_tui.engine.readback import Readback


def test_readback_gives_floats_and_none_for_non_finite():
    values = Readback({"loss": torch.tensor(2.5), "grad_norm": torch.tensor(float("nan")),
                       "extra": 3, "missing": None, "inf": torch.tensor(float("inf"))}).values()
    assert values == {"loss": 2.5, "grad_norm": None, "extra": 3.0, "missing": None, "inf": None}
    assert Readback({}).values() == {}
    assert Readback({"x": 1.5}).values() == {"x": 1.5}


@pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA")
def test_cuda_readback_sees_the_values_as_they_were_at_its_step():
    x = torch.full((), 7.0, device="cuda")
    rb = Readback({"x": x * 2})
    x.add_(1)  # queued after the copy: must not show up
    assert rb.values() == {"x": 14.0}


@pytest.mark.slow
def test_a_crash_keeps_the_last_logged_step(make_cfg, tmp_path, records_of):
    from aios_tui.engine.task import CausalLMTask
    from aios_tui.engine.train import run_training

    class Breaks(CausalLMTask):
        def loss(self, model, batch, step):
            if step == 5:  # the 6th step, after the line of step 5 was taken
                raise RuntimeError("boom")
            return super().loss(model, batch, step)

    run = tmp_path / "run"
    with pytest.raises(RuntimeError, match="boom"):
        run_training(make_cfg(steps=10, log_every=5, use_peft=True), run, task=Breaks(), progress="none")
    recs = records_of(run / "metrics.jsonl")
    lines = [r["step"] for r in recs if "loss" in r and "event" not in r]
    assert lines == [1, 5]
    assert recs[-1]["event"] == "error" and recs[-1]["step"] == 5 and "boom" in recs[-1]["message"]
    assert math.isfinite([r for r in recs if r.get("step") == 5 and "loss" in r][0]["loss"])


@pytest.mark.slow
def test_the_first_step_s_wait_stays_out_of_the_eta(make_cfg, tmp_path):
    from aios_tui.engine.task import CausalLMTask
    from aios_tui.engine.train import run_training

    class SlowStart(CausalLMTask):  # as compilation makes the first step
        def loss(self, model, batch, step):
            if step == 0:
                time.sleep(3.0)
            return super().loss(model, batch, step)

    records = []
    run_training(make_cfg(steps=6, log_every=2, use_peft=True), tmp_path / "run", task=SlowStart(),
                 progress="none", on_step=lambda step, rec: records.append(rec))
    by_step = {r["step"]: r for r in records}
    assert by_step[1]["step_time_s"] >= 3.0
    # the first step alone gives no rate worth an ETA (it said 15s here, 2h28m on a real run)
    assert by_step[1]["eta_s"] is None
    # 4 steps to go at step 2; each takes milliseconds here, nowhere near the first step's 3 s
    assert by_step[2]["eta_s"] < 1.5


@pytest.mark.slow
def test_the_eta_is_blank_until_a_second_step_everywhere_it_is_shown(cli, make_cfg, tmp_path):
    import io

    from aios_tui.engine.progress import Progress
    from aios_tui.engine.train import run_training

    run = tmp_path / "run"
    lines = io.StringIO()
    run_training(make_cfg(steps=4, log_every=1), run, progress=Progress("lines", stream=lines), stop_after=2)
    shown = [line for line in lines.getvalue().splitlines() if line.startswith("step ")]
    assert shown[0].startswith("step 1/4 ") and shown[0].endswith(" eta -")
    code, out, err = cli("tail", str(run))
    assert code == 0, err
    steps = [line for line in out.splitlines() if line.startswith("step ")]
    assert steps[0].startswith("step 1/4") and steps[0].endswith("eta -")
    assert steps[1].startswith("step 2/4") and not steps[1].endswith("eta -")
    # a resumed session's first step has no rate of its own either
    run_training(None, run, resume=True, progress="none")
    code, out, _ = cli("tail", str(run))
    steps = [line for line in out.splitlines() if line.startswith("step ")]
    assert steps[-2].startswith("step 3/4") and steps[-2].endswith("eta -")
    assert steps[-1].startswith("step 4/4") and steps[-1].endswith("eta 0s")


def test_a_new_session_does_not_report_an_earlier_session_s_nvml_reading(tmp_path, monkeypatch):
    # two runs in one process (a bench, a test) within a second: the second's first memory line
    # must come from a fresh query, not the first run's cached figure
    from aios_tui.engine import report
    from aios_tui.metrics.rundir import RunDir

    calls = []
    monkeypatch.setattr(report, "_nvml_cache", [time.monotonic(), 12_360_613_888])
    monkeypatch.setattr("aios_tui.gpu.process_used_bytes", lambda pid: calls.append(pid) or 1_000)
    assert report.nvml_used_bytes() == 12_360_613_888       # cached within the second
    report.Reporter(RunDir(tmp_path / "run"), tmp_path / "run" / "metrics.jsonl")
    assert report.nvml_used_bytes() == 1_000 and len(calls) == 1


@pytest.mark.parametrize("eta", [None, 65.0, 3 * 86400.0])
def test_train_and_tail_write_the_eta_alike(eta):
    """A step's ETA, known or not yet, reads the same in train's progress lines as in tail."""
    import io

    from aios_tui.engine.progress import Progress
    from aios_tui.metrics.fmt import step_line

    out = io.StringIO()
    Progress("lines", stream=out).update(1, 4, None, None, eta, force=True)
    tail = step_line({"step": 1, "loss": None, "tokens_per_s": None, "eta_s": eta}, 4)
    assert out.getvalue().rstrip("\n").rsplit(" eta ", 1)[1] == tail.rsplit("  eta ", 1)[1]
    assert out.getvalue() == f"step 1/4 loss - - tok/s eta {tail.rsplit('  eta ', 1)[1]}\n"
