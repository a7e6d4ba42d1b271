"""The figures `aios-tui compare` sets side by side, read from run directories alone.

Each run's metrics are read whole, a bounded piece at a time (a sweep's runs are finished or
nearly so, and a best eval loss or a median rate needs every line); of a --log-file several
runs share, only the run's own sessions (metrics/sessions.py).
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from aios_tui.errors import UserError
from aios_tui.metrics.jsonl import open_metrics, parse_complete_lines
from aios_tui.metrics.rundir import RunDir
from aios_tui.metrics.sessions import own_sessions, same_place, split_sessions
from aios_tui.metrics.sessions import step_of as _step

# The final train loss is the mean of the lines logged over the last FINAL_SHARE of the steps
# done, at most FINAL_MAX_LINES of them and at least one: one step's loss is too noisy to rank by.
FINAL_SHARE = 0.05
FINAL_MAX_LINES = 20
FINAL_RULE = f"final loss: mean over the last {FINAL_SHARE:.0%} of steps (at most {FINAL_MAX_LINES} lines)"
_READ = 4 << 20          # bytes parsed at a time
_LONGEST_LINE = 16 << 20  # a "line" longer than this is no metrics line: it is skipped
MEMORY_KINDS = ("mem_peak", "mem_allocated", "nvml_used", "rss")  # memory_of's order
# Names of a run, not settings of it: they differ between any two runs.
IDENTITY_FIELDS = ("run_name", "run_dir")


def _number(v: Any) -> float | None:
    ok = isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
    return float(v) if ok else None




@dataclass
class Figures:
    name: str
    path: str
    state: str
    step: int | None = None
    total_steps: int | None = None
    final_loss: float | None = None
    final_loss_lines: int = 0
    best_eval_loss: float | None = None
    best_eval_step: int | None = None
    last_eval_loss: float | None = None
    last_eval_step: int | None = None
    tokens_per_s_median: float | None = None
    peak_memory_bytes: int | None = None
    peak_memory_kind: str | None = None
    wall_s: float | None = None
    trainable_pct: float | None = None
    config: dict[str, Any] | None = None     # flat: field -> value, as the run last ran
    # (step, ["field: old -> new", ...]) for each resume that changed settings, in order
    resume_changes: list[tuple[int | None, list[str]]] = field(default_factory=list)
    loss: list[tuple[int, float]] = field(default_factory=list)
    eval_loss: list[tuple[int, float]] = field(default_factory=list)


def _records(path: Path, shown: str) -> list[dict[str, Any]]:
    """Every complete record of ``path`` (none when it is not there yet: a run just starting)."""
    out: list[dict[str, Any]] = []
    try:
        fh = open_metrics(path)
    except FileNotFoundError:
        return out
    except OSError as exc:
        raise UserError(f"{shown}: its metrics {path} cannot be read ({exc.strerror or exc})") from None
    with fh:
        rest = b""
        first = True
        while True:
            try:
                data = fh.read(_READ)
            except OSError as exc:  # a directory opens, then fails to read
                raise UserError(f"{shown}: its metrics {path} cannot be read ({exc.strerror or exc})") from None
            if not data:
                break
            data = rest + data
            records, used = parse_complete_lines(data)
            if first and used:
                if not _starts_with_record(data):
                    raise UserError(f"{shown}: {path} is not a metrics file (its first line is not a JSON "
                                    "record)")
                first = False
            out.extend(map(_slim, records))
            rest = data[used:]
            if len(rest) > _LONGEST_LINE:
                rest = b""
        if first and rest.strip() and not _starts_with_record(rest + b"\n"):
            raise UserError(f"{shown}: {path} is not a metrics file (its first line is not a JSON record)")
    return out


# What a step line is read for; the rest of it (learning rate, grad norm, ...) is let go at once,
# since a long sweep's every line is held until its figures are worked out.
_STEP_FIELDS = ("step", "loss", "eval_loss", "tokens_per_s", "elapsed_s", *MEMORY_KINDS)


def _slim(rec: dict[str, Any]) -> dict[str, Any]:
    if "event" in rec or "peft" in rec or "step" not in rec:
        return rec  # a header or an event: few, and read whole
    return {k: rec[k] for k in _STEP_FIELDS if k in rec}


def _starts_with_record(data: bytes) -> bool:
    line = data.split(b"\n", 1)[0] + b"\n"
    return bool(parse_complete_lines(line)[0])


def _final_loss(loss: list[tuple[int, float]]) -> tuple[float | None, int]:
    if not loss:
        return None, 0
    done = loss[-1][0]
    since = done - max(1, math.ceil(done * FINAL_SHARE))
    window = [v for s, v in loss if s > since][-FINAL_MAX_LINES:] or [loss[-1][1]]
    mean = sum(window) / len(window)
    if not math.isfinite(mean):  # losses near the float's limit overflow their sum, not their mean
        mean = sum(v / len(window) for v in window)
    return mean, len(window)


def read_figures(run: RunDir) -> Figures:
    read = run.load_status()
    status = read.fields
    state = read.state()
    metrics = run.metrics_path(status)
    gone = run.log_gone(status)
    if gone:
        raise UserError(gone)
    own_file = same_place(str(metrics), run.default_metrics)
    sessions = own_sessions(split_sessions(_records(metrics, run.name)), run.places(), _step(status.get("pid")),
                            own_file)
    fig = Figures(name=run.name, path=str(run.path), state=state)
    header = next((s.header for s in sessions if s.header), None)

    # a resumed run repeats the steps after its checkpoint: the newer lines replace the older
    kept: list[dict[str, Any]] = []
    peaks: dict[str, float] = {}
    finished_wall = None
    for rec in (r for s in sessions for r in s.records):
        if rec.get("event") == "finished":
            finished_wall = _number(rec.get("elapsed_s"))
        changes = rec.get("changes") if rec.get("event") == "resumed" else None
        if isinstance(changes, list) and changes:
            fig.resume_changes.append((_step(rec.get("step")), [str(c) for c in changes]))
        step = _step(rec.get("step"))
        if "event" in rec or step is None:
            continue
        while kept and kept[-1]["step"] >= step:
            kept.pop()
        kept.append(rec)
        for kind in MEMORY_KINDS:  # what was reached, superseded lines included: it happened
            value = _number(rec.get(kind))
            if value is not None:
                peaks[kind] = max(peaks.get(kind, 0.0), value)

    fig.loss = [(r["step"], v) for r in kept if (v := _number(r.get("loss"))) is not None]
    fig.eval_loss = [(r["step"], v) for r in kept if (v := _number(r.get("eval_loss"))) is not None]
    fig.final_loss, fig.final_loss_lines = _final_loss(fig.loss)
    if fig.eval_loss:
        fig.best_eval_step, fig.best_eval_loss = min(fig.eval_loss, key=lambda p: (p[1], p[0]))
        fig.last_eval_step, fig.last_eval_loss = fig.eval_loss[-1]
    rates = [v for r in kept if (v := _number(r.get("tokens_per_s"))) is not None]
    fig.tokens_per_s_median = statistics.median(rates) if rates else None
    kind = next((k for k in MEMORY_KINDS if k in peaks), None)
    fig.peak_memory_kind = kind
    fig.peak_memory_bytes = round(peaks[kind]) if kind else None  # bytes, as --json writes every size
    walls = [v for r in kept[-1:] if (v := _number(r.get("elapsed_s"))) is not None]
    if finished_wall is not None:
        walls.append(finished_wall)
    fig.wall_s = max(walls) if walls else None

    fig.step = kept[-1]["step"] if kept else _step(status.get("step"))
    totals = [s.total_steps for s in sessions if s.total_steps is not None]
    fig.total_steps = _step(status.get("total_steps")) or (totals[-1] if totals else None)
    params = (header or {}).get("parameters")
    fig.trainable_pct = _number(params.get("trainable_pct")) if isinstance(params, dict) else None
    # a resume that changed settings (--steps, --lr, ...) names them all in its event: the newest
    # session's are what the run has now (a file from before that has its header's alone)
    fig.config = _flat_config(next((s.config for s in reversed(sessions) if s.config), None), run)
    return fig


def _flat_config(nested: dict[str, Any] | None, run: RunDir) -> dict[str, Any] | None:
    """The run's settings, field by field: its metrics' (what the engine ran with), else its
    config.toml's; None when neither can be read."""
    if not isinstance(nested, dict) and run.config_toml.is_file():
        from aios_tui.config import ConfigError, load_config

        try:
            nested = load_config(run.config_toml).to_dict()
        except ConfigError:
            nested = None
    if not isinstance(nested, dict):
        return None
    flat: dict[str, Any] = {}
    for section, values in nested.items():
        if isinstance(values, dict):
            for key, value in values.items():
                flat[key if key not in flat else f"{section}.{key}"] = value
    return flat


def differing_settings(figs: Sequence[Figures]) -> tuple[dict[str, list[Any]], int]:
    """(field -> each run's value, for the fields whose values differ; how many are the same).
    A run whose settings are unknown has None for each and is left out of the comparison."""
    known = [f.config for f in figs if f.config is not None]
    keys: list[str] = []
    for config in known:
        keys += [k for k in config if k not in keys and k not in IDENTITY_FIELDS]
    missing = object()
    differ: dict[str, list[Any]] = {}
    same = 0
    for key in keys:
        values = [c.get(key, missing) for c in known]
        if all(v == values[0] and type(v) is type(values[0]) for v in values):
            same += 1
            continue
        differ[key] = [None if f.config is None else f.config.get(key) for f in figs]
    return differ, same


def best_eval_runs(figs: Sequence[Figures]) -> set[int]:
    """Which runs (by index) reached the lowest eval loss: all of them where several tie."""
    scored = [f.best_eval_loss for f in figs if f.best_eval_loss is not None]
    return {i for i, f in enumerate(figs) if scored and f.best_eval_loss == min(scored)}
