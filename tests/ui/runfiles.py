"""Run directories written by hand, in the engine's format, for screens and followers to read."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

from aios_tui.config import RunConfig
from aios_tui.metrics.rundir import RunDir

T0 = 1_700_000_000.0


def header(method: str = "lora", vram: dict | None = None, device: str = "cpu") -> dict[str, Any]:
    cfg = RunConfig()
    cfg.peft.use_peft = method != "full"
    if method != "full":
        cfg.peft.peft_method = method
    cfg.train.steps = 200
    return {"peft": "enabled" if method != "full" else "disabled", "method": method,
            "config": cfg.to_dict(),
            "parameters": {"trainable": 73728, "total": 1_268_864, "trainable_pct": 5.81},
            "model": "tiny", "device": device, "vram_estimate": vram, "time": T0}


def step_record(step: int, total: int = 200, eval_every: int = 50, cuda: bool = False) -> dict[str, Any]:
    loss = 5.5 * math.exp(-step / 60) + 1.2 + 0.05 * math.sin(step)
    rec: dict[str, Any] = {
        "step": step, "loss": round(loss, 4), "lr": 2e-4 * min(1.0, step / 10), "grad_norm": 0.8,
        "tokens_per_s": 5120.0, "step_time_s": 0.1, "elapsed_s": step * 0.1,
        "eta_s": (total - step) * 0.1, "tokens": step * 512, "time": T0 + step * 0.1,
    }
    if cuda:
        rec.update(mem_allocated=1 << 30, mem_reserved=3 << 29, mem_peak=5 << 28, nvml_used=2 << 30)
    else:
        rec["rss"] = 900 << 20
    if eval_every and step % eval_every == 0:
        rec["eval_loss"] = round(loss + 0.1, 4)
    return rec


def write_run(root: Path, name: str, *, steps: int = 120, total: int = 200, state: str = "running",
              pid: int | None = None, method: str = "lora", cuda: bool = False,
              vram: dict | None = None, events: list[dict] | None = None) -> RunDir:
    run = RunDir(root / name)
    run.path.mkdir(parents=True, exist_ok=True)
    run.config_toml.write_text("version = 1\n")
    lines = [header(method, vram, "cuda:0" if cuda else "cpu"),
             {"event": "started", "step": 0, "time": T0}]
    for s in range(1, steps + 1):
        lines.append(step_record(s, total, cuda=cuda))
        if s % 100 == 0:
            lines.append({"event": "checkpoint", "step": s, "path": f"checkpoints/step-{s:06d}",
                          "time": T0 + s * 0.1})
    lines += events or []
    with open(run.default_metrics, "w") as fh:
        for rec in lines:
            fh.write(json.dumps(rec) + "\n")
    status = {"pid": pid if pid is not None else os.getpid(), "state": state, "step": steps,
              "total_steps": total, "run_name": name, "method": method,
              "metrics": str(run.default_metrics.resolve()), "started_at": T0,
              "heartbeat": T0 + steps * 0.1, "last_loss": lines[-1].get("loss") if steps else None}
    if state == "failed":
        status["error"] = "CUDA out of memory"
    run.status_file.write_text(json.dumps(status))
    return run


def add_checkpoint(run: RunDir, step: int) -> Path:
    """A complete checkpoint directory, as export and resume look for (no weights in it)."""
    path = run.checkpoints / f"step-{step:06d}"
    path.mkdir(parents=True, exist_ok=True)
    (path / "COMPLETE").touch()
    return path


def shared_lines(run: RunDir, method: str, steps: int, loss: float, pct: float) -> list[dict[str, Any]]:
    """A run's header, started event and steps as the engine writes them into a --log-file."""
    head = header(method)
    head["run_dir"] = str(run.path.resolve())
    head["parameters"]["trainable_pct"] = pct
    out = [head, {"event": "started", "step": 0, "total_steps": steps, "pid": 0, "run_dir": head["run_dir"]}]
    out += [{**step_record(s, steps), "loss": loss} for s in range(1, steps + 1)]
    return out


def append_lines(path: Path, records: list[dict[str, Any]]) -> None:
    with open(path, "a") as fh:
        fh.writelines(json.dumps(r) + "\n" for r in records)


def write_shared(root: Path, shared: Path, measured: bool = False) -> list[RunDir]:
    """Run a (lora, 20 steps, loss 4.0) then run b (ia3, 10 steps, loss 1.0), both into ``shared``;
    with ``measured``, each ends with its peak memory (``steps`` MiB)."""
    runs = []
    for name, method, steps, loss, pct in (("a", "lora", 20, 4.0, 5.81), ("b", "ia3", 10, 1.0, 0.12)):
        run = write_run(root, name, steps=0, total=steps, state="finished", pid=0)
        run.default_metrics.unlink()
        peak = [{"event": "vram_measured", "peak_rss": steps << 20}] if measured else []
        append_lines(shared, shared_lines(run, method, steps, loss, pct) + peak
                     + [{"event": "finished", "step": steps}])
        status = json.loads(run.status_file.read_text())
        run.status_file.write_text(json.dumps({**status, "metrics": str(shared.resolve()), "step": steps}))
        runs.append(run)
    return runs
