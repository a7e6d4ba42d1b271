"""A made-up GPU for demos on machines without one. Every snapshot says it is simulated."""

from __future__ import annotations

import math
import os
import random
import time
from typing import Callable

from aios_tui.gpu.model import DeviceSample, ProcessInfo

GiB = 1 << 30
MiB = 1 << 20

SIMULATED_REASON = "simulated GPU: demo figures, not a real device"


class SimulatedBackend:
    """One 24 GiB card whose training process creeps toward the limit and drops back.

    The figures follow the clock, so two reads a second apart differ the way a busy card's do;
    ``seed`` and ``clock`` make them repeatable.
    """

    available = True
    simulated = True
    reason = SIMULATED_REASON
    driver_version = "simulated"

    TOTAL = 24 * GiB
    POWER_LIMIT_W = 350.0
    OTHER_PID = 4242  # a made-up neighbour holding a steady amount

    def __init__(self, seed: int = 0, clock: Callable[[], float] = time.monotonic):
        self._rng = random.Random(seed)
        self._clock = clock
        self._t0 = clock()
        self._util = 85.0

    def _own_bytes(self, t: float) -> int:
        # A 150 s saw-tooth: a run loads (2 GiB), grows toward ~19 GiB, then a new run starts.
        phase = (t % 150.0) / 150.0
        return int(2 * GiB + 17 * GiB * (1 - math.exp(-4 * phase)))

    def read(self) -> tuple[list[DeviceSample], list[str]]:
        t = self._clock() - self._t0
        rng = self._rng
        # A random walk that stays in a busy training band.
        self._util = min(100.0, max(55.0, self._util + rng.uniform(-6, 6)))
        util = int(round(self._util))
        own = self._own_bytes(t)
        other = int(1.5 * GiB)
        context = 300 * MiB
        temp = int(round(40 + 0.35 * util + 2 * math.sin(t / 30) + rng.uniform(-1, 1)))
        power = round(min(self.POWER_LIMIT_W, 60 + 2.6 * util + rng.uniform(-8, 8)), 1)
        sample = DeviceSample(
            index=0,
            name="Simulated GPU 24GB",
            mem_used=min(self.TOTAL, own + other + context),
            mem_total=self.TOTAL,
            util_gpu=util,
            util_mem=int(round(util * 0.45 + rng.uniform(-3, 3))),
            temperature_c=temp,
            power_w=power,
            power_limit_w=self.POWER_LIMIT_W,
            sm_clock_mhz=int(1410 + 5.7 * util) // 15 * 15,
            mem_clock_mhz=9501,
            fan_pct=int(round(30 + 0.5 * util)),
            processes=[
                ProcessInfo(pid=os.getpid(), name="aios-tui (sim)", used_bytes=own,
                            command="simulated training process"),
                ProcessInfo(pid=self.OTHER_PID, name="python3 (sim)", used_bytes=other,
                            command="simulated neighbour process"),
            ],
        )
        return [sample], []

    def process_used_bytes(self, pid: int) -> int | None:
        if pid == os.getpid():
            return self._own_bytes(self._clock() - self._t0)
        return int(1.5 * GiB) if pid == self.OTHER_PID else None

    def close(self) -> None:
        pass
