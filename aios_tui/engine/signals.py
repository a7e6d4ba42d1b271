"""Stopping a run cleanly: signals and control files become flags the loop checks per step.

SIGTERM or the run directory's STOP file: finish the step, save a checkpoint, record
``stopped``, exit 0. SIGINT (Ctrl-C) does the same but exits 130, as an interrupted command
does; a second Ctrl-C stops at once without a checkpoint for the current step. SIGHUP is
ignored: a run in its own session never gets one, and a foreground run should not die with
its terminal's hang-up either. The CHECKPOINT file asks for a checkpoint now; the run goes on.
"""

from __future__ import annotations

import signal
import threading
from pathlib import Path


class StopControl:
    def __init__(self, stop_file: Path, checkpoint_file: Path):
        self.stop_file = stop_file
        self.checkpoint_file = checkpoint_file
        self.reason: str | None = None
        self.exit_code = 0
        self._saved: dict[int, object] = {}

    def _on_signal(self, signum: int, frame) -> None:
        if signum == signal.SIGINT:
            if self.reason == "SIGINT":
                raise KeyboardInterrupt
            self.exit_code = 130
        self.reason = self.reason or signal.Signals(signum).name

    def __enter__(self) -> "StopControl":
        if threading.current_thread() is threading.main_thread():
            for sig, handler in ((signal.SIGTERM, self._on_signal), (signal.SIGINT, self._on_signal),
                                 (signal.SIGHUP, signal.SIG_IGN)):
                self._saved[sig] = signal.signal(sig, handler)
        return self

    def __exit__(self, *exc) -> None:
        for sig, handler in self._saved.items():
            signal.signal(sig, handler)
        self._saved.clear()

    def stop_requested(self) -> bool:
        if self.reason is None and self.stop_file.exists():
            self.reason = "STOP file"
        return self.reason is not None

    def checkpoint_requested(self) -> bool:
        return self.checkpoint_file.exists()

    def checkpoint_done(self) -> None:
        try:
            self.checkpoint_file.unlink()
        except FileNotFoundError:
            pass
