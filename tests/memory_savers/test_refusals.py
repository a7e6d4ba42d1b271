"""Combinations that cannot work exit 2 with one clear line each, before any weights load and
without leaving a run directory behind."""

from __future__ import annotations

import os
from pathlib import Path

import pytest


def _runs_root() -> Path:
    return Path(os.environ["AIOS_TUI_RUNS"])


def _nothing_left(*paths: Path) -> bool:
    root = _runs_root()
    return (not root.exists() or not any(root.iterdir())) and not any(p.exists() for p in paths)


@pytest.mark.parametrize("detach", [False, True])
def test_hrm_actv1_refuses_a_quantized_base(cli, tmp_path, detach):
    bundles = tmp_path / "brains"
    code, _, err = cli("train-actv1", "--hidden-size", "64", "--num-heads", "4", "--steps", "2", "--use-peft",
                       "--load-in-4bit", "--bundle-dir", str(bundles), *(["--detach"] if detach else []))
    assert code == 2
    assert ("aios-tui: error: memory.load_in_4bit: quantized base weights apply to Hugging Face causal LMs "
            "(`aios-tui train`)") in err
    assert "drop --load-in-4bit" in err and "Traceback" not in err
    assert _nothing_left(bundles)


@pytest.fixture(scope="module")
def stored_8bit_dir(llama_dir, tmp_path_factory) -> Path:
    """The small Llama saved already quantized (8-bit), as some hub repositories ship models."""
    from transformers import AutoModelForCausalLM, BitsAndBytesConfig

    from aios_tui.engine.tokenizer import byte_tokenizer

    path = tmp_path_factory.mktemp("stored-8bit")
    model = AutoModelForCausalLM.from_pretrained(llama_dir, quantization_config=BitsAndBytesConfig(load_in_8bit=True),
                                                 device_map={"": "cpu"})
    model.save_pretrained(path)
    byte_tokenizer().save_pretrained(path)
    return path


def test_a_model_stored_quantized_needs_its_own_width(cli, stored_8bit_dir, text_file):
    common = ["--model", str(stored_8bit_dir), "--dataset-file", str(text_file), "--steps", "2", "--device", "cpu",
              "--use-peft"]
    code, _, err = cli("train", *common, "--load-in-4bit")
    assert code == 2
    assert (f"aios-tui: error: model.model: {stored_8bit_dir} is stored quantized in 8-bit with bitsandbytes; "
            "pass --load-in-8bit instead of --load-in-4bit") in err
    code, _, err = cli("train", *common)
    assert code == 2 and "pass --load-in-8bit, or use the full-precision model" in err
    assert _nothing_left()


@pytest.mark.slow
def test_merge_refuses_a_base_stored_quantized(cli, stored_8bit_dir, text_file, tmp_path, flags_for):
    run = tmp_path / "run"
    code, _, err = cli("train", "--use-peft", "--load-in-8bit", "--run-dir", str(run),
                       *flags_for(str(stored_8bit_dir), text_file, steps="2", lora_target_modules="q_proj,v_proj"))
    assert code == 0, err
    code, _, err = cli("export", str(run), "--merge")
    assert code == 2
    assert (f"aios-tui: error: --merge: the base {stored_8bit_dir} is stored quantized, so there is no "
            "full-precision copy to merge the adapter into") in err
    assert not (run / "merged").exists() and not list(run.glob(".merged*"))
    code, out, err = cli("export", str(run))                       # the adapter itself exports fine
    assert code == 0 and "trained on an 8-bit LLM.int8 base" in out, err


@pytest.mark.slow
def test_bitsandbytes_that_cannot_load_is_reported_before_anything_starts(cli_subprocess, tmp_path):
    shadow = tmp_path / "shadow" / "bitsandbytes"
    shadow.mkdir(parents=True)
    (shadow / "__init__.py").write_text("raise ImportError('libbitsandbytes_cuda.so: cannot open shared object file')\n")
    env = {"PYTHONPATH": os.pathsep.join([str(shadow.parent), os.environ.get("PYTHONPATH", "")])}
    proc = cli_subprocess("train", "--use-peft", "--load-in-4bit", "--use-8bit-optimizer", "--steps", "2",
                          "--device", "cpu", env=env)
    assert proc.returncode == 2, proc.stderr
    lines = [l for l in proc.stderr.splitlines() if l.startswith("aios-tui: error:")]
    reason = "libbitsandbytes_cuda.so: cannot open shared object file"
    assert lines == [
        f"aios-tui: error: memory.load_in_4bit: needs bitsandbytes, which cannot be imported here ({reason}); "
        "install it (`pip install bitsandbytes`) or train without --load-in-4bit",
        f"aios-tui: error: memory.use_8bit_optimizer: needs bitsandbytes, which cannot be imported here ({reason}); "
        "install it (`pip install bitsandbytes`) or train without --use-8bit-optimizer",
    ]
    assert "Traceback" not in proc.stderr and _nothing_left()
