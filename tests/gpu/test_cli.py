"""`aios-tui gpu`: one-shot JSON and table, the per-sample lines, and the live view on a pty."""

from __future__ import annotations

import json
import os
import pty
import re
import select
import signal
import subprocess
import sys
import termios
import time

import pynvml
import pytest

import aios_tui.gpu as gpu_pkg
from aios_tui.gpu.fake import FakeGpu, FakeNvml
from aios_tui.gpu.nvml import open_nvml

GiB = 1 << 30
MiB = 1 << 20
SGR_COLOUR = re.compile(r"\x1b\[[0-9;]*m")


def _driver_present() -> bool:
    try:
        pynvml.nvmlInit()
    except pynvml.NVMLError:
        return False
    pynvml.nvmlShutdown()
    return True


no_driver = pytest.mark.skipif(_driver_present(), reason="this test is about a machine without a GPU")


@pytest.fixture
def fake_gpu(monkeypatch):
    nvml = FakeNvml([FakeGpu(name="Fake A100 40GB", mem_total=40 * GiB, mem_used=30 * GiB,
                             fan_pct=None, processes=[(os.getpid(), 29 * GiB), (999_999_999, GiB)])])
    monkeypatch.setattr(gpu_pkg, "open_backend", lambda simulate=False: open_nvml(nvml))
    return nvml


@no_driver
def test_once_json_without_a_gpu_says_why_and_exits_0(cli_subprocess):
    res = cli_subprocess("gpu", "--once", "--json", timeout=60)
    assert res.returncode == 0, res.stderr
    data = json.loads(res.stdout)
    assert data["available"] is False and data["devices"] == []
    assert data["reason"] == "NVIDIA driver not found (libnvidia-ml.so.1 could not be loaded)"
    assert res.stderr == ""


@no_driver
def test_once_text_without_a_gpu(cli):
    code, out, err = cli("gpu", "--once")
    assert code == 0 and err == ""
    assert out == "no NVIDIA GPU found: NVIDIA driver not found (libnvidia-ml.so.1 could not be loaded)\n"


def test_simulate_once_json_is_labelled_simulated(cli):
    code, out, _ = cli("gpu", "--simulate", "--once", "--json")
    assert code == 0
    data = json.loads(out)
    assert data["available"] is True and data["simulated"] is True
    assert "simulated" in data["reason"]
    assert "Simulated" in data["devices"][0]["name"]


def test_once_json_with_a_gpu_has_every_field(cli, fake_gpu):
    code, out, _ = cli("gpu", "--once", "--json")
    assert code == 0
    dev = json.loads(out)["devices"][0]
    assert dev["name"] == "Fake A100 40GB" and dev["mem_used"] == 30 * GiB
    assert dev["fan_pct"] is None  # unsupported: N/A, not an error
    assert dev["error"] is None
    assert [(p["pid"], p["own"]) for p in dev["processes"]] == [(os.getpid(), True), (999_999_999, False)]


def test_once_table_shows_na_processes_and_errors(cli, fake_gpu):
    fake_gpu.fail("nvmlDeviceGetPowerUsage", pynvml.NVMLError_Unknown)
    code, out, _ = cli("gpu", "--once")
    assert code == 0
    lines = out.splitlines()
    assert lines[0].split() == ["GPU", "NAME", "MEMORY", "USED", "UTIL", "MEM", "UTIL", "TEMP",
                                "POWER", "SM", "CLOCK", "MEM", "CLOCK", "FAN"]
    row = lines[1]
    assert "Fake A100 40GB" in row and "30.0 / 40.0 GiB (75%)" in row
    assert "N/A / 300 W" in row and row.rstrip().endswith("N/A")  # power failed, no fan
    assert re.search(rf"^0\s+{os.getpid()}\s+29\.0 GiB\s+\S+ \(ours\)$", out, re.M)
    assert re.search(r"^0\s+999999999\s+1\.0 GiB\s+\?$", out, re.M)
    assert "error: GPU 0: power: Unknown Error" in out
    assert "driver 999.99" in out


def test_not_a_tty_prints_one_line_per_sample_and_stops_after_count(cli_subprocess):
    res = cli_subprocess("gpu", "--simulate", "--interval", "0.05", "--count", "3", timeout=60)
    assert res.returncode == 0, res.stderr
    lines = res.stdout.splitlines()
    assert len(lines) == 3
    for line in lines:
        assert re.match(r"^\d\d:\d\d:\d\d gpu0 Simulated GPU 24GB mem [\d.]+ / 24\.0 GiB \(\d+%\) util \d+%",
                        line)
        assert line.endswith("[simulated]")


