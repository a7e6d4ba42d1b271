"""`aios-tui train` at the command line: bad input exits 2 leaving nothing; detached runs."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest


def _runs_root() -> Path:
    return Path(os.environ["AIOS_TUI_RUNS"])


def _nothing_left() -> bool:
    root = _runs_root()
    return not root.exists() or not any(root.iterdir())


def test_help_describes_the_commands():
    from aios_tui.cli import build_parser

    sub = build_parser()._subparsers._group_actions[0].choices  # type: ignore[union-attr]
    train_help = sub["train"].format_help()
    for flag in ("--resume", "--stop-after", "--detach", "--lora-target-modules", "--save-every", "--run-dir"):
        assert flag in train_help
    assert "--merge" in sub["export"].format_help() and "--checkpoint" in sub["export"].format_help()
    assert "--prompt" in sub["generate"].format_help() and "--temperature" in sub["generate"].format_help()


@pytest.mark.slow
def test_targets_that_match_nothing_list_the_linear_layers(cli, small_model_dir, text_file):
    code, out, err = cli("train", "--model", str(small_model_dir), "--dataset-file", str(text_file),
                         "--use-peft", "--lora-target-modules", "c_attn,q_proj", "--steps", "2")
    assert code == 2
    assert "aios-tui: error: peft.lora_target_modules: c_attn matches no layer of" in err
    assert "its linear layers are: q_proj, k_proj, v_proj, o_proj, gate_proj, up_proj, down_proj, lm_head" in err
    assert "for example: --lora-target-modules q_proj,v_proj\n" in err  # AI-OS's advice for attention
    assert "Traceback" not in err and _nothing_left()


@pytest.mark.slow
def test_a_gpt2_style_model_gets_its_own_layers_for_llama_names(cli, tmp_path, text_file):
    import json

    from transformers import GPT2Config, GPT2LMHeadModel

    from aios_tui.config import load_config
    from aios_tui.engine.tokenizer import byte_tokenizer

    gpt2 = tmp_path / "gpt2ish"
    GPT2LMHeadModel(GPT2Config(vocab_size=259, n_embd=32, n_layer=1, n_head=2, n_positions=64)).save_pretrained(gpt2)
    byte_tokenizer().save_pretrained(gpt2)
    common = ["--model", str(gpt2), "--dataset-file", str(text_file), "--use-peft", "--max-seq-len", "32"]
    code, _, err = cli("train", *common, "--lora-target-modules", "q_proj,nonesuch")
    assert code == 2
    assert "nonesuch matches no layer" in err and "c_attn, c_proj, c_fc" in err
    assert "for example: --lora-target-modules c_attn\n" in err   # q and v are one layer in GPT-2
    assert _nothing_left()
    # the default (Llama's seven names) means every projection, which GPT-2 calls otherwise
    run = tmp_path / "ok"
    code, _, err = cli("train", *common, "--steps", "2", "--batch-size", "2", "--run-dir", str(run),
                       "--progress", "none")
    assert code == 0, err  # Conv1D layers take LoRA too
    assert ("q_proj/k_proj/v_proj -> c_attn, o_proj -> attn.c_proj, gate_proj/up_proj -> c_fc, "
            "down_proj -> mlp.c_proj") in err
    cfg = load_config(run / "config.toml")
    assert cfg.peft.target_list() == ["c_attn", "attn.c_proj", "c_fc", "mlp.c_proj"]
    header = json.loads((run / "metrics.jsonl").read_text().splitlines()[0])
    code, out, err = cli("estimate", *common, "--json")
    assert code == 0, err
    assert json.loads(out)["parameters"]["trainable"] == header["parameters"]["trainable"]


def _dataset(directory: Path, kind: str) -> str:
    path = directory / f"{kind}.txt"
    if kind == "empty":
        path.write_text("")
    elif kind == "binary":
        path.write_bytes(b"\x00\x01\x02" * 10)
    return str(path)


@pytest.mark.parametrize("kind, expect", [("missing", "no such file"), ("empty", "is empty"),
                                          ("binary", "looks binary")])
def test_bad_datasets_exit_2_without_a_run_dir(cli, tmp_path, kind, expect):
    path = _dataset(tmp_path, kind)
    code, out, err = cli("train", "--dataset-file", path, "--steps", "2")
    assert code == 2
    assert f"aios-tui: error: dataset {path}: {expect}" in err
    assert "Traceback" not in err and _nothing_left()


def test_bad_config_values_are_all_reported(cli):
    code, _, err = cli("train", "--lora-r", "0", "--steps", "x", "--stop-after", "1")
    assert code == 2 and "--steps: 'x' is not a whole number" in err and _nothing_left()
    code, _, err = cli("train", "--stop-after", "0")
    assert code == 2 and "--stop-after" in err


def test_unsound_memory_savers_are_refused_before_loading(cli):
    # HRM ACTv1 brains train in full precision; a quantized base is refused up front.
    code, _, err = cli("train-actv1", "--use-peft", "--load-in-4bit", "--steps", "2")
    assert code == 2 and "--load-in-4bit" in err and _nothing_left()


@pytest.mark.slow
def test_a_run_dir_that_holds_a_run_is_not_reused(cli, make_cfg, tmp_path):
    from aios_tui.engine.train import run_training

    run = tmp_path / "run"
    run_training(make_cfg(steps=2), run, progress="none")
    before = sorted(p.name for p in run.rglob("*"))
    code, _, err = cli("train", "--run-dir", str(run), "--steps", "2")
    assert code == 2 and "already holds a run" in err and f"--resume {run}" in err
    assert sorted(p.name for p in run.rglob("*")) == before


@pytest.mark.slow
def test_detached_run_finishes_on_its_own(cli, small_model_dir, text_file, tmp_path):
    run = tmp_path / "detached"
    code, out, err = cli("train", "--detach", "--model", str(small_model_dir), "--dataset-file", str(text_file),
                         "--use-peft", "--lora-target-modules", "q_proj", "--steps", "4", "--max-seq-len", "32",
                         "--batch-size", "2", "--run-dir", str(run))
    assert code == 0, err
    assert f"run dir: {run}" in out and "pid: " in out and f"aios-tui tail {run} --follow" in out
    status = json.loads((run / "status.json").read_text())
    assert status["state"] in ("starting", "running", "finished") and status["pid"] > 0
    assert (run / "config.toml").is_file()
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        status = json.loads((run / "status.json").read_text())
        if status["state"] not in ("starting", "running"):
            break
        time.sleep(0.5)
    log = (run / "engine.log").read_text() if (run / "engine.log").exists() else ""
    assert status["state"] == "finished", log
    assert status["step"] == 4 and status["method"] == "lora" and status["metrics"] == str(run / "metrics.jsonl")
    assert "finished at step 4" in log and "Traceback" not in log


@pytest.mark.slow
def test_detach_checks_targets_before_starting(cli, small_model_dir, text_file, tmp_path):
    code, _, err = cli("train", "--detach", "--model", str(small_model_dir), "--dataset-file", str(text_file),
                       "--use-peft", "--lora-target-modules", "qkv_proj", "--run-dir", str(tmp_path / "d"))
    assert code == 2 and "qkv_proj matches no layer" in err
    assert not (tmp_path / "d").exists()


def test_a_target_also_in_modules_to_save_is_refused_by_check_and_start(cli, tmp_path):
    args = ["train", "--use-peft", "--lora-target-modules", "q_proj", "--modules-to-save", "q_proj",
            "--steps", "1", "--run-dir", str(tmp_path / "run")]
    for check in (["--check"], ["--progress", "none"]):
        code, out, err = cli(*args, *check)
        assert code == 2 and "would start" not in out
        assert "peft.lora_target_modules: q_proj is in modules_to_save" in err and "Traceback" not in err
        assert not (tmp_path / "run").exists()


def test_a_missing_dependency_is_named_with_its_fix_not_a_traceback(cli_subprocess, tmp_path):
    shadow = tmp_path / "shadow"
    shadow.mkdir()
    (shadow / "peft.py").write_text("raise ModuleNotFoundError(\"No module named 'peft'\", name='peft')\n")
    env = {"PYTHONPATH": os.pathsep.join([str(shadow), os.environ.get("PYTHONPATH", "")])}
    proc = cli_subprocess("train", "--use-peft", "--steps", "2", env=env)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        "aios-tui: error: the Python package peft is missing (No module named 'peft'); reinstall "
        "aios-tui with its dependencies (`pip install -e .` in its checkout)"]
    assert not (tmp_path / "runs").exists() or not os.listdir(tmp_path / "runs")


def test_outputs_that_cannot_be_written_are_refused_before_anything_is_made(cli, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    cases = [
        (("--log-file", str(tmp_path)), f"train.log_file {tmp_path}: is not a regular file"),
        (("--log-file", str(blocker / "m.jsonl")), f"train.log_file {blocker / 'm.jsonl'}: cannot be written"),
        (("--run-dir", str(blocker / "run")), f"train.run_dir {blocker / 'run'}: cannot be written"),
        (("--run-dir", str(blocker)), f"{blocker} exists and is not a directory"),
    ]
    for flags, message in cases:
        before = sorted(p.name for p in tmp_path.rglob("*"))
        code, _, err = cli("train", "--steps", "1", "--run-name", "out", *flags)
        assert code == 2, (flags, err)
        assert message in err and "Traceback" not in err
        assert sorted(p.name for p in tmp_path.rglob("*")) == before  # the probe left nothing


def test_a_log_file_in_new_directories_is_made_there(cli, tmp_path):
    log = tmp_path / "logs" / "deep" / "m.jsonl"
    code, _, err = cli("train", "--steps", "1", "--run-dir", str(tmp_path / "new" / "run"),
                       "--log-file", str(log), "--progress", "none")
    assert code == 0, err
    assert log.is_file() and '"loss"' in log.read_text()


def test_config_output_that_cannot_be_written_is_one_line(cli, tmp_path):
    code, _, err = cli("config", "-o", str(tmp_path))
    assert code == 2 and err.strip() == f"aios-tui: error: {tmp_path}: is a directory; name a file"


def test_a_hub_that_cannot_resolve_means_the_cache_at_once(cli_subprocess, tmp_path):
    env = {"HF_HUB_OFFLINE": "", "TRANSFORMERS_OFFLINE": "", "HF_ENDPOINT": "https://hub.example.invalid",
           "HF_HOME": str(tmp_path / "hf"), "HTTPS_PROXY": "", "https_proxy": "", "ALL_PROXY": "", "all_proxy": ""}
    proc = cli_subprocess("train", "--steps", "1", "--model", "someone/some-model", env=env, timeout=120)
    assert proc.returncode == 2
    assert "Retrying" not in proc.stderr and "Traceback" not in proc.stderr
    # the refusal is the only line, and says why the cache was all there was
    assert proc.stderr.strip().splitlines() == [
        "aios-tui: error: model.model: someone/some-model is not in the local Hugging Face cache and the Hub "
        "cannot be reached (hub.example.invalid does not resolve); pass a local model directory (one with "
        "config.json) or 'tiny'"]


def test_the_probe_writes_through_a_symlink_and_leaves_it_alone(tmp_path):
    from aios_tui.engine.preflight import writable_problem

    link = tmp_path / "link.jsonl"
    link.symlink_to(tmp_path / "target.jsonl")
    assert writable_problem(link, "train.log_file", directory=False) is None
    assert link.is_symlink() and not (tmp_path / "target.jsonl").exists()
    kept = tmp_path / "kept.jsonl"
    kept.write_text("mine\n")
    assert writable_problem(kept, "train.log_file", directory=False) is None
    assert kept.read_text() == "mine\n"


def test_check_refuses_a_run_directory_that_holds_a_run(cli, make_cfg, tmp_path):
    from aios_tui.engine.train import run_training

    run_training(make_cfg(steps=1), tmp_path / "taken", progress="none")
    code, _, err = cli("train", "--check", "--run-dir", str(tmp_path / "taken"))
    assert code == 2 and "already holds a run" in err
    code, out, err = cli("train", "--check", "--run-dir", str(tmp_path / "free"))
    assert code == 0 and out.startswith("ok: ") and not (tmp_path / "free").exists()
    # a directory of other files cannot be resumed, so --resume is not offered
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "todo.txt").write_text("x")
    code, _, err = cli("train", "--check", "--run-dir", str(tmp_path / "notes"))
    assert code == 2 and "is not empty (todo.txt)" in err and "--resume" not in err


def test_check_refuses_a_model_directory_without_weights(cli, tmp_path):
    import json as _json

    model = tmp_path / "config-only"
    model.mkdir()
    (model / "config.json").write_text(_json.dumps({"model_type": "llama", "hidden_size": 32,
                                                    "intermediate_size": 64, "num_hidden_layers": 1,
                                                    "num_attention_heads": 2, "vocab_size": 300}))
    code, _, err = cli("train", "--check", "--model", str(model))
    assert code == 2 and "has a config.json but no weights" in err
    code, out, err = cli("estimate", "--model", str(model))  # enough to estimate memory
    assert code == 0, err


def test_resume_takes_a_run_name(cli, make_cfg, tmp_path):
    from aios_tui.engine.train import run_training

    runs = tmp_path / "runs"
    run_training(make_cfg(steps=3), runs / "named", progress="none", stop_after=2)
    code, out, err = cli("train", "--resume", "named", "--progress", "none")
    assert code == 0, err
    assert (runs / "named" / "checkpoints" / "step-000003").is_dir()


def test_a_log_file_a_live_run_writes_is_refused(cli, tmp_path):
    from aios_tui.metrics.rundir import RunDir

    log = tmp_path / "shared.jsonl"
    log.write_text('{"peft": "disabled"}\n')
    live = RunDir(tmp_path / "runs" / "live")
    live.path.mkdir(parents=True)
    live.write_status(state="running", pid=os.getpid(), metrics=str(log), step=1)
    code, _, err = cli("train", "--check", "--run-dir", str(tmp_path / "runs" / "new"), "--log-file", str(log))
    assert code == 2 and f"the live run {live.path} writes its metrics there" in err
    live.write_status(state="finished")  # one run after another may share the file, as AI-OS's examples do
    code, _, err = cli("train", "--check", "--run-dir", str(tmp_path / "runs" / "new"), "--log-file", str(log))
    assert code == 0, err


def test_peft_flags_without_use_peft_get_a_note(cli):
    code, out, err = cli("train", "--peft-method", "ia3", "--lora-r", "8", "--check")
    assert code == 0 and out.startswith("ok: full")
    assert "note: --peft-method, --lora-r have no effect without --use-peft" in err
    code, _, err = cli("train", "--use-peft", "--lora-r", "8", "--check")
    assert code == 0 and "no effect" not in err


def test_flags_of_another_adapter_type_get_a_note(cli):
    code, _, err = cli("train", "--use-peft", "--peft-method", "ia3", "--lora-r", "8", "--lora-alpha", "16",
                       "--ia3-feedforward-modules", "down_proj", "--check")
    assert code == 0, err
    assert "note: --lora-r, --lora-alpha have no effect with --peft-method ia3" in err
    code, _, err = cli("train", "--use-peft", "--adalora-tinit", "5", "--lora-dropout", "0.1", "--check")
    assert code == 0 and "note: --adalora-tinit has no effect with --peft-method lora" in err
    code, _, err = cli("train", "--use-peft", "--peft-method", "adalora", "--adalora-tinit", "5", "--lora-r", "8",
                       "--steps", "100", "--check")
    assert code == 0 and "no effect" not in err


def test_hrm_flags_given_to_train_get_a_note(cli):
    """AI-OS's train-actv1 lines pass --halt-max-steps; on `train` it would vanish unsaid."""
    code, out, err = cli("train", "--use-peft", "--halt-max-steps", "1", "--hidden-size", "64", "--check")
    assert code == 0 and out.startswith("ok: lora on tiny")
    assert err == ("note: --halt-max-steps, --hidden-size have no effect on `aios-tui train`; "
                   "HRM ACTv1 brains train with `aios-tui train-actv1`\n")
    code, _, err = cli("train-actv1", "--halt-max-steps", "1", "--hidden-size", "64", "--num-heads", "4", "--check")
    assert code == 0 and "no effect" not in err


