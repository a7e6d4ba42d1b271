"""The calculator against peak memory measured on a GPU (bench/calibration/)."""

from __future__ import annotations

import importlib.util
import statistics

from vram_helpers import REPO

from aios_tui.vram import compute, shape_from_hf_config


def accuracy_module():
    spec = importlib.util.spec_from_file_location("vram_accuracy", REPO / "bench" / "vram_accuracy.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def rows():
    mod = accuracy_module()
    return mod, mod.load_lines(sorted(str(p) for p in (REPO / "bench" / "calibration").glob("*.jsonl")))


def test_parameter_counts_equal_the_measured_runs():
    mod, lines = rows()
    assert lines
    for row in lines:
        est = compute(shape_from_hf_config(mod.model_config(row)), mod.setup_from_line(row))
        assert est.params_total == row["params_total"], row["name"]
        assert est.params_trainable == row["params_trainable"], row["name"]


def test_held_out_error_meets_the_target():
    """Median |error| <= 5% and max <= 10% of the measured peak, each estimate held out from the
    fit of the one constant it depends on (leave-one-out); far better than weights x 4."""
    mod, lines = rows()
    report = mod.evaluate([r for r in lines if r.get("peak_allocated")])
    errors = [abs(r["error_pct"]) for r in report["results"]]
    assert statistics.median(errors) <= 5.0
    assert max(errors) <= 10.0
    assert all(r["held_out"] != "fitted on itself" for r in report["results"])
    assert report["weights_x4"]["median_abs_pct"] > 10 * report["peak_allocated"]["median_abs_pct"]


def test_nvml_figure_is_close_to_what_nvml_showed():
    mod, lines = rows()
    report = mod.evaluate([r for r in lines if r.get("nvml_used")])
    assert report["nvml"]["max_abs_pct"] <= 5.0


def test_the_shipped_constant_is_the_fit():
    mod, lines = rows()
    fitted = mod.fit_amp_extra([r for r in lines if r.get("peak_allocated")])
    from aios_tui.vram.activations import AMP_FP32_BLOCK_EXTRA

    assert abs(fitted - AMP_FP32_BLOCK_EXTRA) < 0.05


def test_accuracy_script_prints_the_table(capsys):
    mod = accuracy_module()
    assert mod.main([]) == 0
    out = capsys.readouterr().out
    assert "g-lora16-qkvo-amp-gc" in out and "median |error|" in out and "weights x 4" in out
    assert mod.main(["--json"]) == 0
    import json

    report = json.loads(capsys.readouterr().out)
    assert report["lines"] >= 9 and report["peak_allocated"]["max_abs_pct"] <= 10


def test_a_case_that_ran_out_of_memory_is_listed_not_compared(tmp_path, capsys):
    import json

    mod = accuracy_module()
    failed = tmp_path / "run.jsonl"
    failed.write_text(json.dumps({"name": "oom-case", "arch": "1b", "error": "CUDA out of memory"}) + "\n")
    calibration = sorted(str(p) for p in (REPO / "bench" / "calibration").glob("*.jsonl"))
    assert mod.main([*calibration, str(failed), "--json"]) == 0
    captured = capsys.readouterr()
    report = json.loads(captured.out)
    assert report["not_compared"] == [{"name": "oom-case", "error": "CUDA out of memory"}]
    assert "oom-case" in captured.err
    assert mod.main([str(failed)]) == 1  # nothing measured at all is a failure, not a report
