"""Damaged brain bundles and HRM runs: one line that names the file, exit status 2, nothing written."""

from __future__ import annotations

import json
import shutil

import pytest
import torch

from aios_tui.engine.hrm.bundle import ADAPTER_DIR, BRAIN_FILE, CONFIG_FILE, WEIGHTS_FILE, write_bundle

SMALL = ["--hidden-size", "32", "--num-heads", "2", "--h-layers", "1", "--l-layers", "1",
         "--max-seq-len", "16", "--halt-max-steps", "1", "--batch-size", "2", "--eval-every", "0",
         "--save-every", "0", "--progress", "none"]


def _edit(path, **fields):
    data = json.loads(path.read_text())
    data.update(fields)
    path.write_text(json.dumps(data))


def _truncate(path, keep=100):
    path.write_bytes(path.read_bytes()[:keep])


def _adapter_as_file(bundle):
    shutil.rmtree(bundle / ADAPTER_DIR)
    (bundle / ADAPTER_DIR).write_text("x")


DAMAGES = {
    "brain.json a list": (lambda b: (b / BRAIN_FILE).write_text("[]"), "brain.json cannot be read (it holds list"),
    "brain.json format a string": (lambda b: _edit(b / BRAIN_FILE, format="x"), "its format is 'x'"),
    "brain.json architecture a string": (lambda b: _edit(b / BRAIN_FILE, architecture="x"),
                                         "its architecture is str"),
    "brain.json sessions of numbers": (lambda b: _edit(b / BRAIN_FILE, sessions=[5]), "a session or dataset record"),
    "brain.json a directory": (lambda b: ((b / BRAIN_FILE).unlink(), (b / BRAIN_FILE).mkdir()),
                               "brain.json cannot be read (Is a directory)"),
    "config.json a list": (lambda b: (b / CONFIG_FILE).write_text("[]"), "config.json cannot be read (it holds list"),
    "config.json no heads": (lambda b: _edit(b / CONFIG_FILE, num_heads=0), "its num_heads is 0"),
    "config.json no segments": (lambda b: _edit(b / CONFIG_FILE, halt_max_steps=0), "its halt_max_steps is 0"),
    "config.json another width": (lambda b: _edit(b / CONFIG_FILE, hidden_size=128),
                                  f"{WEIGHTS_FILE} does not match its config.json (size mismatch"),
    "weights truncated": (lambda b: _truncate(b / WEIGHTS_FILE), f"{WEIGHTS_FILE} cannot be read"),
    "tokenizer.json missing": (lambda b: (b / "tokenizer.json").unlink(), "tokenizer.json is missing"),
    "tokenizer_config.json a list": (lambda b: (b / "tokenizer_config.json").write_text("[]"),
                                     "its tokenizer files cannot be read"),
    "adapter config torn": (lambda b: (b / ADAPTER_DIR / "adapter_config.json").write_text("{"),
                            "adapter/adapter_config.json cannot be read"),
    "adapter weights truncated": (lambda b: _truncate(b / ADAPTER_DIR / "adapter_model.safetensors"),
                                  "adapter/adapter_model.safetensors cannot be read"),
    "adapter a file": (_adapter_as_file, "adapter/adapter_config.json cannot be read (Not a directory)"),
    "adapter of another rank": (lambda b: _edit(b / ADAPTER_DIR / "adapter_config.json", r=2),
                                "adapter cannot be read (size mismatch"),
}


@pytest.fixture
def bundle(make_model, tmp_path, capsys):
    """A bundle with a LoRA adapter, as `train-actv1 --use-peft` writes it."""
    from peft import LoraConfig, get_peft_model

    from aios_tui.engine.tokenizer import byte_tokenizer

    model = get_peft_model(make_model(), LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"],
                                                    modules_to_save=["q_head"]))
    dest = write_bundle(tmp_path / "b", model=model, tokenizer=byte_tokenizer(), session={"steps": 1},
                        tokenizer_source="tiny", peft_summary={"method": "lora"})
    capsys.readouterr()  # peft's and transformers' warnings on building it are not the commands'
    return dest


@pytest.mark.parametrize("damage", list(DAMAGES))
def test_a_damaged_bundle_is_refused_in_one_line_by_every_command(cli, bundle, tmp_path, damage):
    harm, said = DAMAGES[damage]
    harm(bundle)
    commands = [("generate", str(bundle), "--prompt", "ab", "--max-new-tokens", "2"),
                ("export", str(bundle), "--out", str(tmp_path / "adapter")),
                ("export", str(bundle), "--merge", "--out", str(tmp_path / "merged")),
                ("train-actv1", "--student-init", str(bundle), *SMALL[-8:], "--steps", "1",
                 "--run-dir", str(tmp_path / "run"), "--bundle-dir", str(tmp_path / "brains"))]
    for command in commands:
        code, out, err = cli(*command)
        lines = err.strip().splitlines()
        assert code == 2 and len(lines) == 1 and said in lines[0], (command, err)
        assert lines[0].startswith("aios-tui: error: ") and "the bundle is damaged" in lines[0], (command, err)
    assert not any((tmp_path / name).exists() for name in ("adapter", "merged", "run", "brains"))


