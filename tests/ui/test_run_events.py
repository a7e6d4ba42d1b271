"""The run view's Events box on a small terminal: the newest lines and a failure's reason are
what stays on screen."""

from __future__ import annotations

import json

import pytest

from aios_tui.ui.screens.run import RunScreen
from aios_tui.ui.widgets.event_log import EventLog

from pilots import wait_for
from runfiles import T0, write_run

SMALL = (80, 24)
REASON = ("CUDA out of memory. Tried to allocate 2.00 GiB (GPU 0; 23.65 GiB total capacity; "
          "21.07 GiB already allocated; 1.12 GiB free) while computing the loss of step 121")


def on_screen(widget) -> list[str]:
    """The Events box's lines as the screen draws them, borders and all: what a user sees."""
    region = widget.region
    screen = widget.screen._compositor.render_strips()
    return [strip.crop(region.x, region.right).text for strip in screen[region.y:region.bottom]]


def flat(lines: list[str]) -> str:
    """The box's text without its borders, wrapped lines joined up again."""
    inner = [l.strip("│╭╮╰╯─ ") for l in lines[1:-1]]
    return " ".join(inner)


def many_events(n: int) -> list[dict]:
    return [{"event": "checkpoint", "step": 10 * i, "path": f"checkpoints/step-{10 * i:06d}",
             "time": T0 + i} for i in range(1, n + 1)]


async def open_view(app, pilot) -> RunScreen:
    await wait_for(pilot, lambda: isinstance(app.screen, RunScreen) and app.screen.view is not None)
    await pilot.pause(0.1)
    return app.screen


@pytest.mark.parametrize("last", ["stopped", "finished"])
async def test_the_newest_event_is_on_screen_at_80x24(make_app, runs_root, last):
    run = write_run(runs_root, f"ends-{last}", state=last, pid=0,
                    events=many_events(5) + [{"event": last, "step": 120, "time": T0 + 99}])
    app = make_app(attach=run.path)
    async with app.run_test(size=SMALL) as pilot:
        screen = await open_view(app, pilot)
        lines = on_screen(screen.query_one(EventLog))
        assert last in lines[-2], lines          # the line above the bottom border
        assert "step-000050" in lines[-3], lines  # and, above it, the event before


async def test_a_long_failure_reason_is_shown_whole_at_80x24(make_app, runs_root):
    run = write_run(runs_root, "dies", state="failed", pid=0, events=many_events(6))
    status = json.loads(run.status_file.read_text())
    run.status_file.write_text(json.dumps({**status, "error": REASON}))
    run.log_path.write_text("loading model\nstep 120\nTraceback (most recent call last):\n"
                            "torch.OutOfMemoryError: CUDA out of memory\n")
    app = make_app(attach=run.path)
    async with app.run_test(size=SMALL) as pilot:
        screen = await open_view(app, pilot)
        text = flat(on_screen(screen.query_one(EventLog)))
        assert f"failed: {REASON}" in text, text
        assert "…" not in text


async def test_the_events_box_follows_new_events(make_app, runs_root):
    run = write_run(runs_root, "grows", events=many_events(3))
    app = make_app(attach=run.path)
    async with app.run_test(size=SMALL) as pilot:
        screen = await open_view(app, pilot)
        log = screen.query_one(EventLog)
        with open(run.default_metrics, "a") as fh:
            for rec in many_events(9)[3:]:
                fh.write(json.dumps(rec) + "\n")
        await wait_for(pilot, lambda: "step-000090" in on_screen(log)[-2], what="the newest event")
        assert "step-000080" in on_screen(log)[-3]


async def test_a_resumed_event_lists_its_changes(make_app, runs_root):
    resumed = {"event": "resumed", "step": 120, "total_steps": 400, "pid": 1,
               "checkpoint": str(runs_root / "changed" / "checkpoints" / "step-000120"),
               "changes": ["steps: 300 -> 400", "lr: 0.0002 -> 0.0001"], "time": T0 + 99}
    run = write_run(runs_root, "changed", events=[resumed])
    app = make_app(attach=run.path)
    async with app.run_test(size=SMALL) as pilot:
        screen = await open_view(app, pilot)
        lines = on_screen(screen.query_one(EventLog))
        assert "resumed  step 120  changed=steps: 300 -> 400; lr: 0.0002 -> 0.0001" in lines[-2], lines


async def test_the_same_events_again_do_not_lay_the_screen_out_again(make_app, runs_root):
    """Every poll brings a view; only one with other events (or notes) re-lays out the screen."""
    run = write_run(runs_root, "steady", events=many_events(3))
    app = make_app(attach=run.path)
    async with app.run_test(size=SMALL) as pilot:
        screen = await open_view(app, pilot)
        log = screen.query_one(EventLog)
        layouts = []
        real = log.refresh
        log.refresh = lambda *a, **kw: (layouts.append(kw.get("layout")), real(*a, **kw))[1]
        log.show(many_events(3))
        layouts.clear()
        log.show(many_events(3))
        assert True not in layouts
        log.show(many_events(4))
        assert layouts.count(True) == 1
        log.show(many_events(4), extra=["the engine stopped answering"])
        assert layouts.count(True) == 2
