"""`aios-tui tail` of a --log-file several runs share: a run shows its own lines under its own
header; the file itself says where each run's lines begin."""

from __future__ import annotations

import io
import json
import threading
import time

from aios_tui.metrics.tailer import tail_command

from runfiles import append_lines as _append, shared_lines as _lines_of, step_record, write_run, write_shared


def steps_in(out: str) -> list[int]:
    return [int(line.split()[1].split("/")[0]) for line in out.splitlines() if line.startswith("step ")]


def _shared(tmp_path, monkeypatch):
    monkeypatch.setenv("AIOS_TUI_RUNS", str(tmp_path / "runs"))
    shared = tmp_path / "shared.jsonl"
    return shared, write_shared(tmp_path / "runs", shared)


def test_a_run_shows_only_its_own_lines_under_its_own_header(cli, tmp_path, monkeypatch):
    _shared(tmp_path, monkeypatch)
    code, out, err = cli("tail", "a", "-n", "5")
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0].startswith("run a  method lora") and "(5.81%)" in lines[0]
    assert steps_in(out) == [17, 18, 19, 20] and "loss 1.0000" not in out
    assert lines[-1] == "== finished  step 20"
    code, out, _ = cli("tail", "b", "-n", "30")
    assert out.splitlines()[0].startswith("run b  method ia3") and "(0.12%)" in out.splitlines()[0]
    assert steps_in(out) == list(range(1, 11)) and "loss 4.0000" not in out


def test_the_shared_file_says_where_each_runs_lines_begin(cli, tmp_path, monkeypatch):
    shared, _ = _shared(tmp_path, monkeypatch)
    code, out, err = cli("tail", str(shared), "-n", "14")
    assert code == 0, err
    lines = out.splitlines()
    # the lines shown start in run a's: its header first, then run b's where b begins
    assert lines[0].startswith("run a  method lora") and "(5.81%)" in lines[0]
    assert lines[1].startswith("step 20/20  loss 4.0000")
    b = next(i for i, line in enumerate(lines) if line.startswith("run b"))
    assert "method ia3" in lines[b] and "(0.12%)" in lines[b]
    assert lines[b - 1] == "== finished  step 20" and lines[b + 1].startswith("== started")
    assert all("loss 1.0000" in line for line in lines[b + 2:-1] if line.startswith("step"))
    _, out, _ = cli("tail", str(shared), "-n", "3")  # all of b's: its header only
    assert out.splitlines()[0].startswith("run b  method ia3") and len(out.splitlines()) == 4


def test_the_chart_of_a_run_in_a_shared_file_is_its_own(cli, tmp_path, monkeypatch):
    _shared(tmp_path, monkeypatch)
    code, out, _ = cli("tail", "a", "-n", "0", "--chart")
    assert code == 0
    assert out.splitlines()[-2].split() == ["1", "20"]
    assert all(float(line.split("┤")[0]) >= 3.5 for line in out.splitlines()[1:-2] if "┤" in line)


def test_follow_shows_the_run_s_own_new_lines_and_labels_each_run_in_the_file(tmp_path, monkeypatch):
    shared, (a, b) = _shared(tmp_path, monkeypatch)
    c = write_run(tmp_path / "runs", "c", steps=0, total=3, state="running")
    status = {**json.loads(b.status_file.read_text()), "state": "running", "pid": c.read_status()["pid"]}
    before = shared.read_text()

    def writer():  # run c trains in the file, then b resumes after it and finishes
        time.sleep(0.1)
        _append(shared, _lines_of(c, "adalora", 3, 7.0, 2.5)[2:])
        time.sleep(0.05)
        _append(shared, [{"event": "resumed", "step": 10, "total_steps": 12, "pid": 0,
                          "checkpoint": str(b.path.resolve() / "checkpoints" / "step-000010")},
                         {**step_record(11, 12), "loss": 0.5}, {**step_record(12, 12), "loss": 0.5},
                         {"event": "finished", "step": 12}])
        time.sleep(0.05)
        b.status_file.write_text(json.dumps({**status, "state": "finished", "step": 12}))

    outs = {}
    for target in (str(b.path), str(shared)):
        shared.write_text(before)
        b.status_file.write_text(json.dumps(status))
        _append(shared, _lines_of(c, "adalora", 3, 7.0, 2.5)[:2])  # c has begun
        out = io.StringIO()
        thread = threading.Thread(target=writer)
        thread.start()
        assert tail_command(target, follow=True, lines=0, interval=0.02, out=out) == 0
        thread.join()
        outs[target] = out.getvalue()
    mine = outs[str(b.path)]  # c's lines are not b's
    assert mine.splitlines()[0].startswith("run b  method ia3")
    assert steps_in(mine) == [11, 12] and "loss 7.0000" not in mine and "run c" not in mine
    text = outs[str(shared)]
    labels = [line for line in text.splitlines() if line.startswith("run ")]
    assert labels[0].startswith("run c  method adalora") and "(2.50%)" in labels[0]
    assert labels[1:] == ["run b (resumed; its header is further back)"]
    assert steps_in(text) == [1, 2, 3, 11, 12]