def test_two_runs_started_at_once_cannot_share_a_log_file(cli, tmp_path):
    from aios_tui.engine.log_lock import LogFileLock

    log = tmp_path / "logs" / "shared.jsonl"
    held = LogFileLock.take(str(log))  # as the run that got there first holds it
    try:
        code, _, err = cli("train", "--steps", "1", "--run-dir", str(tmp_path / "second"), "--log-file", str(log),
                           "--progress", "none")
        assert code == 2 and "another run is writing its metrics there" in err
        assert not (tmp_path / "second").exists()
    finally:
        held.release()
    assert not (tmp_path / "logs").exists()  # the lock leaves nothing behind when nothing was written
    code, _, err = cli("train", "--steps", "1", "--run-dir", str(tmp_path / "second"), "--log-file", str(log),
                       "--progress", "none")
    assert code == 0, err
    assert '"loss"' in log.read_text()


def test_flash_attention_without_a_gpu_or_the_package_is_refused_before_anything_loads(
        cli, small_model_dir, text_file):
    common = ("--model", str(small_model_dir), "--dataset-file", str(text_file), "--steps", "2",
              "--attn-implementation", "flash_attention_2", "--device", "cpu")
    for extra in (("--check",), ("--detach",), ()):
        code, out, err = cli("train", *common, *extra)
        assert code == 2 and out == "", extra
        assert err == ("aios-tui: error: model.attn_implementation: flash_attention_2 runs on a CUDA "
                       "GPU only; use sdpa (the default) or eager\n"), extra
        assert _nothing_left()


