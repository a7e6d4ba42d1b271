"""`aios-tui train-actv1` end to end on the CPU: learning, the seed's "Try it", bundles, errors."""

from __future__ import annotations

import hashlib
import json
import math
import random
from collections import Counter
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from aios_tui.metrics.jsonl import iter_records, read_header

SMALL = ["--hidden-size", "64", "--num-heads", "4", "--h-layers", "1", "--l-layers", "1"]
TARGET_LISTS = ["q_proj,v_proj", "q_proj,k_proj,v_proj,o_proj",
                "q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj,down_proj"]


def copy_task(path: Path, n: int = 2000, seed: int = 0) -> float:
    """A prompt/completion file (copy 3-6 letters) and the unigram entropy of its targets, in nats."""
    rng = random.Random(seed)
    counts: Counter = Counter()
    with open(path, "w") as fh:
        for _ in range(n):
            s = "".join(rng.choice("abcdefgh") for _ in range(rng.randint(3, 6)))
            fh.write(json.dumps({"prompt": s + ">", "completion": s}) + "\n")
            counts.update(s)
            counts["</s>"] += 1  # every completion is followed by the end-of-text token
    total = sum(counts.values())
    return -sum(c / total * math.log(c / total) for c in counts.values())


def steps_of(metrics: Path) -> list[dict]:
    return [r for r in iter_records(metrics) if "step" in r and "loss" in r and "event" not in r]


@pytest.mark.slow
@pytest.mark.parametrize("halt", [1, 2])
def test_learns_a_copy_task_well_below_the_unigram_baseline(cli, tmp_path, halt):
    # 150 steps left greedy copying anywhere from 43% to 97% right across seeds; at 300 steps
    # seeds 1-6 at both halts gave 66-100% (eval under 0.19 of the baseline), five times chance.
    steps = 300
    baseline = copy_task(tmp_path / "copy.jsonl")
    run_dir = tmp_path / "run"
    code, out, err = cli("train-actv1", *SMALL, "--h-cycles", "1", "--l-cycles", "1",
                         "--dataset-file", str(tmp_path / "copy.jsonl"), "--max-seq-len", "64",
                         "--batch-size", "16", "--steps", str(steps), "--lr", "3e-3", "--eval-every", str(steps),
                         "--save-every", "0", "--halt-max-steps", str(halt), "--run-dir", str(run_dir),
                         "--bundle-dir", str(tmp_path / "brains"), "--brain-name", "copier",
                         "--progress", "none")
    assert code == 0, err
    records = steps_of(run_dir / "metrics.jsonl")
    assert len(records) == steps
    final_eval = records[-1]["eval_loss"]
    assert final_eval < 0.35 * baseline, (final_eval, baseline)
    assert records[0]["loss"] > baseline  # it really started from nothing
    for r in records:
        assert 1.0 <= r["act_segments"] <= halt
        assert 0.0 <= r["halt_accuracy"] <= 1.0
    if halt == 1:
        assert {r["act_segments"] for r in records} == {1.0}
    bundle = tmp_path / "brains" / "copier"
    brain = json.loads((bundle / "brain.json").read_text())
    assert brain["training_steps"] == steps
    assert brain["architecture"]["halt_max_steps"] == halt
    assert brain["dataset_history"][0]["path"] == str((tmp_path / "copy.jsonl").resolve())
    assert brain["dataset_history"][0]["sha256"] == hashlib.sha256((tmp_path / "copy.jsonl").read_bytes()).hexdigest()
    # The bundle carries this session's metrics, through the final event.
    assert [r.get("event") for r in iter_records(bundle / "metrics.jsonl")][-1] == "finished"
    assert "brain bundle:" in out

    from aios_tui.engine.hrm.generate import generate_from_path

    prompts = ["abfe", "hgabc", "cab", "ddeeff", "gfedc", "bha", "eeeh", "cadgb"]
    right = total = 0
    for prompt in prompts:
        result = generate_from_path(bundle, prompt + ">", max_new_tokens=8, temperature=0)
        right += sum(a == b for a, b in zip(result.text, prompt))
        total += len(prompt)
        assert all(1 <= used <= halt for used in result.segments)
    assert right / total > 0.6  # chance is 1/8


