"""The run view of a run whose --log-file another run shares: its own header, chart and events."""

from __future__ import annotations

import json
import threading

from aios_tui.metrics import runstate
from aios_tui.ui.screens.run import RunScreen
from aios_tui.ui.widgets.event_log import EventLog
from aios_tui.ui.widgets.loss_chart import LossChart
from aios_tui.ui.widgets.run_stats import RunStats

from pilots import wait_for
from runfiles import step_record, write_shared


async def test_the_first_runs_view_is_its_own(make_app, runs_root, tmp_path):
    a, _ = write_shared(runs_root, tmp_path / "shared.jsonl", measured=True)
    app = make_app(attach=a.path)
    async with app.run_test(size=(100, 32)) as pilot:
        await wait_for(pilot, lambda: isinstance(app.screen, RunScreen) and app.screen.view is not None)
        screen = app.screen
        stats = str(screen.query_one(RunStats).render())
        assert "5.81%" in stats and "0.12%" not in stats
        assert "20.0 MiB" in stats                      # a's measured peak, not b's 10 MiB
        train = screen.query_one(LossChart)._series[0]
        assert [p[0] for p in train] == list(range(1, 21)) and {v for _, v in train} == {4.0}
        events = str(screen.query_one(EventLog).render())
        assert events.count("started") == 1 and "step 20" in events


async def test_the_first_frame_does_not_wait_for_the_read_back_to_the_runs_header(
        make_app, runs_root, tmp_path, monkeypatch):
    """Run a's lines at the top of a file past the size read from its end, run b's after them:
    the view of a reads back through all of b's lines to a's header. The read waits until the
    test lets it go, so the screen can only be there first if the read is off the UI thread."""
    shared = tmp_path / "shared.jsonl"
    a, _ = write_shared(runs_root, shared)
    b_steps = "".join(json.dumps({**step_record(s, 10), "loss": 1.0}) + "\n" for s in range(1, 1001))
    with open(shared, "a") as fh:
        while fh.tell() <= runstate.BIG_FILE_BYTES:
            fh.write(b_steps)
    reading, let_go, read = threading.Event(), threading.Event(), threading.Event()
    scan_back = runstate.scan_back

    def held_scan(*args, **kwargs):
        reading.set()
        let_go.wait(5)  # never forever: a read on the UI thread would hang the test
        try:
            return scan_back(*args, **kwargs)
        finally:
            read.set()

    monkeypatch.setattr(runstate, "scan_back", held_scan)
    app = make_app(attach=a.path)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: isinstance(app.screen, RunScreen) and reading.is_set())
        await pilot.pause()
        assert not read.is_set()  # the screen is up and answering while the read goes on
        screen = app.screen
        assert str(screen.query_one("#run-title").render()).strip() == "a"
        assert "reading the run's metrics" in str(screen.query_one(EventLog).render())
        let_go.set()
        await wait_for(pilot, lambda: screen.view is not None)
        train = screen.query_one(LossChart)._series[0]
        assert [p[0] for p in train] == list(range(1, 21)) and {v for _, v in train} == {4.0}
        assert "reading" not in str(screen.query_one(EventLog).render())
