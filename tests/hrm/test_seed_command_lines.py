"""AI-OS's documented `hrm-hf train-actv1` command lines, run as written: only `--model gpt2`
(a download) becomes the built-in `tiny`, and the program before `hrm-hf` is aios-tui."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from aios_tui.data import sample_path
from aios_tui.metrics.jsonl import read_header

DATASET = "training_data/curated_datasets/test_sample.txt"
COMMON = ["--model", "tiny", "--dataset-file", DATASET]
LOG = ["--log-file", "artifacts/brains/actv1/metrics.jsonl"]
GUIDE_LINES = {
    "minimal": [*COMMON, "--steps", "200", "--batch-size", "4", "--halt-max-steps", "1", "--use-peft",
                "--peft-method", "lora", "--lora-r", "16", "--lora-alpha", "32", "--lora-dropout", "0.05",
                "--lora-target-modules", "q_proj,v_proj", *LOG],
    "balanced": [*COMMON, "--steps", "200", "--batch-size", "4", "--halt-max-steps", "1", "--use-peft",
                 "--peft-method", "lora", "--lora-r", "16", "--lora-alpha", "32", "--lora-dropout", "0.05",
                 "--lora-target-modules", "q_proj,k_proj,v_proj,o_proj", *LOG],
    "adalora": [*COMMON, "--steps", "200", "--batch-size", "4", "--halt-max-steps", "1", "--use-peft",
                "--peft-method", "adalora", "--lora-r", "16", "--lora-alpha", "32", "--lora-dropout", "0.1",
                "--lora-target-modules", "q_proj,k_proj,v_proj,o_proj", *LOG],
    "try-it": [*COMMON, "--steps", "1", "--batch-size", "2", "--halt-max-steps", "1", "--use-peft",
               "--peft-method", "lora", "--lora-r", "8", "--lora-alpha", "16",
               "--lora-target-modules", "q_proj,v_proj", *LOG],
}


@pytest.fixture
def guide_dir(tmp_path, monkeypatch) -> Path:
    """A working directory holding the guide's dataset path (the bundled sample)."""
    data = tmp_path / DATASET
    data.parent.mkdir(parents=True)
    shutil.copy(sample_path(), data)
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.mark.parametrize("name", list(GUIDE_LINES))
def test_each_guide_line_passes_the_checks_of_a_start(cli, guide_dir, name):
    code, out, err = cli("hrm-hf", "train-actv1", *GUIDE_LINES[name], "--check")
    assert code == 0, err
    method = "adalora" if name == "adalora" else "lora"
    assert out == f"ok: {method} on HRM ACTv1 (a new brain, tokenizer tiny) would start\n"
    assert sorted(p.name for p in guide_dir.iterdir() if not p.name.startswith(("xdg", "token"))) == \
        ["training_data"]  # a check creates nothing


@pytest.mark.slow
def test_the_guides_try_it_line_trains_and_logs_peft_enabled_under_five_percent(cli, guide_dir):
    code, out, err = cli("hrm-hf", "train-actv1", *GUIDE_LINES["try-it"], "--progress", "none")
    assert code == 0, err
    header = read_header(guide_dir / "artifacts/brains/actv1/metrics.jsonl")
    assert header["peft"] == "enabled" and header["method"] == "lora"
    assert 0 < header["parameters"]["trainable_pct"] < 5, header["parameters"]
    bundle = Path(out.split("brain bundle: ", 1)[1].strip())
    assert bundle.parent == guide_dir / "artifacts/brains/actv1"
    assert (bundle / "adapter" / "adapter_model.safetensors").is_file()
