"""Text views of GPU snapshots for `aios-tui gpu`: a table, one line per sample, and a
full-screen live monitor in plain ANSI (no curses, no Textual: it must start instantly)."""

from __future__ import annotations

import json
import os
import queue
import select
import shutil
import signal
import sys
import textwrap
import time
from typing import IO, Callable, Sequence

from aios_tui.gpu.model import DeviceSample, ProcessInfo, Snapshot
from aios_tui.metrics.fmt import human_bytes

NO_GPU = "no NVIDIA GPU found"


# -- figures ---------------------------------------------------------------------------------

def fmt_bytes(n: int | None) -> str:
    return "N/A" if n is None else human_bytes(n)


def fmt_mem(d: DeviceSample) -> str:
    if d.mem_used is None or d.mem_total is None:
        return f"{fmt_bytes(d.mem_used)} / {fmt_bytes(d.mem_total)}"
    gib = 1 << 30
    pct = f" ({d.mem_fraction * 100:.0f}%)" if d.mem_fraction is not None else ""
    return f"{d.mem_used / gib:.1f} / {d.mem_total / gib:.1f} GiB{pct}"


def _na(value: object, unit: str = "") -> str:
    return "N/A" if value is None else f"{value}{unit}"


def fmt_power(d: DeviceSample) -> str:
    if d.power_w is None and d.power_limit_w is None:
        return "N/A"
    used = "N/A" if d.power_w is None else f"{d.power_w:.0f}"
    limit = "N/A" if d.power_limit_w is None else f"{d.power_limit_w:.0f}"
    return f"{used} / {limit} W"


def _degree() -> str:
    enc = (getattr(sys.stdout, "encoding", None) or "").lower()
    return "°C" if "utf" in enc else "C"


def process_label(p: ProcessInfo) -> str:
    name = p.name or "?"
    return f"{name} (ours)" if p.own else name


def no_gpu_text(snap: Snapshot) -> str:
    return f"{NO_GPU}: {snap.reason}" if snap.reason else NO_GPU


# -- --once: a table ---------------------------------------------------------------------------

def _columns(rows: Sequence[Sequence[str]]) -> list[str]:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows]


def render_table(snap: Snapshot, driver_version: str | None = None) -> str:
    if not snap.available:
        return no_gpu_text(snap) + "\n"
    out: list[str] = []
    if snap.simulated:
        out.append("SIMULATED GPU (demo figures, not a real device)")
    deg = _degree()
    rows = [("GPU", "NAME", "MEMORY USED", "UTIL", "MEM UTIL", "TEMP", "POWER", "SM CLOCK",
             "MEM CLOCK", "FAN")]
    for d in snap.devices:
        rows.append((str(d.index), d.name or "N/A", fmt_mem(d), _na(d.util_gpu, "%"),
                     _na(d.util_mem, "%"), _na(d.temperature_c, deg), fmt_power(d),
                     _na(d.sm_clock_mhz, " MHz"), _na(d.mem_clock_mhz, " MHz"), _na(d.fan_pct, "%")))
    out += _columns(rows)
    procs = [("GPU", "PID", "GPU MEMORY", "NAME")]
    for d in snap.devices:
        for p in d.processes or ():
            procs.append((str(d.index), str(p.pid), fmt_bytes(p.used_bytes), process_label(p)))
    unlisted = [str(d.index) for d in snap.devices if d.processes is None]
    out.append("")
    if len(procs) > 1:
        out += _columns(procs)
    elif not unlisted:
        out.append("no processes on the GPU")
    if unlisted:
        out.append(f"processes on GPU {', '.join(unlisted)}: N/A (the driver did not list them)")
    errors = [f"GPU {d.index}: {d.error}" for d in snap.devices if d.error]
    out += [f"error: {e}" for e in errors]
    if driver_version and not snap.simulated:
        out.append(f"driver {driver_version}")
    return "\n".join(out) + "\n"


