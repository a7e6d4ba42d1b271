"""One background thread that samples a backend on a fixed grid and keeps a history."""

from __future__ import annotations

import collections
import math
import os
import threading
import time
from dataclasses import replace
from typing import Callable, Iterable

from aios_tui.gpu import procinfo
from aios_tui.gpu.model import DeviceSample, Snapshot


class GpuSampler:
    """Samples ``backend`` every ``interval`` seconds and keeps ``history_seconds`` per GPU.

    Ticks fall on ``start + k * interval`` (the time spent sampling does not push the next tick
    later; a tick missed because sampling overran is skipped, not queued). All methods are safe
    to call from any thread. ``on_sample`` is called on the sampler thread after each sample.
    ``clock`` and ``wait`` exist so tests can drive time; ``wait(seconds)`` returns True to stop.
    """

    def __init__(self, backend, interval: float = 1.0, history_seconds: float = 600, *,
                 own_pids: Iterable[int] = (), on_sample: Callable[[Snapshot], None] | None = None,
                 clock: Callable[[], float] = time.monotonic,
                 wall_clock: Callable[[], float] = time.time,
                 wait: Callable[[float], bool] | None = None):
        if not interval > 0:
            raise ValueError(f"interval must be > 0 seconds, got {interval}")
        if not history_seconds > 0:
            raise ValueError(f"history_seconds must be > 0, got {history_seconds}")
        self.backend = backend
        self.interval = float(interval)
        self.history_len = max(1, math.ceil(history_seconds / interval))
        self._on_sample = on_sample
        self._clock = clock
        self._wall = wall_clock
        self._stop = threading.Event()
        self._wait = wait or self._stop.wait
        self._lock = threading.Lock()
        self._read_lock = threading.Lock()
        self._new_sample = threading.Condition(self._lock)
        self._own_roots = {os.getpid(), *own_pids}
        self._history: dict[int, collections.deque[tuple[float, DeviceSample]]] = {}
        self._latest = Snapshot(available=backend.available, reason=backend.reason,
                                simulated=backend.simulated, timestamp=0.0, devices=[])
        self._count = 0
        self._thread: threading.Thread | None = None

    # -- lifecycle ------------------------------------------------------------------------------

    def start(self) -> "GpuSampler":
        with self._lock:
            if self._thread is not None and self._thread.is_alive():
                return self
            self._stop.clear()
            self._thread = threading.Thread(target=self._loop, name="gpu-sampler", daemon=True)
            self._thread.start()
        return self

    def stop(self, timeout: float | None = 5.0) -> None:
        self._stop.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)

    def join(self, timeout: float | None = None) -> None:
        """Wait for the thread to end (after ``stop()``, or once ``wait`` returned True)."""
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def __enter__(self) -> "GpuSampler":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
        self.backend.close()

    # -- reading --------------------------------------------------------------------------------

    def latest(self) -> Snapshot:
        """The newest snapshot (before the first sample: no devices, timestamp 0.0)."""
        with self._lock:
            return self._latest

    @property
    def samples_taken(self) -> int:
        with self._lock:
            return self._count

    def history(self, index: int) -> list[DeviceSample]:
        """Samples of GPU ``index``, oldest first, at most ``history_len`` of them."""
        with self._lock:
            return [s for _, s in self._history.get(index, ())]

    def history_with_times(self, index: int) -> list[tuple[float, DeviceSample]]:
        with self._lock:
            return list(self._history.get(index, ()))

    def wait_for_sample(self, after: int, timeout: float | None = None) -> Snapshot | None:
        """Block until more than ``after`` samples were taken; the newest snapshot, or None on
        timeout."""
        with self._new_sample:
            if not self._new_sample.wait_for(lambda: self._count > after, timeout):
                return None
            return self._latest

    # -- own processes ----------------------------------------------------------------------

    def set_own_pids(self, pids: Iterable[int]) -> None:
        """Processes (and their children) to mark as ours, besides this one: e.g. a run's pid."""
        with self._lock:
            self._own_roots = {os.getpid(), *pids}

    # -- sampling -------------------------------------------------------------------------------

    def sample_once(self) -> Snapshot:
        """Read the backend now, record the result and return it. Never raises."""
        with self._read_lock:
            with self._lock:
                roots = set(self._own_roots)
            try:
                devices, errors = self.backend.read()
                devices = [_mark_own(d, roots) for d in devices]
            except Exception as exc:  # a backend bug must not kill the monitor
                devices, errors = [], [f"sampling failed: {type(exc).__name__}: {exc}"]
            b = self.backend
            reason = b.reason if not b.available else "; ".join(filter(None, [*errors, b.reason]))
            snap = Snapshot(available=b.available, reason=reason, simulated=b.simulated,
                            timestamp=self._wall(), devices=devices)
            with self._new_sample:
                for d in devices:
                    hist = self._history.get(d.index)
                    if hist is None:
                        hist = self._history[d.index] = collections.deque(maxlen=self.history_len)
                    hist.append((snap.timestamp, d))
                self._latest = snap
                self._count += 1
                self._new_sample.notify_all()
        if self._on_sample is not None:
            try:
                self._on_sample(snap)
            except Exception:
                pass  # a listener's bug must not stop sampling
        return snap

    def _loop(self) -> None:
        start = self._clock()
        tick = 0
        while not self._stop.is_set():
            self.sample_once()
            now = self._clock()
            # Next grid point strictly after the tick just taken and not in the past.
            tick = max(tick + 1, math.ceil((now - start) / self.interval))
            if self._wait(max(0.0, start + tick * self.interval - now)):
                break


def _mark_own(device: DeviceSample, roots: set[int]) -> DeviceSample:
    if not device.processes:
        return device
    procs = [p if p.own or not procinfo.is_descendant(p.pid, roots) else replace(p, own=True)
             for p in device.processes]
    return replace(device, processes=procs)
