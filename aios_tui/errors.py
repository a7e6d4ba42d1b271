"""Errors that are the user's to fix: the CLI prints them plainly and exits with status 2."""

from __future__ import annotations

from typing import Iterable


class UserError(Exception):
    """A mistake the user can fix (missing file, bad dataset, targets that match nothing).

    ``problems`` holds one line each; the CLI prints them without a traceback.
    """

    def __init__(self, *problems: str | Iterable[str]):
        lines: list[str] = []
        for p in problems:
            lines += [p] if isinstance(p, str) else list(p)
        self.problems = lines
        super().__init__("\n".join(lines))
