"""The body of `aios-tui tail`: print the end of a metrics file, then follow it."""

from __future__ import annotations


import os
import shutil
import sys
import time
from pathlib import Path
from typing import Any, Callable, TextIO

from aios_tui.errors import UserError
from aios_tui.metrics.chart import line_chart
from aios_tui.metrics.fmt import event_line, header_line, step_line
from aios_tui.metrics.follow import Follower
from aios_tui.metrics.history import History, Point
from aios_tui.metrics.backscan import Scan, scan_back
from aios_tui.metrics.jsonl import is_header, metrics_unreadable, read_header
from aios_tui.metrics.rundir import LIVE_STATES, RunDir, resolve_run, trainer_command
from aios_tui.metrics.sessions import (Owner, Session, config_steps, is_marker, is_start_of, own_sessions,
                                       same_place, session_of, step_of)

END_EVENTS = ("finished", "stopped", "error")
_CHART_READ = 4 << 20  # bytes parsed at a time for a chart of the whole run
# bytes read back past the lines shown to find whose they are (a file's first line says it after)
_SCAN_BUDGET = 8 << 20
_COLORS = {"error": "\x1b[1;31m", "stopped": "\x1b[33m", "finished": "\x1b[1;32m"}
_EVENT_COLOR = "\x1b[36m"
_RESET = "\x1b[0m"


def use_color(stream: TextIO) -> bool:
    if "NO_COLOR" in os.environ or os.environ.get("TERM") == "dumb":
        return False
    return bool(getattr(stream, "isatty", lambda: False)())


def _looks_like_metrics(path: Path) -> bool:
    """An empty file is a run that has not logged yet; otherwise its first line is a record."""
    try:
        return path.stat().st_size == 0 or read_header(path) is not None
    except OSError:
        return False


def locate(target: str) -> tuple[Path, RunDir | None]:
    """(metrics file, run directory or None) for a run dir, run name or JSONL path."""
    path = Path(target).expanduser()
    if path.is_file():
        if not _looks_like_metrics(path):
            raise UserError(f"{target}: not a metrics file (its first line is not a JSON record); "
                            "name a run directory, a run name or a metrics.jsonl")
        parent = RunDir(path.parent)
        return path, parent if parent.status_file.is_file() else None
    found = resolve_run(target, what="run directory or metrics file")
    run = RunDir(found)
    if found.is_dir() and run.exists():
        return run.metrics_path(), run
    if found.is_dir() and run.default_metrics.exists():
        # no run's directory (a brain bundle): its metrics are read as a file, whoever wrote them
        return run.default_metrics, None
    raise UserError(f"{found}: not a run directory (no status.json, config.toml or metrics.jsonl)")


class Printer:
    """Formats records into lines; highlights events when the stream is a colour terminal."""

    def __init__(self, out: TextIO, every: int, total: int | None):
        self.out = out
        self.every = max(1, every)
        self.total = total
        self.color = use_color(out)

    def wanted(self, rec: dict[str, Any]) -> bool:
        if "event" in rec:
            return True
        step = rec.get("step")
        if not isinstance(step, int):
            return False
        return "eval_loss" in rec or step % self.every == 0

    def line(self, rec: dict[str, Any]) -> str | None:
        if "event" in rec:
            text = event_line(rec)
            if self.color:
                text = _COLORS.get(rec["event"], _EVENT_COLOR) + text + _RESET
            return text
        if "step" in rec:
            return step_line(rec, self.total)
        return None

    def emit(self, rec: dict[str, Any]) -> None:
        if self.wanted(rec):
            text = self.line(rec)
            if text is not None:
                print(text, file=self.out, flush=True)

    def chart(self, metrics: Path, sessions: list[Session] | None = None) -> None:
        """The chart of the whole run, however long: of ``sessions`` (a run's own, in a file
        others share) or of the file (a shared one's last run). A pass over them keeps their
        steps' losses alone, and the chart averages those that share a column."""
        ranges = [(s.start, s.end) for s in sessions] if sessions is not None else None
        history = History(metrics, _size(metrics), _keep_all, limit=0, max_bytes=_CHART_READ, max_events=0,
                          ranges=ranges)
        while not history.done:
            history.step()
        loss, evals = history.loss, history.eval_loss
        width = shutil.get_terminal_size((100, 24)).columns
        series = {"train loss": loss}
        if evals:
            series["eval loss"] = evals
        for line in line_chart(series, width=min(width, 120), height=12):
            print(line, file=self.out)


