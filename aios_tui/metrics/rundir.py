"""The run directory: the only channel between a training process and whoever watches it.

    <run>/config.toml          the exact config the run started with
    <run>/metrics.jsonl        one JSON object per line, flushed per line
    <run>/status.json          pid (and its start time), state, step, heartbeat (written atomically)
    <run>/checkpoints/step-NNNNNN/
    <run>/STOP                 created by anyone who wants the run to save and stop
    <run>/.status-room         room set aside while a run is live, for the status saying how it ended
    <run>/adapter/ <run>/merged/   exports
"""

from __future__ import annotations

import errno
import os
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aios_tui.atomic import atomic_write_json
from aios_tui.errors import UserError
from aios_tui.metrics.fmt import figure
from aios_tui.metrics.jsonl import loads
from aios_tui.metrics.laststep import caught_up
from aios_tui.metrics.recent import recent_run_paths, remember
from aios_tui.regular_file import open_regular
from aios_tui.metrics.sessions import same_place

CHECKPOINT_NAME = re.compile(r"step-[0-9]+")
STATES = ("starting", "running", "stopping", "stopped", "finished", "failed")
LIVE_STATES = ("starting", "running", "stopping")
ROOM_BYTES = 64 * 1024  # a status.json temp file and its directory entry, on any block size
_NO_ROOM = (errno.ENOSPC, errno.EDQUOT)
UNREADABLE = "unreadable"
# A run being deleted is first renamed to this prefix (see run_delete.py): no listing shows it.
DELETING_PREFIX = ".deleting-"

# What a refusal to resume or delete a run another process trains tells to do: shell commands
# on the command line (``{run}``: how a command names the run), keys in the console.
CLI_STOP_HOW = "stop it first (`aios-tui runs stop {run}`) or follow it with `aios-tui tail {run} --follow`"


# A generated run name says what trains: HRM ACTv1 runs are told apart from plain ones.
NAME_PREFIX = {"train-actv1": "hrm-"}


def shown_method(method: str, command: str = "train") -> str:
    """What trains, as the runs list and a run's header name it: ``lora``, ``hrm-lora``."""
    return f"{NAME_PREFIX.get(command, '')}{method}"


def trainer_command(status: dict) -> str:
    """The command that trains (and resumes) a run with this status: ``train`` or ``train-actv1``."""
    method = str(status.get("method") or "")
    return next((cmd for cmd, prefix in NAME_PREFIX.items() if method.startswith(prefix)), "train")


def generated_run_name(method: str, command: str = "train", now: float | None = None) -> str:
    """The name of a run not given one (the CLI and the console alike): what trains, and when."""
    stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(now if now is not None else time.time()))
    return f"{shown_method(method, command)}-{stamp}"


RUNS_ENV = "AIOS_TUI_RUNS"


def default_runs_root() -> Path:
    return Path(os.environ.get(RUNS_ENV, "artifacts/runs"))


def remembered_runs() -> list[Path]:
    """The recent-runs index's directories that are still runs, the most recently started first.
    One this user can no longer look into (``is_dir`` raises PermissionError) is passed over."""
    out = []
    for path in recent_run_paths():
        try:
            if path.is_dir() and RunDir(path).exists():
                out.append(path)
        except OSError:
            pass
    return out


def resolve_run(arg: str, root: str | os.PathLike | None = None, *, what: str = "run directory") -> Path:
    """The directory (or file) a run given on a command line names, looked for the one way every
    command looks: the path as given, where it exists (the command then says if it is no run);
    then a directory of that name under the runs root (``root``, or the default); then, for a
    bare name and the default root, a run of that name started from another directory (the
    recent-runs index). ``what`` names what was looked for in the message when nothing is found;
    a name that several remembered runs share is refused with the places it was found."""
    path = Path(arg).expanduser()
    if path.exists():
        return path
    where = Path(root) if root else default_runs_root()
    if not arg.strip() or path.is_absolute():
        raise UserError(f"{arg}: no such {what}")
    if (where / arg).is_dir():
        return where / arg
    elsewhere = root is None and os.sep not in arg and arg not in (".", "..")
    if elsewhere:
        found = list(dict.fromkeys(p for p in remembered_runs() if p.name == arg))
        if len(found) == 1:
            return found[0]
        if found:
            raise UserError(f"{arg}: {len(found)} runs started from different directories have this name "
                            f"({', '.join(map(str, found))}); give the directory of the one you mean")
    places = f"here, under {where.absolute()}" + (", or among the runs started from other directories"
                                                   if elsewhere else "")
    names = [r.name for r in list_runs(where)]
    known = f"; runs under {where.absolute()}: {', '.join(names[:8])}" if names else ""
    raise UserError(f"{arg}: no such {what} {places}{known}")


