"""A watcher of a run whose --log-file other runs share: its view holds the run's own sessions
only, as the file grows with others' lines too, whether read from its top or entered from its end."""

from __future__ import annotations

from aios_tui.metrics import runstate
from aios_tui.metrics.runstate import RunTracker

from runfiles import append_lines, shared_lines, step_record, write_run, write_shared


def _read(run, **kw) -> runstate.RunView:
    tracker = RunTracker(run, **kw)
    tracker.poll()
    while tracker.behind:
        tracker.poll()
    return tracker.view()


def _steps(points) -> list[int]:
    return [p[0] for p in points]


def test_each_run_sees_its_own_header_losses_events_and_memory(tmp_path):
    a, b = write_shared(tmp_path / "runs", tmp_path / "shared.jsonl", measured=True)
    va, vb = _read(a), _read(b)
    assert va.header["method"] == "lora" and va.header["parameters"]["trainable_pct"] == 5.81
    assert vb.header["method"] == "ia3" and vb.header["parameters"]["trainable_pct"] == 0.12
    assert _steps(va.loss) == list(range(1, 21)) and {v for _, v in va.loss} == {4.0}
    assert _steps(vb.loss) == list(range(1, 11)) and {v for _, v in vb.loss} == {1.0}
    assert va.step == 20 and va.last["loss"] == 4.0 and vb.step == 10
    for view, steps in ((va, 20), (vb, 10)):
        assert [e["event"] for e in view.events] == ["started", "vram_measured", "finished"]
        assert view.events[0]["total_steps"] == steps and view.measured["peak_rss"] == steps << 20


def _resume_b_after_c(tmp_path, shared, b) -> None:
    """Run c trains in the file, then b resumes after it from its checkpoint."""
    c = write_run(tmp_path / "runs", "c", steps=0, total=3)
    append_lines(shared, shared_lines(c, "adalora", 3, 7.0, 2.5))
    append_lines(shared, [{"event": "resumed", "step": 10, "total_steps": 12, "pid": 0,
                           "checkpoint": str(b.path.resolve() / "checkpoints" / "step-000010")},
                          {**step_record(11, 12), "loss": 0.5}, {**step_record(12, 12), "loss": 0.5}])


def test_lines_others_add_are_left_out_until_the_run_resumes(tmp_path):
    shared = tmp_path / "shared.jsonl"
    a, b = write_shared(tmp_path / "runs", shared)
    ta, tb = RunTracker(a), RunTracker(b)
    ta.poll(), tb.poll()
    before_a = ta.view()
    _resume_b_after_c(tmp_path, shared, b)
    ta.poll(), tb.poll()
    v = tb.view()
    assert v.header["method"] == "ia3" and v.step == 12
    assert _steps(v.loss) == list(range(1, 13)) and {val for _, val in v.loss} == {1.0, 0.5}
    assert [e["event"] for e in v.events] == ["started", "finished", "resumed"]
    after_a = ta.view()
    assert (after_a.header, after_a.loss, after_a.events) == (before_a.header, before_a.loss, before_a.events)


def test_a_huge_shared_file_is_entered_from_the_runs_own_end(tmp_path, monkeypatch):
    shared = tmp_path / "shared.jsonl"
    a, b = write_shared(tmp_path / "runs", shared, measured=True)
    whole = _read(a)
    monkeypatch.setattr(runstate, "BIG_FILE_BYTES", 2000)
    t = RunTracker(a, backlog=5, history_bytes=3000)
    t.poll()
    first = t.view()
    # the file ends with b's lines: a's tail is its own last lines, further back
    assert first.truncated and first.header["method"] == "lora"
    assert _steps(first.loss) == [18, 19, 20] and {val for _, val in first.loss} == {4.0}
    assert first.measured["peak_rss"] == 20 << 20 and first.step == 20
    polls = 1
    while t.behind:
        t.poll()
        polls += 1
    v = t.view()
    assert polls > 2 and not v.truncated   # the history came a piece a poll
    assert (v.loss, v.events, v.header) == (whole.loss, whole.events, whole.header)
    # it goes on following the file: b's resumed lines are not a's
    _resume_b_after_c(tmp_path, shared, b)
    t.poll()
    assert t.view().loss == whole.loss and t.view().events == whole.events
    vb = _read(b, backlog=5, history_bytes=3000)
    assert vb.header["method"] == "ia3" and _steps(vb.loss) == list(range(1, 13))
    assert {val for _, val in vb.loss} == {1.0, 0.5} and vb.events[-1]["event"] == "resumed"
