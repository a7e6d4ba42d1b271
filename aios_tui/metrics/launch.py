"""Start a training process that outlives whoever started it (console, SSH session)."""

from __future__ import annotations

import os
import subprocess
import time
import sys
from pathlib import Path
from typing import Mapping, Sequence


# When the launcher started the engine: a STOP or CHECKPOINT request touched after that is for
# this session, even if it lands while the model is still loading.
LAUNCHED_AT_ENV = "AIOS_TUI_LAUNCHED_AT"


# File times can be coarser than the clock (a second on some filesystems, the server's on NFS).
MTIME_SLACK_S = 2.0


def launched_at(default: float) -> float:
    """When to count requests from: the launch (or ``default``), less the slack; read once, so
    whatever this process starts in turn is not given the same moment."""
    try:
        return float(os.environ.pop(LAUNCHED_AT_ENV)) - MTIME_SLACK_S
    except (KeyError, ValueError):
        return default - MTIME_SLACK_S


def start_detached(args: Sequence[str], run_dir: str | os.PathLike, *, env: Mapping[str, str] | None = None,
                   pass_fds: Sequence[int] = ()) -> int:
    """Run ``python -m aios_tui ARGS`` in its own session; returns its pid. ``env`` is added to
    its environment and ``pass_fds`` stay open in it (a lock it takes over).

    ``start_new_session`` puts it outside the terminal's process group, so SIGHUP from a
    dropped SSH link or a closed console never reaches it. Its output goes to
    ``<run_dir>/engine.log``; stdin is /dev/null so it never waits on a terminal.
    """
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    log = open(run_dir / "engine.log", "ab")
    try:
        proc = subprocess.Popen(
            [sys.executable, "-m", "aios_tui", *args],
            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True, close_fds=True, pass_fds=tuple(pass_fds),
            env={**os.environ, **(env or {}), "PYTHONUNBUFFERED": "1", LAUNCHED_AT_ENV: repr(time.time())},
        )
    finally:
        log.close()
    return proc.pid
