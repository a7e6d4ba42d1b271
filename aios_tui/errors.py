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


def first_line(error: BaseException | str) -> str:
    """The first line with text of an error's message, else its type's name: libraries' messages
    run to many lines (a traceback's worth, a table of mismatched shapes), and a user gets one."""
    text = str(error)
    line = next((line.strip() for line in text.splitlines() if line.strip()), "")
    return line or (type(error).__name__ if isinstance(error, BaseException) else "")
