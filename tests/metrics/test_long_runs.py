"""Long runs and many runs: what is read stays small, and what is shown stays the same."""

from __future__ import annotations

import json

from aios_tui.metrics import jsonl, runstate, summary
from aios_tui.metrics.jsonl import tail_records
from aios_tui.metrics.rundir import RunDir
from aios_tui.metrics.runstate import RunTracker
from aios_tui.metrics.summary import summarize_all

from runfiles import step_record, write_run


def _counting_loads(monkeypatch) -> list[int]:
    calls = [0]
    real = jsonl.json.loads

    def loads(data, *a, **kw):
        calls[0] += 1
        return real(data, *a, **kw)

    monkeypatch.setattr(jsonl.json, "loads", loads)
    return calls


def test_the_last_records_parse_only_the_lines_returned(tmp_path, monkeypatch):
    path = tmp_path / "m.jsonl"
    lines = [json.dumps({"step": s, "loss": 1.0}) for s in range(1, 2001)]
    lines[-2] = '{"step": 1999, "lo'          # corrupt: skipped, one more line from before
    path.write_text("\n".join(lines) + "\n" + '{"step": 2001')   # and a partial last line
    calls = _counting_loads(monkeypatch)
    records, end = tail_records(path, 3)
    assert [r["step"] for r in records] == [1997, 1998, 2000]
    assert end == path.stat().st_size - len('{"step": 2001')
    assert calls[0] == 4    # the 64 KiB read holds a thousand lines: four of them are parsed


def _many_runs(root, n=12):
    for i in range(n):
        write_run(root, f"r{i:02d}", steps=300, total=300, state="finished", pid=0)


def test_a_settled_run_is_summarized_once_until_its_files_change(tmp_path, monkeypatch):
    root = tmp_path / "runs"
    _many_runs(root)
    killed = write_run(root, "killed", steps=250, total=300, state="running", pid=999_999_999)
    first = summarize_all(root)
    reads = []
    real = RunDir._load_status_file
    monkeypatch.setattr(RunDir, "_load_status_file", lambda self: reads.append(self.name) or real(self))
    calls = _counting_loads(monkeypatch)
    assert summarize_all(root) == first
    # the listing's order still reads each status; of the summaries only the one whose process
    # may yet run reads its status again, and no metrics line is parsed (the killed run's last
    # step is known while its file is unchanged)
    assert sorted(reads) == sorted([r.name for r in first] + ["killed"])
    assert calls[0] == len(first) + 1
    assert next(r for r in first if r.name == "killed").step == 250

    # a resume (a new status) and a new checkpoint show at once
    run = RunDir(root / "r03")
    run.write_status(state="finished", last_loss=0.5, step=600, total_steps=600)
    (run.checkpoints / "step-000600").mkdir(parents=True)
    (run.checkpoints / "step-000600" / "COMPLETE").write_text("")
    with open(killed.default_metrics, "a") as fh:
        fh.write(json.dumps(step_record(251, 300)) + "\n")
    again = {r.name: r for r in summarize_all(root)}
    assert (again["r03"].loss, again["r03"].step, again["r03"].has_checkpoint) == (0.5, 600, True)
    assert again["killed"].step == 251
    assert summary._settled  # the cache only holds runs still listed
    assert set(summary._settled) == {r.path for r in (RunDir(root / n) for n in again) if r.name != "killed"}


def test_a_huge_files_chart_becomes_the_whole_run(tmp_path, monkeypatch):
    """Entered from its end, then filled in from the top: the same chart as one pass would draw."""
    run = write_run(tmp_path, "r", steps=6000, total=6000)
    with open(run.default_metrics, "a") as fh:   # a resume from step 5000 repeats later steps
        fh.write(json.dumps({"event": "resumed", "step": 5000}) + "\n")
        for s in range(5001, 6501):
            fh.write(json.dumps({**step_record(s, 6500), "loss": 0.5}) + "\n")
    monkeypatch.setattr(runstate, "BIG_FILE_BYTES", 10_000)
    t = RunTracker(run, max_points=300, backlog=400, history_bytes=50_000)
    t.poll()
    first = t.view()
    assert first.truncated and first.loss[0][0] > 6000 and first.step == 6500
    with open(run.default_metrics, "a") as fh:   # the run goes on while the history is read
        fh.write(json.dumps({"event": "checkpoint", "step": 6500}) + "\n")
        fh.write(json.dumps({**step_record(6501, 6600), "loss": 0.4}) + "\n")
    t.poll()
    polls = 2
    while t.behind:
        t.poll()
        polls += 1
    monkeypatch.setattr(runstate, "BIG_FILE_BYTES", 1 << 30)
    whole = RunTracker(run, max_points=300)
    whole.poll()
    while whole.behind:
        whole.poll()
    v = t.view()
    assert polls > 3   # the history came a bounded piece a poll
    assert not v.truncated
    assert v.loss == whole.view().loss and v.eval_loss == whole.view().eval_loss
    assert v.loss[0][0] == 1 and v.loss[-1] == (6501, 0.4) and len(v.loss) <= 300
    assert v.step == 6501 and v.events == whole.view().events and v.events[-1]["step"] == 6500


def test_a_settled_runs_size_follows_an_export(tmp_path):
    # an export lands beside the checkpoints, by a rename: the cached size must not hide it
    root = tmp_path / "runs"
    write_run(root, "done", steps=10, total=10, state="finished")
    before = {r.name: r.bytes for r in summarize_all(root)}["done"]
    staged = tmp_path / "staged"
    staged.mkdir()
    (staged / "adapter_model.safetensors").write_bytes(b"\1" * (1 << 20))
    staged.rename(root / "done" / "adapter")
    after = {r.name: r.bytes for r in summarize_all(root)}["done"]
    assert after >= before + (1 << 20)
