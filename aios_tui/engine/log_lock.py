"""An exclusive hold on a shared --log-file for the length of a training session.

The start checks refuse a log file that a live run names in its status, but two runs started
at the same moment both pass that check before either has written a status; the lock decides
between them. Advisory (flock): only our engines take it, and the metrics writer, which opens
the file separately, is not held up by it.
"""

from __future__ import annotations

import os
from pathlib import Path

from aios_tui.errors import UserError

try:
    import fcntl
except ImportError:  # no flock (Windows): the status check alone guards the file
    fcntl = None


class LogFileLock:
    def __init__(self, path: Path, fh, created: bool, made_dirs: list[Path]) -> None:
        self.path, self._fh, self._created, self._made_dirs = path, fh, created, made_dirs

    @classmethod
    def take(cls, log_file: str) -> LogFileLock | None:
        """The lock on ``log_file`` (None when there is no --log-file); UserError if another
        run holds it. Whatever this made is removed again if the run never writes a line."""
        if not log_file.strip() or fcntl is None:
            return None
        path = Path(log_file).expanduser()
        made = [p for p in reversed(path.parents) if not p.exists()]
        created = not path.exists()
        path.parent.mkdir(parents=True, exist_ok=True)
        fh = open(path, "ab")
        try:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            fh.close()
            cls._tidy(path, created, made)
            raise UserError(f"train.log_file {log_file}: another run is writing its metrics there right now; "
                            "give this run another --log-file") from None
        return cls(path, fh, created, made)

    def release(self) -> None:
        self._fh.close()  # closing drops the lock
        self._tidy(self.path, self._created, self._made_dirs)

    @staticmethod
    def _tidy(path: Path, created: bool, made: list[Path]) -> None:
        try:
            if created and path.stat().st_size == 0:
                path.unlink()
                for d in reversed(made):
                    os.rmdir(d)
        except OSError:  # written to, or a folder another file now uses: it stays
            pass
