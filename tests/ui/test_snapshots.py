"""Snapshots of the main screens at 80x24 and 120x40 (fixed GPU, fixed runs, fixed clock).

Update after an intended change with `pytest tests/ui/test_snapshots.py --snapshot-update`
and look at the report before committing the new SVGs (and RECORDED_WITH, if Textual changed).
"""

from __future__ import annotations

from importlib.metadata import version

import pytest
from textual.widgets import Input, Select

from aios_tui.config import find_preset

from console_fixtures import no_gpu
from runfiles import add_checkpoint, write_run

SIZES = [(80, 24), (120, 40)]
# Each Textual release draws its own (equally right) SVG: the pictures are compared under the
# release they were recorded with, and the rest of tests/ui checks the screens under any other.
RECORDED_WITH = "8.2.8"
pytestmark = pytest.mark.skipif(version("textual") != RECORDED_WITH,
                                reason=f"snapshots recorded with textual {RECORDED_WITH}, "
                                       f"not {version('textual')}")


@pytest.fixture
def colour(monkeypatch):
    monkeypatch.delenv("NO_COLOR", raising=False)


async def ready(pilot) -> None:
    """Wait until the screen has composed (the pilot may start before it has)."""
    for _ in range(100):
        await pilot.pause(0.05)
        if pilot.app.screen.query("Footer"):
            return
    raise AssertionError("the screen never composed")


async def steady(pilot) -> None:
    """No blinking cursor in a picture; let the first paint of every pane land."""
    await ready(pilot)
    for inp in pilot.app.screen.query(Input):
        inp.cursor_blink = False
    await pilot.pause(0.3)


@pytest.mark.parametrize("size", SIZES, ids=["80x24", "120x40"])
def test_configure(snap_compare, make_app, colour, size):
    cfg = find_preset("efficient").config()
    cfg.peft.lora_r = 8
    app = make_app(config=cfg, preset="efficient")
    assert snap_compare(app, terminal_size=size, run_before=steady)


def test_configure_problems_no_gpu_no_colour(snap_compare, make_app):
    """NO_COLOR: problems, fit and state must read in words alone."""
    async def run_before(pilot):
        app = pilot.app
        await ready(pilot)
        app.screen.query_one("#form-tabs").active = "tab-peft"
        await pilot.pause()
        app.screen.query_one("#f-lora_r").value = "0"
        app.screen.query_one("#gpu-size", Select).value = str(15360 << 20)  # T4 16 GB
        app.screen.query_one("#f-lora_r").focus()
        await steady(pilot)
    app = make_app(gpu=no_gpu())
    assert snap_compare(app, terminal_size=(80, 24), run_before=run_before)


@pytest.mark.parametrize("size", SIZES, ids=["80x24", "120x40"])
def test_run_view(snap_compare, make_app, runs_root, colour, size):
    vram = {"peak_allocated_bytes": 3 << 30, "device_used_bytes": 7 << 29, "breakdown": {}}
    run = write_run(runs_root, "lora-snap", cuda=True, vram=vram)
    add_checkpoint(run, 100)  # as its checkpoint event says: export is offered
    app = make_app(attach=run.path)
    assert snap_compare(app, terminal_size=size, run_before=steady)


@pytest.mark.parametrize("size", SIZES, ids=["80x24", "120x40"])
def test_runs_screen(snap_compare, make_app, runs_root, colour, size, monkeypatch):
    import os
    from runfiles import T0
    monkeypatch.chdir(runs_root.parent)  # the title shows the runs root: keep it the same
    runs = [write_run(runs_root, "full-old", steps=200, state="finished", pid=0, method="full"),
            write_run(runs_root, "ia3-stopped", steps=40, state="stopped", pid=0, method="ia3"),
            write_run(runs_root, "lora-live", steps=120)]
    for i, r in enumerate(runs):
        os.utime(r.status_file, (T0 + i, T0 + i))
    for r, step in zip(runs, (200, 40, 100)):
        add_checkpoint(r, step)    # each has checkpointed (write_run's lines say so): resume and export apply
    # sizes on disk depend on the filesystem (and status.json names the tmp path): fixed here
    sizes = {"full-old": 31 << 30, "ia3-stopped": 812 << 10, "lora-live": 3 << 20}
    monkeypatch.setattr("aios_tui.metrics.summary.dir_bytes", lambda path: sizes[os.path.basename(path)])
    app = make_app(runs_root="runs")
    assert snap_compare(app, terminal_size=size, press=["ctrl+n"], run_before=steady)


def test_quit_dialog(snap_compare, make_app, runs_root, colour):
    run = write_run(runs_root, "lora-live", steps=120)
    app = make_app(attach=run.path)
    assert snap_compare(app, terminal_size=(80, 24), press=["ctrl+q"], run_before=steady)
