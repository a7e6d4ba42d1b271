"""One training process per run directory at a time.

Two ``train --resume`` of one run started together both pass the status check (neither has
written its pid yet) and would then both train it, writing the same checkpoints. An exclusive
flock on ``<run>/.engine.lock`` decides between them; the kernel drops it when its process
ends, however it ends (kill -9 included), so a dead run never holds its directory.

``train --resume --detach`` takes the lock before it marks the run starting and hands it down
to the engine it starts (the lock belongs to the open file, which the child inherits): of two
launchers started together the one that lost says so to its user, and writes nothing.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from aios_tui.errors import UserError
from aios_tui.metrics.rundir import CLI_STOP_HOW, RunDir, still_training

try:
    import fcntl
except ImportError:  # no flock (Windows): the status check alone guards the run
    fcntl = None

LOCK_NAME = ".engine.lock"
HANDED_DOWN_ENV = "AIOS_TUI_RUN_LOCK_FD"


def _handed_down(path: Path):
    """The lock file a launcher passed down for ``path``, open; None when there is none."""
    try:
        fd = int(os.environ.pop(HANDED_DOWN_ENV))
        if os.path.samestat(os.fstat(fd), os.stat(path)):
            # a process this engine starts (compile workers) must not keep the run locked after it dies
            os.set_inheritable(fd, False)
            return os.fdopen(fd, "ab")
    except (KeyError, ValueError, OSError):
        pass
    return None


class RunLock:
    def __init__(self, fh) -> None:
        self._fh = fh

    @classmethod
    def take(cls, run_dir: Path, stop_how: str = CLI_STOP_HOW) -> RunLock | None:
        """The lock on ``run_dir``; UserError when another process trains it right now
        (``stop_how`` as for ``still_training``)."""
        if fcntl is None or not run_dir.is_dir():
            return None
        lock = cls.try_take(run_dir, _handed_down(run_dir / LOCK_NAME))
        if lock is None:
            raise UserError(still_training(RunDir(run_dir), stop_how=stop_how))
        return lock

    @classmethod
    def try_take(cls, run_dir: Path, fh=None) -> RunLock | None:
        """The lock on ``run_dir`` (through ``fh`` when it is open already), or None when another
        process holds it; OSError when the lock file cannot be opened. Without flock, a lock
        that guards nothing."""
        if fcntl is None:
            return cls(None)
        fh = fh or open(run_dir / LOCK_NAME, "ab")
        try:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            fh.close()
            return None
        return cls(fh)

    def guards(self, run_dir: Path) -> bool:
        """Whether this lock is still ``run_dir``'s: the directory was not renamed away (a delete
        of it by another process) since the lock was taken."""
        if self._fh is None:
            return run_dir.is_dir()
        try:
            return os.path.samestat(os.fstat(self._fh.fileno()), os.stat(run_dir / LOCK_NAME))
        except OSError:
            return False

    def hand_down(self) -> dict[str, Any]:
        """``start_detached`` arguments that give the process it starts this lock."""
        fd = self._fh.fileno()
        return {"env": {HANDED_DOWN_ENV: str(fd)}, "pass_fds": (fd,)}

    def release(self) -> None:
        if self._fh is not None:
            self._fh.close()  # closing drops the lock


def held_elsewhere(run_dir: Path) -> bool:
    """Whether another process holds ``run_dir``'s lock (a resume training it); creates nothing."""
    if fcntl is None:
        return False
    try:
        fh = open(run_dir / LOCK_NAME, "rb")
    except OSError:  # none: no resume ever took it
        return False
    with fh:  # closing drops the probe's own lock
        try:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            return True
    return False
