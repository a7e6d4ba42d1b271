"""Deleting runs (`aios-tui runs delete`, the console's Runs screen).

Removing a tree of many gigabytes takes a while, and can be cut short (a full disk's quota, a
kill, a file not ours to remove). A run half removed that still reads as a run would be listed,
attached to or resumed from with checkpoints missing. So each run is first renamed, atomically
(the same directory, so the same filesystem), to a hidden name that no listing shows; only then
is it removed. A hidden directory left by a delete cut short is removed by the next delete there.

A run still training is never deleted: its status says so, or a resume holds its lock. The lock
is taken for the rename itself, so a resume started after the check cannot begin training a run
on its way out.
"""

from __future__ import annotations

import os
import shutil
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path

from aios_tui.errors import UserError
from aios_tui.metrics.disk_usage import dir_bytes
from aios_tui.metrics.run_lock import RunLock, held_elsewhere
from aios_tui.metrics.rundir import (CLI_STOP_HOW, DELETING_PREFIX, LIVE_STATES, RunDir, default_runs_root, pid_alive,
                                     resolve_run, still_training)


@dataclass(frozen=True)
class Doomed:
    """A run that may be deleted, with what deleting it frees."""
    run: RunDir
    bytes: int
    checkpoints: int

    @property
    def name(self) -> str:
        return self.run.name


@dataclass(frozen=True)
class Deleted:
    name: str
    freed: int
    left: Path | None = None   # what could not be removed (hidden, so no listing shows it)
    why: str | None = None


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def describe(d: Doomed) -> str:
    """``lora-x: 1.2 GiB, 3 checkpoints``: what a question about deleting it names."""
    from aios_tui.metrics.fmt import human_bytes

    return f"{d.name}: {human_bytes(d.bytes)}, {_plural(d.checkpoints, 'checkpoint')}"


def question(doomed: list[Doomed]) -> str:
    if len(doomed) == 1:
        return f"Delete run {describe(doomed[0])}?"
    return f"Delete {len(doomed)} runs ({'; '.join(describe(d) for d in doomed)})?"


def delete_blocker(run: RunDir, stop_how: str = CLI_STOP_HOW, *, lock_taken: bool = False) -> str | None:
    """Why ``run`` cannot be deleted now; None when it can. ``stop_how`` as for
    ``still_training``. ``lock_taken``: this process holds the run's lock already."""
    read = run.load_status()
    if read.missing and not run.path.is_dir():
        return gone(run)
    if read.missing or (not read.problem and not isinstance(read.fields.get("state"), str)):
        # a config.toml alone may be anyone's: only a directory with aios-tui's status is removed
        return f"{run.path}: not a run directory (no status.json written by aios-tui); nothing deleted"
    if read.problem:
        return (f"run '{run.name}': its status cannot be read ({read.problem}), so whether it still "
                f"trains is unknown; if no process trains it, remove {run.path} by hand")
    state = read.state()
    if state in LIVE_STATES:
        return still_training(run, state, read.fields.get("pid"), stop_how)
    if not lock_taken and held_elsewhere(run.path):
        return still_training(run, stop_how=stop_how)
    return None


def plan(args: list[str], root: str | os.PathLike | None = None) -> list[Doomed]:
    """The runs ``args`` name (names or directories, as every command takes them), each once;
    UserError naming every one that cannot be deleted, so that none is deleted."""
    problems: list[str] = []
    runs: dict[Path, RunDir] = {}
    for arg in args:
        try:
            path = resolve_run(arg, root)
        except UserError as exc:
            problems += exc.problems
            continue
        if not path.exists():
            problems.append(gone(RunDir(path)))
            continue
        if not path.is_dir():
            problems.append(f"{arg}: not a run directory (give the run's directory, not a file in it)")
            continue
        if path.is_symlink():
            # the link is what the list shows; deleting where it points would surprise either way
            problems.append(f"{arg}: is a link to {path.resolve()}; delete that run by its own path, "
                            f"or remove the link alone (rm {path})")
            continue
        run = RunDir(path.resolve())
        blocker = delete_blocker(run)
        if blocker:
            problems.append(blocker)
        else:
            runs.setdefault(run.path, run)
    if problems:
        if len(args) > 1:
            problems.append("nothing deleted")
        raise UserError(problems)
    return [measure(r) for r in runs.values()]


def measure(run: RunDir) -> Doomed:
    """What deleting ``run`` would free (whether it may be is ``delete_blocker``'s to say)."""
    return Doomed(run, dir_bytes(run.path), _checkpoints(run))


def _checkpoints(run: RunDir) -> int:
    try:
        return len(run.list_checkpoints())
    except OSError:
        return 0


def gone(run: RunDir) -> str:
    # two deletes of one run: the one that lost finds it gone at whichever step, and says so
    return f"run '{run.name}' is gone already (another delete took it, or it was moved, since it was looked up)"