def test_a_bundle_without_config_json_still_loads_from_brain_json(cli, bundle):
    (bundle / CONFIG_FILE).unlink()
    code, out, err = cli("generate", str(bundle), "--prompt", "ab", "--max-new-tokens", "2", "--seed", "1")
    assert code == 0, err


def test_odd_head_widths_are_refused_before_the_run_starts(cli, tmp_path):
    # hidden_size 24 over 8 heads gives heads of 3 dimensions, which rotary embeddings cannot turn
    code, out, err = cli("train-actv1", *SMALL, "--hidden-size", "24", "--num-heads", "8", "--steps", "1",
                         "--run-dir", str(tmp_path / "run"))
    assert code == 2 and err.strip().splitlines() == [
        "aios-tui: error: hrm.hidden_size: 24 / num_heads=8 gives heads of 3 dimensions; "
        "rotary embeddings need an even number"]
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("place", ["a file", "under a file"])
def test_a_bundle_dir_that_cannot_be_made_is_refused_before_training(cli, tmp_path, place):
    (tmp_path / "notes.txt").write_text("keep me")
    bundle_dir = tmp_path / "notes.txt" if place == "a file" else tmp_path / "notes.txt" / "brains"
    code, out, err = cli("train-actv1", *SMALL, "--steps", "1", "--run-dir", str(tmp_path / "run"),
                         "--bundle-dir", str(bundle_dir))
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and lines[0].startswith(f"aios-tui: error: hrm.bundle_dir {bundle_dir}: ")
    assert not (tmp_path / "run").exists() and (tmp_path / "notes.txt").read_text() == "keep me"


def test_a_bundle_that_cannot_be_written_after_training_is_one_line(cli, tmp_path, monkeypatch):
    import errno

    from aios_tui.engine.hrm import bundle

    def full_disk(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(bundle, "write_bundle", full_disk)
    run = tmp_path / "run"
    code, out, err = cli("train-actv1", *SMALL, "--steps", "1", "--lr", "3e-4", "--run-dir", str(run),
                         "--bundle-dir", str(tmp_path / "brains"), "--brain-name", "b")
    assert code == 2 and err.strip().splitlines() == [
        f"aios-tui: error: hrm.bundle_dir: the brain bundle {tmp_path / 'brains' / 'b'} could not be written "
        f"(No space left on device); the trained weights are in the run's last checkpoint, which "
        f"`aios-tui export {run}` writes out"]
    assert (run / "checkpoints" / "step-000001" / "COMPLETE").is_file()
    monkeypatch.undo()
    code, out, err = cli("export", str(run), "--out", str(tmp_path / "model"))
    assert code == 0, err


@pytest.fixture
def hrm_run(cli, tmp_path):
    run = tmp_path / "run"
    code, out, err = cli("train-actv1", *SMALL, "--steps", "1", "--run-dir", str(run),
                         "--bundle-dir", str(tmp_path / "brains"))
    assert code == 0, err
    return run


@pytest.mark.parametrize("damage, said", [
    (lambda base: _edit(base / "config.json", num_heads=0), "config.json cannot be read (its num_heads is 0"),
    (lambda base: _edit(base / "config.json", hidden_size=64), "model.safetensors cannot be read (its tensors' "
                                                               "shapes do not match config.json)"),
    (lambda base: _truncate(base / "model.safetensors"), "model.safetensors cannot be read (Error while "),
    (lambda base: (base / "tokenizer_config.json").write_text("[]"), "its tokenizer files cannot be read"),
])
def test_a_damaged_saved_base_of_a_run_is_one_line(cli, hrm_run, tmp_path, damage, said):
    damage(hrm_run / "base")
    for command in (("generate", str(hrm_run), "--prompt", "ab", "--max-new-tokens", "2"),
                    ("export", str(hrm_run), "--out", str(tmp_path / "model")),
                    ("train-actv1", "--resume", str(hrm_run), "--steps", "2", "--progress", "none")):
        code, out, err = cli(*command)
        lines = err.strip().splitlines()
        assert code == 2 and len(lines) == 1 and said in lines[0], (command, err)
        assert f"{hrm_run / 'base'}: " in lines[0] and "the saved HRM ACTv1 model there is damaged" in lines[0]
    assert not (tmp_path / "model").exists()


def test_a_taken_run_name_says_the_command_that_continues_a_brain_run(cli, hrm_run, tmp_path):
    code, out, err = cli("train-actv1", *SMALL, "--steps", "1", "--run-dir", str(hrm_run),
                         "--bundle-dir", str(tmp_path / "brains"))
    assert code == 2 and err.strip().splitlines() == [
        f"aios-tui: error: {hrm_run} already holds a run with checkpoints; pick another --run-dir or "
        f"--run-name, or continue it with `aios-tui train-actv1 --resume {hrm_run}`"]


def test_config_problem_accepts_what_hrm_config_writes(make_model):
    from aios_tui.engine.hrm.model import config_problem

    assert config_problem(make_model().config.to_dict()) is None
    assert torch.is_tensor(make_model().H_init)