@pytest.fixture(scope="module")
def student(tmp_path_factory) -> Path:
    """A brain of the seed's width (hidden 512, 8 heads), trained briefly in full."""
    from aios_tui.cli import main

    root = tmp_path_factory.mktemp("student")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as every test here runs (see conftest.py)
    code = main(["train-actv1", "--h-layers", "1", "--l-layers", "1", "--steps", "3", "--batch-size", "2",
                 "--max-seq-len", "32", "--eval-every", "0", "--save-every", "0", "--progress", "none",
                 "--run-dir", str(root / "run"), "--bundle-dir", str(root / "brains"),
                 "--brain-name", "student"])
    torch.set_num_threads(threads)
    assert code == 0
    return root / "brains" / "student"


@pytest.mark.slow
@pytest.mark.parametrize("targets", TARGET_LISTS)
@pytest.mark.parametrize("method", ["lora", "adalora", "ia3"])
def test_the_seeds_try_it_command_on_a_trained_bundle(cli, tmp_path, monkeypatch, student, method, targets):
    monkeypatch.chdir(tmp_path)
    code, out, err = cli("train-actv1", "--student-init", str(student), "--steps", "1", "--batch-size", "2",
                         "--halt-max-steps", "1", "--use-peft", "--peft-method", method,
                         "--lora-r", "8", "--lora-alpha", "16", "--lora-target-modules", targets,
                         "--log-file", "artifacts/brains/actv1/metrics.jsonl", "--brain-name", "tried",
                         "--progress", "none")
    assert code == 0, err
    assert "random weights" not in err  # the note is for new brains only
    assert "note: lm_head stays frozen beside the adapter" in err  # unlike AI-OS, and said so
    assert [p.name.split("-2")[0] for p in (tmp_path / "runs").iterdir()] == [f"hrm-{method}"]  # named for what trains
    code, listing, _ = cli("runs", "--root", str(tmp_path / "runs"))
    assert code == 0 and listing.splitlines()[1].split()[-1] == f"hrm-{method}"  # and listed so
    header = read_header(tmp_path / "artifacts/brains/actv1/metrics.jsonl")
    assert header["peft"] == "enabled" and header["method"] == method
    assert header["model"].startswith("HRM ACTv1 (")  # what trains, not the tokenizer's name
    params = header["parameters"]
    assert 0 < params["trainable_pct"] < 5, params
    assert header["config"]["hrm"]["hidden_size"] == 512  # the student's width, taken from the bundle

    bundle = tmp_path / "artifacts/brains/actv1/tried"
    # Nothing outside the adapter and q_head moved: the stored base is the student, bit for bit.
    before = load_file(str(student / "actv1_student.safetensors"))
    after = load_file(str(bundle / "actv1_student.safetensors"))
    assert before.keys() == after.keys()
    assert all(torch.equal(before[k], after[k]) for k in before)
    saved = load_file(str(bundle / "adapter" / "adapter_model.safetensors"))
    marks = {"lora": ("lora_A", "lora_B"), "adalora": ("lora_A", "lora_B", "lora_E"), "ia3": ("ia3_l",)}[method]
    kinds = {next((m for m in marks if m in k), "q_head" if "q_head" in k else k) for k in saved}
    assert kinds == set(marks) | {"q_head"}, kinds
    parts = [k.split(".") for k in saved if "q_head" not in k]
    adapted = {p[next(i for i, x in enumerate(p) if x.startswith(marks)) - 1] for p in parts}
    assert adapted == set(targets.split(","))
    brain = json.loads((bundle / "brain.json").read_text())
    assert brain["adapter"]["method"] == method and brain["training_steps"] == 4
    assert brain["parent"] == str(student.resolve())


@pytest.mark.parametrize("targets", TARGET_LISTS)
@pytest.mark.parametrize("method", ["lora", "adalora", "ia3"])
def test_only_adapter_weights_and_q_head_get_gradients(student, method, targets):
    from aios_tui.config import resolve
    from aios_tui.engine.hrm.task import HRMTask
    from aios_tui.engine.peft_setup import apply_peft

    cfg = resolve(overrides={"student_init": str(student), "hidden_size": 512, "num_heads": 8, "h_layers": 1,
                             "l_layers": 1, "use_peft": True, "peft_method": method, "lora_r": 8,
                             "lora_alpha": 16, "lora_target_modules": targets, "halt_max_steps": 1,
                             "max_seq_len": 32})
    task = HRMTask()
    task.preflight(cfg)
    model, tokenizer = task.build(cfg, torch.device("cpu"))
    model = apply_peft(model, cfg, 10, task.peft_extras(cfg))
    ids = torch.tensor([tokenizer("The loss falls as the model learns.")["input_ids"][:32]] * 2)
    out = task.loss(model, {"input_ids": ids, "labels": ids.clone()}, 0)
    out.loss.backward()
    with_grad = {n for n, p in model.named_parameters() if p.grad is not None}
    adapter = {n for n in with_grad if any(m in n for m in ("lora_", "ia3_l"))}
    heads = with_grad - adapter
    assert adapter and heads == {n for n in with_grad if "q_head.modules_to_save" in n}
    assert len(heads) == 2  # q_head weight and bias
    assert with_grad == {n for n, p in model.named_parameters() if p.requires_grad}


