"""The runs list and the run view over metrics.jsonl lines of the wrong shape: written by hand,
by another version, or cut short. The console shows what it can and keeps running."""

from __future__ import annotations

import json

from textual.widgets import DataTable

from aios_tui.ui.screens.run import RunScreen
from aios_tui.ui.screens.runs import RunsScreen
from aios_tui.ui.widgets.loss_chart import LossChart
from aios_tui.ui.widgets.run_stats import RunStats

from pilots import screen_lines, wait_for
from runfiles import append_lines, header, write_run

SIZE = (80, 24)


def rewrite_header(run, **fields) -> None:
    lines = run.default_metrics.read_text().splitlines()
    run.default_metrics.write_text("\n".join([json.dumps({**header(), **fields}), *lines[1:]]) + "\n")


async def open_run_view(pilot, app, name: str) -> RunScreen:
    app.open_runs()
    await wait_for(pilot, lambda: isinstance(app.screen, RunsScreen) and app.screen.runs, what="the runs")
    table = app.screen.query_one(DataTable)
    table.move_cursor(row=next(i for i, r in enumerate(app.screen.runs) if r.name == name))
    await pilot.pause()
    await pilot.press("a")
    await wait_for(pilot, lambda: isinstance(app.screen, RunScreen) and app.screen.view is not None,
                   what="the run view")
    await pilot.pause(0.3)
    return app.screen


async def test_a_header_of_the_wrong_shape_shows_dashes(make_app, runs_root):
    run = write_run(runs_root, "odd-header", steps=20, state="finished", pid=0)
    rewrite_header(run, parameters="many", vram_estimate=5)
    append_lines(run.default_metrics, [{"step": 21, "loss": 2.0, "rss": "x", "tokens_per_s": [1], "lr": "y",
                                        "eta_s": "z", "elapsed_s": "soon"}])
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_run_view(pilot, app, "odd-header")
        figures = str(screen.query_one(RunStats).render())
        assert "trainable   -" in figures and "tokens/s    -" in figures and "lr          -" in figures
        assert isinstance(app.screen, RunScreen)


async def test_losses_near_the_float_limit_are_left_off_the_chart(make_app, runs_root):
    run = write_run(runs_root, "diverged", steps=20, state="finished", pid=0)
    append_lines(run.default_metrics, [{"step": s, "loss": 1e308} for s in range(21, 25)])
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_run_view(pilot, app, "diverged")
        assert screen.query_one(LossChart).size.height > 0
        assert any("step" in line for line in screen_lines(app))  # the chart's axis, of the other points
        assert isinstance(app.screen, RunScreen)
