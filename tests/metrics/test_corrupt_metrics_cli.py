"""`aios-tui tail`, `compare` and `runs` over run directories whose metrics.jsonl or status.json
hold values of the wrong kind, or whose metrics file is no file at all."""

from __future__ import annotations

import json
import os

import pytest

from aios_tui.metrics.fmt import header_line, human_bytes, human_count, human_duration, num, step_line

from runfiles import append_lines, header, write_run

HUGE = "9" * 400  # a JSON integer no float holds


def test_integers_too_large_for_a_float_are_no_figures(cli, tmp_path, monkeypatch):
    root = tmp_path / "runs"
    monkeypatch.setenv("AIOS_TUI_RUNS", str(root))
    run = write_run(root, "big", steps=3, state="finished", pid=0)
    write_run(root, "ok", steps=3, state="finished", pid=0)
    with open(run.default_metrics, "a") as fh:
        fh.write(f'{{"step": 4, "loss": {HUGE}, "eval_loss": {HUGE}, "lr": {HUGE}, "tokens_per_s": {HUGE}, '
                 f'"rss": {HUGE}, "eta_s": {HUGE}}}\n')
    status = run.status_file.read_text()
    run.status_file.write_text(status.replace('"last_loss": ', f'"last_loss": {HUGE}, "x": ')
                                     .replace('"heartbeat": ', f'"heartbeat": {HUGE}, "y": '))
    code, out, err = cli("tail", "big")
    assert code == 0 and not err
    assert out.splitlines()[-1] == "step   4/200  loss -  eval -  lr -  tok/s -  mem -  eta -"
    code, out, err = cli("compare", "big", "ok", "--json")
    assert code == 0 and not err
    big, ok = json.loads(out)
    assert big["final_loss"] == pytest.approx(ok["final_loss"]) and big["step"] == 4
    code, out, err = cli("runs", "--json")
    assert code == 0 and not err
    # the newest loss that is one: step 3's
    assert {r["name"]: r["loss"] for r in json.loads(out)}["big"] == 6.4388


def test_a_header_of_the_wrong_shape_shows_no_trainable_figures(cli, tmp_path):
    run = write_run(tmp_path, "r", steps=2, state="finished", pid=0)
    lines = run.default_metrics.read_text().splitlines()
    for params in ("lots", {"trainable": "x", "total": None, "trainable_pct": "p"}):
        head = {**header(), "parameters": params}
        run.default_metrics.write_text("\n".join([json.dumps(head), *lines[1:]]) + "\n")
        code, out, err = cli("tail", str(run.path))
        assert code == 0 and not err
        assert out.splitlines()[0] == "run r  method lora  model tiny  device cpu  trainable -"
    assert header_line({"parameters": {"trainable": 5, "total": 9, "trainable_pct": "x"}}) == \
        "method -  trainable 5 / 9"


def test_the_figures_of_a_line_written_by_hand_show_as_dashes():
    for bad in ("x", None, True, [1], {}, float("nan"), float("inf"), 10 ** 400):
        assert human_bytes(bad) == human_count(bad) == human_duration(bad) == num(bad, ".4f") == "-", bad
    assert step_line({"step": 3, "loss": "x", "lr": [1], "tokens_per_s": "fast", "rss": "big",
                      "eta_s": "soon"}) == "step     3  loss -  lr -  tok/s -  mem -  eta -"


@pytest.mark.parametrize("kind", ["directory", "fifo"])
def test_metrics_that_are_no_file_are_one_line_and_status_2(cli_subprocess, tmp_path, kind):
    root = tmp_path / "runs"
    run = write_run(root, "odd", steps=2, state="finished", pid=0)
    write_run(root, "ok", steps=2, state="finished", pid=0)
    run.default_metrics.unlink()
    if kind == "directory":
        run.default_metrics.mkdir()
    else:
        os.mkfifo(run.default_metrics)  # opening it to read would wait for a writer for ever
    why = "is a directory" if kind == "directory" else "is a named pipe (FIFO)"
    why += ", not a regular file"
    env = {"AIOS_TUI_RUNS": str(root)}
    for args in (("tail", "odd"), ("tail", "odd", "--chart"), ("compare", "odd", "ok")):
        p = cli_subprocess(*args, env=env, timeout=60)
        assert p.returncode == 2 and p.stdout == "", (args, p.stderr)
        assert p.stderr.splitlines() == [f"aios-tui: error: odd: its metrics {run.default_metrics} cannot be "
                                         f"read ({why})"], args
    p = cli_subprocess("runs", env=env, timeout=60)
    assert p.returncode == 0 and "odd" in p.stdout and not p.stderr


def test_a_status_that_is_a_fifo_is_unreadable_not_a_wait(cli_subprocess, tmp_path):
    root = tmp_path / "runs"
    run = write_run(root, "odd", steps=2, state="finished", pid=0)
    run.status_file.unlink()
    os.mkfifo(run.status_file)  # opening it to read would wait for a writer for ever
    env = {"AIOS_TUI_RUNS": str(root)}
    p = cli_subprocess("runs", env=env, timeout=60)
    assert p.returncode == 0 and not p.stderr
    assert [line.split()[:2] for line in p.stdout.splitlines()[1:]] == [["odd", "unreadable"]]
    p = cli_subprocess("runs", "delete", "odd", "--yes", env=env, timeout=60)
    assert p.returncode == 2
    assert p.stderr.splitlines() == [f"aios-tui: error: run 'odd': its status cannot be read (status.json cannot "
                                     f"be read (is a named pipe (FIFO), not a regular file)), so whether it still "
                                     f"trains is unknown; if no process trains it, remove {run.path} by hand"]


def test_a_fifo_is_not_followed_into_a_wait(tmp_path):
    from aios_tui.metrics.follow import Follower
    from aios_tui.metrics.jsonl import read_from, tail_records

    path = tmp_path / "metrics.jsonl"
    os.mkfifo(path)
    for read in (lambda: read_from(path), lambda: tail_records(path, 5)):
        with pytest.raises(OSError):
            read()
    assert Follower(path).poll() == []
    append_lines(tmp_path / "plain.jsonl", [{"step": 1, "loss": 2.0}])
    assert read_from(tmp_path / "plain.jsonl")[0] == [{"step": 1, "loss": 2.0}]


def test_json_output_stays_json_whatever_the_losses(cli, tmp_path, monkeypatch):
    root = tmp_path / "runs"
    monkeypatch.setenv("AIOS_TUI_RUNS", str(root))
    for name, loss in (("inf", "Infinity"), ("nan", "NaN"), ("minus", "-Infinity")):
        run = write_run(root, name, steps=3, state="finished", pid=0)
        status = json.loads(run.status_file.read_text())
        run.status_file.write_text(json.dumps(status).replace(f'"last_loss": {status["last_loss"]}',
                                                              f'"last_loss": {loss}'))
    near = write_run(root, "near-max", steps=40, state="finished", pid=0)
    append_lines(near.default_metrics, [{"step": s, "loss": 1.7e308} for s in range(41, 81)])

    def strict(text: str):
        return json.loads(text, parse_constant=lambda c: pytest.fail(f"{c} is no JSON"))

    code, out, err = cli("runs", "--json")
    assert code == 0 and not err
    # no figure where the status has none: the tail of the metrics gives the last finite loss
    assert {r["name"]: r["loss"] for r in strict(out)}["inf"] == pytest.approx(1.2 + 5.5 * 2.71828 ** -0.05, abs=0.1)
    code, out, err = cli("compare", "near-max", "inf", "--json")
    assert code == 0 and not err
    assert strict(out)[0]["final_loss"] == pytest.approx(1.7e308)