def _keep_all(points: list[Point], point: Point, stride: int, limit: int) -> int:
    points.append(point)
    return stride


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def _total_steps(run: RunDir | None, header: dict[str, Any] | None) -> int | None:
    if run is not None:
        total = run.read_status().get("total_steps")
        if isinstance(total, int):
            return total
    return config_steps(header) if header else None


def _run_name(header: dict[str, Any] | None, fallback: str) -> str:
    where = (header or {}).get("run_dir")
    return Path(where).name if isinstance(where, str) and where else fallback


class Labels:
    """In a file several runs wrote, the line that says whose lines follow: each run's header
    summary where its session begins (a resumed run's, where it resumes)."""

    def __init__(self, out: TextIO, fallback: str):
        self.out, self.fallback = out, fallback
        self.headers: list[dict[str, Any]] = []
        self.current: tuple[dict[str, Any] | None, str] | None = None

    def of(self, rec: dict[str, Any]) -> tuple[dict[str, Any] | None, str] | None:
        """(header, run name) of the session the marker ``rec`` begins; None: the one before goes on."""
        if is_header(rec):
            self.headers.append(rec)
            return rec, _run_name(rec, self.fallback)
        checkpoint = rec.get("checkpoint")
        if rec.get("event") != "resumed" or not isinstance(checkpoint, str):
            return None
        run = Path(checkpoint).parent.parent
        header = next((h for h in reversed(self.headers) if same_place(str(h.get("run_dir") or ""), run)), None)
        return header, run.name

    def see(self, rec: dict[str, Any], show: bool) -> None:
        label = self.of(rec) if is_marker(rec) else None
        if label is None or label == self.current:
            return
        self.current = label
        if show:
            self.print(*label)

    def print(self, header: dict[str, Any] | None, name: str) -> None:
        text = header_line(header, name) if header else f"run {name} (resumed; its header is further back)"
        print(text, file=self.out, flush=True)


def _read_end(metrics: Path, run: RunDir | None, lines: int, wanted: Callable[[dict[str, Any]], bool]):
    """(sessions read from the end, those whose lines to show, the scan): a run's own sessions
    only, where others' share its file."""
    def keep(rec: dict[str, Any]) -> bool:
        return wanted(rec) and not is_header(rec)

    if run is None:
        scan = scan_back(metrics, keep, lines, budget=_SCAN_BUDGET)
        return scan.sessions, scan
    own_file = same_place(str(metrics), run.default_metrics)
    # a file others share is read back to the run's own header, however far: its lines may
    # be anywhere before theirs
    places = run.places()
    scan = scan_back(metrics, keep, lines, per_session=not own_file, stop=lambda s: is_start_of(s, places),
                     budget=_SCAN_BUDGET if own_file else None)
    return own_sessions(scan.sessions, places, step_of(run.read_status().get("pid")), own_file), scan


def _run_header(metrics: Path, run: RunDir, own: list[Session], scan: Scan) -> dict[str, Any] | None:
    """The header the run's latest own session goes by; in its own file, the first line when
    the sessions read began after it."""
    header = next((s.header for s in reversed(own) if s.header), None)
    if header is None and scan.sessions[0].kind == "begin" and same_place(str(metrics), run.default_metrics):
        top = read_header(metrics)
        header = top if top and is_header(top) else None
    return header