@pytest.mark.slow
def test_lm_head_trainable_is_an_option_reported_truthfully(cli, tmp_path, student):
    code, _, err = cli("train-actv1", "--student-init", str(student), "--steps", "1", "--batch-size", "2",
                       "--max-seq-len", "32", "--use-peft", "--lora-r", "8", "--lora-target-modules",
                       "q_proj,v_proj", "--lm-head-trainable", "--run-dir", str(tmp_path / "run"),
                       "--bundle-dir", str(tmp_path / "brains"), "--progress", "none", "--merge-adapter")
    assert code == 0, err
    params = read_header(tmp_path / "run" / "metrics.jsonl")["parameters"]
    hidden, vocab, blocks = 512, 259, 2
    lora = 2 * blocks * 8 * (hidden + hidden)   # q_proj and v_proj, A and B
    expected = lora + (hidden * 2 + 2) + hidden * vocab  # + q_head + lm_head
    assert params["trainable"] == expected
    assert params["trainable_pct"] == pytest.approx(100 * expected / params["total"], abs=1e-3)
    saved = load_file(str(tmp_path / "brains" / "run" / "adapter" / "adapter_model.safetensors"))
    assert any("lm_head" in k for k in saved)

    from aios_tui.engine.hrm.bundle import load_base, load_bundle

    merged = tmp_path / "brains" / "run-merged"
    assert not (merged / "adapter").exists()
    x = torch.randint(0, 256, (1, 16), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        kept = load_bundle(tmp_path / "brains" / "run", adapter="keep").model(input_ids=x).logits
        folded = load_base(merged).eval()(x).logits
    torch.testing.assert_close(folded, kept, rtol=1e-4, atol=1e-4)


@pytest.mark.slow
def test_a_bundle_round_trips_through_student_init(cli, tmp_path):
    common = [*SMALL, "--steps", "6", "--batch-size", "2", "--max-seq-len", "32", "--halt-max-steps", "2",
              "--eval-every", "0", "--save-every", "0", "--bundle-dir", str(tmp_path / "brains"),
              "--progress", "none"]
    code, _, err = cli("train-actv1", *common, "--lr", "1e-3", "--run-dir", str(tmp_path / "one"),
                       "--brain-name", "first")
    assert code == 0, err
    code, _, err = cli("train-actv1", *common[:-4], "--student-init", str(tmp_path / "brains" / "first"),
                       "--steps", "1", "--run-dir", str(tmp_path / "two"), "--brain-name", "second",
                       "--progress", "none", "--bundle-dir", str(tmp_path / "brains"))
    assert code == 0, err

    from aios_tui.engine.checkpoint import load_trainable
    from aios_tui.engine.hrm.model import HRMForCausalLM
    from aios_tui.metrics.rundir import RunDir

    # The first run's trained model, rebuilt from its own run directory...
    trained = HRMForCausalLM.from_pretrained(tmp_path / "one" / "base")
    load_trainable(RunDir(tmp_path / "one").latest_checkpoint(), trained)
    # ...and what the second run started from after loading the bundle with --student-init.
    loaded = HRMForCausalLM.from_pretrained(tmp_path / "two" / "base")
    x = torch.randint(0, 256, (2, 24), generator=torch.Generator().manual_seed(0))
    trained.eval(), loaded.eval()
    with torch.no_grad():
        assert torch.equal(trained(x).logits, loaded(x).logits)
        assert not torch.equal(trained(x).logits, HRMForCausalLM.from_pretrained(tmp_path / "one" / "base").eval()(x).logits)
    history = json.loads((tmp_path / "brains" / "second" / "brain.json").read_text())
    assert history["training_steps"] == 7 and len(history["sessions"]) == 2


@pytest.mark.slow
def test_stop_and_resume_give_the_same_losses_as_one_session(cli, tmp_path):
    common = [*SMALL, "--steps", "6", "--batch-size", "4", "--max-seq-len", "32", "--halt-max-steps", "3",
              "--halt-exploration-prob", "0.5", "--lr", "2e-3", "--eval-every", "0", "--save-every", "0",
              "--bundle-dir", str(tmp_path / "brains"), "--progress", "none"]
    assert cli("train-actv1", *common, "--run-dir", str(tmp_path / "straight"))[0] == 0
    code, out, err = cli("train-actv1", *common[:-2], "--progress", "lines", "--run-dir", str(tmp_path / "parts"),
                         "--stop-after", "3")
    assert code == 0, err
    assert "no brain bundle written" in out and not (tmp_path / "brains" / "parts").exists()
    # every hint names the command that resumes an HRM run
    assert f"continue with `aios-tui train-actv1 --resume {tmp_path / 'parts'}`" in out + err
    assert "aios-tui train --resume" not in out + err
    code, _, err = cli("train-actv1", "--resume", str(tmp_path / "parts"), "--progress", "none")
    assert code == 0, err
    straight = steps_of(tmp_path / "straight" / "metrics.jsonl")
    parts = steps_of(tmp_path / "parts" / "metrics.jsonl")
    assert [r["step"] for r in parts] == list(range(1, 7))
    for a, b in zip(straight, parts):
        assert a["loss"] == pytest.approx(b["loss"], abs=1e-6)
        assert a["act_segments"] == b["act_segments"]
    assert (tmp_path / "brains" / "parts" / "brain.json").is_file()


def test_a_student_bundle_decides_the_architecture(cli, tmp_path, student):
    code, out, err = cli("train-actv1", "--student-init", str(student), "--hidden-size", "128",
                         "--run-dir", str(tmp_path / "run"))
    assert code == 2
    assert "hrm.hidden_size: 128 differs from the student bundle's 512" in err
    assert not (tmp_path / "run").exists()
    code, out, err = cli("train-actv1", "--student-init", str(tmp_path / "nope"), "--run-dir", str(tmp_path / "run"))
    assert code == 2 and "hrm.student_init" in err and "no such directory" in err
    assert not (tmp_path / "run").exists()


def test_targets_that_match_nothing_name_the_hrm_layers(cli, tmp_path):
    code, out, err = cli("train-actv1", *SMALL, "--use-peft", "--lora-target-modules", "c_attn",
                         "--run-dir", str(tmp_path / "run"))
    assert code == 2
    assert "note:" not in err  # a refused start prints its errors alone
    assert "c_attn matches no layer" in err
    assert "q_proj, k_proj, v_proj, o_proj, gate_proj, up_proj, down_proj" in err
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("targets, extra", [("q_head", []), ("q_proj,q_head", []),
                                             ("lm_head", ["--lm-head-trainable"])])
def test_a_head_trained_in_full_is_refused_as_a_target_by_check_and_start(cli, tmp_path, targets, extra):
    args = ["train-actv1", *SMALL, "--use-peft", "--lora-target-modules", targets, *extra, "--steps", "1",
            "--run-dir", str(tmp_path / "run")]
    head = targets.split(",")[-1]
    for check in (["--check"], ["--progress", "none"]):
        code, out, err = cli(*args, *check)
        assert code == 2 and "would start" not in out
        assert f"peft.lora_target_modules: {head} is trained in full beside the adapter" in err
        assert "Traceback" not in err and not (tmp_path / "run").exists()


def test_help_lists_the_architecture_and_seed_flags(capsys):
    from aios_tui.cli import main

    with pytest.raises(SystemExit) as exc:
        main(["train-actv1", "--help"])
    assert exc.value.code == 0
    text = capsys.readouterr().out
    for flag in ("--hidden-size", "--num-heads", "--h-layers", "--l-layers", "--h-cycles", "--l-cycles",
                 "--expansion", "--max-seq-len", "--halt-max-steps", "--student-init", "--brain-name",
                 "--bundle-dir", "--lm-head-trainable", "--use-peft", "--lora-target-modules",
                 "--log-file", "--resume", "--stop-after", "--detach", "--merge-adapter"):
        assert flag in text, flag


@pytest.mark.parametrize("fused", [True, False])
@pytest.mark.parametrize("lm_head", [True, False])
def test_lm_head_gets_gradients_only_when_asked(fused, lm_head):
    from aios_tui.config import resolve
    from aios_tui.engine.hrm.task import HRMTask
    from aios_tui.engine.peft_setup import apply_peft

    cfg = resolve(overrides={"hidden_size": 64, "num_heads": 4, "use_peft": True, "lora_r": 4,
                             "lora_target_modules": "q_proj,v_proj", "lm_head_trainable": lm_head,
                             "fused_loss": fused, "max_seq_len": 32})
    task = HRMTask()
    model, tokenizer = task.build(cfg, torch.device("cpu"))
    model = apply_peft(model, cfg, 10, task.peft_extras(cfg))
    ids = torch.tensor([tokenizer("abcabcabcabc")["input_ids"]] * 2)
    task.loss(model, {"input_ids": ids, "labels": ids.clone()}, 0).loss.backward()
    with_grad = {n for n, p in model.named_parameters() if p.grad is not None and p.grad.abs().sum() > 0}
    assert any("lm_head.modules_to_save" in n for n in with_grad) == lm_head
    assert not any("embed_tokens" in n or "lm_head.original_module" in n for n in with_grad)
    assert any("q_head.modules_to_save" in n for n in with_grad)


@pytest.mark.slow
def test_detach_trains_in_the_background_into_a_bundle(cli, tmp_path):
    import time

    from aios_tui.metrics.rundir import RunDir

    run_dir = tmp_path / "bg"
    code, out, err = cli("train-actv1", "--detach", *SMALL, "--steps", "3", "--batch-size", "2",
                         "--max-seq-len", "32", "--eval-every", "0", "--run-dir", str(run_dir),
                         "--bundle-dir", str(tmp_path / "brains"), "--brain-name", "bg")
    assert code == 0, err
    assert f"run dir: {run_dir}" in out
    run = RunDir(run_dir)
    deadline = time.monotonic() + 240
    while run.state() not in ("finished", "failed", "stopped") and time.monotonic() < deadline:
        time.sleep(0.5)
    assert run.state() == "finished", run.log_path.read_text()[-2000:]
    assert "brain bundle:" in run.log_path.read_text()
    brain = json.loads((tmp_path / "brains" / "bg" / "brain.json").read_text())
    assert brain["training_steps"] == 3


def test_exporting_an_hrm_run_points_at_what_loads_it(cli, tmp_path):
    run = tmp_path / "run"
    code, _, err = cli("train-actv1", *SMALL, "--steps", "1", "--max-seq-len", "32", "--batch-size", "2",
                       "--run-dir", str(run), "--bundle-dir", str(tmp_path / "brains"), "--progress", "none")
    assert code == 0, err
    code, out, err = cli("export", str(run))
    assert code == 0, err
    assert f"use it with: aios-tui generate {run / 'merged'} --prompt TEXT" in out
    assert "AutoModelForCausalLM" not in out and "PeftModel" not in out
    code, _, err = cli("generate", str(run / "merged"), "--prompt", "hi", "--max-new-tokens", "2")
    assert code == 0, err


@pytest.mark.slow
def test_a_run_of_aios_tui_train_is_not_resumed_as_a_brain(cli, tmp_path):
    run_dir = tmp_path / "lora-run"
    code, _, err = cli("train", "--use-peft", "--lora-target-modules", "q_proj,v_proj", "--steps", "1",
                       "--max-seq-len", "32", "--batch-size", "2", "--run-dir", str(run_dir),
                       "--progress", "none")
    assert code == 0, err
    status = (run_dir / "status.json").read_text()
    for extra in ((), ("--check",), ("--detach",)):
        code, out, err = cli("train-actv1", "--resume", str(run_dir), "--steps", "5", *extra)
        assert code == 2 and out == "", extra
        assert err == (f"aios-tui: error: --resume {run_dir}: this run was started by `aios-tui train`, "
                       f"not `aios-tui train-actv1`; continue it with `aios-tui train --resume {run_dir}`\n")
    assert (run_dir / "status.json").read_text() == status  # still finished, at its step


def test_estimate_with_a_student_bundle_counts_the_model_the_run_trains(cli, tmp_path, student):
    seed_flags = ["--student-init", str(student), "--batch-size", "2", "--halt-max-steps", "1",
                  "--use-peft", "--peft-method", "lora", "--lora-r", "8", "--lora-alpha", "16",
                  "--lora-target-modules", "q_proj,v_proj"]
    code, out, err = cli("train-actv1", *seed_flags, "--steps", "1", "--eval-every", "0",
                         "--run-dir", str(tmp_path / "run"), "--bundle-dir", str(tmp_path / "brains"),
                         "--progress", "none")
    assert code == 0, err
    trained = read_header(tmp_path / "run" / "metrics.jsonl")["parameters"]
    bundle_as_model = ["--model", str(student), *seed_flags[2:]]
    for flags in (seed_flags, [*seed_flags, "--hrm"], bundle_as_model, [*bundle_as_model, "--hrm"]):
        code, out, err = cli("estimate", *flags, "--json")
        assert code == 0, err
        assert json.loads(out)["parameters"] == trained
    code, out, err = cli("estimate", *seed_flags, "--hidden-size", "64")
    assert code == 2 and err.strip() == ("aios-tui: error: hrm.hidden_size: 64 differs from the student "
                                         "bundle's 512; drop --hidden-size to use the bundle's")


def test_a_brain_run_resumed_with_train_completes_its_bundle(cli, tmp_path):
    """`aios-tui train --resume` continues an HRM run as HRM; its bundle must end up as
    `train-actv1 --resume` leaves it: every metrics line of the run, and its path said."""
    common = [*SMALL, "--steps", "2", "--batch-size", "2", "--max-seq-len", "32", "--eval-every", "0",
              "--save-every", "0", "--bundle-dir", str(tmp_path / "brains"), "--brain-name", "b",
              "--progress", "none", "--run-dir", str(tmp_path / "run")]
    assert cli("train-actv1", *common, "--stop-after", "1")[0] == 0
    code, out, err = cli("train", "--resume", str(tmp_path / "run"), "--progress", "none")
    assert code == 0, err
    bundle = tmp_path / "brains" / "b"
    assert f"brain bundle: {bundle}" in out
    run_lines = (tmp_path / "run" / "metrics.jsonl").read_bytes()
    assert (bundle / "metrics.jsonl").read_bytes() == run_lines
    assert [r["event"] for r in iter_records(bundle / "metrics.jsonl") if "event" in r][-1] == "finished"


@pytest.mark.parametrize("check", [["--progress", "none"], ["--check"]])
def test_a_bundle_place_holding_something_else_is_refused_before_anything(cli, tmp_path, check):
    """The finished run replaces <bundle-dir>/<brain-name>: another brain there is what
    retraining a name means, but a directory of other files is refused up front, not deleted."""
    notes = tmp_path / "brains" / "notes"
    notes.mkdir(parents=True)
    (notes / "a.txt").write_text("keep me")
    code, out, err = cli("train-actv1", *SMALL, "--steps", "1", "--bundle-dir", str(tmp_path / "brains"),
                         "--brain-name", "notes", "--run-dir", str(tmp_path / "run"), *check)
    assert code == 2
    assert err.strip().splitlines()[-1] == (
        f"aios-tui: error: hrm.brain_name: {notes} exists and is not a brain bundle, and the finished "
        f"run would replace it; choose another --brain-name or --bundle-dir")
    assert (notes / "a.txt").read_text() == "keep me" and not (tmp_path / "run").exists()


def test_check_names_the_brain_not_the_tokenizer(cli):
    code, out, err = cli("train-actv1", "--check", "--use-peft")
    assert code == 0, err
    assert out == "ok: lora on HRM ACTv1 (a new brain, tokenizer tiny) would start\n"


def test_merge_adapter_on_a_full_run_is_refused_by_check_as_by_a_start(cli, tmp_path):
    for extra in (("--check",), ()):
        code, out, err = cli("train-actv1", "--merge-adapter", "--steps", "1", "--run-dir", str(tmp_path / "run"),
                             *extra)
        assert code == 2 and "--merge-adapter: this run trains the full model" in err, (extra, err)
        assert "would start" not in out and not (tmp_path / "run").exists()


def test_a_merge_asked_of_a_run_that_stops_early_is_named_in_the_resume_that_writes_the_bundle(cli, tmp_path):
    run = tmp_path / "run"
    code, out, err = cli("train-actv1", *SMALL, "--use-peft", "--lora-target-modules", "q_proj,v_proj",
                         "--steps", "2", "--batch-size", "2", "--max-seq-len", "32", "--halt-max-steps", "1",
                         "--eval-every", "0", "--save-every", "0", "--bundle-dir", str(tmp_path / "brains"),
                         "--brain-name", "b", "--progress", "none", "--run-dir", str(run),
                         "--merge-adapter", "m", "--stop-after", "1")
    assert code == 0, err
    again = f"aios-tui train-actv1 --resume {run} --merge-adapter m"
    assert f"`{again}` finishes it and writes the bundle and its merged copy" in out
    code, out, err = cli(*again.split()[1:], "--progress", "none")
    assert code == 0, err
    assert f"merged bundle: {tmp_path / 'brains' / 'm'}" in out
