"""bench/vram_groundtruth.py builds and steps its models correctly (CPU dry run, no measuring)."""

from __future__ import annotations

import importlib.util
import sys

import pytest

from vram_helpers import REPO, quiet

from aios_tui.vram import Setup, count_params, shape_from_hf_config


def groundtruth():
    spec = importlib.util.spec_from_file_location("vram_groundtruth", REPO / "bench" / "vram_groundtruth.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod      # dataclasses look their module up while the file runs
    spec.loader.exec_module(mod)
    return mod


def test_cases_are_well_formed(capsys):
    mod = groundtruth()
    names = [c.name for c in mod.CASES]
    assert len(names) == len(set(names))
    quick = [c for c in mod.CASES if c.quick]
    assert {c.method for c in quick} == {"full", "lora", "adalora", "ia3"}
    assert {c.quant for c in quick} == {None, "4bit", "8bit"} and {c.loss for c in quick} == {"hf", "plain", "chunked"}
    assert any(c.optimizer == "adamw8bit" for c in quick) and any(c.gc for c in quick)
    for c in mod.CASES:   # every case is something the calculator can describe
        s = Setup(method=c.method, r=c.r, targets=tuple(t for t in c.targets.split(",") if t), weights=c.weights,
                  amp=c.amp, quant=c.quant, ia3_feedforward=tuple(t for t in c.ia3_feedforward.split(",") if t))
        count_params(shape_from_hf_config(mod.SHAPES[c.shape]), s)
    assert mod.main(["--list"]) == 0
    assert "8b-qlora-all-gc-adam8bit" in capsys.readouterr().out


@pytest.mark.slow
@pytest.mark.parametrize("name", ["tiny-qlora-4bit-adam8bit"])
def test_dry_run_builds_what_the_calculator_counts(name):
    quiet()
    mod = groundtruth()
    case = next(c for c in mod.CASES if c.name == name)
    row = mod.measure(case, "cpu", dry_run=True)
    assert row["last_loss"] == row["last_loss"] and row["last_loss"] > 0      # a finite loss
    s = Setup(method=case.method, r=case.r, targets=tuple(case.targets.split(",")), weights=case.weights,
              quant=case.quant, amp=case.amp)
    counts = count_params(shape_from_hf_config(mod.SHAPES[case.shape]), s)
    assert row["params_trainable"] == counts.trainable
    assert row["params_total"] == counts.total
