"""What a watcher rebuilds from a run directory."""

from __future__ import annotations

import json

from aios_tui.metrics import runstate
from aios_tui.metrics.runstate import RunTracker

from runfiles import step_record, write_run


def append(path, *records):
    with open(path, "a") as fh:
        for r in records:
            fh.write(json.dumps(r) + "\n")


def test_header_steps_evals_events_and_status(tmp_path):
    run = write_run(tmp_path, "r", steps=120)
    t = RunTracker(run)
    assert t.poll()
    v = t.view()
    assert v.state == "running" and v.live
    assert v.header["parameters"]["trainable"] == 73728
    assert v.step == 120 and v.total_steps == 200
    assert len(v.loss) == 120 and [p[0] for p in v.eval_loss] == [50, 100]
    assert [e["event"] for e in v.events] == ["started", "checkpoint"]
    assert not t.poll()  # nothing new


def test_resumed_steps_replace_the_ones_after_the_checkpoint(tmp_path):
    run = write_run(tmp_path, "r", steps=120)
    t = RunTracker(run)
    t.poll()
    append(run.default_metrics, {"event": "resumed", "step": 100},
           *[step_record(s) for s in range(101, 106)])
    t.poll()
    steps = [p[0] for p in t.view().loss]
    assert steps == list(range(1, 106))
    assert t.view().events[-1]["event"] == "resumed"


def test_history_is_thinned_but_keeps_the_newest_point(tmp_path):
    run = write_run(tmp_path, "r", steps=1000, total=1000)
    t = RunTracker(run, max_points=300)
    t.poll()
    steps = [p[0] for p in t.view().loss]
    assert len(steps) <= 300 and steps[-1] == 1000 and steps == sorted(steps)


def test_a_long_runs_history_stays_evenly_spread(tmp_path):
    run = write_run(tmp_path, "r", steps=0, total=9000)
    t = RunTracker(run, max_points=300)
    t.poll()
    append(run.default_metrics, *[step_record(s, 9000, eval_every=10) for s in range(1, 9001)])
    t.poll()
    v = t.view()
    for points in (v.loss, v.eval_loss):
        steps = [p[0] for p in points]
        assert 100 <= len(steps) <= 300 and steps[-1] == 9000
        gaps = [b - a for a, b in zip(steps[1:-1], steps[2:-1])]
        assert max(gaps) == min(gaps)                    # one stride from first to last
        assert steps[1] - steps[0] <= gaps[0] and steps[-1] - steps[-2] <= gaps[0]
        assert steps[0] <= 10                            # the start of the run is still there
    # The newest step is kept only until a newer one comes, unless it falls on the stride.
    append(run.default_metrics, step_record(9001, 9100))
    t.poll()
    steps = [p[0] for p in t.view().loss]
    assert steps[-1] == 9001 and 9000 not in steps


def test_resumed_steps_replace_the_later_ones_in_a_thinned_history(tmp_path):
    run = write_run(tmp_path, "r", steps=2000, total=3000)
    t = RunTracker(run, max_points=100)
    t.poll()
    append(run.default_metrics, {"event": "resumed", "step": 1500},
           *[step_record(s, 3000) for s in range(1501, 1511)])
    t.poll()
    steps = [p[0] for p in t.view().loss]
    assert steps[-1] == 1510 and steps == sorted(set(steps)) and all(s <= 1510 for s in steps)


def test_a_dead_process_is_failed_and_vram_measured_is_kept(tmp_path):
    run = write_run(tmp_path, "r", pid=999_999_999)
    append(run.default_metrics, {"event": "vram_measured", "mem_peak": 5, "nvml_used": 7})
    t = RunTracker(run)
    t.poll()
    v = t.view()
    assert v.state == "failed" and not v.live
    assert v.measured["nvml_used"] == 7


def test_a_resumed_session_drops_the_previous_sessions_peaks(tmp_path):
    run = write_run(tmp_path, "r", steps=5, total=10)
    append(run.default_metrics, {"event": "vram_measured", "peak_rss": 123})
    t = RunTracker(run)
    t.poll()
    assert t.view().measured["peak_rss"] == 123
    append(run.default_metrics, {"event": "resumed", "step": 5})
    append(run.default_metrics, {"step": 6, "loss": 1.0, "rss": 456})
    t.poll()
    v = t.view()
    assert v.measured is None and v.last["rss"] == 456


def test_a_huge_file_is_entered_from_its_end(tmp_path, monkeypatch):
    monkeypatch.setattr(runstate, "BIG_FILE_BYTES", 10_000)
    run = write_run(tmp_path, "r", steps=500, total=500)
    t = RunTracker(run, backlog=50)
    t.poll()
    v = t.view()
    assert v.truncated and v.header["method"] == "lora"
    assert [p[0] for p in v.loss][0] > 400 and v.step == 500
    assert t._follower.bytes_read < 10_000
