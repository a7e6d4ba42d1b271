"""A run moved or copied to another directory (archived, fetched home) still shows its own
metrics, though its status names where it was trained; a --log-file elsewhere stays named."""

from __future__ import annotations

import shutil

from aios_tui.metrics.rundir import RunDir
from aios_tui.metrics.summary import summarize

from runfiles import write_run


def test_a_moved_run_reads_its_own_metrics(tmp_path, cli):
    trained = write_run(tmp_path / "box", "r1", steps=30, total=30, state="finished", pid=0)
    moved = tmp_path / "home" / "r1"
    moved.parent.mkdir()
    shutil.move(trained.path, moved)
    run = RunDir(moved)
    assert run.metrics_path() == run.default_metrics
    code, out, err = cli("tail", str(moved), "-n", "2")
    assert code == 0, err
    assert [line.split()[1].split("/")[0] for line in out.splitlines() if line.startswith("step ")] == ["29", "30"]


def test_a_copied_run_reads_its_own_metrics_not_the_original(tmp_path):
    original = write_run(tmp_path, "a", steps=30, total=30, state="finished", pid=0)
    shutil.copytree(original.path, tmp_path / "b")
    copy = RunDir(tmp_path / "b")
    with open(copy.default_metrics, "a") as fh:  # the copy goes on (say, a resume elsewhere)
        fh.write('{"step": 31, "loss": 0.125}\n')
    copy.write_status(last_loss=None, step=None)
    assert copy.metrics_path() == copy.default_metrics
    assert summarize(copy).loss == 0.125 and summarize(original).loss != 0.125


def test_a_log_file_elsewhere_is_still_the_one_read(tmp_path):
    run = write_run(tmp_path, "r", steps=5, state="finished", pid=0)
    log = tmp_path / "logs" / "shared.jsonl"
    log.parent.mkdir()
    shutil.move(run.default_metrics, log)
    run.write_status(metrics=str(log))
    assert run.metrics_path() == log
