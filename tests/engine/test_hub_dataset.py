"""hf:// dataset files: read from the Hugging Face cache; every failure is one line and exit 2."""

from __future__ import annotations

import json
import os

import pytest

from aios_tui.data import hub
from aios_tui.errors import UserError

COMMIT = "0123456789abcdef0123456789abcdef01234567"


def _cached_dataset(cache, repo="me/tales", filename="train.jsonl", lines=200):
    """The layout huggingface_hub itself leaves in its cache after a download."""
    root = cache / f"datasets--{repo.replace('/', '--')}"
    (root / "refs").mkdir(parents=True)
    (root / "refs" / "main").write_text(COMMIT)
    snap = root / "snapshots" / COMMIT
    snap.mkdir(parents=True)
    rows = [{"text": f"story {i}: the cat sat on the mat and the dog ran." } for i in range(lines)]
    (snap / filename).write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return snap / filename


@pytest.mark.parametrize("uri, expected", [
    ("hf://datasets/me/tales/train.jsonl", ("dataset", "me/tales", "train.jsonl", None)),
    ("hf://me/tales@v2/data/part 1.txt", ("dataset", "me/tales", "data/part 1.txt", "v2")),
    ("hf://models/me/lm/corpus.txt", ("model", "me/lm", "corpus.txt", None)),
])
def test_uris_name_repo_file_and_revision(uri, expected):
    f = hub.parse(uri)
    assert (f.repo_type, f.repo_id, f.filename, f.revision) == expected


@pytest.mark.parametrize("uri", ["hf://datasets/me/tales", "hf://me", "hf://datasets/me//x.txt"])
def test_a_uri_without_a_file_says_what_form_it_needs(uri):
    with pytest.raises(UserError, match="name a file inside a repository"):
        hub.parse(uri)


@pytest.mark.slow
def test_a_cached_hub_file_trains_offline(cli_subprocess, tmp_path):
    cache = tmp_path / "hub"
    _cached_dataset(cache)
    env = {"HF_HUB_CACHE": str(cache), "HF_HUB_OFFLINE": "1"}
    proc = cli_subprocess("train", "--dataset-file", "hf://datasets/me/tales/train.jsonl",
                          "--steps", "2", "--max-seq-len", "32", env=env)
    assert proc.returncode == 0, proc.stderr
    runs = list((tmp_path / "runs").iterdir())
    assert len(runs) == 1
    saved = (runs[0] / "config.toml").read_text()
    assert "hf://datasets/me/tales/train.jsonl" in saved
    records = [json.loads(line) for line in (runs[0] / "metrics.jsonl").read_text().splitlines()]
    assert any(r.get("step") == 2 and "loss" in r for r in records)


def test_a_hub_file_missing_from_the_cache_offline_is_refused_before_anything_starts(
        cli_subprocess, tmp_path):
    env = {"HF_HUB_CACHE": str(tmp_path / "empty-cache"), "HF_HUB_OFFLINE": "1"}
    proc = cli_subprocess("train", "--dataset-file", "hf://datasets/me/absent/train.jsonl",
                          "--steps", "2", env=env)
    assert proc.returncode == 2
    assert "not in the cache" in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "runs").exists() or not os.listdir(tmp_path / "runs")


@pytest.mark.parametrize("name, message", [
    ("https://example.com/data.txt", "web addresses are not read"),
    ("hf://datasets/me/tales", "name a file inside a repository"),
    ("hf://datasets/me/bad name/x.jsonl", "Repo id must use alphanumeric chars"),
])
def test_other_remote_names_are_refused_with_exit_2(cli, name, message, tmp_path):
    code, _, err = cli("train", "--dataset-file", name, "--steps", "2")
    assert code == 2
    assert message in err


@pytest.mark.parametrize("env, reason", [({"HF_HUB_OFFLINE": "1"}, "HF_HUB_OFFLINE is set")])
def test_a_bare_hub_dataset_name_says_how_to_name_a_file_in_one_line(cli_subprocess, tmp_path, env, reason):
    proc = cli_subprocess("train", "--check", "--dataset-file", "roneneldan/TinyStories", "--model", "tiny",
                          env={**env, "AIOS_TUI_RUNS": str(tmp_path / "runs")}, timeout=60)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("aios-tui: error: dataset roneneldan/TinyStories: no such local file")
    assert "hf://datasets/roneneldan/TinyStories/FILE" in lines[0] and reason in lines[0]
    assert not (tmp_path / "runs").exists()


def test_a_local_path_without_a_suffix_is_still_just_missing(cli, tmp_path):
    code, _, err = cli("train", "--check", "--dataset-file", str(tmp_path / "corpus"))
    assert code == 2 and "no such file" in err and "hf://" not in err


def test_a_missing_file_under_a_local_directory_is_not_taken_for_a_hub_name(cli, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, _, err = cli("train", "--check", "--model", "tiny", "--dataset-file", "data/train")
    assert code == 2 and "hf://datasets/data/train/FILE" in err  # no data/ here: it may be the Hub's
    (tmp_path / "data").mkdir()
    code, _, err = cli("train", "--check", "--model", "tiny", "--dataset-file", "data/train")
    assert (code, err) == (2, "aios-tui: error: dataset data/train: no such file\n")
    assert not (tmp_path / "artifacts").exists()
