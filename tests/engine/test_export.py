"""Export and use: adapters reload, merged models give base + adapter's logits, sampling works."""

from __future__ import annotations

import json

import pytest
import torch


def _logits(model, ids):
    with torch.no_grad():
        return model(input_ids=ids).logits.float()


IDS = torch.tensor([[257] + list(b"count 3 to 7: 3 4 5")])

METHODS = {
    "lora": {"use_peft": True, "lora_r": 4, "lora_target_modules": "q_proj,v_proj,up_proj", "lr": 2e-2},
    "adalora": {"use_peft": True, "peft_method": "adalora", "lora_r": 2, "lora_target_modules": "q_proj,v_proj",
                "lr": 5e-2, "adalora_tinit": 1, "adalora_tfinal": 2, "adalora_delta_t": 1},
    "ia3": {"use_peft": True, "peft_method": "ia3", "lora_target_modules": "k_proj,down_proj", "lr": 3e-1},
    "full": {"use_peft": False, "lr": 3e-3},
}


@pytest.mark.slow
@pytest.mark.parametrize("method", list(METHODS))
def test_merged_export_matches_base_plus_adapter(method, make_cfg, small_model_dir, tmp_path, cli):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from aios_tui.engine.export import load_trained
    from aios_tui.engine.train import run_training

    run = tmp_path / "run"
    run_training(make_cfg(steps=8, **METHODS[method]), run, progress="none")
    trained = load_trained(run)
    want = _logits(trained.model, IDS)
    base = AutoModelForCausalLM.from_pretrained(small_model_dir)
    assert not torch.allclose(want, _logits(base, IDS), atol=1e-3)  # training changed something

    code, out, err = cli("export", str(run), "--merge")
    assert code == 0, err
    merged_dir = run / "merged"
    merged = AutoModelForCausalLM.from_pretrained(merged_dir)
    assert not any("lora" in n or "ia3" in n for n, _ in merged.named_parameters())
    assert torch.allclose(_logits(merged, IDS), want, atol=1e-4)
    assert AutoTokenizer.from_pretrained(merged_dir)("hi", add_special_tokens=False)["input_ids"] == [104, 105]
    assert json.loads((merged_dir / "export.json").read_text())["step"] == 8

    if method != "full":
        from peft import PeftModel

        code, out, err = cli("export", str(run))
        assert code == 0, err
        adapter_dir = run / "adapter"
        config = json.loads((adapter_dir / "adapter_config.json").read_text())
        assert config["base_model_name_or_path"] == str(small_model_dir.resolve())
        reloaded = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(config["base_model_name_or_path"]),
                                             adapter_dir)
        assert torch.allclose(_logits(reloaded, IDS), want, atol=1e-5)


@pytest.mark.slow
def test_tiny_run_is_self_contained(tmp_path, cli):
    """A run on the built-in model saves its base, so exports and samples need nothing else."""
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    from aios_tui.engine.models import build_tiny

    run = tmp_path / "tiny-run"
    code, out, err = cli("train", "--use-peft", "--lora-target-modules", "q_proj,v_proj", "--steps", "3",
                         "--max-seq-len", "32", "--batch-size", "2", "--eval-every", "0", "--lr", "1e-2",
                         "--run-dir", str(run), "--progress", "lines")
    assert code == 0, err
    assert "training lora on tiny" in out and "finished at step 3" in out
    saved_base = AutoModelForCausalLM.from_pretrained(run / "base")
    assert all(torch.equal(a, b) for a, b in zip(saved_base.state_dict().values(), build_tiny().state_dict().values()))
    code, out, err = cli("export", str(run), "--out", str(tmp_path / "exported"))
    assert code == 0, err
    config = json.loads((tmp_path / "exported" / "adapter_config.json").read_text())
    assert config["base_model_name_or_path"] == str((run / "base").resolve())
    model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(config["base_model_name_or_path"]),
                                      tmp_path / "exported")
    assert model(input_ids=IDS).logits.shape == (1, IDS.shape[1], 259)


