"""Notes on stderr: a setting that will not do what it seems to, or what a run made of one.

A start or `--check` that is refused prints its errors and nothing else, yet notes come from
everywhere the config is read, before the checks that may refuse it. So a command holds them
(``held``) and lets them out once its checks pass (``release``); a refusal drops them. With
nothing held, as in the console's own process, a note is printed at once.
"""

from __future__ import annotations

import contextlib
import sys
from typing import Iterator

_held: list[str] | None = None


def say(text: str) -> None:
    line = f"note: {text}"
    if _held is None:
        print(line, file=sys.stderr)
    else:
        _held.append(line)


def release() -> None:
    """Print the notes held so far, in the order they came; later ones are printed at once."""
    global _held
    lines, _held = _held or [], None
    for line in lines:
        print(line, file=sys.stderr)


@contextlib.contextmanager
def held() -> Iterator[None]:
    """Hold notes until ``release``. A command that returns without releasing has passed its
    checks, so what is still held is printed then; one that raises was refused, and its notes go."""
    global _held
    _held = []
    try:
        yield
    except BaseException:
        _held = None
        raise
    release()