def test_flash_attention_on_cuda_needs_the_flash_attn_package(monkeypatch):
    import importlib.util

    from aios_tui.config import RunConfig
    from aios_tui.engine.preflight import attention_problems
    from aios_tui.engine.task import CausalLMTask

    cfg = RunConfig()
    cfg.model.attn_implementation = "flash_attention_2"
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "flash_attn" else real(name, *a))
    assert attention_problems(cfg, "cuda", CausalLMTask()) == [
        "model.attn_implementation: flash_attention_2 needs the flash-attn package, which is not "
        "installed (pip install flash-attn); use sdpa (the default) or eager"]
    cfg.model.attn_implementation = "sdpa"
    assert attention_problems(cfg, "cuda", CausalLMTask()) == []


@pytest.fixture
def taken_while_loading(make_cfg, tmp_path, monkeypatch):
    """A run directory another process (alive, pid given) prepares for a run of its own while
    this one loads its model: two runs started in the same second pick the same generated name."""
    import subprocess
    import sys

    from aios_tui.engine import task as task_mod
    from aios_tui.engine.session import prepare
    from aios_tui.metrics.rundir import RunDir

    run = RunDir(tmp_path / "lora-20261128-120000")
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    build = task_mod.CausalLMTask.build

    def build_while_another_run_starts(self, cfg, device):
        prepare(run, make_cfg(steps=9), pid=other.pid, total_steps=9)
        return build(self, cfg, device)

    monkeypatch.setattr(task_mod.CausalLMTask, "build", build_while_another_run_starts)
    try:
        yield run, other.pid
        status = run.read_status()   # the other run's directory is as it left it
        assert status["pid"] == other.pid and status["state"] == "starting" and status["total_steps"] == 9
        assert run.config_toml.is_file() and not run.list_checkpoints() and not run.default_metrics.exists()
    finally:
        other.kill()
        other.wait()