def test_no_gpu_lines_keep_coming(cli, monkeypatch):
    monkeypatch.setattr(gpu_pkg, "open_backend",
                        lambda simulate=False: open_nvml(FakeNvml(init_error=pynvml.NVMLError_DriverNotLoaded)))
    code, out, _ = cli("gpu", "--interval", "0.05", "--count", "2")
    assert code == 0
    lines = out.splitlines()
    assert len(lines) == 2
    assert all(line.endswith(" no NVIDIA GPU found: the NVIDIA driver is not loaded") for line in lines)


def test_without_a_count_no_gpu_is_said_once(cli, monkeypatch):
    monkeypatch.setattr(gpu_pkg, "open_backend",
                        lambda simulate=False: open_nvml(FakeNvml(init_error=pynvml.NVMLError_DriverNotLoaded)))
    code, out, _ = cli("gpu", "--interval", "0.05")
    assert code == 0
    assert len(out.splitlines()) == 1 and out.endswith("no NVIDIA GPU found: the NVIDIA driver is not loaded\n")


def test_json_stream_is_one_object_per_sample(cli, fake_gpu):
    code, out, _ = cli("gpu", "--json", "--interval", "0.05", "--count", "2")
    assert code == 0
    objs = [json.loads(line) for line in out.splitlines()]
    assert len(objs) == 2 and all(o["devices"][0]["name"] == "Fake A100 40GB" for o in objs)
    assert objs[0]["timestamp"] < objs[1]["timestamp"]


@pytest.mark.parametrize("args, message", [
    (["--interval", "0"], "--interval 0: give seconds between 0.05 and 3600"),
    (["--interval", "nan"], "--interval nan: give seconds between 0.05 and 3600"),
    (["--count", "0"], "--count 0: give a number of samples of 1 or more"),
])
def test_bad_flags_exit_2_with_one_line(cli, args, message):
    code, out, err = cli("gpu", *args)
    assert code == 2 and out == ""
    assert err == f"aios-tui: error: {message}\n"


def test_once_refuses_the_flags_of_repeated_samples(cli):
    for flags, them in ((["--count", "3"], "--count has"), (["--interval", "2"], "--interval has"),
                        (["--interval", "2", "--count", "3"], "--interval and --count have")):
        code, out, err = cli("gpu", "--simulate", "--once", *flags)
        assert (code, out) == (2, "") and err.splitlines() == [
            f"aios-tui: error: --once prints one snapshot, so {them} no effect with it; drop --once to "
            f"sample repeatedly, or drop {them.rsplit(' ', 1)[0]}"]


def test_help_lists_the_flags(cli):
    with pytest.raises(SystemExit) as exc:
        cli("gpu", "--help")
    assert exc.value.code == 0


# -- the live view on a real pseudo-terminal --------------------------------------------------------

