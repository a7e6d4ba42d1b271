"""A model directory must bring a tokenizer that turns text into tokens.

transformers does not refuse a directory with config.json and weights but no tokenizer files:
it builds an empty tokenizer from the model type, which encodes every text to nothing. Such a
run used to pass --check and then fail blaming the dataset.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest


def _nothing_left() -> bool:
    root = Path(os.environ["AIOS_TUI_RUNS"])
    return not root.exists() or not any(root.iterdir())


@pytest.fixture(scope="module")
def untokenized_dir(tmp_path_factory) -> Path:
    """A small GPT-2 saved with save_pretrained and no tokenizer beside it."""
    from transformers import GPT2Config, GPT2LMHeadModel

    from aios_tui.tiny import TINY_VOCAB

    path = tmp_path_factory.mktemp("no-tokenizer")
    GPT2LMHeadModel(GPT2Config(vocab_size=TINY_VOCAB, n_embd=32, n_layer=1, n_head=2, n_positions=64)).save_pretrained(path)
    return path


@pytest.fixture
def half_tokenized_dir(untokenized_dir, tmp_path) -> Path:
    """The same with a tokenizer_config.json and no vocabulary: it loads, and encodes nothing."""
    import shutil

    path = tmp_path / "half"
    shutil.copytree(untokenized_dir, path)
    (path / "tokenizer_config.json").write_text(json.dumps({"tokenizer_class": "GPT2Tokenizer"}))
    return path


def test_transformers_still_builds_an_empty_tokenizer_for_such_a_directory(untokenized_dir):
    # why the check exists: if this starts raising, transformers refuses such a directory itself
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(untokenized_dir))
    assert tok("hello world", add_special_tokens=False)["input_ids"] == []


def test_check_detach_and_start_refuse_a_model_without_a_tokenizer(cli, untokenized_dir, text_file):
    common = ["--model", str(untokenized_dir), "--dataset-file", str(text_file), "--max-seq-len", "32",
              "--steps", "2"]
    for extra in (["--check"], ["--detach"], ["--progress", "none"]):
        code, out, err = cli("train", *common, *extra)
        assert code == 2, (extra, out, err)
        assert err.splitlines() == [
            f"aios-tui: error: model.model: {untokenized_dir} has no tokenizer (no tokenizer.json, "
            "tokenizer_config.json, vocab/merges or sentencepiece model); copy the tokenizer files from "
            "the base model into it, or point --model at a directory that has them"], extra
        assert "dataset" not in err and _nothing_left(), extra


def test_train_actv1_refuses_a_tokenizer_directory_without_a_tokenizer(cli, untokenized_dir):
    # HRM's --model names only the tokenizer
    code, _, err = cli("train-actv1", "--model", str(untokenized_dir), "--check", "--steps", "2")
    assert code == 2 and "model.model (the tokenizer): " in err and "has no tokenizer" in err
    assert _nothing_left()


def test_a_tokenizer_that_encodes_text_to_nothing_is_named_not_the_dataset(cli, half_tokenized_dir, text_file):
    common = ["--model", str(half_tokenized_dir), "--dataset-file", str(text_file), "--max-seq-len", "32",
              "--steps", "2"]
    for extra in (["--check"], ["--detach"], ["--progress", "none"]):
        code, out, err = cli("train", *common, *extra)
        assert code == 2, (extra, out, err)
        assert "model.model: the tokenizer in " in err and "turns text into no tokens" in err, extra
        assert "dataset" not in err and len(err.splitlines()) == 1 and _nothing_left(), extra


def test_packing_with_a_tokenizer_that_makes_nothing_names_the_tokenizer(half_tokenized_dir, text_file):
    # a tokenizer that reached the data some other way than load_tokenizer (an HRM base dir)
    from transformers import AutoTokenizer

    from aios_tui.config import resolve
    from aios_tui.engine.data import load_packed
    from aios_tui.errors import UserError

    tok = AutoTokenizer.from_pretrained(str(half_tokenized_dir))
    cfg = resolve(overrides={"dataset_file": str(text_file), "max_seq_len": 32})
    with pytest.raises(UserError) as exc:
        load_packed(cfg, tok)
    assert exc.value.problems == [f"model.model: the tokenizer {half_tokenized_dir} turns the dataset's text "
                                  "into no tokens; point --model at a model whose tokenizer files are complete"]


@pytest.mark.slow
def test_models_with_their_tokenizer_still_start(cli, small_model_dir, text_file, tmp_path):
    # a local directory with tokenizer.json, and the built-in tiny (its byte tokenizer)
    for model in (str(small_model_dir), "tiny"):
        code, out, err = cli("train", "--model", model, "--dataset-file", str(text_file), "--check")
        assert code == 0 and out.startswith("ok: "), err
    run = tmp_path / "run"
    code, _, err = cli("train", "--model", str(small_model_dir), "--dataset-file", str(text_file),
                       "--max-seq-len", "32", "--steps", "2", "--stop-after", "1", "--run-dir", str(run),
                       "--progress", "none")
    assert code == 0, err
    code, _, err = cli("train", "--resume", str(run), "--progress", "none")
    assert code == 0, err
