"""Text from outside (a user's value, another process's name) made safe to print on one line."""

from __future__ import annotations


def printable(text: str) -> str:
    """``text`` with control characters escaped: a value holding a newline or an escape sequence
    (a pasted path, a stray quote) must not split an error over lines or recolour the terminal."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)