# -- not a terminal: one line per GPU per sample -------------------------------------------------

def render_lines(snap: Snapshot) -> list[str]:
    stamp = time.strftime("%H:%M:%S", time.localtime(snap.timestamp or time.time()))
    if not snap.available:
        return [f"{stamp} {no_gpu_text(snap)}"]
    deg = _degree()
    lines = []
    for d in snap.devices:
        parts = [stamp, f"gpu{d.index}", d.name or "N/A", "mem", fmt_mem(d),
                 "util", _na(d.util_gpu, "%"), "mem-util", _na(d.util_mem, "%"),
                 "temp", _na(d.temperature_c, deg), "power", fmt_power(d),
                 "sm", _na(d.sm_clock_mhz, "MHz"), "mem-clock", _na(d.mem_clock_mhz, "MHz"),
                 "fan", _na(d.fan_pct, "%"), "procs", _na(None if d.processes is None else len(d.processes))]
        if snap.simulated:
            parts.append("[simulated]")
        if d.error:
            parts.append(f"error: {d.error}")
        lines.append(" ".join(parts))
    if not snap.devices:
        lines.append(f"{stamp} {snap.reason or 'no devices'}")
    return lines


# -- the full-screen view ----------------------------------------------------------------------

class Styler:
    """SGR colour codes, or none at all when NO_COLOR is set."""

    def __init__(self, color: bool):
        self.color = color

    def __call__(self, text: str, *codes: int) -> str:
        if not self.color or not codes:
            return text
        return f"\x1b[{';'.join(map(str, codes))}m{text}\x1b[0m"


BOLD, DIM, RED, GREEN, YELLOW, MAGENTA, CYAN, REVERSE = 1, 2, 31, 32, 33, 35, 36, 7


def _visible_len(text: str) -> int:
    n, i = 0, 0
    while i < len(text):
        if text[i] == "\x1b":
            j = text.find("m", i)
            i = len(text) if j < 0 else j + 1
            continue
        n += 1
        i += 1
    return n


def _clip(text: str, width: int) -> str:
    """Cut to ``width`` visible characters, keeping escape codes whole."""
    if _visible_len(text) <= width:
        return text
    out, n, i = [], 0, 0
    while i < len(text) and n < width:
        if text[i] == "\x1b":
            j = text.find("m", i)
            j = len(text) - 1 if j < 0 else j
            out.append(text[i:j + 1])
            i = j + 1
            continue
        out.append(text[i])
        n += 1
        i += 1
    return "".join(out) + ("\x1b[0m" if "\x1b[" in text else "")


def _bar(fraction: float | None, width: int, style: Styler, unicode: bool) -> str:
    width = max(1, width)
    full, empty = ("█", "░") if unicode else ("#", ".")
    if fraction is None:
        return "[" + ("?" * width) + "]"
    fraction = min(1.0, max(0.0, fraction))
    n = int(round(fraction * width))
    color = GREEN if fraction < 0.75 else YELLOW if fraction < 0.9 else RED
    return "[" + style(full * n, color) + style(empty * (width - n), DIM) + "]"


def _sparkline(values: Sequence[float | None], width: int, unicode: bool) -> str:
    marks = "▁▂▃▄▅▆▇█" if unicode else "_.-:=+*#"
    values = list(values)[-width:]
    out = []
    for v in values:
        if v is None:
            out.append(" ")
        else:
            v = min(100.0, max(0.0, v))
            out.append(marks[min(len(marks) - 1, int(v / 100.0 * len(marks)))])
    return "".join(out).rjust(width)