@pytest.mark.slow
def test_generate_from_a_run_and_from_its_export(make_cfg, tmp_path, cli):
    from aios_tui.engine.train import run_training

    run = tmp_path / "run"
    run_training(make_cfg(steps=4, **METHODS["lora"]), run, progress="none")
    code, greedy, err = cli("generate", str(run), "--prompt", "count 3", "--temperature", "0",
                            "--max-new-tokens", "12")
    assert code == 0, err
    assert greedy.startswith("count 3") and len(greedy.encode()) > len("count 3")
    code, _, err = cli("export", str(run), "--merge")
    assert code == 0, err
    code, from_export, err = cli("generate", str(run / "merged"), "--prompt", "count 3", "--temperature", "0",
                                 "--max-new-tokens", "12")
    assert code == 0, err
    assert from_export == greedy
    sampled = [cli("generate", str(run), "--prompt", "a", "--seed", str(s), "--max-new-tokens", "24")[1]
               for s in (1, 1, 2)]
    assert sampled[0] == sampled[1] and sampled[0] != sampled[2]


def test_export_and_generate_errors(tmp_path, cli):
    empty = tmp_path / "empty-run"
    empty.mkdir()
    code, _, err = cli("export", str(empty))
    assert code == 2 and "no complete checkpoint" in err
    code, _, err = cli("export", str(tmp_path / "missing"))
    assert code == 2 and "no such run directory" in err
    code, _, err = cli("generate", str(tmp_path / "missing"), "--prompt", "x")
    assert code == 2 and "no such run or model directory" in err
    code, _, err = cli("generate", str(empty), "--prompt", "x", "--max-new-tokens", "0", "--temperature", "-1")
    assert code == 2 and "--max-new-tokens" in err and "--temperature" in err


