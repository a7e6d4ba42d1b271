"""`aios-tui eval`: a checkpoint's loss on the run's eval split is the eval_loss the run logged at
its step; every checkpoint is scored in step order with the best marked, the base model beside
them; a held-out file is packed as training packs; what cannot be scored is refused in one line."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow


def _train(root: Path, *flags: str, command: str = "train") -> Path:
    from aios_tui.cli import main

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("AIOS_TUI_TOKEN_CACHE", str(root / "token-cache"))
        mp.setenv("XDG_STATE_HOME", str(root / "xdg-state"))
        code = main([command, "--steps", "6", "--max-seq-len", "32", "--batch-size", "4", "--eval-every", "2",
                     "--save-every", "2", "--eval-batches", "2", "--device", "cpu", "--progress", "none",
                     "--run-dir", str(root / "run"), *flags])
    assert code == 0
    return root / "run"


@pytest.fixture(scope="module")
def lora_run(tmp_path_factory, text_file) -> Path:
    """A LoRA run on the built-in tiny model: checkpoints at steps 2, 4, 6, each with an eval_loss."""
    return _train(tmp_path_factory.mktemp("eval"), "--dataset-file", str(text_file), "--use-peft", "--lr", "1e-2")


def logged_eval(run: Path) -> dict[int, float]:
    return {r["step"]: r["eval_loss"] for r in map(json.loads, (run / "metrics.jsonl").read_text().splitlines())
            if "event" not in r and "eval_loss" in r}


def rows(out: str) -> list[dict]:
    return [json.loads(line) for line in out.splitlines()]


def test_latest_checkpoint_scores_the_eval_loss_the_run_logged(lora_run, cli):
    code, out, err = cli("eval", str(lora_run), "--json", "--device", "cpu")
    assert code == 0, err
    (row,) = rows(out)
    assert row["step"] == 6 and row["checkpoint"].endswith("step-000006")
    assert row["loss"] == pytest.approx(logged_eval(lora_run)[6], rel=1e-5)
    assert row["perplexity"] == pytest.approx(2.718281828 ** row["loss"], rel=1e-6)
    assert "eval split" in err and "Traceback" not in err
    # Another batch size groups the same blocks otherwise: the token mean stays.
    code, out, _ = cli("eval", str(lora_run), "--json", "--batch-size", "3", "--checkpoint", "4")
    assert code == 0
    assert rows(out)[0]["loss"] == pytest.approx(logged_eval(lora_run)[4], rel=1e-5)


def test_all_checkpoints_in_step_order_best_marked_and_the_base_beside_them(lora_run, cli):
    code, out, err = cli("eval", str(lora_run), "--all-checkpoints", "--base", "--json")
    assert code == 0, err
    scored = rows(out)
    assert [r["step"] for r in scored] == [None, 2, 4, 6]
    base, *checkpoints = scored
    logged = logged_eval(lora_run)
    for r in checkpoints:
        assert r["loss"] == pytest.approx(logged[r["step"]], rel=1e-5)
    assert base["base"] and not base["best"] and base["checkpoint"] is None
    assert all(abs(base["loss"] - r["loss"]) > 0.05 for r in checkpoints)  # the adapter is left out
    lowest = min(checkpoints, key=lambda r: r["loss"])
    assert [r["step"] for r in scored if r["best"]] == [lowest["step"]]

    code, out, _ = cli("eval", str(lora_run), "--all-checkpoints", "--base")
    assert code == 0
    lines = out.splitlines()
    assert lines[0].split() == ["STEP", "LOSS", "PPL"]
    assert [line.split()[0] for line in lines[1:]] == ["base", "2", "4", "6"]
    assert [line.split()[0] for line in lines[1:] if line.endswith("best")] == [str(lowest["step"])]


def test_a_held_out_file_is_packed_with_the_runs_tokenizer_and_block(lora_run, cli, tmp_path):
    held_out = tmp_path / "test.jsonl"
    held_out.write_text("".join(json.dumps({"prompt": f"{a} + {a} = ", "completion": str(2 * a)}) + "\n"
                                for a in range(40)), encoding="utf-8")
    code, out, err = cli("eval", str(lora_run), "--dataset-file", str(held_out), "--json")
    assert code == 0, err
    (row,) = rows(out)
    # Only completions and their end-of-text carry loss (40 answers of 1-2 digits, plus 40 eos),
    # less those that open a block: nothing before them predicts them.
    n_blocks = int(re.search(r"(\d+) block\(s\) of 32 tokens", err).group(1))
    assert 0 < sum(len(str(2 * a)) + 1 for a in range(40)) - row["tokens"] <= n_blocks
    assert row["loss"] != pytest.approx(logged_eval(lora_run)[6], rel=1e-3)
    assert "--dataset-file" in err

    code, out, _ = cli("eval", str(lora_run), "--dataset-file", str(held_out), "--json",
                       "--batch-size", "1", "--max-batches", "1")
    assert code == 0
    assert 0 < rows(out)[0]["tokens"] < row["tokens"]  # one 32-token block of the file


@pytest.fixture(scope="module")
def hrm_run(tmp_path_factory) -> Path:
    return _train(tmp_path_factory.mktemp("hrm"), "--h-layers", "1", "--l-layers", "1", "--steps", "2",
                  "--batch-size", "2", "--brain-name", "b", "--bundle-dir", str(tmp_path_factory.mktemp("brains")),
                  command="train-actv1")


def test_an_hrm_actv1_run_is_scored_the_same_way(hrm_run, cli):
    code, out, err = cli("eval", str(hrm_run), "--json")
    assert code == 0, err
    assert rows(out)[0]["loss"] == pytest.approx(logged_eval(hrm_run)[2], rel=1e-5)


@pytest.fixture
def not_loaded(monkeypatch):
    """Fails a test whose refusal comes after the model is loaded."""
    import aios_tui.engine.export as export

    def refuse(*args, **kwargs):
        raise AssertionError("the model was loaded before the refusal")

    monkeypatch.setattr(export, "load_trained", refuse)


def _one_error(code: int, out: str, err: str) -> str:
    assert code == 2 and out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("aios-tui: error: "), err
    return lines[0]


def test_refusals_come_before_loading(lora_run, cli, tmp_path, not_loaded):
    assert "no such run directory" in _one_error(*cli("eval", str(tmp_path / "nope")))
    assert "checkpoints: 2, 4, 6" in _one_error(*cli("eval", str(lora_run), "--checkpoint", "5"))
    assert "--max-batches" in _one_error(*cli("eval", str(lora_run), "--max-batches", "0"))
    assert "no such file" in _one_error(*cli("eval", str(lora_run), "--dataset-file", str(tmp_path / "x.txt")))

    empty = tmp_path / "empty-run"
    (empty / "checkpoints").mkdir(parents=True)
    assert "has no complete checkpoint" in _one_error(*cli("eval", str(empty), "--all-checkpoints"))
    assert "is not a run directory" in _one_error(*cli("eval", str(tmp_path)))

    full = tmp_path / "full-run"
    shutil.copytree(lora_run / "checkpoints" / "step-000006", full / "checkpoints" / "step-000006")
    meta = full / "checkpoints" / "step-000006" / "meta.json"
    meta.write_text(json.dumps({**json.loads(meta.read_text()), "peft": False}))
    assert "full fine-tune" in _one_error(*cli("eval", str(full), "--base"))

    bundle = tmp_path / "bundle"
    bundle.mkdir()
    (bundle / "brain.json").write_text("{}")
    assert "brain bundle" in _one_error(*cli("eval", str(bundle)))


def test_an_eval_split_is_not_rebuilt_from_data_changed_since_the_run(lora_run, text_file, cli, tmp_path):
    # The split is rebuilt from the file: changed, its "eval" blocks are other ones, some trained on.
    data = tmp_path / "data.txt"
    data.write_text(text_file.read_text(encoding="utf-8")[: len(text_file.read_text(encoding="utf-8")) // 2],
                    encoding="utf-8")
    run = tmp_path / "run"
    shutil.copytree(lora_run, run)
    for config in run.glob("checkpoints/*/config.toml"):
        config.write_text(config.read_text(encoding="utf-8").replace(str(text_file), str(data)), encoding="utf-8")
    line = _one_error(*cli("eval", str(run)))
    assert "its contents changed since step-000006" in line and "--dataset-file" in line
    code, out, err = cli("eval", str(run), "--dataset-file", str(data), "--json")
    assert code == 0 and len(rows(out)) == 1, err


def test_a_file_with_nothing_to_score_is_refused_in_one_line(lora_run, cli, tmp_path):
    empty = tmp_path / "blank.txt"
    empty.write_text("  \n\n", encoding="utf-8")
    line = _one_error(*cli("eval", str(lora_run), "--dataset-file", str(empty)))
    assert f"dataset {empty}: is empty" in line and "train" not in line


def test_directories_not_named_for_a_step_are_no_checkpoints(lora_run, cli, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(lora_run, run)
    for name in ("step-abc", "step--1", "step-0000001x", "step-"):  # whole copies, COMPLETE and all
        shutil.copytree(run / "checkpoints" / "step-000006", run / "checkpoints" / name)
    code, out, err = cli("eval", str(run), "--all-checkpoints", "--json", "--max-batches", "1")
    assert code == 0 and "Traceback" not in err, err
    assert [r["step"] for r in rows(out)] == [2, 4, 6]
    code, out, err = cli("export", str(run))
    assert code == 0, err
    assert json.loads((run / "adapter" / "export.json").read_text())["checkpoint"].endswith("step-000006")
    code, _, err = cli("eval", str(run), "--checkpoint", "5")
    assert code == 2 and err.endswith("(checkpoints: 2, 4, 6)\n"), err