def _is_int(v: Any) -> bool:
    # 64 bits: a larger step or pid is no real one, and overflows the float it is divided into
    return isinstance(v, int) and not isinstance(v, bool) and -(1 << 63) <= v < 1 << 63


def _is_pid(v: Any) -> bool:
    return _is_int(v) and 0 <= v < 1 << 31


def _is_finite(v: Any) -> bool:
    return figure(v) is not None


def _is_text(v: Any) -> bool:
    return isinstance(v, str) and "\x00" not in v  # a NUL cannot be in a path or a terminal line


# What each field of status.json must hold. Anyone can write the file (a crash, an editor, another
# version), and its values reach formatters, os.kill and open(): one of another type counts as absent.
STATUS_FIELDS = {
    "state": _is_text, "pid": _is_pid, "pid_start": _is_int, "step": _is_int, "total_steps": _is_int,
    "run_name": _is_text, "method": _is_text, "metrics": _is_text, "error": _is_text,
    "checkpoint": _is_text, "started_at": _is_finite, "heartbeat": _is_finite,
    # the engine writes a non-finite loss as null; NaN or Infinity in `runs --json` is no JSON
    "last_loss": _is_finite,
}
MAX_STATUS_BYTES = 1 << 20


@dataclass(frozen=True)
class StatusRead:
    fields: dict[str, Any]
    problem: str | None = None   # why status.json could not be read; None when it was
    missing: bool = False

    def state(self) -> str:
        """``unreadable`` for a file that is not a status; else the state it says, corrected
        for a process that died without saying so (``unknown`` without one)."""
        if self.problem and not self.missing:
            return UNREADABLE
        return status_state(self.fields)


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true/false"
    return {list: "a list", str: "a string", int: "a number", float: "a number"}.get(type(value), "a value")


def parse_status(data: bytes) -> StatusRead:
    """status.json's fields that have the right type; or why the file is not a status."""
    if not data.strip():
        return StatusRead({}, "status.json is empty")
    if len(data) > MAX_STATUS_BYTES:
        return StatusRead({}, f"status.json is too large (over {MAX_STATUS_BYTES >> 20} MiB)")
    try:
        raw = loads(data.decode("utf-8"))
    except UnicodeDecodeError:
        return StatusRead({}, "status.json is not text")
    except (ValueError, RecursionError):
        return StatusRead({}, "status.json is not valid JSON (cut short or overwritten?)")
    if not isinstance(raw, dict):
        return StatusRead({}, f"status.json holds {_kind(raw)}, not an object")
    return StatusRead({k: v for k, v in raw.items()
                       if v is None or k not in STATUS_FIELDS or STATUS_FIELDS[k](v)})


def status_state(status: dict[str, Any]) -> str:
    """A status's state, corrected for a process that died without saying so."""
    state = status.get("state")
    if not _is_text(state) or not state:
        return "unknown"
    if state in LIVE_STATES and not status_alive(status):
        return "failed" if state != "stopping" else "stopped"
    return state


def process_start(pid: int | None) -> int | None:
    """When process ``pid`` started (clock ticks since boot, Linux), or None where unknown."""
    if not _is_int(pid) or pid <= 0:
        return None
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            return int(fh.read().split(b")")[-1].split()[19])
    except (OSError, ValueError, IndexError):
        return None


