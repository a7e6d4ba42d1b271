"""Waiting inside thread workers without holding up the console's exit."""

from __future__ import annotations

import time

from textual.worker import Worker

STEP_S = 0.05


def nap(worker: Worker, seconds: float) -> bool:
    """Sleep ``seconds`` in short steps; False as soon as the worker is cancelled.

    A thread worker cannot be interrupted, and quitting waits for it: one long sleep would
    make the console hang for up to its length on the way out.
    """
    deadline = time.monotonic() + seconds
    while not worker.is_cancelled:
        left = deadline - time.monotonic()
        if left <= 0:
            return True
        time.sleep(min(STEP_S, left))
    return False