def test_generate_on_cuda_without_a_gpu_names_the_flag(tmp_path, cli, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    code, out, err = cli("generate", str(run), "--prompt", "x", "--device", "cuda")
    assert code == 2 and out == ""
    assert err == ("aios-tui: error: --device: cuda was asked for but no CUDA GPU is visible to torch; "
                   "use --device cpu or auto\n")


@pytest.mark.slow
def test_export_refuses_to_overwrite_other_files(make_cfg, tmp_path, cli, monkeypatch):
    from aios_tui.engine.train import run_training

    run = tmp_path / "run"
    run_training(make_cfg(steps=2, save_every=1, keep_last=5, **METHODS["lora"]), run, progress="none")
    precious = tmp_path / "precious"
    precious.mkdir()
    (precious / "notes.txt").write_text("mine")
    code, _, err = cli("export", str(run), "--out", str(precious))
    assert code == 2 and "not an earlier export" in err
    assert (precious / "notes.txt").read_text() == "mine"
    code, _, err = cli("export", str(run), "--checkpoint", "7")
    assert code == 2 and "no checkpoint at step 7 (checkpoints: 1, 2)" in err
    code, out, err = cli("export", str(run))
    assert code == 0 and json.loads((run / "adapter" / "export.json").read_text())["step"] == 2
    code, out, err = cli("export", str(run), "--checkpoint", "1")  # an older one goes beside it
    assert code == 0 and json.loads((run / "adapter-step-000001" / "export.json").read_text())["step"] == 1
    assert json.loads((run / "adapter" / "export.json").read_text())["step"] == 2
    code, out, err = cli("export", str(run), "--checkpoint", "2")  # the latest, named: its usual place
    assert code == 0 and str(run / "adapter") in out
    code, out, err = cli("export", str(run))  # replaces the earlier export
    assert code == 0 and json.loads((run / "adapter" / "export.json").read_text())["step"] == 2
    code, out, err = cli("export", "no-such-run", "--checkpoint", "1")
    assert code == 2 and "no such run directory" in err
    code, out, err = cli("export", run.name, "--checkpoint", "1")  # a run name works too, from anywhere
    assert code == 0, err
    monkeypatch.setenv("AIOS_TUI_RUNS", str(tmp_path))
    code, out, err = cli("export", run.name, "--checkpoint", "1")
    assert code == 0, err


@pytest.mark.slow
@pytest.mark.parametrize("merge", [False, True])
def test_export_to_an_out_that_cannot_be_made(merge, make_cfg, tmp_path, cli, monkeypatch):
    """An --out under a file, or where no directory can be made, is refused in one line; nothing is left."""
    import os

    from aios_tui.engine import export as export_mod
    from aios_tui.engine.train import run_training

    run = tmp_path / "run"
    run_training(make_cfg(steps=1, **METHODS["lora"]), run, progress="none")
    flag = ["--merge"] if merge else []
    afile = tmp_path / "somefile.toml"
    afile.write_text("x")
    before = sorted(os.listdir(tmp_path)), sorted(os.listdir(run))
    for out in (afile / "x", afile / "a" / "b"):
        code, out_text, err = cli("export", str(run), "--out", str(out), *flag)
        assert code == 2 and err.strip() == f"aios-tui: error: --out {out}: {afile} is a file, not a directory"
    if os.path.isdir("/proc/self"):  # a directory where nothing can be made
        code, _, err = cli("export", str(run), "--out", "/proc/x", *flag)
        assert code == 2 and err.strip() == ("aios-tui: error: --out /proc/x: cannot create a directory in /proc "
                                             "(No such file or directory)")

    def fails(*a, **k):
        raise OSError(28, "No space left on device")

    # A write that fails halfway takes the parents it made with it.
    monkeypatch.setattr(export_mod, "_finish", fails)
    code, _, err = cli("export", str(run), "--out", str(tmp_path / "new" / "deep" / "out"), *flag)
    assert code == 2 and "cannot write the export (no space left on the device); free space there" in err
    assert (sorted(os.listdir(tmp_path)), sorted(os.listdir(run))) == before


def test_bundle_export_to_an_out_under_a_file(tmp_path, cli):
    bundle = tmp_path / "brain"
    bundle.mkdir()
    (bundle / "brain.json").write_text("{}")
    afile = tmp_path / "somefile.toml"
    afile.write_text("x")
    code, _, err = cli("export", str(bundle), "--out", str(afile / "x"))
    assert code == 2 and err.strip() == f"aios-tui: error: --out {afile / 'x'}: {afile} is a file, not a directory"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["brain", "somefile.toml"]


@pytest.mark.slow
def test_generate_refuses_what_it_cannot_do_in_one_line(make_cfg, small_model_dir, tmp_path, cli):
    """Past the model's positions, a step on an export, a non-finite temperature: exit 2, no traceback."""
    from aios_tui.engine.train import run_training

    run = tmp_path / "run"
    run_training(make_cfg(steps=2, **METHODS["lora"]), run, progress="none")
    code, _, err = cli("export", str(run))
    assert code == 0, err
    limit = json.loads((small_model_dir / "config.json").read_text())["max_position_embeddings"]
    for target in (run, run / "adapter"):
        code, out, err = cli("generate", str(target), "--prompt", "ab", "--max-new-tokens", str(limit))
        assert code == 2 and out == ""
        assert err == (f"aios-tui: error: --max-new-tokens: the prompt's 3 tokens and {limit} new ones exceed the "
                       f"model's {limit} positions; use --max-new-tokens {limit - 3} or less\n")
    code, out, err = cli("generate", str(run), "--prompt", "ab", "--max-new-tokens", str(limit - 3),
                         "--temperature", "0")
    assert code == 0, err
    code, out, err = cli("generate", str(run / "adapter"), "--prompt", "ab", "--checkpoint", "1")
    assert code == 2 and out == "" and err.startswith("aios-tui: error: --checkpoint: ") and len(err.splitlines()) == 1
    for bad in ("nan", "inf"):
        code, out, err = cli("generate", str(run), "--prompt", "ab", "--temperature", bad)
        assert code == 2 and err == f"aios-tui: error: --temperature: {bad} is out of range; valid: 0 or more\n"


@pytest.mark.slow
@pytest.mark.parametrize("merge", [False, True])
def test_export_while_the_run_saves_and_prunes(merge, make_cfg, tmp_path, cli, monkeypatch):
    """A live run saves newer checkpoints and deletes older ones while an export reads one."""
    import os
    import shutil

    from aios_tui.engine import checkpoint as ckpt
    from aios_tui.engine import export as export_mod
    from aios_tui.engine.train import run_training

    run = tmp_path / "run"
    run_training(make_cfg(steps=2, save_every=1, keep_last=5, **METHODS["lora"]), run, progress="none")
    flag = ["--merge"] if merge else []
    kind = "merged" if merge else "adapter"
    find = ckpt.find_checkpoint

    def and_a_newer_one_is_saved(run_dir, step=None):
        found = find(run_dir, step)
        newer = found.parent / ckpt.step_name(9)
        if not newer.exists():
            shutil.copytree(found, newer)
        return found

    # Exporting the latest: it goes to the usual place, even if a newer one lands meanwhile.
    monkeypatch.setattr(ckpt, "find_checkpoint", and_a_newer_one_is_saved)
    code, out, err = cli("export", str(run), *flag)
    assert code == 0, err
    assert json.loads((run / kind / "export.json").read_text())["step"] == 2
    assert not (run / f"{kind}-step-000002").exists()
    monkeypatch.setattr(ckpt, "find_checkpoint", find)
    shutil.rmtree(run / "checkpoints" / ckpt.step_name(9))

    # The checkpoint being read is pruned by the run: said so, and nothing is left behind.
    older = run / "checkpoints" / ckpt.step_name(1)
    if merge:
        load = export_mod.load_trained

        def pruned_first(*a, **k):
            shutil.rmtree(older)
            return load(*a, **k)

        monkeypatch.setattr(export_mod, "load_trained", pruned_first)
    else:
        copy = shutil.copy2

        def pruned_first(src, dst, **k):
            shutil.rmtree(older, ignore_errors=True)
            return copy(src, dst, **k)

        monkeypatch.setattr(export_mod.shutil, "copy2", pruned_first)
    before = sorted(os.listdir(run))
    code, out, err = cli("export", str(run), "--checkpoint", "1", *flag)
    assert code == 2 and out == ""
    assert err == (f"aios-tui: error: {older}: was removed while it was being exported (a run keeps only its last "
                   "--keep-last checkpoints); export again\n")
    assert sorted(os.listdir(run)) == before


@pytest.mark.slow
def test_a_trained_head_on_a_tied_model_merges_untied_and_says_so(tmp_path, cli, cli_subprocess):
    from transformers import AutoModelForCausalLM

    run = tmp_path / "run"
    code, _, err = cli("train", "--use-peft", "--lora-target-modules", "q_proj", "--modules-to-save", "lm_head",
                       "--steps", "2", "--max-seq-len", "32", "--batch-size", "2", "--eval-every", "0",
                       "--run-dir", str(run), "--progress", "none")
    assert code == 0, err
    done = cli_subprocess("export", str(run), "--merge")
    assert done.returncode == 0, done.stderr
    assert "ensure_weight_tying" not in done.stderr and "no longer tied" not in done.stderr
    assert "note: the output layer was trained apart from the input embeddings" in done.stdout
    merged = AutoModelForCausalLM.from_pretrained(run / "merged")
    assert not merged.config.tie_word_embeddings
    assert merged.get_output_embeddings().weight.data_ptr() != merged.get_input_embeddings().weight.data_ptr()


@pytest.mark.slow
def test_a_tokenizer_without_a_pad_token_is_exported_without_one(make_cfg, small_model_dir, tmp_path, cli):
    """Packing borrows EOS as the pad token; the exported model's tokenizer stays as the user had it."""
    import shutil

    from transformers import AutoTokenizer

    from aios_tui.engine.train import run_training

    model = tmp_path / "no-pad"
    shutil.copytree(small_model_dir, model)
    tok = AutoTokenizer.from_pretrained(model)
    tok.pad_token = None
    tok.save_pretrained(model)
    assert AutoTokenizer.from_pretrained(model).pad_token is None

    run = tmp_path / "run"
    run_training(make_cfg(model=str(model), steps=2, use_peft=True, lora_r=2), run, progress="none")
    for args, out in ((("--merge",), run / "merged"), ((), run / "adapter")):
        code, _, err = cli("export", str(run), *args)
        assert code == 0, err
        saved = AutoTokenizer.from_pretrained(out)
        assert saved.pad_token is None and saved.eos_token == tok.eos_token, out


def test_run_files_and_exports_take_the_umask_like_plain_files(tmp_path, cli):
    """safetensors and temp-file writers make 0600 files; a run's weights, configs and exports
    get the mode a plain open() gives instead, so another user (a model server) can read them."""
    import os
    import stat

    run = tmp_path / "run"
    old = os.umask(0o027)
    try:
        code, _, err = cli("train", "--use-peft", "--lora-target-modules", "q_proj", "--steps", "2",
                           "--max-seq-len", "32", "--batch-size", "2", "--eval-every", "0",
                           "--run-dir", str(run), "--progress", "none")
        assert code == 0, err
        for merge in ((), ("--merge",)):
            code, _, err = cli("export", str(run), *merge)
            assert code == 0, err
        code, _, err = cli("config", "--lora-r", "4", "-o", str(tmp_path / "out.toml"))
        assert code == 0, err
    finally:
        os.umask(old)
    files = [p for p in [*run.rglob("*"), tmp_path / "out.toml"] if p.is_file()]
    assert {"model.safetensors", "adapter_model.safetensors", "trainable.safetensors", "status.json",
            "config.toml", "export.json"} <= {p.name for p in files}
    modes = {str(p.relative_to(tmp_path)): oct(stat.S_IMODE(p.stat().st_mode)) for p in files}
    assert set(modes.values()) == {"0o640"}, modes


def test_a_damaged_adapter_is_named_as_a_damaged_checkpoint(tmp_path, cli):
    import shutil

    from safetensors.torch import load_file, save_file

    run = tmp_path / "run"
    code, _, err = cli("train", "--steps", "4", "--save-every", "2", "--run-dir", str(run), "--device", "cpu",
                       "--use-peft", "--progress", "none")
    assert code == 0, err
    adapter = run / "checkpoints" / "step-000004" / "adapter"
    kept = tmp_path / "kept"
    shutil.copytree(adapter, kept)
    config, weights = adapter / "adapter_config.json", adapter / "adapter_model.safetensors"
    good = json.loads(config.read_text())
    tensors = load_file(str(weights))
    first = sorted(tensors)[0]

    def write(path, value):
        path.write_text(value if isinstance(value, str) else json.dumps(value))

    damages = [
        (lambda: write(config, [1, 2]), "adapter_config.json cannot be read (it holds list, not an object)"),
        (lambda: write(config, ""), "adapter_config.json cannot be read (Expecting value"),
        (lambda: write(config, {}), "its peft_type None is not an adapter type peft knows"),
        (lambda: write(config, {**good, "r": "8"}), "its r is '8', not int"),
        (lambda: write(config, {**good, "target_modules": 5}), "its target_modules is 5"),
        (lambda: weights.write_bytes(weights.read_bytes()[:100]), "adapter_model.safetensors cannot be read"),
        (lambda: (weights.unlink(), weights.mkdir()), "adapter_model.safetensors cannot be read"),
        (lambda: save_file({**tensors, first: tensors[first].long()}, str(weights)), "is I64, not floating point"),
        (lambda: save_file({**tensors, first: torch.zeros(3, 3)}, str(weights)), "adapter cannot be read (size mismatch"),
    ]
    commands = [("export", str(run)), ("export", str(run), "--merge"),
                ("eval", str(run), "--max-batches", "1", "--device", "cpu"),
                ("generate", str(run), "--prompt", "a", "--max-new-tokens", "2", "--device", "cpu")]
    for damage, why in damages:
        damage()
        # the adapter as peft saves it is copied without loading a base: its tensors' shapes
        # are checked where it is loaded
        for args in commands[1:] if "size mismatch" in why else commands:
            code, _, err = cli(*args)
            assert code == 2 and len(err.splitlines()) == 1, (args, err)
            assert why in err and "the checkpoint is damaged: remove it" in err, (args, err)
            assert "step-000002 instead" in err, err
            assert not (run / "adapter").exists() and not (run / "merged").exists()
            assert not [p for p in run.iterdir() if p.name.startswith(".")], args
        shutil.rmtree(adapter)
        shutil.copytree(kept, adapter)
    # an adapter damaged among several: found as eval swaps it in after an earlier one
    save_file({**tensors, first: torch.zeros(3, 3)}, str(weights))
    code, _, err = cli("eval", str(run), "--all-checkpoints", "--max-batches", "1", "--device", "cpu")
    errors = [line for line in err.splitlines() if line.startswith("aios-tui: error:")]  # after "scoring ..."
    assert code == 2 and len(errors) == 1 and "Traceback" not in err, err
    assert "step-000004: adapter cannot be read (size mismatch" in errors[0], err
    shutil.rmtree(adapter)
    shutil.copytree(kept, adapter)
    for args in commands:
        code, _, err = cli(*args)
        assert code == 0, (args, err)


def test_a_base_model_config_field_of_the_wrong_type_is_one_line(small_model_dir, tmp_path, cli):
    import shutil

    model = tmp_path / "model"
    shutil.copytree(small_model_dir, model)
    run = tmp_path / "run"
    code, _, err = cli("train", "--model", str(model), "--steps", "2", "--max-seq-len", "32", "--run-dir", str(run),
                       "--device", "cpu", "--use-peft", "--lora-target-modules", "q_proj", "--progress", "none")
    assert code == 0, err
    config = json.loads((model / "config.json").read_text())
    (model / "config.json").write_text(json.dumps({**config, "hidden_size": "big"}))
    for args in (("export", str(run), "--merge"), ("generate", str(run), "--prompt", "a", "--device", "cpu"),
                 ("train", "--resume", str(run), "--steps", "3", "--device", "cpu", "--progress", "none")):
        code, _, err = cli(*args)
        assert code == 2 and len(err.splitlines()) == 1, (args, err)
        assert "Field 'hidden_size' expected int, got str" in err, (args, err)
    assert not (run / "merged").exists()


@pytest.mark.slow
def test_an_export_killed_midway_leaves_no_output_and_its_leftover_goes_next_time(make_cfg, tmp_path, cli):
    """A merge killed while it loads leaves the earlier output, or none, never a torn one; the
    temp dir it wrote into (as big as a merged model) is removed by the next export there."""
    import os
    import signal
    import subprocess
    import sys
    import time

    from aios_tui.engine.train import run_training

    run = tmp_path / "run"
    run_training(make_cfg(steps=2, **METHODS["lora"]), run, progress="none")
    proc = subprocess.Popen([sys.executable, "-m", "aios_tui", "export", str(run), "--merge"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    leftover = run / f".merged.tmp-{proc.pid}"
    deadline = time.monotonic() + 120
    while not leftover.is_dir() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.005)
    assert leftover.is_dir(), "the export's temp dir never showed"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (run / "merged").exists()
    assert leftover.is_dir()  # what a killed process leaves

    code, _, err = cli("export", str(run), "--merge")
    assert code == 0, err
    assert (run / "merged" / "export.json").is_file()
    assert sorted(p.name for p in run.iterdir() if p.name.startswith(".merged")) == []