def pid_alive(pid: int | None, start: int | None = None) -> bool:
    """Whether ``pid`` runs; with ``start`` (from ``process_start``), whether it is still the same
    process, not a new one that was given a dead run's pid."""
    if not _is_int(pid) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except OverflowError:  # no process has a pid that large
        return False
    except OSError as exc:
        if exc.errno != errno.EPERM:  # EPERM: it runs, as another user
            return False
    if start is not None and process_start(pid) not in (None, start):
        return False
    try:  # a zombie child still answers kill(0); it is not training
        with open(f"/proc/{pid}/stat", "rb") as fh:
            return fh.read().split(b")")[-1].split()[0] != b"Z"
    except OSError:
        return True


def status_alive(status: dict[str, Any]) -> bool:
    """Whether the process a status.json names is still the one that wrote it."""
    start = status.get("pid_start")
    return pid_alive(status.get("pid"), start if _is_int(start) else None)


@dataclass(frozen=True)
class RunDir:
    path: Path

    def __init__(self, path: str | os.PathLike):
        object.__setattr__(self, "path", Path(path))

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def config_toml(self) -> Path:
        return self.path / "config.toml"

    @property
    def default_metrics(self) -> Path:
        return self.path / "metrics.jsonl"

    @property
    def status_file(self) -> Path:
        return self.path / "status.json"

    @property
    def checkpoints(self) -> Path:
        return self.path / "checkpoints"

    @property
    def stop_file(self) -> Path:
        return self.path / "STOP"

    @property
    def room_file(self) -> Path:
        return self.path / ".status-room"

    @property
    def checkpoint_request_file(self) -> Path:
        return self.path / "CHECKPOINT"

    @property
    def log_path(self) -> Path:
        """stdout/stderr of a detached run."""
        return self.path / "engine.log"

    def metrics_path(self, status: dict[str, Any] | None = None) -> Path:
        """Where this run writes metrics: status.json (or ``status``, already read from it) may
        name a --log-file elsewhere."""
        named = (self.read_status() if status is None else status).get("metrics")
        if not named or Path(named).is_dir():  # a directory is no metrics file: a status gone wrong
            return self.default_metrics
        named = Path(named)
        if not named.exists() and named.parent != self.path.resolve():
            # a --log-file inside the run's own directory moved with the run
            beside = self.path / named.name
            if beside.is_file() and any(same_place(named.parent, was) for was in self.places()[1:]):
                return beside
        if named.parent != self.path.resolve() and self.default_metrics.is_file():
            # A run moved or copied elsewhere (archived, fetched home): its status still names the
            # metrics where it was trained, which are gone or another run's own.
            if not named.exists() or (named.name == self.default_metrics.name
                                      and (named.parent / self.status_file.name).is_file()):
                return self.default_metrics
        return named

    def places(self) -> tuple[Path, ...]:
        """Where this run is, and where its config.toml says it trained (a run moved since, its
        --log-file left where it was): a shared file names its sessions by the latter."""
        import tomllib

        try:
            with open(self.config_toml, "rb") as fh:
                was = tomllib.load(fh).get("train", {}).get("run_dir")
        except (OSError, ValueError, AttributeError):
            was = None
        if isinstance(was, str) and was.strip() and os.path.isabs(was) and not same_place(was, self.path):
            return (self.path, Path(was))
        return (self.path,)

    def log_gone(self, status: dict[str, Any] | None = None) -> str | None:
        """One line when the --log-file the run's status names is not there (moved or deleted
        since): none of its lines can be shown. None when it is, or the run has not begun it."""
        status = self.read_status() if status is None else status
        metrics = self.metrics_path(status)
        # a run that logged no step may have written none of it (it failed loading its model, say)
        if same_place(metrics.parent, self.path) or not status.get("step") or metrics.exists():
            return None
        return f"run '{self.name}': its metrics file {metrics} (named in its status.json) is gone (moved or deleted?)"

    def exists(self) -> bool:
        try:
            return self.status_file.is_file() or self.config_toml.is_file()
        except OSError:  # a directory not ours to enter (another user's, under a shared root)
            return False

    def load_status(self) -> StatusRead:
        """status.json as every view shows it: for a process that died without saying so, with
        the step its metrics reached (the status is written at most once a second)."""
        read = self._load_status_file()
        state = read.fields.get("state")
        if read.problem or state not in LIVE_STATES or status_alive(read.fields):
            return read
        return StatusRead(caught_up(read.fields, self.metrics_path(read.fields)))

    def _load_status_file(self) -> StatusRead:
        try:
            with open_regular(self.status_file) as fh:  # a FIFO would wait for a writer
                data = fh.read(MAX_STATUS_BYTES + 1)
        except FileNotFoundError:
            return StatusRead({}, "status.json is missing", missing=True)
        except OSError as exc:
            return StatusRead({}, f"status.json cannot be read ({exc.strerror or exc})")
        return parse_status(data)

    def read_status(self) -> dict[str, Any]:
        """status.json's well-typed fields; {} when it cannot be read."""
        return self.load_status().fields

    def write_status(self, **fields: Any) -> dict[str, Any]:
        """Merge ``fields`` into status.json, stamping the heartbeat."""
        status = self._load_status_file().fields
        if "pid" in fields and "pid_start" not in fields:
            fields = {**fields, "pid_start": process_start(fields["pid"])}
        status.update(fields)
        status["heartbeat"] = time.time()
        ending = fields.get("state") in STATES and fields["state"] not in LIVE_STATES
        try:
            atomic_write_json(self.status_file, status)
        except OSError as exc:
            # The disk filled up: the status that says so (or that the run stopped) must still be
            # written, or the run reads as killed without a word. The room kept for it is freed.
            if not (ending and exc.errno in _NO_ROOM and self._give_back_room()):
                raise
            atomic_write_json(self.status_file, status)
        if ending:
            self._give_back_room()
        return status

    def keep_room(self) -> None:
        """Set aside a little room on the run's disk for the status that says how the run ended
        (``write_status`` frees it for that write when the disk is full). Best effort: on a disk
        already full the run fails at its first write, and says why in the status it replaces."""
        try:
            fd = os.open(self.room_file, os.O_WRONLY | os.O_CREAT, 0o644)
        except OSError:
            return
        try:
            try:
                os.posix_fallocate(fd, 0, ROOM_BYTES)
            except OSError as exc:
                if exc.errno in _NO_ROOM:
                    raise
                os.write(fd, bytes(ROOM_BYTES))  # no fallocate on this filesystem
        except OSError:
            os.close(fd)
            self._give_back_room()
            return
        os.close(fd)

    def _give_back_room(self) -> bool:
        try:
            self.room_file.unlink()
        except OSError:
            return False
        return True

    def state(self) -> str:
        """The state, corrected for a process that died without saying so; ``unreadable`` when
        status.json is there but is not a status."""
        return self.load_status().state()

    def resume_blocker(self, launchers: tuple[int, ...] = (), *, stop_how: str = CLI_STOP_HOW) -> str | None:
        """Why this run cannot be resumed now (another process still trains it, or whether one
        does cannot be told); None when it can. A live status under one of ``launchers`` (the
        pids that mark a run starting just before they start its engine) is no blocker.
        ``stop_how`` as for ``still_training``."""
        read = self.load_status()
        state = read.state()
        if state == UNREADABLE:
            return (f"run '{self.name}': its status cannot be read ({read.problem}), so whether it still "
                    f"trains is unknown; if no process trains it, remove {self.status_file} and resume")
        pid = read.fields.get("pid")
        if state in LIVE_STATES and pid not in launchers:
            return still_training(self, state, pid, stop_how)
        return None

    def request_stop(self) -> None:
        self.stop_file.touch()

    def request_checkpoint(self) -> None:
        self.checkpoint_request_file.touch()

    def list_checkpoints(self) -> list[Path]:
        """Complete checkpoints in step order. A directory not named step-<digits> (a copy named
        step-abc, say) is none: it would sort after every real one and be taken for the latest."""
        if not self.checkpoints.is_dir():
            return []
        found = [p for p in self.checkpoints.iterdir()
                 if CHECKPOINT_NAME.fullmatch(p.name) and p.is_dir() and (p / "COMPLETE").exists()]
        return sorted(found, key=lambda p: int(p.name.removeprefix("step-")))

    def latest_checkpoint(self) -> Path | None:
        cps = self.list_checkpoints()
        return cps[-1] if cps else None


