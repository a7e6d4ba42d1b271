"""Following a metrics file as it grows: by byte offset, never re-reading what was read.

A writer may be mid-line (the partial line waits for the next poll), the file may be
truncated or replaced (the follower starts again from the top and counts a reset), and a
huge file is entered from its end (``tail``) so a 1 GB history costs one small read.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from aios_tui.metrics.jsonl import open_metrics, parse_complete_lines, read_header, tail_records

# One poll reads at most this much; a long backlog arrives over several polls, so a
# watcher never stalls on a multi-gigabyte read.
MAX_POLL_BYTES = 4 << 20


class Follower:
    """New complete records of a JSONL file, poll by poll."""

    def __init__(self, path: str | os.PathLike, offset: int = 0, max_bytes: int = MAX_POLL_BYTES):
        self.path = Path(path)
        self.offset = offset
        self.max_bytes = max_bytes
        self.resets = 0          # times the file was truncated or replaced under us
        self.bytes_read = 0
        self._ident: tuple[int, int] | None = None
        if offset:
            st = self._stat()
            self._ident = (st.st_dev, st.st_ino) if st else None

    def _stat(self) -> os.stat_result | None:
        try:
            return os.stat(self.path)
        except OSError:
            return None

    def tail(self, n: int) -> list[dict[str, Any]]:
        """The last ``n`` records; following continues after them."""
        st = self._stat()
        if st is None:
            return []
        records, end = tail_records(self.path, n)
        self.offset = end
        self._ident = (st.st_dev, st.st_ino)
        return records

    def header(self) -> dict[str, Any] | None:
        return read_header(self.path)

    def pending_bytes(self) -> int:
        st = self._stat()
        return max(0, st.st_size - self.offset) if st else 0

    def poll(self) -> list[dict[str, Any]]:
        st = self._stat()
        if st is None:
            return []
        ident = (st.st_dev, st.st_ino)
        if self._ident is not None and (ident != self._ident or st.st_size < self.offset):
            self.offset = 0
            self.resets += 1
        self._ident = ident
        if st.st_size <= self.offset:
            return []
        try:
            with open_metrics(self.path) as fh:
                fh.seek(self.offset)
                data = fh.read(self.max_bytes)
        except OSError:
            return []
        self.bytes_read += len(data)
        records, used = parse_complete_lines(data)
        if used == 0 and len(data) >= self.max_bytes:
            # A single line longer than a whole poll is not a metrics record; skip past it.
            used = len(data)
        self.offset += used
        return records
