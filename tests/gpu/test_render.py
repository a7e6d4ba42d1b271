"""The text views: live screen layout limits, N/A figures, process overflow; import hygiene."""

from __future__ import annotations

import re
import subprocess
import sys

from aios_tui.gpu import DeviceSample, ProcessInfo, Snapshot
from aios_tui.gpu_live import render_lines, render_screen, render_table

GiB = 1 << 30
SGR = re.compile(r"\x1b\[[0-9;]*m")


def device(index=0, **kw):
    base = dict(index=index, name="Fake GPU", mem_used=6 * GiB, mem_total=8 * GiB, util_gpu=40,
                util_mem=10, temperature_c=60, power_w=100.0, power_limit_w=200.0,
                sm_clock_mhz=1500, mem_clock_mhz=7000, fan_pct=30)
    base.update(kw)
    return DeviceSample(**base)


def snap(*devices, simulated=False, reason=""):
    return Snapshot(available=True, reason=reason, simulated=simulated, timestamp=1_700_000_000.0,
                    devices=list(devices))


def visible(line: str) -> str:
    return SGR.sub("", line)


def test_screen_fits_the_terminal_and_summarises_overflowing_processes():
    procs = [ProcessInfo(pid=1000 + i, name=f"p{i}", used_bytes=(20 - i) << 20,
                         command="python train.py --a-very-long-argument " * 5) for i in range(20)]
    d = device(processes=procs)
    lines = render_screen(snap(d, device(1, name="Second")), width=60, height=24, interval=1.0,
                          color=True, unicode=True)
    assert len(lines) <= 24
    assert all(len(visible(line)) <= 60 for line in lines)
    assert any(re.fullmatch(r"\s+\.\.\. \d+ more", visible(line)) for line in lines)
    assert any(visible(line).startswith("GPU 1  Second") for line in lines)


def test_screen_shows_na_for_missing_figures_and_the_error():
    d = DeviceSample(index=0, name=None, error="memory: GPU is lost")
    text = "\n".join(visible(x) for x in render_screen(snap(d), width=80, height=40, interval=2.0,
                                                      color=False, unicode=False))
    assert "GPU 0  N/A" in text
    assert "N/A / N/A" in text  # memory
    assert "temp N/A  power N/A  SM N/A  mem N/A  fan N/A" in text
    assert " error: memory: GPU is lost" in text
    assert "[??????????" in text  # a bar with no figure is not drawn as empty


def test_screen_without_colour_or_unicode_is_plain_ascii():
    d = device(processes=[ProcessInfo(pid=5, name="x", used_bytes=GiB, own=True)])
    history = [device(util_gpu=u, mem_used=u * GiB // 20) for u in (0, 50, 100)]
    lines = render_screen(snap(d, simulated=True), width=80, height=30, interval=1.0,
                          history=lambda i: history, color=False, unicode=False)
    text = "\n".join(lines)
    assert "\x1b" not in text
    assert text.isascii()
    assert "SIMULATED GPU" in text and "[simulated]" in text
    assert re.search(r"util\s+_=#$", text, re.M)  # 0%, 50%, 100% as a sparkline
    assert "* this process or a run it started" in text


def test_screen_colours_memory_by_how_full_it_is():
    for used, colour in ((2, "32"), (6.5, "33"), (7.5, "31")):  # 25%, 81%, 94%
        lines = render_screen(snap(device(mem_used=int(used * GiB))), width=80, height=30,
                              interval=1.0, color=True, unicode=True)
        mem = next(line for line in lines if visible(line).startswith(" MEM"))
        assert f"\x1b[{colour}m" in mem


def test_lines_and_table_say_na_not_none():
    d = device(temperature_c=None, fan_pct=None, power_w=None)
    (line,) = render_lines(snap(d))
    assert "temp N/A" in line and "fan N/A" in line and "power N/A / 200 W" in line
    assert "None" not in line
    table = render_table(snap(d))
    assert "None" not in table and "no processes on the GPU" in table


def test_unavailable_views():
    s = Snapshot(available=False, reason="the NVIDIA driver is not loaded", simulated=False,
                 timestamp=1.0, devices=[])
    assert render_table(s) == "no NVIDIA GPU found: the NVIDIA driver is not loaded\n"
    assert render_lines(s)[0].endswith(" no NVIDIA GPU found: the NVIDIA driver is not loaded")
    screen = [visible(x) for x in render_screen(s, width=40, height=10, interval=1.0)]
    assert "no NVIDIA GPU found: the NVIDIA driver" in screen  # wrapped, not cut off
    assert "is not loaded" in screen


def test_importing_the_gpu_layer_loads_no_nvml_ui_or_torch():
    code = ("import sys, aios_tui.gpu, aios_tui.gpu_live, aios_tui.commands.gpu\n"
            "from aios_tui.gpu import open_backend, GpuSampler\n"
            "GpuSampler(open_backend(simulate=True)).sample_once()\n"
            "bad = {'pynvml', 'torch', 'textual', 'transformers'} & set(sys.modules)\n"
            "assert not bad, bad\n")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
