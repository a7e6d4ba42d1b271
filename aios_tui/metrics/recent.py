"""Where runs were started, so ``aios-tui attach`` finds a live run from any directory.

Runs live under the directory they were started from (``artifacts/runs`` there), but a new
SSH session begins in the home directory. Each new run's absolute path is appended to
``$XDG_STATE_HOME/aios-tui/recent-runs`` (default ``~/.local/state``): one short line written
with O_APPEND, so runs starting at once do not tear each other's lines. The file is rewritten,
atomically, only when it has grown to twice what is kept. It is an index, never a record a
run depends on: failing to write it never stops a run.
"""

from __future__ import annotations

import os
from pathlib import Path

from aios_tui.atomic import atomic_write_text

KEPT = 100


def recent_file() -> Path:
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "aios-tui" / "recent-runs"


def _newest_first(lines: list[str]) -> list[str]:
    seen: set[str] = set()
    out = []
    for line in reversed(lines):
        if line and line not in seen:
            seen.add(line)
            out.append(line)
    return out


def remember(run_path: str | os.PathLike) -> None:
    """Note that a run was started in ``run_path``."""
    path = recent_file()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "a", encoding="utf-8") as fh:
            fh.write(f"{Path(run_path).resolve()}\n")
        lines = path.read_text(encoding="utf-8").splitlines()
        if len(lines) > 2 * KEPT:
            atomic_write_text(path, "".join(f"{p}\n" for p in reversed(_newest_first(lines)[:KEPT])))
    except (OSError, UnicodeDecodeError):
        pass


def recent_run_paths() -> list[Path]:
    """Remembered run directories, the most recently started first, each once."""
    try:
        lines = recent_file().read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError):
        return []
    return [Path(p) for p in _newest_first([line.strip() for line in lines])]
