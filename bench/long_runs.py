"""How long runs and many runs read: a synthetic runs root, timed through the CLI and the console.

    python bench/long_runs.py [--runs 300] [--steps 200000] [--window 5]

Builds, in a temp dir, a runs root of ``--runs`` run directories (finished, failed, stopped, a
few killed and a few live, each with checkpoints and a metrics file) and one live run of
``--steps`` steps logged every step, then prints the wall time of each CLI part (the median of
three, a fresh `python -m aios_tui` each) and, headless, the console's: opening the long run
until its chart holds the whole history, opening the Runs screen, and the CPU the console
uses while it follows the live run (lines appended a few a second) and while the Runs screen
sits idle. No GPU needed; about a minute on 2 cores.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

T0 = 1_790_000_000.0


def _header(steps: int) -> dict:
    return {"peft": "enabled", "method": "lora",
            "config": {"train": {"steps": steps, "log_every": 1, "eval_every": 500}},
            "parameters": {"trainable": 4_194_304, "total": 1_240_000_000, "trainable_pct": 0.34},
            "model": "meta-llama/Llama-3.2-1B", "device": "cuda:0", "vram_estimate": None,
            "task": "causal_lm", "run_dir": "", "versions": {}, "time": T0}


_STEP = ('{{"step":{s},"loss":{loss:.4f},"lr":{lr:.3e},"grad_norm":{g:.4f},"tokens_per_s":41234.5,'
         '"step_time_s":0.3974,"elapsed_s":{el:.1f},"eta_s":{eta:.1f},"tokens":{tok},'
         '"mem_allocated":6442450944,"mem_reserved":8589934592,"mem_peak":7516192768,'
         '"nvml_used":9663676416{ev},"time":{t:.3f}}}\n')


def step_line(s: int, total: int) -> str:
    loss = 1.6 + 4.0 / (1 + s / 800) + 0.03 * ((s * 7919) % 97) / 97
    ev = f',"eval_loss":{loss + 0.12:.4f}' if s % 500 == 0 else ""
    return _STEP.format(s=s, loss=loss, lr=2e-4 * min(1.0, s / 1000), g=0.5 + (s % 13) / 26,
                        el=s * 0.4, eta=(total - s) * 0.4, tok=s * 16384, ev=ev, t=T0 + s * 0.4)


def metrics_text(steps: int, total: int, end: str | None) -> str:
    out = [json.dumps(_header(total)) + "\n",
           json.dumps({"event": "started", "step": 0, "pid": 1, "time": T0}) + "\n"]
    for s in range(1, steps + 1):
        out.append(step_line(s, total))
        if s % 5000 == 0:
            out.append(json.dumps({"event": "checkpoint", "step": s,
                                   "path": f"checkpoints/step-{s:06d}", "time": T0 + s * 0.4}) + "\n")
    if end:
        out.append(json.dumps({"event": end, "step": steps, "time": T0 + steps * 0.4}) + "\n")
    return "".join(out)


def _proc_start(pid: int) -> int:
    from aios_tui.metrics.rundir import process_start
    return process_start(pid)


def write_run(root: Path, name: str, state: str, steps: int, total: int, metrics: str, *,
              pid: int | None, started: float, status_loss: bool) -> Path:
    run = root / name
    run.mkdir(parents=True)
    (run / "config.toml").write_text("version = 1\n")
    (run / "metrics.jsonl").write_text(metrics)
    for s in (steps // 3, 2 * steps // 3, steps):
        cp = run / "checkpoints" / f"step-{s:06d}"
        cp.mkdir(parents=True, exist_ok=True)
        (cp / "COMPLETE").write_text("")
    status = {"state": state, "pid": pid, "pid_start": _proc_start(pid) if pid else None,
              "step": steps, "total_steps": total, "run_name": name, "method": "lora",
              "metrics": str(run / "metrics.jsonl"), "started_at": started,
              "heartbeat": started + steps * 0.4, "last_loss": 1.83 if status_loss else None,
              "error": "CUDA out of memory" if state == "failed" else None, "checkpoint": None}
    (run / "status.json").write_text(json.dumps(status))
    return run


def build(root: Path, n_runs: int, long_steps: int, live_pid: int) -> Path:
    """The runs root; returns the long live run's directory."""
    small = {end: metrics_text(3000, 3000, end) for end in ("finished", "stopped", "error", None)}
    kinds = (["finished"] * 16 + ["failed"] * 2 + ["stopped"] * 2)
    for i in range(n_runs):
        started = T0 - (n_runs - i) * 3600
        if i % 75 == 7:        # killed: says running, its process is gone
            state, pid, end = "running", 2 ** 22 + 12345, None
        elif i % 100 == 50:    # live, alongside the long one
            state, pid, end = "running", live_pid, None
        else:
            state = kinds[i % len(kinds)]
            pid, end = None, {"finished": "finished", "failed": "error", "stopped": "stopped"}[state]
        write_run(root, f"lora-{i:04d}", state, 3000, 3000, small[end], pid=pid, started=started,
                  status_loss=i % 4 != 0)   # older versions left last_loss out: read from metrics
    return write_run(root, "long-run", "running", long_steps, long_steps + 50_000,
                     metrics_text(long_steps, long_steps + 50_000, None), pid=live_pid,
                     started=T0, status_loss=True)


# -- the CLI -----------------------------------------------------------------------------------
def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "aios_tui", *args]


def _env(root: Path, state: Path) -> dict:
    return {**os.environ, "PYTHONPATH": str(REPO), "AIOS_TUI_RUNS": str(root),
            "XDG_STATE_HOME": str(state), "NO_COLOR": "1", "COLUMNS": "100"}