def test_a_run_that_takes_the_directory_while_the_model_loads_is_left_alone(make_cfg, taken_while_loading):
    # a name the user gave: the second run to get past loading refuses, not writing over the first
    from aios_tui.engine.train import run_training
    from aios_tui.errors import UserError

    run, pid = taken_while_loading
    with pytest.raises(UserError, match=f"is being started by process {pid}"):
        run_training(make_cfg(steps=1), run.path, progress="none")


def test_a_generated_name_another_run_takes_while_the_model_loads_moves_to_the_next(make_cfg, tmp_path,
                                                                                  taken_while_loading):
    # a name the run made up itself: nobody asked for it, so the run starts under the next one
    # (as `train --detach` does when a run starts during its checks)
    from aios_tui.engine.train import run_training
    from aios_tui.metrics.rundir import RunDir

    run, _ = taken_while_loading
    result = run_training(make_cfg(steps=1), run.path, progress="none", generated=True)
    moved = RunDir(tmp_path / "lora-20261128-120000-2")
    assert Path(result.run_dir) == moved.path and moved.read_status()["state"] == "finished"
    assert moved.read_status()["run_name"] == moved.name


@pytest.mark.slow
def test_data_smaller_than_a_block_or_with_no_eval_block_gets_a_note(cli, tmp_path):
    short = tmp_path / "short.txt"
    short.write_text("hi\n")  # <s> h i \n </s>: 5 tokens of tiny's bytes
    common = ["--dataset-file", str(short), "--steps", "1", "--progress", "none"]
    code, _, err = cli("train", *common, "--run-dir", str(tmp_path / "a"))
    assert code == 0, err
    assert err.splitlines() == ["note: short.txt gives 5 tokens, less than one 128-token block; nothing is "
                                "held out for eval (eval_loss stays empty)"]
    # no eval asked for: only the size is worth a word
    code, _, err = cli("train", *common, "--eval-fraction", "0", "--run-dir", str(tmp_path / "b"))
    assert code == 0 and err.splitlines() == ["note: short.txt gives 5 tokens, less than one 128-token block"]
    # one full block: trains, but leaves nothing to evaluate on
    full = tmp_path / "full.txt"
    full.write_text("x" * 29 + "\n")
    code, _, err = cli("train", "--dataset-file", str(full), "--max-seq-len", "32", "--steps", "1",
                       "--progress", "none", "--run-dir", str(tmp_path / "c"))
    assert code == 0 and err.splitlines() == ["note: full.txt makes 1 32-token block(s); nothing is held out "
                                              "for eval (eval_loss stays empty)"]
    # enough for a train and an eval block: nothing to say
    code, _, err = cli("train", "--dataset-file", str(full), "--max-seq-len", "16", "--steps", "1",
                       "--progress", "none", "--run-dir", str(tmp_path / "d"))
    assert code == 0 and err == ""


