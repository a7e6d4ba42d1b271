"""A Hugging Face model id without network: the cache decides, before anything is created."""

from __future__ import annotations

import json
import shutil
import time

import pytest

COMMIT = "89abcdef0123456789abcdef0123456789abcdef"


def _cache_model(cache, repo, source):
    """``source``'s files in the layout huggingface_hub leaves after a download."""
    root = cache / f"models--{repo.replace('/', '--')}"
    (root / "refs").mkdir(parents=True)
    (root / "refs" / "main").write_text(COMMIT)
    snap = root / "snapshots" / COMMIT
    shutil.copytree(source, snap)
    return snap


@pytest.mark.slow
def test_check_asks_the_cache_for_a_hub_id_when_offline(cli_subprocess, small_model_dir, tmp_path):
    cache = tmp_path / "hub"
    _cache_model(cache, "me/small", small_model_dir)
    env = {"HF_HUB_CACHE": str(cache), "HF_HUB_OFFLINE": "1", "AIOS_TUI_RUNS": str(tmp_path / "runs")}
    proc = cli_subprocess("train", "--model", "me/absent", "--check", env=env)
    assert proc.returncode == 2
    assert "me/absent is not in the local Hugging Face cache" in proc.stderr and "Traceback" not in proc.stderr
    proc = cli_subprocess("train", "--model", "me/small", "--check", env=env)
    assert proc.returncode == 0, proc.stderr
    assert not (tmp_path / "runs").exists()


@pytest.mark.slow
def test_a_detached_run_that_cannot_load_its_model_says_so_in_its_status(cli_subprocess, small_model_dir,
                                                                         tmp_path):
    cache = tmp_path / "hub"
    snap = _cache_model(cache, "me/broken", small_model_dir)
    for weights in snap.glob("*.safetensors"):
        weights.write_bytes(b"not a safetensors file")
    runs = tmp_path / "runs"
    env = {"HF_HUB_CACHE": str(cache), "HF_HUB_OFFLINE": "1", "AIOS_TUI_RUNS": str(runs)}
    proc = cli_subprocess("train", "--model", "me/broken", "--steps", "2", "--run-name", "b", "--detach", env=env)
    assert proc.returncode == 0, proc.stderr  # the checks cannot see inside the weights
    status_file = runs / "b" / "status.json"
    for _ in range(600):
        status = json.loads(status_file.read_text())
        if status["state"] != "starting":
            break
        time.sleep(0.1)
    assert status["state"] == "failed" and "could not load 'me/broken'" in status["error"]
    tail = cli_subprocess("tail", "b", env=env)
    assert "could not load" in tail.stdout + tail.stderr


def test_an_uncached_hub_id_names_hf_hub_offline_when_that_is_why(cli, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    code, _, err = cli("train", "--check", "--model", "me/absent")
    assert code == 2
    assert "me/absent is not in the local Hugging Face cache and HF_HUB_OFFLINE is set" in err
    assert "cannot be reached" not in err
