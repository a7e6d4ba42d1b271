"""One training process per run directory at a time.

Two ``train --resume`` of one run started together both pass the status check (neither has
written its pid yet) and would then both train it, writing the same checkpoints. An exclusive
flock on ``<run>/.engine.lock`` decides between them; the kernel drops it when its process
ends, however it ends (kill -9 included), so a dead run never holds its directory.
"""

from __future__ import annotations

from pathlib import Path

from aios_tui.errors import UserError

try:
    import fcntl
except ImportError:  # no flock (Windows): the status check alone guards the run
    fcntl = None

LOCK_NAME = ".engine.lock"


class RunLock:
    def __init__(self, fh) -> None:
        self._fh = fh

    @classmethod
    def take(cls, run_dir: Path, command: str = "train") -> RunLock | None:
        """The lock on ``run_dir``; UserError when another process trains it right now."""
        if fcntl is None or not run_dir.is_dir():
            return None
        fh = open(run_dir / LOCK_NAME, "ab")
        try:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            fh.close()
            raise UserError(f"{run_dir}: another process is training this run right now (a second "
                            f"`aios-tui {command} --resume` of it?)",
                            f"follow it with `aios-tui tail {run_dir} --follow`, or stop it first "
                            f"(`touch {run_dir / 'STOP'}`)") from None
        return cls(fh)

    def release(self) -> None:
        self._fh.close()  # closing drops the lock
