"""The console starts an HRM ACTv1 run (ctrl+g) the same way as a plain one, and it finishes
into a brain bundle."""

from __future__ import annotations

import json

import pytest

from aios_tui.config import resolve
from aios_tui.metrics.jsonl import read_header
from aios_tui.metrics.rundir import RunDir
from aios_tui.ui.screens.run import RunScreen

from pilots import wait_for

pytestmark = pytest.mark.slow


async def test_ctrl_g_trains_an_hrm_brain(make_app, runs_root, tmp_path):
    cfg = resolve(overrides={
        "hidden_size": 32, "num_heads": 4, "h_layers": 1, "l_layers": 1, "h_cycles": 1, "l_cycles": 1,
        "steps": 3, "batch_size": 2, "max_seq_len": 32, "eval_every": 0, "save_every": 0,
        "warmup_steps": 0, "run_name": "hrm-console", "bundle_dir": str(tmp_path / "brains"),
        "use_peft": True, "lora_target_modules": "q_proj,v_proj", "lora_r": 4, "lora_alpha": 8,
    })
    app = make_app(config=cfg, poll_interval=0.1)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("ctrl+g")
        await wait_for(pilot, lambda: isinstance(app.screen, RunScreen), 10, "the run view")
        run = RunDir(runs_root / "hrm-console")
        await wait_for(pilot, lambda: run.state() in ("finished", "failed"), 240, "the HRM run to end")
        assert run.state() == "finished", (run.log_path.read_text() if run.log_path.exists() else "")
        assert run.read_status()["method"] == "hrm-lora"   # the runs list's METHOD says what trains
        await wait_for(pilot, lambda: "HRM ACTv1" in str(app.screen.query_one("#run-title").render()),
                       10, "the title to name the HRM model")
        from aios_tui.ui.widgets.run_stats import RunStats

        assert "HRM ACTv1" in str(app.screen.query_one(RunStats).render())
    header = read_header(run.metrics_path())
    assert "hrm" in header["task"] and header["peft"] == "enabled"
    assert header["parameters"]["trainable_pct"] < 100
    brain = json.loads((tmp_path / "brains" / "hrm-console" / "brain.json").read_text())
    assert brain["architecture"]["hidden_size"] == 32   # the form's HRM settings reached the model