def _gone(run: RunDir) -> UserError:
    return UserError(f"{gone(run)}; nothing deleted")


def _take_lock(run: RunDir, stop_how: str) -> RunLock:
    """The run's lock, held for the rename (the lock file moves with the directory); UserError
    when a resume holds it, or when the run is gone."""
    try:
        lock = RunLock.try_take(run.path)
    except FileNotFoundError:
        raise _gone(run) from None
    except OSError as exc:
        raise UserError(f"run '{run.name}': cannot take its lock ({exc.strerror or exc}); nothing deleted") from None
    if lock is None:
        if not run.path.is_dir():  # another delete held it for its rename
            raise _gone(run)
        raise UserError(f"{still_training(run, stop_how=stop_how)}; nothing deleted")
    if not lock.guards(run.path):
        lock.release()
        raise _gone(run)
    return lock


def _hidden_name(run: RunDir) -> Path:
    # the pid tells a later delete's clean-up that this one is still removing it
    return run.path.with_name(f"{DELETING_PREFIX}{run.name}-p{os.getpid()}-{uuid.uuid4().hex[:8]}")


def _in_hand(leftover: Path) -> bool:
    """Whether another process is still removing ``leftover`` (a hidden name from ``_hidden_name``)."""
    pid = leftover.name.rsplit("-", 2)[-2] if leftover.name.count("-") >= 3 else ""
    return pid[:1] == "p" and pid[1:].isdigit() and int(pid[1:]) != os.getpid() and pid_alive(int(pid[1:]))


def hide(doomed: list[Doomed], stop_how: str = CLI_STOP_HOW) -> list[tuple[Doomed, Path]]:
    """Check every run again (a question may have been open a while), then rename each to its
    hidden name; all of them, or (UserError) none."""
    locks = []
    hidden: list[tuple[Doomed, Path]] = []
    try:
        for d in doomed:
            locks.append(_take_lock(d.run, stop_how))
            blocker = delete_blocker(d.run, stop_how, lock_taken=True)
            if blocker:
                raise UserError(blocker if blocker.endswith("nothing deleted") else f"{blocker}; nothing deleted")
        for d in doomed:
            to = _hidden_name(d.run)
            try:
                os.rename(d.run.path, to)
            except OSError as exc:
                for back, was in reversed(hidden):
                    try:
                        os.rename(was, back.run.path)
                    except OSError:
                        pass
                hidden.clear()
                if isinstance(exc, FileNotFoundError):
                    raise _gone(d.run) from None
                raise UserError(f"cannot delete {d.run.path}: {exc.strerror or exc}; nothing deleted") from None
            hidden.append((d, to))
    finally:
        for lock in locks:
            lock.release()
    return hidden


def remove(d: Doomed, hidden: Path) -> Deleted:
    """Remove a run already hidden; what it freed, and what is left if not all of it went."""
    errors: list[str] = []

    def failed(_func, path, exc) -> None:
        # keep going: every file removed is room given back
        if not isinstance(exc, FileNotFoundError) and not errors:
            errors.append(f"{path}: {getattr(exc, 'strerror', None) or exc}")

    if sys.version_info >= (3, 12):
        shutil.rmtree(hidden, onexc=failed)
    else:
        shutil.rmtree(hidden, onerror=lambda f, p, info: failed(f, p, info[1]))
    if not hidden.exists():
        return Deleted(d.name, d.bytes)
    left = dir_bytes(hidden)
    return Deleted(d.name, max(0, d.bytes - left), hidden, errors[0] if errors else "not all of it could be removed")


def clean_leftovers(places: list[Path], keep: tuple[Path, ...] = ()) -> None:
    """Remove what deletes cut short left in ``places`` (hidden: nothing lists them)."""
    for place in dict.fromkeys(places):
        try:
            entries = [p for p in place.iterdir() if p.name.startswith(DELETING_PREFIX) and p not in keep]
        except OSError:
            continue
        for p in entries:
            if p.is_dir() and not p.is_symlink() and not _in_hand(p):
                shutil.rmtree(p, ignore_errors=True)


def finish(hidden: list[tuple[Doomed, Path]], root: str | os.PathLike | None = None) -> list[Deleted]:
    """Remove the runs ``hide`` hid, then what earlier deletes left beside them or under ``root``."""
    done = [remove(d, h) for d, h in hidden]
    clean_leftovers([Path(root) if root else default_runs_root()] + [h.parent for _, h in hidden],
                    keep=tuple(r.left for r in done if r.left is not None))
    return done


def delete(doomed: list[Doomed], root: str | os.PathLike | None = None,
           stop_how: str = CLI_STOP_HOW) -> list[Deleted]:
    """Delete every run of ``doomed`` (from ``plan``), or (UserError) none of them."""
    return finish(hide(doomed, stop_how), root)