def stop_outcome(run: RunDir) -> tuple[str, bool]:
    """What stopping the live ``run`` leaves, and whether it can be resumed after: a checkpoint is
    saved only for steps trained since its last one, so a run still loading its model saves none."""
    latest = run.latest_checkpoint()
    saved = int(latest.name.removeprefix("step-")) if latest is not None else None
    step = run.read_status().get("step")
    if _is_int(step) and step > (saved or 0):
        return "it saves a checkpoint first", True
    if saved is not None:
        return f"it has trained no step since its checkpoint at step {saved}, and stays there", True
    return "it has trained no step yet, so no checkpoint is saved", False


def command_ref(run: RunDir) -> str:
    """How a command line names ``run``: its name where a command finds it by that, else its directory."""
    try:
        if os.path.samefile(resolve_run(run.name), run.path):
            return run.name
    except (UserError, OSError):
        pass
    return str(run.path)


def still_training(run: RunDir, state: str | None = None, pid: Any = None, stop_how: str = CLI_STOP_HOW) -> str:
    """The one refusal of every command and console action that would resume or delete a run
    another process trains: ``state`` and ``pid`` from its status, or None when only its lock says
    so (a resume not yet in its status). ``stop_how`` says how to stop it (see CLI_STOP_HOW)."""
    if state == "stopping":  # it stops by itself: a second stop would change nothing
        return f"run '{run.name}' is stopping (pid {pid}, saving a checkpoint); wait for it to stop"
    how = stop_how.format(run=command_ref(run)) if "{run}" in stop_how else stop_how
    if state is None:
        return f"run '{run.name}' is being trained by another process right now (a resume); {how}"
    return f"run '{run.name}' is still {state} (pid {pid}); {how}"