class PtyRun:
    def __init__(self, *args: str, env: dict[str, str] | None = None):
        self.master, slave = pty.openpty()
        self.slave = slave
        self.attrs_before = termios.tcgetattr(slave)
        full_env = {**os.environ, "COLUMNS": "80", "LINES": "24", **(env or {})}
        self.proc = subprocess.Popen([sys.executable, "-m", "aios_tui", "gpu", *args],
                                     stdin=slave, stdout=slave, stderr=slave, env=full_env,
                                     start_new_session=True)
        self.output = b""

    def read_until(self, needle: bytes, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while needle not in self.output:
            assert time.monotonic() < deadline, f"{needle!r} never appeared in {self.output[-2000:]!r}"
            self._pump(0.1)

    def _pump(self, wait: float) -> None:
        ready, _, _ = select.select([self.master], [], [], wait)
        if ready:
            try:
                self.output += os.read(self.master, 65536)
            except OSError:
                pass

    def finish(self, timeout: float = 30) -> int:
        deadline = time.monotonic() + timeout
        while self.proc.poll() is None:
            assert time.monotonic() < deadline, "the monitor did not quit"
            self._pump(0.05)
        self._pump(0.05)
        return self.proc.returncode

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        os.close(self.master)
        os.close(self.slave)

    def last_frame(self) -> str:
        text = self.output.decode("utf-8", "replace")
        frame = text.rsplit("\x1b[H", 1)[-1]
        frame = re.sub(r"\x1b\[\?\d+[hl]|\x1b\[[KJ]", "", frame).replace("\r\n", "\n")
        return SGR_COLOUR.sub("", frame)


@pytest.fixture
def pty_run():
    runs = []

    def start(*args, **kw):
        runs.append(PtyRun(*args, **kw))
        return runs[-1]

    yield start
    for r in runs:
        r.close()


def test_live_view_draws_and_q_quits_restoring_the_terminal(pty_run):
    run = pty_run("--simulate", "--interval", "0.1")
    run.read_until(b"simulated training process")
    run.read_until(b"\x1b[H", timeout=10)  # at least one more redraw
    os.write(run.master, b"q")
    assert run.finish() == 0
    out = run.output
    assert out.startswith(b"\x1b[?1049h\x1b[?25l")  # alternate screen, cursor hidden
    assert out.endswith(b"\x1b[?25h\x1b[?1049l")  # and both put back
    assert termios.tcgetattr(run.slave) == run.attrs_before  # cbreak mode undone
    frame = run.last_frame()
    lines = frame.split("\n")
    assert all(len(line) <= 80 for line in lines) and len(lines) <= 24
    assert "SIMULATED GPU" in frame and "GPU 0  Simulated GPU 24GB" in frame
    assert re.search(r" MEM  \[[█░]+\] [\d.]+ / 24\.0 GiB", frame)
    assert re.search(r"power \d+ / 350 W", frame)


def test_live_view_honours_no_color_and_quits_on_sigint(pty_run):
    run = pty_run("--simulate", "--interval", "0.1", env={"NO_COLOR": "1"})
    run.read_until(b"simulated training process")
    run.proc.send_signal(signal.SIGINT)
    assert run.finish() == 0
    assert not SGR_COLOUR.search(run.output.replace(b"\x1b[0m", b"").decode("utf-8", "replace"))
    assert run.output.endswith(b"\x1b[?25h\x1b[?1049l")


def test_live_view_without_a_gpu_keeps_running_until_sigterm(pty_run):
    if _driver_present():
        pytest.skip("this test is about a machine without a GPU")
    run = pty_run("--interval", "0.1")
    run.read_until(b"no NVIDIA GPU found")
    run.read_until(b"press q to quit")
    time.sleep(0.3)
    assert run.proc.poll() is None  # still running, redrawing
    run.proc.send_signal(signal.SIGTERM)
    assert run.finish() == 0
    assert run.output.endswith(b"\x1b[?25h\x1b[?1049l")
    assert termios.tcgetattr(run.slave) == run.attrs_before


def test_a_process_list_the_driver_cannot_give_is_unknown_not_empty(cli, fake_gpu):
    # MIG parents, vGPU guests and containers without the capability answer this way.
    fake_gpu.fail("nvmlDeviceGetComputeRunningProcesses", pynvml.NVMLError_NotSupported)
    code, out, _ = cli("gpu", "--once", "--json")
    assert code == 0 and json.loads(out)["devices"][0]["processes"] is None
    code, out, _ = cli("gpu", "--once")
    assert code == 0
    assert "no processes on the GPU" not in out
    assert "processes on GPU 0: N/A (the driver did not list them)" in out


def test_figures_no_gpu_can_have_show_as_unknown(cli, fake_gpu):
    gpu = fake_gpu.gpus[0]
    gpu.mem_total, gpu.power_limit_w, gpu.util_gpu = 0, 0, 4294967295
    code, out, _ = cli("gpu", "--once", "--json")
    dev = json.loads(out)["devices"][0]
    assert code == 0
    assert (dev["mem_total"], dev["power_limit_w"], dev["util_gpu"]) == (None, None, None)
    code, out, _ = cli("gpu", "--once")
    row = out.splitlines()[1]
    assert "30.0 GiB / N/A" in row and "150 / N/A W" in row and " 0 W" not in row


def test_control_characters_in_process_and_gpu_names_reach_the_terminal_escaped(cli, fake_gpu, tmp_path,
                                                                                 monkeypatch):
    from aios_tui.gpu import procinfo
    from aios_tui.gpu_live import render_screen

    # Any user may name a process so; the monitor prints it on whoever runs it.
    evil = "\x1b]0;pwned\x07\x1b[2J\nline"
    proc = subprocess.Popen([evil, "60"], executable="sleep")
    try:
        fake_gpu.gpus[0].name = b"Fake\x1b[31m GPU"
        fake_gpu.gpus[0].processes = [(proc.pid, GiB), (4242, GiB)]
        fake = tmp_path / "4242"
        fake.mkdir()
        (fake / "comm").write_bytes(b"x\x1b[2Jy\n")
        real_read = procinfo._read
        monkeypatch.setattr(procinfo, "_read", lambda path: real_read(
            path.replace(f"{procinfo.PROC}/4242", str(fake))) if "/4242/" in path else real_read(path))
        code, out, _ = cli("gpu", "--once")
        assert code == 0 and "\x1b" not in out and "\x07" not in out
        assert "Fake\\x1b[31m GPU" in out and "x\\x1b[2Jy" in out
        code, out, _ = cli("gpu", "--once", "--json")
        dev = json.loads(out)["devices"][0]
        cmd = next(p["command"] for p in dev["processes"] if p["pid"] == proc.pid)
        assert cmd == "\\x1b]0;pwned\\x07\\x1b[2J\\nline 60"
        snap = gpu_pkg.GpuSampler(gpu_pkg.open_backend()).sample_once()
        screen = "\n".join(render_screen(snap, width=120, height=40, interval=1.0, color=False))
        assert "\x1b" not in screen and "\\x1b]0;pwned" in screen
    finally:
        proc.kill()
        proc.wait()