def test_check_refuses_flags_for_a_run_it_does_not_start(cli, make_cfg, tmp_path):
    for command in ("train", "train-actv1"):
        code, out, err = cli(command, "--check", "--detach", "--steps", "2")
        assert (code, out) == (2, "") and err.splitlines() == [
            "aios-tui: error: --check starts nothing, so --detach has no effect with it; drop --check to "
            "start the run, or drop --detach to only check"]
        code, _, err = cli(command, "--check", "--detach", "--stop-after", "1")
        assert code == 2 and "so --detach and --stop-after have no effect" in err and len(err.splitlines()) == 1
        assert _nothing_left()
        # --progress only shapes a start's output; its default (auto) is no choice of the user's
        for progress in ("bar", "auto"):
            code, out, err = cli(command, "--check", "--progress", progress)
            assert (code, out) == (2, "") and err.splitlines() == [
                "aios-tui: error: --check starts nothing, so --progress has no effect with it; drop --check "
                "to start the run, or drop --progress to only check"]
        code, _, err = cli(command, "--check", "--detach", "--stop-after", "1", "--progress", "none")
        assert code == 2 and "so --detach, --stop-after and --progress have no effect" in err
        assert _nothing_left()
    # a check of a resume is a check
    from aios_tui.engine.train import run_training

    run = tmp_path / "run"
    run_training(make_cfg(steps=2), run, progress="none", stop_after=1)
    code, out, err = cli("train", "--check", "--resume", str(run))
    assert code == 0 and out.startswith("ok: "), err


