"""Telling a write that failed for want of room (a full disk, a quota, ``ulimit -f``) from a bug.

torch and safetensors report such a failure in their own words ("unexpected pos 5105792 vs
5105684", "I/O error: ... (os error 28)"); the user needs to hear that the disk is full.
"""

from __future__ import annotations

import errno
import os
import re

NO_ROOM = {
    errno.ENOSPC: "no space left on the device",
    errno.EFBIG: "a file grew past the size limit (ulimit -f, or the filesystem's largest file)",
    errno.EDQUOT: "the disk quota is used up",
}
_OS_ERROR = re.compile(r"os error (\d+)")


def _errnos(exc: BaseException):
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, OSError) and exc.errno is not None:
            yield exc.errno
        for found in _OS_ERROR.findall(str(exc)):  # safetensors' Rust error text
            yield int(found)
        exc = exc.__cause__ or exc.__context__


def no_room(exc: BaseException, where: str | os.PathLike | None = None) -> str | None:
    """Why ``exc`` is a write that found no room, in words; None when it is something else. A
    writer that hides the OS error (torch's zip writer) is judged by the space left at ``where``."""
    for code in _errnos(exc):
        if code in NO_ROOM:
            return NO_ROOM[code]
    if where is not None and isinstance(exc, (OSError, RuntimeError)):
        try:
            if os.statvfs(where).f_bavail == 0:
                return NO_ROOM[errno.ENOSPC]
        except OSError:
            pass
    return None
