"""`aios-tui train-actv1` flags against what AI-OS's guide says of them: --merge-adapter is
checked before training, a hang-up does not end a run, and notes only where a flag does nothing."""

from __future__ import annotations

import subprocess
import sys

import pytest

SMALL = ["--hidden-size", "64", "--num-heads", "4", "--h-layers", "1", "--l-layers", "1"]


def brain_args(tmp_path, *extra: str) -> list[str]:
    return ["train-actv1", *SMALL, "--use-peft", "--lora-target-modules", "q_proj,v_proj", "--steps", "2",
            "--batch-size", "2", "--max-seq-len", "32", "--eval-every", "0", "--save-every", "0",
            "--run-dir", str(tmp_path / "run"), "--bundle-dir", str(tmp_path / "brains"),
            "--brain-name", "b", *([] if "--check" in extra else ["--progress", "none"]), *extra]


@pytest.mark.parametrize("name, why", [
    ("b", "merging needs a new bundle name, not the same directory"),
    ("../elsewhere", "is not a plain name"),
    ("a/b", "is not a plain name"),
    ("notes", "exists and is not an earlier merge of"),
])
def test_a_merge_place_that_cannot_be_written_is_refused_before_training(cli, tmp_path, name, why):
    notes = tmp_path / "brains" / "notes"
    notes.mkdir(parents=True)
    (notes / "a.txt").write_text("keep me")
    for check in (["--check"], []):
        code, out, err = cli(*brain_args(tmp_path, "--merge-adapter", name, *check))
        assert code == 2 and "would start" not in out, err
        assert err.strip().splitlines()[-1].startswith("aios-tui: error: --merge-adapter: ")
        assert why in err
        assert not (tmp_path / "run").exists() and not (tmp_path / "brains" / "b").exists()
    assert sorted(p.name for p in tmp_path.rglob("*") if "xdg" not in str(p)) == ["a.txt", "brains", "notes"]


@pytest.mark.slow
def test_a_hang_up_while_the_model_loads_does_not_end_the_run(tmp_path, text_file):
    # The terminal's SIGHUP, delivered at the one moment the loop's own handler is not yet in place.
    script = (
        "import os, signal, sys\n"
        "from aios_tui.engine.hrm.task import HRMTask\n"
        "build = HRMTask.build\n"
        "def hung_up(self, *a):\n"
        "    os.kill(os.getpid(), signal.SIGHUP)\n"
        "    return build(self, *a)\n"
        "HRMTask.build = hung_up\n"
        "from aios_tui.cli import main\n"
        "sys.exit(main(sys.argv[1:]))\n")
    proc = subprocess.run([sys.executable, "-c", script, *brain_args(tmp_path, "--dataset-file", str(text_file))],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert f"brain bundle: {tmp_path / 'brains' / 'b'}" in proc.stdout


def test_a_refused_student_architecture_is_the_only_line(cli, tmp_path):
    code, _, err = cli(*brain_args(tmp_path))
    assert code == 0, err
    code, out, err = cli("train-actv1", "--student-init", str(tmp_path / "brains" / "b"), "--use-peft",
                         "--hidden-size", "128", "--run-dir", str(tmp_path / "two"))
    assert code == 2 and out == ""
    assert err == ("aios-tui: error: hrm.hidden_size: 128 differs from the student bundle's 64; "
                   "drop --hidden-size to use the bundle's\n")


def test_flags_without_effect_on_a_brain_say_so(cli):
    code, out, err = cli("train-actv1", "--check", "--attn-implementation", "flash_attention_2",
                         "--lm-head-trainable")
    assert code == 0, err
    assert ("note: --attn-implementation flash_attention_2 has no effect on HRM ACTv1; its attention is "
            "PyTorch's scaled_dot_product_attention") in err
    assert "note: --lm-head-trainable has no effect without --use-peft" in err
    code, out, err = cli("train-actv1", "--check", "--use-peft", "--lm-head-trainable")
    assert code == 0 and "no effect" not in err, err


def _only_errors(err: str) -> bool:
    return bool(err) and all(line.startswith("aios-tui: error: ") for line in err.splitlines())


@pytest.mark.parametrize("how", [["--check"], []])
def test_a_refused_brain_start_prints_its_errors_and_no_note(cli, tmp_path, how):
    # a new brain under PEFT draws two notes (lm_head frozen, adapters over random weights)
    args = brain_args(tmp_path, *how)
    args[args.index("q_proj,v_proj")] = "nothing"
    code, out, err = cli(*args)
    assert code == 2 and out == "" and _only_errors(err), err
    assert "peft.lora_target_modules: nothing matches no layer of HRM ACTv1" in err
    assert not (tmp_path / "run").exists() and not (tmp_path / "brains").exists()
    code, out, err = cli(*brain_args(tmp_path, *how))
    assert code == 0, err
    assert err.splitlines()[:2] == [
        "note: lm_head stays frozen beside the adapter (AI-OS trains it; --lm-head-trainable does, at the cost "
        "of a much larger trainable share)",
        "note: --use-peft on a new brain trains adapters over random weights; PEFT is for fine-tuning (start "
        "from a trained brain with --student-init BUNDLE)"]


def test_the_lm_head_note_says_what_happens_to_lm_head(cli, tmp_path):
    code, _, err = cli(*brain_args(tmp_path, "--check"), "--lora-target-modules", "q_proj,lm_head")
    assert code == 0, err
    assert ("note: lm_head takes an adapter like the other targets; its own weights stay frozen (AI-OS trains "
            "them in full: drop lm_head from --lora-target-modules and pass --lm-head-trainable for that") in err
    assert "lm_head stays frozen" not in err
    code, _, err = cli(*brain_args(tmp_path, "--check"), "--modules-to-save", "lm_head")
    assert code == 0 and "lm_head" not in err, err  # trained in full, as asked: nothing to say


@pytest.mark.slow
def test_an_adapter_on_lm_head_saves_its_checkpoints_without_library_warnings(cli_subprocess, tmp_path):
    proc = cli_subprocess(*brain_args(tmp_path, "--lora-target-modules", "q_proj,lm_head", "--save-every", "1"))
    assert proc.returncode == 0, proc.stderr
    assert [line for line in proc.stderr.splitlines() if not line.startswith("note: ")] == [], proc.stderr
