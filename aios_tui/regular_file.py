"""Opening a file that must be a regular one (a dataset, a metrics log) without waiting on what
is not: opening a FIFO for reading waits for a writer, and a device may never end."""

from __future__ import annotations

import errno
import os
import stat
from typing import BinaryIO

_KINDS = ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a named pipe (FIFO)"),
          (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"))


def kind_of(mode: int) -> str | None:
    """What a file of this mode is when it is no regular file ("a directory", "a named pipe
    (FIFO)", ...); None for a regular file."""
    if stat.S_ISREG(mode):
        return None
    return next((name for test, name in _KINDS if test(mode)), "not a regular file")


class NotRegularFile(OSError):
    """Raised by ``open_regular`` for a directory, a pipe, a device or a socket; ``kind`` names it."""

    def __init__(self, path: str | os.PathLike, kind: str):
        code = errno.EISDIR if kind == "a directory" else errno.EINVAL
        super().__init__(code, f"is {kind}, not a regular file", str(path))
        self.kind = kind


def open_regular(path: str | os.PathLike) -> BinaryIO:
    """``path`` opened to read in binary; what is no regular file raises NotRegularFile at once."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    try:
        kind = kind_of(os.fstat(fd).st_mode)
        if kind:
            raise NotRegularFile(path, kind)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise
