"""How often the run view's loss chart draws itself while a run trains, and what that costs.

A fake live run (status.json "running" under this process's pid, its heartbeat rewritten every
second as the engine does, a step logged every --step-s seconds) is watched by the console,
headless at 80x24 (or, with --terminal, on the terminal it runs in), for --seconds. Printed:
the plots the chart built, the CPU seconds its updates and paints took (time.process_time
around each), the console's whole CPU over the same time, and the steps logged. Run from the repository root:

    PYTHONPATH=. python bench/chart_redraws.py --seconds 20 --step-s 2
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import tempfile
import threading
import time
from pathlib import Path

from textual_plotext import PlotextPlot

from aios_tui.metrics.rundir import RunDir
from aios_tui.ui.app import AiosApp
from aios_tui.ui.gpu_source import StaticGpu
from aios_tui.ui.screens.run import RunScreen
from aios_tui.ui.widgets.loss_chart import LossChart


def step_line(step: int) -> str:
    loss = 5.5 * math.exp(-step / 60) + 1.2 + 0.05 * math.sin(step)
    return json.dumps({"step": step, "loss": round(loss, 4), "lr": 2e-4, "tokens_per_s": 5000.0,
                       "step_time_s": 0.1, "elapsed_s": step * 0.1, "eta_s": 100.0,
                       "time": time.time()}) + "\n"


def fake_run(root: Path, steps: int) -> RunDir:
    run = RunDir(root / "live")
    run.path.mkdir(parents=True)
    run.config_toml.write_text("version = 1\n")
    with open(run.default_metrics, "w") as fh:
        fh.write(json.dumps({"peft": "enabled", "method": "lora", "model": "tiny", "device": "cpu",
                             "config": {"train": {"steps": 100000}}}) + "\n")
        fh.write(json.dumps({"event": "started", "step": 0}) + "\n")
        fh.writelines(step_line(s) for s in range(1, steps + 1))
    run.write_status(state="running", pid=os.getpid(), step=steps, total_steps=100000,
                     metrics=str(run.default_metrics.resolve()), started_at=time.time())
    return run


def train(run: RunDir, first: int, step_s: float, stop: threading.Event) -> list[int]:
    """Log a step every ``step_s`` seconds (none with 0) and beat the heart every second."""
    logged = [first - 1]
    next_step = time.monotonic() + step_s if step_s else math.inf
    while not stop.wait(0.05):
        now = time.monotonic()
        if now >= next_step:
            logged[0] += 1
            with open(run.default_metrics, "a") as fh:
                fh.write(step_line(logged[0]))
            next_step += step_s
        if int(now) != int(now - 0.05):
            run.write_status(step=logged[0])
    return logged


async def measure(seconds: float, step_s: float, history: int, headless: bool) -> None:
    builds, spent = [0], [0.0]
    build, paint, update = PlotextPlot.render, LossChart._render_content, LossChart.update_view

    def counted(self):
        builds[0] += 1
        return build(self)

    def timed(method):
        def run(*args):
            t = time.process_time()
            try:
                return method(*args)
            finally:
                spent[0] += time.process_time() - t
        return run

    PlotextPlot.render = counted
    LossChart._render_content, LossChart.update_view = timed(paint), timed(update)
    with tempfile.TemporaryDirectory() as tmp:
        run = fake_run(Path(tmp), history)
        app = AiosApp(attach=run.path, gpu=StaticGpu(), runs_root=tmp)
        # headless, or drawn on this terminal (run it in an 80x24 one), as a user sees it
        running = asyncio.create_task(app.run_async(headless=headless, size=(80, 24) if headless else None))
        while not (app.screen_stack and isinstance(app.screen, RunScreen) and app.screen.view is not None):
            await asyncio.sleep(0.05)
        await asyncio.sleep(1.0)
        stop = threading.Event()
        logged: list[int] = []
        trainer = threading.Thread(target=lambda: logged.extend(train(run, history + 1, step_s, stop)))
        builds[0], spent[0] = 0, 0.0
        cpu0, wall0 = time.process_time(), time.monotonic()
        trainer.start()
        await asyncio.sleep(seconds)
        stop.set()
        trainer.join()
        cpu, wall = time.process_time() - cpu0, time.monotonic() - wall0
        app.exit()
        await running
    PlotextPlot.render, LossChart._render_content, LossChart.update_view = build, paint, update
    print(f"{wall:.1f} s watched, {logged[0] - history if logged else 0} steps logged")
    print(f"chart: {builds[0]} plots built ({builds[0] / wall:.2f}/s), {spent[0]:.2f} CPU s "
          f"in its updates and paints = {100 * spent[0] / wall:.1f}% of a core")
    print(f"console (this process, fake trainer included): {cpu:.2f} CPU s "
          f"= {100 * cpu / wall:.1f}% of a core")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=float, default=20.0, help="how long to watch")
    ap.add_argument("--step-s", type=float, default=2.0, help="seconds between logged steps (0: none)")
    ap.add_argument("--history", type=int, default=1500, help="steps already logged when watching starts")
    ap.add_argument("--terminal", action="store_true", help="draw on this terminal, not headless")
    args = ap.parse_args()
    asyncio.run(measure(args.seconds, args.step_s, args.history, not args.terminal))


if __name__ == "__main__":
    main()
