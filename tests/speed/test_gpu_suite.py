"""bench/gpu_suite.py: the one command that gathers every GPU figure, driven here on the CPU."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SUITE = [sys.executable, str(REPO / "bench" / "gpu_suite.py")]


def run(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([*SUITE, *args], capture_output=True, text=True, timeout=timeout, cwd=REPO)


def test_dry_run_lists_every_gpu_step_with_its_command(tmp_path):
    proc = run("--dry-run", "--out", str(tmp_path / "out"), "--workdir", str(tmp_path / "w"))
    assert proc.returncode == 0, proc.stderr
    for step in ("tp-1b", "tp-124m", "tp-8b", "savers-gpt2", "savers-qlora-8b", "seed-table"):
        assert step in proc.stdout
    assert "bench/throughput.py --config 1b --torch-compile" in proc.stdout
    # the QLoRA step reuses the 8B model the throughput step saved
    assert f"--llama8b-dir {tmp_path / 'w'}/model-8b-bf16" in proc.stdout
    assert not (tmp_path / "out").exists()


def test_unknown_step_and_missing_out_exit_2(tmp_path):
    proc = run("--only", "tp-1b,nonsense")
    assert proc.returncode == 2 and "nonsense" in proc.stderr and "Traceback" not in proc.stderr
    proc = run("--only", "tp-1b")
    assert proc.returncode == 2 and "--out" in proc.stderr


def test_a_step_that_does_not_fit_the_budget_is_skipped_and_recorded(tmp_path):
    out = tmp_path / "out"
    stale = tmp_path / "w" / "json" / "tp-8b.json"  # an earlier suite's figures in the shared workdir
    stale.parent.mkdir(parents=True)
    stale.write_text('{"summary": {"speed_ratio": 9.9}, "results": {}}')
    proc = run("--out", str(out), "--workdir", str(tmp_path / "w"), "--only", "tp-8b", "--budget", "5")
    assert proc.returncode == 0, proc.stderr
    results = json.loads((out / "results.json").read_text())
    assert results["steps"]["tp-8b"]["status"].startswith("skipped")
    assert results["steps"]["tp-8b"]["json"] == {} and "9.9" not in (out / "summary.md").read_text()
    assert "| tp-8b | skipped" in (out / "summary.md").read_text()


def test_the_qlora_step_waits_for_the_8b_model_an_earlier_step_saves(tmp_path):
    out = tmp_path / "out"
    proc = run("--out", str(out), "--workdir", str(tmp_path / "w"), "--only", "savers-qlora-8b", "--budget", "900")
    assert proc.returncode == 0, proc.stderr
    status = json.loads((out / "results.json").read_text())["steps"]["savers-qlora-8b"]["status"]
    assert status.startswith("skipped") and "model-8b-bf16/config.json" in status


def test_what_is_still_open_comes_first():
    import importlib.util

    spec = importlib.util.spec_from_file_location("gpu_suite", REPO / "bench" / "gpu_suite.py")
    suite = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = suite  # its dataclasses look their module up there
    try:
        spec.loader.exec_module(suite)
    finally:
        del sys.modules[spec.name]
    names = [s.name for s in suite.STEPS]
    first = ["savers-gpt2", "peak-gpt2", "tp-8b-fp8", "savers-qlora-8b", "tp-1b-fp8"]
    assert names[:5] == first
    # they fit the default budget together, with the CUDA-only tests and the 8B bf16 row after them
    assert sum(s.estimate_s for s in suite.STEPS[:7]) <= 540 and names[5:7] == ["pytest-cuda", "tp-8b"]
    # the QLoRA step reuses the 8B model the step before it saves
    assert "--fp8" in suite.STEPS[2].commands[0] and "--sides" not in suite.STEPS[2].commands[0]


@pytest.mark.slow
def test_smoke_suite_gathers_the_bench_json_into_results_and_summary(tmp_path):
    out = tmp_path / "out"
    proc = run("--smoke", "--only", "savers-smoke", "--out", str(out), "--workdir", str(tmp_path / "w"))
    assert proc.returncode == 0, proc.stderr + proc.stdout
    results = json.loads((out / "results.json").read_text())
    step = results["steps"]["savers-smoke"]
    assert step["status"] == "ok"
    rows = step["json"]["savers-smoke.json"]["rows"]
    assert rows[0]["case"] == "gpt2-lora" and rows[0]["parameters"]["trainable"] > 0
    assert "| gpt2-lora |" in (out / "summary.md").read_text()
    log = (out / "log.txt").read_text()
    assert "bench/memory_savers.py --smoke" in log and "[exit 0" in log


def test_summary_turns_the_seed_table_runs_into_the_seed_s_table(tmp_path):
    import importlib.util

    spec = importlib.util.spec_from_file_location("gpu_suite", REPO / "bench" / "gpu_suite.py")
    suite = importlib.util.module_from_spec(spec)
    sys.modules["gpu_suite"] = suite  # dataclasses look their module up there
    spec.loader.exec_module(suite)

    def run(tps, trainable, peak):
        return {"results": {"ours": {"tokens_per_s": tps, "trainable": trainable, "total": 1_000_000,
                                     "peak_allocated": peak}}, "summary": {}}

    results = {"environment": {}, "steps": {"seed-table": {"status": "ok", "seconds": 1.0, "json": {
        "seed-full.json": run(100_000, 1_000_000, 11e9), "seed-r4-qv.json": run(130_000, 2_500, 9e9)}}}}
    text = suite.summarize(results)
    assert "| Full fine-tuning | 1,000,000 (100.00%) | 11.0 GB | 100.0K | 1.00x |" in text
    assert "| LoRA r=4 q,v | 2,500 (0.25%) | 9.0 GB | 130.0K | 1.30x |" in text


def test_summary_lists_what_was_alive_at_the_peak(tmp_path):
    import importlib.util

    spec = importlib.util.spec_from_file_location("gpu_suite", REPO / "bench" / "gpu_suite.py")
    suite = importlib.util.module_from_spec(spec)
    sys.modules["gpu_suite"] = suite  # dataclasses look their module up there
    spec.loader.exec_module(suite)
    case = {"case": "gpt2-lora-all", "overrides": {}, "peak_allocated": 2**31, "estimate_peak_allocated": 2**31,
            "tracked_peak": 2**30, "alive_at_peak": [{"site": "bitsandbytes/autograd/_functions.py:132 forward",
                                                      "bytes": 576 * 2**20}]}
    failed = {"case": "gpt2-lora-all+noquant", "overrides": {}, "error": "RuntimeError: boom"}
    results = {"environment": {}, "steps": {"peak-gpt2": {"status": "ok", "seconds": 1.0, "json": {
        "peak-gpt2.json": {"versions": {}, "cases": [case, failed]}}}}}
    text = suite.summarize(results)
    assert "peak alloc 2.00 GiB, estimate 2.00 GiB, tracked 1.00 GiB" in text
    assert "| 576.0 | bitsandbytes/autograd/_functions.py:132 forward |" in text
    assert "gpt2-lora-all+noquant: failed: RuntimeError: boom" in text
