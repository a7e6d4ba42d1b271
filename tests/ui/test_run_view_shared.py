"""The run view of a run whose --log-file another run shares: its own header, chart and events."""

from __future__ import annotations

from aios_tui.ui.screens.run import RunScreen
from aios_tui.ui.widgets.event_log import EventLog
from aios_tui.ui.widgets.loss_chart import LossChart
from aios_tui.ui.widgets.run_stats import RunStats

from pilots import wait_for
from runfiles import write_shared


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
