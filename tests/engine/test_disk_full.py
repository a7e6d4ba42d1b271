"""A disk that fills up while a run trains: the run still says, in its status, why it ended."""

from __future__ import annotations

import errno
import json

import pytest

from aios_tui import atomic
from aios_tui.metrics import jsonl


def _fill_the_disk_at(step: int, run, monkeypatch):
    """From ``step`` on, every metrics line and status write finds the disk full, until the room
    the run set aside is freed (as a real full disk gives back what is deleted)."""
    full = {"on": False}
    write_bytes, write_line = atomic.atomic_write_bytes, jsonl.JsonlLogger.write

    def no_room():
        return OSError(errno.ENOSPC, "No space left on device")

    def fake_write_bytes(path, data):
        if full["on"] and (run / ".status-room").exists():
            raise no_room()
        write_bytes(path, data)

    def fake_write_line(self, record):
        if full["on"]:
            raise no_room()
        write_line(self, record)

    def on_step(at, record):
        if at == step:
            assert (run / ".status-room").is_file()
            full["on"] = True

    monkeypatch.setattr(atomic, "atomic_write_bytes", fake_write_bytes)
    monkeypatch.setattr(jsonl.JsonlLogger, "write", fake_write_line)
    return on_step


def test_a_disk_that_fills_mid_run_still_gets_the_failed_status(make_cfg, tmp_path, monkeypatch):
    from aios_tui.engine.train import TrainingFailed, run_training

    run = tmp_path / "r"
    on_step = _fill_the_disk_at(3, run, monkeypatch)
    with pytest.raises(TrainingFailed) as failed:
        run_training(make_cfg(steps=8, save_every=2), run, progress="none", on_step=on_step)
    monkeypatch.undo()
    [line] = failed.value.problems
    assert "no space left on the device" in line and "step-000002" in line
    status = json.loads((run / "status.json").read_text())
    # before: still "running" under a dead pid, which `tail` reads as killed without a word
    assert status["state"] == "failed" and status["error"] == line
    assert not (run / ".status-room").exists()
    result = run_training(None, run, resume=True, progress="none")
    assert result.state == "finished" and result.step == 8
    assert not (run / ".status-room").exists()  # a finished run keeps no room set aside


def test_a_run_that_ends_well_leaves_no_room_set_aside(make_cfg, tmp_path):
    from aios_tui.engine.train import run_training

    run_training(make_cfg(steps=2), tmp_path / "r", progress="none")
    assert not (tmp_path / "r" / ".status-room").exists()


def test_an_export_that_finds_the_disk_full_says_so_in_one_line(cli, make_cfg, tmp_path, monkeypatch):
    from safetensors import SafetensorError

    from aios_tui.engine import export as export_mod
    from aios_tui.engine.train import run_training

    run = tmp_path / "run"
    run_training(make_cfg(steps=1), run, progress="none")  # full fine-tuning: the model is written

    def full(*a, **k):  # what safetensors raises when the weights do not fit
        raise SafetensorError("Error while serializing: I/O error: No space left on device (os error 28)")

    monkeypatch.setattr(export_mod, "_finish", full)
    out = tmp_path / "new" / "out"
    code, _, err = cli("export", str(run), "--out", str(out))
    # before: the SafetensorError's traceback
    assert code == 2
    assert err == (f"aios-tui: error: --out {out}: cannot write the export (no space left on the device); "
                   "free space there or export elsewhere with --out\n")
    assert not (tmp_path / "new").exists()