def test_a_detached_run_writes_the_progress_asked_for_to_its_log_and_refuses_a_bar(cli, monkeypatch, tmp_path):
    import aios_tui.metrics.launch as launch

    children = []
    monkeypatch.setattr(launch, "start_detached", lambda child, path: children.append(child) or 999999)
    code, out, err = cli("train", "--detach", "--progress", "bar", "--run-dir", str(tmp_path / "bar"))
    assert (code, out) == (2, "") and err.splitlines() == [
        "aios-tui: error: --progress bar: a detached run has no terminal to draw a bar on; drop --progress "
        "(its log gets plain lines) or pass --progress none"]
    assert not (tmp_path / "bar").exists() and children == []
    for given, forwarded in ((["--progress", "none"], "none"), ([], "lines"), (["--progress", "auto"], "lines")):
        run = tmp_path / f"run-{forwarded}-{len(given)}"
        code, _, err = cli("train", "--detach", *given, "--run-dir", str(run))
        assert code == 0, err
        child = children.pop()
        assert child[child.index("--progress") + 1] == forwarded, given


def test_a_generated_name_moves_past_every_run_that_took_it_and_a_given_name_is_refused(make_cfg, tmp_path):
    from aios_tui.engine.session import take
    from aios_tui.errors import UserError
    from aios_tui.metrics.rundir import RunDir

    cfg = make_cfg(steps=1)
    for name in ("lora-20261128-120000", "lora-20261128-120000-2"):
        taken = RunDir(tmp_path / name)
        taken.path.mkdir()
        taken.write_status(state="running", pid=1)
    run, moved = take(RunDir(tmp_path / "lora-20261128-120000-2"), cfg, generated=True)
    assert run.path == tmp_path / "lora-20261128-120000-3" and not run.path.exists()
    assert (moved.train.run_dir, moved.train.run_name) == (str(run.path), run.name)
    with pytest.raises(UserError, match="already holds a run"):
        take(RunDir(tmp_path / "lora-20261128-120000"), cfg, generated=False)