def list_runs(root: str | os.PathLike | None = None) -> list[RunDir]:
    """Run directories under ``root``, the most recently begun first. The order holds while
    runs train (a heartbeat must not move a row under the cursor)."""
    root = Path(root) if root else default_runs_root()
    if not root.is_dir():
        return []
    runs = [RunDir(p) for p in root.iterdir()
            if not p.name.startswith(DELETING_PREFIX) and p.is_dir() and RunDir(p).exists()]

    def begun(r: RunDir) -> tuple[float, str]:
        started = r.read_status().get("started_at")
        if isinstance(started, (int, float)):
            return float(started), r.name
        for path in (r.config_toml, r.status_file, r.path):
            try:
                return path.stat().st_mtime, r.name
            except OSError:  # gone since it was listed
                pass
        return 0.0, r.name

    return sorted(runs, key=begun, reverse=True)


def run_metrics_path(cfg: Any, run: RunDir) -> Path:
    """Where a run with config ``cfg`` writes its metrics: ``train.log_file`` or the run's own."""
    log_file = cfg.train.log_file.strip()
    return Path(log_file).expanduser().resolve() if log_file else run.default_metrics.resolve()


def prepare_run(run: RunDir, cfg: Any, *, pid: int, total_steps: int, write_config: bool = True,
                command: str = "train") -> bool:
    """Create the run directory with config.toml and a ``starting`` status naming ``pid``;
    True if the directory was created. The CLI, the engine and the console all prepare runs
    this one way, so a watcher reads the same status whoever started the run."""
    from aios_tui.config import save_config  # the config layer; kept out of this module's import

    try:
        # whether this call made it decides who may remove it on failure: not a run that took the
        # directory a moment ago
        run.path.mkdir(parents=True)
        created = True
    except FileExistsError:
        created = False
    remember(run.path)
    if write_config:
        save_config(cfg, run.config_toml)
    # A resume keeps when the run began (its age, the runs list's order) and where it got to:
    # a resume that fails before its first step leaves the run where it was, not at step 0.
    earlier = {} if write_config else run.read_status()
    run.write_status(state="starting", pid=pid, step=earlier.get("step") or 0, total_steps=total_steps,
                     run_name=run.name, method=shown_method(cfg.method_label(), command),
                     metrics=str(run_metrics_path(cfg, run)), started_at=earlier.get("started_at") or time.time(),
                     last_loss=earlier.get("last_loss"), error=None, checkpoint=earlier.get("checkpoint"))
    run.keep_room()
    return created