def render_screen(snap: Snapshot, *, width: int, height: int, interval: float,
                  history: Callable[[int], list[DeviceSample]] = lambda i: [],
                  driver_version: str | None = None, color: bool = True,
                  unicode: bool = True) -> list[str]:
    """The live view as lines, each at most ``width`` visible characters, ``height`` lines."""
    s = Styler(color)
    width = max(30, width)
    deg = "°C" if unicode else "C"
    stamp = time.strftime("%H:%M:%S", time.localtime(snap.timestamp)) if snap.timestamp else "--:--:--"
    head = f"aios-tui gpu  {stamp}  every {interval:g}s"
    if driver_version and not snap.simulated:
        head += f"  driver {driver_version}"
    keys = "q quit"
    head = head + " " * max(1, width - len(head) - len(keys)) + keys
    lines = [s(head, REVERSE)]
    if snap.simulated:
        lines.append(s(" SIMULATED GPU: demo figures, not a real device ", BOLD, MAGENTA, REVERSE))
    if not snap.available:
        lines.append("")
        lines += [s(part, BOLD, YELLOW) for part in textwrap.wrap(no_gpu_text(snap), width) or [""]]
        lines += ["", "The monitor keeps running; press q to quit."]
        return [_clip(line, width) for line in lines[:height]]
    if not snap.devices:
        lines += ["", "waiting for the first sample..." if not snap.timestamp else (snap.reason or "no devices")]
        return [_clip(line, width) for line in lines[:height]]

    fixed_per_gpu = 7  # title, mem, util, history, figures, process header, blank
    budget = height - len(lines) - len(snap.devices) * fixed_per_gpu
    per_gpu_procs = max(1, budget // max(1, len(snap.devices)))
    bar_w = max(10, width - 36)
    for d in snap.devices:
        title = s(f"GPU {d.index}", BOLD) + "  " + s(d.name or "N/A", BOLD, CYAN)
        if snap.simulated:
            title += "  " + s("[simulated]", MAGENTA)
        lines.append(title)
        lines.append(f" MEM  {_bar(d.mem_fraction, bar_w, s, unicode)} {fmt_mem(d)}")
        util = None if d.util_gpu is None else d.util_gpu / 100.0
        lines.append(f" UTIL {_bar(util, bar_w, s, unicode)} {_na(d.util_gpu, '%')}"
                     f"  mem util {_na(d.util_mem, '%')}")
        past = history(d.index)
        spark_w = max(10, (width - 24) // 2)
        mem_hist = [None if h.mem_fraction is None else h.mem_fraction * 100 for h in past]
        util_hist = [None if h.util_gpu is None else float(h.util_gpu) for h in past]
        lines.append(" " + s("mem ", DIM) + s(_sparkline(mem_hist, spark_w, unicode), CYAN)
                     + "  " + s("util ", DIM) + s(_sparkline(util_hist, spark_w, unicode), GREEN))
        temp = _na(d.temperature_c, deg)
        if d.temperature_c is not None and d.temperature_c >= 85:
            temp = s(temp, BOLD, RED)
        lines.append(f" temp {temp}  power {fmt_power(d)}  SM {_na(d.sm_clock_mhz, ' MHz')}"
                     f"  mem {_na(d.mem_clock_mhz, ' MHz')}  fan {_na(d.fan_pct, '%')}")
        if d.error:
            lines.append(s(f" error: {d.error}", RED))
        if d.processes:
            lines.append(s(f"   {'PID':>8}  {'GPU MEMORY':>10}  COMMAND", DIM))
            shown = d.processes if len(d.processes) <= per_gpu_procs else d.processes[:per_gpu_procs - 1]
            for p in shown:
                mark = "*" if p.own else " "
                cmd = p.command or p.name or "?"
                row = f" {mark} {p.pid:>8}  {fmt_bytes(p.used_bytes):>10}  {cmd}"
                lines.append(s(_clip(row, width), BOLD, GREEN) if p.own else row)
            if len(shown) < len(d.processes):
                lines.append(s(f"   ... {len(d.processes) - len(shown)} more", DIM))
        elif d.processes is None:
            lines.append(s("   processes N/A", DIM))
        else:
            lines.append(s("   no processes", DIM))
        lines.append("")
    if any(p.own for d in snap.devices for p in d.processes or ()):
        lines.append(s(" * this process or a run it started", DIM))
    return [_clip(line, width) for line in lines[:height]]


# -- drivers -------------------------------------------------------------------------------------

def stream(sampler_factory: Callable[..., object], out: IO[str], *, as_json: bool,
           count: int | None = None) -> int:
    """Print each sample as it comes (JSON lines, or text lines) until ``count`` or Ctrl-C."""
    q: queue.Queue = queue.Queue()
    sampler = sampler_factory(on_sample=q.put)
    sampler.start()
    shown = 0
    try:
        while count is None or shown < count:
            try:
                snap = q.get(timeout=0.5)
            except queue.Empty:
                continue
            if as_json:
                out.write(json.dumps(snap.to_dict()) + "\n")
            else:
                out.write("\n".join(render_lines(snap)) + "\n")
            out.flush()
            shown += 1
            if count is None and shown == 1 and not as_json and not snap.available and not snap.simulated:
                break  # the same line every second, forever, tells a reader of a log nothing new
    except KeyboardInterrupt:
        pass
    finally:
        sampler.stop()
    return 0


def live(sampler_factory: Callable[..., object], out: IO[str], *, interval: float,
         driver_version: str | None = None, count: int | None = None,
         stdin: IO[str] | None = None) -> int:
    """Full-screen monitor on a terminal: redraws on every sample; q or Ctrl-C quits."""
    import termios
    import tty

    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_w, False)
    q: queue.Queue = queue.Queue()

    def on_sample(snap: Snapshot) -> None:
        q.put(snap)
        try:
            os.write(wake_w, b"s")
        except (BlockingIOError, OSError):
            pass  # the pipe is full: a wake-up is already pending

    sampler = sampler_factory(on_sample=on_sample)
    stdin = stdin if stdin is not None else sys.stdin
    fd = stdin.fileno() if stdin is not None and stdin.isatty() else None
    saved = termios.tcgetattr(fd) if fd is not None else None
    color = not os.environ.get("NO_COLOR")
    unicode = "utf" in (getattr(out, "encoding", None) or "").lower()
    old_term = signal.getsignal(signal.SIGTERM)

    def on_term(signum, frame):  # let the finally below put the terminal back
        raise KeyboardInterrupt

    shown = 0
    snap = sampler.latest()
    try:
        signal.signal(signal.SIGTERM, on_term)
        if fd is not None:
            tty.setcbreak(fd)
        out.write("\x1b[?1049h\x1b[?25l")  # alternate screen, hide cursor
        sampler.start()
        draw = True
        while count is None or shown < count:
            if draw:
                size = shutil.get_terminal_size()
                lines = render_screen(snap, width=size.columns, height=size.lines, interval=interval,
                                      history=sampler.history, driver_version=driver_version,
                                      color=color, unicode=unicode)
                out.write("\x1b[H" + "\x1b[K\n".join(lines) + "\x1b[K\x1b[J")
                out.flush()
                draw = False
            watch = [wake_r] + ([fd] if fd is not None else [])
            ready, _, _ = select.select(watch, [], [], 1.0)
            if fd is not None and fd in ready:
                key = os.read(fd, 32)
                if key[:1] in (b"q", b"Q", b"\x03"):
                    break
                draw = True  # any other key repaints, handy after a resize
            if wake_r in ready:
                os.read(wake_r, 4096)
                while not q.empty():
                    snap = q.get_nowait()
                    shown += 1
                draw = True
    except KeyboardInterrupt:
        pass
    finally:
        sampler.stop()
        try:
            out.write("\x1b[0m\x1b[?25h\x1b[?1049l")  # reset colour, show cursor, main screen
            out.flush()
        except OSError:
            pass  # the terminal went away (SSH dropped)
        if saved is not None:
            termios.tcsetattr(fd, termios.TCSADRAIN, saved)
        signal.signal(signal.SIGTERM, old_term)
        os.close(wake_r)
        os.close(wake_w)
    return 0