def _only_errors(err: str) -> bool:
    return bool(err) and all(line.startswith("aios-tui: error: ") for line in err.splitlines())


@pytest.mark.parametrize("refused, why", [
    (["--use-peft", "--peft-method", "ia3", "--lora-target-modules", "nothing"], "nothing matches no layer of tiny"),
    (["--model-dtype", "fp16"], "fp16 weights cannot be trained in full"),
])
@pytest.mark.parametrize("how", [["--check"], ["--detach"], ["--progress", "none"]])
def test_a_refused_start_prints_its_errors_and_no_note(cli, tmp_path, refused, why, how):
    code, out, err = cli("train", "--lora-r", "8", *refused, "--run-dir", str(tmp_path / "run"), *how)
    assert code == 2 and out == "" and _only_errors(err) and why in err, err
    assert not (tmp_path / "run").exists()


def test_a_start_that_passes_prints_its_notes_first_in_order(cli, tmp_path):
    short = tmp_path / "short.txt"
    short.write_text("tiny text")
    args = ["train", "--use-peft", "--peft-method", "ia3", "--lora-r", "8", "--dataset-file", str(short),
            "--steps", "1", "--eval-fraction", "0", "--run-dir", str(tmp_path / "run")]
    code, out, err = cli(*args, "--check")
    assert code == 0 and err == "note: --lora-r has no effect with --peft-method ia3\n", err
    code, out, err = cli(*args, "--progress", "lines")
    assert code == 0 and out.startswith("training ia3 on tiny"), err
    assert err.splitlines() == ["note: --lora-r has no effect with --peft-method ia3",
                                "note: short.txt gives 11 tokens, less than one 128-token block"]
