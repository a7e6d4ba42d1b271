"""Process names and parentage from /proc (Linux); psutil is not needed for this little."""

from __future__ import annotations

import os
from typing import Iterable

from aios_tui.printable import printable

PROC = "/proc"


def _read(path: str) -> bytes | None:
    try:
        with open(path, "rb") as fh:
            return fh.read()
    except OSError:  # gone, another pid namespace, or not Linux
        return None


def process_name(pid: int) -> str | None:
    """The short command name (``comm``), or the first word of the command line."""
    # Both names are chosen by whoever started the process (another user's too), and are
    # printed to the terminal: control characters are escaped here, once for every view.
    raw = _read(f"{PROC}/{pid}/comm")
    if raw:
        return printable(raw.decode("utf-8", "replace").strip()) or None
    argv = command_line(pid)
    if argv:
        return os.path.basename(argv.split(" ", 1)[0]) or None
    return None


def command_line(pid: int) -> str | None:
    raw = _read(f"{PROC}/{pid}/cmdline")
    if not raw:
        return None
    return printable(" ".join(a.decode("utf-8", "replace") for a in raw.rstrip(b"\0").split(b"\0"))) or None


def parent_pid(pid: int) -> int | None:
    raw = _read(f"{PROC}/{pid}/stat")
    if not raw:
        return None
    # The command name sits in parentheses and may itself hold spaces or ')'; fields after the
    # last ')' are fixed: state, ppid, ...
    try:
        return int(raw[raw.rindex(b")") + 2:].split()[1])
    except (ValueError, IndexError):
        return None


def is_descendant(pid: int, roots: Iterable[int], max_depth: int = 64) -> bool:
    """True if ``pid`` is one of ``roots`` or runs below one of them."""
    roots = set(roots)
    seen = 0
    current: int | None = pid
    while current and seen < max_depth:
        if current in roots:
            return True
        if current == 1:
            return False
        current = parent_pid(current)
        seen += 1
    return False