def _children_cpu() -> float:
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def time_cli(args: list[str], env: dict) -> tuple[float, float]:
    return time_run(_cli(*args), env)


def time_follow_start(args: list[str], env: dict, lines: int, repeat: int = 3) -> float:
    """Until the header and the last ``lines`` lines are out (then the follow is stopped)."""
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        proc = subprocess.Popen(_cli(*args), env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        for _ in range(lines + 1):
            if not proc.stdout.readline():
                break
        times.append(time.perf_counter() - t)
        proc.terminate()
        proc.wait(timeout=10)
        proc.stdout.close()
    return statistics.median(times)


def time_run(cmd: list[str], env: dict, repeat: int = 3) -> tuple[float, float]:
    """Median wall and CPU seconds of ``cmd`` (CPU is the steadier figure on a shared box)."""
    times, cpus = [], []
    for _ in range(repeat):
        t, c = time.perf_counter(), _children_cpu()
        subprocess.run(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
        times.append(time.perf_counter() - t)
        cpus.append(_children_cpu() - c)
    return statistics.median(times), statistics.median(cpus)


# -- the console (headless, in this process) ----------------------------------------------------
def _cpu() -> float:
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


async def console(root: Path, long_run: Path, window: float, show) -> None:
    from aios_tui.ui.app import AiosApp
    from aios_tui.ui.screens.run import RunScreen
    from aios_tui.ui.screens.runs import RunsScreen
    from aios_tui.ui.widgets.loss_chart import LossChart

    t = time.perf_counter()
    app = AiosApp(runs_root=root, attach=long_run)
    async with app.run_test(size=(120, 40)) as pilot:

        def chart_whole() -> bool:
            screen = app.screen
            if not isinstance(screen, RunScreen) or screen.view is None:
                return False
            loss = screen.query_one(LossChart)._series[0]
            return bool(loss) and loss[0][0] <= 1 and not getattr(screen.tracker, "behind", False)

        def chart_any() -> bool:
            screen = app.screen
            return isinstance(screen, RunScreen) and bool(screen.query_one(LossChart)._series[0])

        first = None
        while time.perf_counter() - t < 20:  # a chart of the file's tail only never gets there
            if first is None and chart_any():
                first = time.perf_counter() - t
            if chart_whole():
                break
            await pilot.pause(0.02)
        show("attach: run view, first chart", first or float("nan"))
        show("attach: run view, chart of the whole run", time.perf_counter() - t if chart_whole()
             else float("inf"))

        # following the live run: a writer appends a few lines a second
        stop = threading.Event()
        metrics = long_run / "metrics.jsonl"
        start_step = int(json.loads(metrics.read_bytes().rsplit(b"\n", 2)[-2])["step"]) + 1

        def writer() -> None:
            s = start_step
            with open(metrics, "a") as fh:
                while not stop.wait(0.25):
                    fh.write(step_line(s, s + 50_000))
                    fh.flush()
                    s += 1

        th = threading.Thread(target=writer, daemon=True)
        th.start()
        await pilot.pause(0.5)
        c, w = _cpu(), time.perf_counter()
        await pilot.pause(window)
        show("console CPU % following the live run", 100 * (_cpu() - c) / (time.perf_counter() - w))
        stop.set()
        th.join()

        t = time.perf_counter()
        await pilot.press("n")  # the run view's key for the Runs screen (ctrl+n on the form)
        while time.perf_counter() - t < 60:
            if isinstance(app.screen, RunsScreen) and len(app.screen.runs) > 0:
                break
            await pilot.pause(0.01)
        show("console Runs screen (ctrl+n) filled", time.perf_counter() - t)
        await pilot.pause(0.5)
        c, w = _cpu(), time.perf_counter()
        await pilot.pause(window)
        show("console CPU % on the Runs screen, idle", 100 * (_cpu() - c) / (time.perf_counter() - w))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=300)
    ap.add_argument("--steps", type=int, default=200_000)
    ap.add_argument("--window", type=float, default=5.0, help="seconds each CPU figure is taken over")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="aios-longruns-"))
    sleeper = subprocess.Popen(["sleep", "600"])
    try:
        root, state = tmp / "runs", tmp / "state"
        t = time.perf_counter()
        long_run = build(root, args.runs, args.steps, sleeper.pid)
        size = (long_run / "metrics.jsonl").stat().st_size
        print(f"built {args.runs + 1} runs in {time.perf_counter() - t:.1f}s; long run: {args.steps} steps, "
              f"metrics.jsonl {size / 2**20:.0f} MiB")
        env = _env(root, state)
        rows: list[tuple[str, float]] = []
        width = 44

        def show(name: str, value: float | tuple[float, float]) -> None:
            rows.append((name, value))
            wall, cpu = value if isinstance(value, tuple) else (value, None)
            cpu_text = "" if cpu is None else f"  {cpu:6.2f} s CPU"
            print(f"{name:<{width}}  {wall:6.2f} {'%' if '%' in name else 's'}{cpu_text}", flush=True)

        print(f"{'what':<{width}}  figure")
        show("python + import aios_tui.cli (floor)", time_run(
            [sys.executable, "-c", "import aios_tui.cli"], env))
        show("runs", time_cli(["runs"], env))
        show("runs --json", time_cli(["runs", "--json"], env))
        show("tail long-run", time_cli(["tail", "long-run"], env))
        show("tail long-run --chart", time_cli(["tail", "long-run", "--chart"], env))
        show("tail long-run --follow (until 20 lines)",
             time_follow_start(["tail", "long-run", "--follow"], env, 20))
        os.environ["XDG_STATE_HOME"] = str(state)
        asyncio.run(console(root, long_run, args.window, show))
    finally:
        sleeper.terminate()
        sleeper.wait()
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
