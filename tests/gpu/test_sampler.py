"""The sampler: ring-buffer history, the drift-corrected grid, own processes, robustness."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading

import pytest

from aios_tui.gpu import DeviceSample, GpuSampler, Snapshot, UnavailableBackend
from aios_tui.gpu.fake import FakeGpu, FakeNvml
from aios_tui.gpu.nvml import open_nvml
from aios_tui.gpu.simulated import SimulatedBackend

from .conftest import FakeClock

GiB = 1 << 30


class Scripted:
    """A backend whose reads take ``work`` seconds of a fake clock, with one GPU."""

    available, simulated, reason, driver_version = True, False, "", None

    def __init__(self, clock: FakeClock, work: float = 0.0):
        self.clock, self.work, self.reads = clock, work, 0

    def read(self):
        self.reads += 1
        self.clock.advance(self.work)
        return [DeviceSample(index=0, name="g", mem_used=self.reads)], []

    def process_used_bytes(self, pid):
        return None

    def close(self):
        pass


def test_history_keeps_the_last_history_seconds_of_samples(nvml):
    counter = iter(range(1, 100))
    nvml.gpus[0].mem_used = lambda: next(counter) * GiB
    sampler = GpuSampler(open_nvml(nvml), interval=0.5, history_seconds=2.5)
    assert sampler.history_len == 5
    for _ in range(8):
        sampler.sample_once()
    hist = sampler.history(0)
    assert [d.mem_used // GiB for d in hist] == [4, 5, 6, 7, 8]  # the three oldest evicted
    assert sampler.latest().devices[0].mem_used == 8 * GiB
    assert sampler.history(1) == []  # no such GPU
    times = [t for t, _ in sampler.history_with_times(0)]
    assert times == sorted(times)


def test_history_per_gpu_is_separate():
    nvml = FakeNvml([FakeGpu(mem_used=1 * GiB), FakeGpu(mem_used=2 * GiB)])
    sampler = GpuSampler(open_nvml(nvml), history_seconds=10)
    for _ in range(3):
        sampler.sample_once()
    assert [d.mem_used for d in sampler.history(0)] == [1 * GiB] * 3
    assert [d.mem_used for d in sampler.history(1)] == [2 * GiB] * 3


def test_ticks_stay_on_the_grid_when_sampling_takes_time():
    clock = FakeClock(stop_after_waits=5)
    backend = Scripted(clock, work=0.3)
    sampler = GpuSampler(backend, interval=1.0, clock=clock, wall_clock=clock, wait=clock.wait)
    sampler.start()
    sampler.join(10)
    assert not sampler.running
    # A sleep(interval) after the work would drift to 0, 1.3, 2.6, ...; the grid does not.
    assert [round(t, 9) for t, _ in sampler.history_with_times(0)] == [0.3, 1.3, 2.3, 3.3, 4.3]
    assert [round(w, 9) for w in clock.waits] == [0.7] * 5


def test_an_overrun_skips_missed_ticks_instead_of_bunching_them():
    clock = FakeClock(stop_after_waits=3)
    backend = Scripted(clock, work=2.5)
    sampler = GpuSampler(backend, interval=1.0, clock=clock, wall_clock=clock, wait=clock.wait)
    sampler.start()
    sampler.join(10)
    # Reads start at 0, 3, 6 (the next whole tick after each 2.5 s read), never back to back.
    assert [round(w, 9) for w in clock.waits] == [0.5, 0.5, 0.5]
    assert [round(t, 9) for t, _ in sampler.history_with_times(0)] == [2.5, 5.5, 8.5]


def test_a_read_ending_exactly_on_a_tick_samples_again_at_once():
    clock = FakeClock(stop_after_waits=2)
    sampler = GpuSampler(Scripted(clock, work=1.0), interval=1.0, clock=clock, wall_clock=clock,
                         wait=clock.wait)
    sampler.start()
    sampler.join(10)
    assert clock.waits == [0.0, 0.0]


def test_the_real_thread_samples_until_stopped(nvml):
    seen = []
    sampler = GpuSampler(open_nvml(nvml), interval=0.05, on_sample=seen.append)
    with sampler:
        assert sampler.running
        snap = sampler.wait_for_sample(after=2, timeout=10)
        assert snap is not None and snap.devices[0].name == "Fake H100 80GB"
    assert not sampler.running
    taken = sampler.samples_taken
    assert taken >= 3 and len(seen) == taken
    assert nvml.initialized == 0  # leaving the with-block closed the backend


def test_latest_before_the_first_sample_is_empty_but_says_what_backend_it_is():
    snap = GpuSampler(UnavailableBackend("no driver")).latest()
    assert snap == Snapshot(available=False, reason="no driver", simulated=False, timestamp=0.0,
                            devices=[])
    assert GpuSampler(SimulatedBackend()).latest().simulated


def test_wait_for_sample_times_out_with_none():
    sampler = GpuSampler(UnavailableBackend("x"))
    assert sampler.wait_for_sample(after=0, timeout=0.01) is None


def test_a_failing_backend_or_listener_never_kills_sampling():
    class Broken(Scripted):
        def read(self):
            raise KeyError("boom")

    def bad_listener(snap):
        raise RuntimeError("listener bug")

    sampler = GpuSampler(Broken(FakeClock()), interval=0.05, on_sample=bad_listener)
    snap = sampler.sample_once()
    assert snap.available and snap.devices == []
    assert snap.reason == "sampling failed: KeyError: 'boom'"
    sampler.start()
    assert sampler.wait_for_sample(after=2, timeout=10) is not None
    assert sampler.running
    sampler.stop()


def test_bad_interval_or_history_is_refused():
    with pytest.raises(ValueError, match="interval"):
        GpuSampler(UnavailableBackend("x"), interval=0)
    with pytest.raises(ValueError, match="history"):
        GpuSampler(UnavailableBackend("x"), history_seconds=-1)


def test_own_marks_this_process_and_its_children_only(nvml, orphan):
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        nvml.gpus[0].processes = [(os.getpid(), 3 * GiB), (child.pid, 2 * GiB),
                                  (orphan, 1 * GiB), (999_999_999, GiB // 2)]
        sampler = GpuSampler(open_nvml(nvml))
        own = {p.pid: p.own for p in sampler.sample_once().devices[0].processes}
        assert own == {os.getpid(): True, child.pid: True, orphan: False, 999_999_999: False}
        # A run started elsewhere (the console re-attaching to it) is marked once its pid is given.
        sampler.set_own_pids([orphan])
        own = {p.pid: p.own for p in sampler.sample_once().devices[0].processes}
        assert own == {os.getpid(): True, child.pid: True, orphan: True, 999_999_999: False}
    finally:
        child.kill()
        child.wait()


def test_own_pids_given_at_construction(nvml, orphan):
    nvml.gpus[0].processes = [(orphan, 1 * GiB)]
    sampler = GpuSampler(open_nvml(nvml), own_pids=[orphan])
    assert sampler.sample_once().devices[0].processes[0].own


def test_snapshot_json_round_trip(nvml):
    nvml.gpus[0].processes = [(os.getpid(), 3 * GiB)]
    nvml.gpus[0].fan_pct = None
    snap = GpuSampler(open_nvml(nvml)).sample_once()
    data = json.loads(json.dumps(snap.to_dict()))
    assert set(data) == {"available", "reason", "simulated", "timestamp", "devices"}
    dev = data["devices"][0]
    assert dev["fan_pct"] is None and dev["mem_used"] == 10 * GiB
    assert dev["processes"][0]["own"] is True and dev["processes"][0]["pid"] == os.getpid()
    assert Snapshot.from_dict(data) == snap


def test_simulated_gpu_is_labelled_and_moves_plausibly():
    now = [0.0]
    sampler = GpuSampler(SimulatedBackend(seed=1, clock=lambda: now[0]))
    snaps = []
    for t in range(0, 150, 5):
        now[0] = float(t)
        snaps.append(sampler.sample_once())
    for snap in snaps:
        assert snap.simulated and snap.available and "simulated" in snap.reason
        d = snap.devices[0]
        assert "Simulated" in d.name
        assert 0 < d.mem_used <= d.mem_total
        assert 0 <= d.util_gpu <= 100 and 0 <= d.util_mem <= 100
        assert d.power_w <= d.power_limit_w
        assert sum(p.used_bytes for p in d.processes) <= d.mem_used
        assert any(p.own for p in d.processes)  # the demo run is shown as ours
    mem = [s.devices[0].mem_used for s in snaps]
    assert mem == sorted(mem) and mem[-1] - mem[0] > 8 * GiB  # creeping toward the limit
    assert len({s.devices[0].util_gpu for s in snaps}) > 3


def test_readers_on_other_threads_see_whole_snapshots(nvml):
    nvml.gpus[0].processes = [(os.getpid(), GiB)]
    sampler = GpuSampler(open_nvml(nvml), interval=0.01, history_seconds=0.1).start()
    problems = []

    def reader():
        for _ in range(300):
            snap = sampler.latest()
            hist = sampler.history(0)
            if snap.timestamp and len(snap.devices) != 1:
                problems.append("torn snapshot")
            if len(hist) > sampler.history_len:
                problems.append("history over its length")

    threads = [threading.Thread(target=reader) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    sampler.stop()
    assert problems == []
    assert sampler.samples_taken >= 1
