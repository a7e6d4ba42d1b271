"""Start a training process that outlives whoever started it (console, SSH session)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Sequence


def start_detached(args: Sequence[str], run_dir: str | os.PathLike) -> int:
    """Run ``python -m aios_tui ARGS`` in its own session; returns its pid.

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
            start_new_session=True, close_fds=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
    finally:
        log.close()
    return proc.pid