def tail_command(target: str, *, follow: bool = False, lines: int = 20, every: int = 1,
                 chart: bool = False, interval: float = 0.5, out: TextIO | None = None,
                 sleep: Callable[[float], None] = time.sleep) -> int:
    if lines < 0:
        raise UserError(f"--lines: {lines} is negative; give 0 or more")
    if every < 1:
        raise UserError(f"--every: {every} must be 1 or more")
    out = out or sys.stdout
    metrics, run = locate(target)
    gone = run.log_gone() if run is not None else None
    if gone:
        raise UserError(gone)
    name = run.name if run else metrics.name
    why = metrics_unreadable(metrics)
    if why:
        raise UserError(f"{name}: its metrics {metrics} cannot be read ({why})")
    printer = Printer(out, every, None)
    own, scan = _read_end(metrics, run, lines, printer.wanted)
    records = [r for s in own for r in s.records]
    keep = [r for r in records if printer.wanted(r) and not is_header(r)][-lines:] if lines else []
    kept = {id(r) for r in keep}
    first = id(keep[0]) if keep else None
    labels = Labels(out, name)
    header = _run_header(metrics, run, own, scan) if run is not None else None
    if run is None:
        if scan.sessions[0].kind == "begin" and not scan.top:
            # the first lines' marker is further back than was read: the file's first line's
            top = read_header(metrics)
            labels.see(top if top and is_header(top) else {}, False)
        for rec in records:  # whose the first line shown is
            if id(rec) == first:
                break
            labels.see(rec, False)
        header = labels.current[0] if labels.current else None
    if labels.current:
        labels.print(*labels.current)
    elif header or not follow:
        print(header_line(header, name), file=out)
    fallback_total = _total_steps(run, header)
    printer.total = fallback_total
    shown = first is None
    for s in own:
        printer.total = s.total_steps or (fallback_total if s.kind == "begin" else printer.total)
        for rec in s.records:
            if run is None and shown:
                labels.see(rec, True)
            shown = shown or id(rec) == first
            if id(rec) in kept:
                text = printer.line(rec)
                if text is not None:
                    print(text, file=out)
    out.flush()
    sessions = own if run is not None and not same_place(str(metrics), run.default_metrics) else None
    if not follow:
        if not records and not metrics.exists():
            print("(no metrics written yet)", file=out)
            state = run.state() if run is not None else "unknown"
            if state == "failed":  # it ended before its first line: the status says why
                print(_end_line(run, state), file=out)
        elif run is not None and _died_unsaid(run):
            # killed (kill -9, the OOM killer, a reboot): its lines stop mid-run, and without
            # this they read as a run still training
            print(_end_line(run, run.state()), file=out)
        if chart:
            printer.chart(metrics, sessions)
        return 0

    follower = Follower(metrics, offset=scan.end)
    final_state = None
    ended_by_event = any(r.get("event") in END_EVENTS for r in scan.sessions[-1].records[-3:])
    # new lines are the run's while the session they go on is
    owner = None if run is None else Owner(run.places(), step_of(run.read_status().get("pid")),
                                           bool(own) and own[-1] is scan.sessions[-1])
    try:
        while True:
            new = follower.poll()
            for rec in new:
                if owner is not None and not owner.take(rec):
                    continue
                if run is None:
                    labels.see(rec, True)
                    if is_marker(rec):  # each run's steps out of that run's total
                        printer.total = session_of(rec).total_steps or printer.total
                    if is_header(rec):
                        continue
                elif is_header(rec):
                    if header is None:  # the engine wrote its header after we started
                        header = rec
                        print(header_line(header, name), file=out, flush=True)
                        printer.total = printer.total or _total_steps(run, header)
                    continue
                printer.emit(rec)
                if rec.get("event") in END_EVENTS:
                    ended_by_event = True
                elif rec.get("event") in ("started", "resumed"):
                    ended_by_event = False
            if new:
                continue  # drain a backlog before deciding the run is over
            state = run.state() if run is not None else "unknown"
            if state not in LIVE_STATES and state != "unknown":
                final_state = state
            if final_state or (state == "unknown" and ended_by_event):
                for rec in follower.poll():  # lines flushed just before the status changed
                    if owner is None or owner.take(rec):
                        printer.emit(rec)
                break
            sleep(interval)
    except KeyboardInterrupt:
        print(file=out)
        if chart:  # asked for, and Ctrl-C is how a follow of a run still training ends
            printer.chart(metrics, sessions)
        return 130
    if final_state:
        print(_end_line(run, final_state), file=out, flush=True)
    if chart:
        printer.chart(metrics, sessions)
    return 1 if final_state == "failed" else 0


def _died_unsaid(run: RunDir) -> bool:
    """Whether the run's status still says it trains but its process is gone."""
    read = run.load_status()
    return read.fields.get("state") in LIVE_STATES and read.state() not in LIVE_STATES


def _end_line(run: RunDir | None, state: str) -> str:
    status = run.read_status() if run else {}
    msg = f"run {state}"
    if status.get("step") is not None:
        msg += f" at step {status['step']}"
    if state == "failed":
        if status.get("error"):
            msg += f": {status['error']}"
        else:
            pid = f" (pid {status['pid']})" if status.get("pid") else ""
            msg += f": its process{pid} ended without saying why (killed?); see {run.log_path}"
            latest = run.latest_checkpoint()
            resume = f"`aios-tui {trainer_command(status)} --resume {run.path}"
            total = status.get("total_steps")
            if latest is not None and isinstance(total, int) and int(latest.name.split("-")[1]) >= total:
                # killed between its last checkpoint and saying it finished
                msg += (f"; its final checkpoint {latest.name} was saved: export it, or train further "
                        f"with {resume} --steps N`")
            elif latest is not None:
                msg += f"; continue from {latest.name} with {resume}`"
    return msg
