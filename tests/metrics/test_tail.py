"""`aios-tui tail`: the end of a run's metrics in a shell, and following it live."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import threading
import time

from aios_tui.metrics.tailer import Printer, tail_command

from runfiles import header, step_record, write_run


def steps_in(out: str) -> list[int]:
    return [int(l.split()[1].split("/")[0]) for l in out.splitlines() if l.startswith("step ")]


def test_an_interval_without_follow_is_refused(cli, tmp_path):
    run = write_run(tmp_path, "r1", steps=3, state="finished", pid=0)
    code, out, err = cli("tail", str(run.path), "--interval", "2")
    assert (code, out) == (2, "") and err.splitlines() == [
        "aios-tui: error: --interval 2: it sets how often --follow checks for new lines, and without "
        "--follow there is nothing to wait for; add --follow or drop --interval"]
    code, out, err = cli("tail", str(run.path), "--follow", "--interval", "0.05")
    assert code == 0 and steps_in(out) == [1, 2, 3], err


def test_header_and_the_last_lines(cli, tmp_path):
    run = write_run(tmp_path, "r1", steps=120, state="finished", pid=0)
    code, out, err = cli("tail", str(run.path), "-n", "5")
    assert code == 0, err
    first = out.splitlines()[0]
    assert "method lora" in first and "trainable 73.7K / 1.3M (5.81%)" in first
    assert steps_in(out) == [116, 117, 118, 119, 120]
    line = next(l for l in out.splitlines() if l.startswith("step 120/200"))
    for part in ("loss 1.9734", "lr 2.00e-04", "tok/s 5.1K", "mem 900.0 MiB", "eta 8s"):
        assert part in line
    assert "\x1b[" not in out  # not a terminal: no colour


def test_every_n_keeps_eval_steps_and_events(cli, tmp_path):
    run = write_run(tmp_path, "r2", steps=120)
    code, out, _ = cli("tail", str(run.path), "-n", "6", "--every", "20")
    # the last six wanted lines: step 50 shows for its eval loss, the checkpoint as an event
    assert steps_in(out) == [50, 60, 80, 100, 120]
    lines = out.splitlines()[1:]
    assert lines[4] == "== checkpoint  step 100  path=checkpoints/step-000100"
    assert "eval 2.3135" in lines[3]


def test_a_metrics_file_path_and_a_run_name_both_work(cli, tmp_path, monkeypatch):
    monkeypatch.setenv("AIOS_TUI_RUNS", str(tmp_path))
    run = write_run(tmp_path, "named", steps=10)
    _, by_file, _ = cli("tail", str(run.default_metrics), "-n", "2")
    _, by_name, _ = cli("tail", "named", "-n", "2")
    assert steps_in(by_file) == steps_in(by_name) == [9, 10]


def test_a_partial_last_line_is_skipped(cli, tmp_path):
    run = write_run(tmp_path, "r3", steps=10)
    with open(run.default_metrics, "a") as fh:
        fh.write(json.dumps(step_record(11))[:30])
    code, out, _ = cli("tail", str(run.path), "-n", "3")
    assert code == 0 and steps_in(out) == [8, 9, 10]


def test_chart(cli, tmp_path):
    run = write_run(tmp_path, "r4", steps=120)
    code, out, _ = cli("tail", str(run.path), "-n", "0", "--chart")
    assert code == 0
    assert "• train loss" in out and "o eval loss" in out
    assert steps_in(out) == []
    assert "└" in out and "120" in out.splitlines()[-2]


def test_bad_input_exits_2(cli, tmp_path):
    code, _, err = cli("tail", str(tmp_path / "nope"))
    assert code == 2 and "no such run directory or metrics file" in err
    run = write_run(tmp_path, "r5", steps=3)
    code, _, err = cli("tail", str(run.path), "--every", "0")
    assert code == 2 and "--every" in err
    (tmp_path / "plain").mkdir()
    code, _, err = cli("tail", str(tmp_path / "plain"))
    assert code == 2 and "not a run directory" in err


def test_events_are_coloured_on_a_terminal_unless_no_color(monkeypatch):
    class Tty(io.StringIO):
        def isatty(self):
            return True
    monkeypatch.delenv("NO_COLOR", raising=False)
    monkeypatch.setenv("TERM", "xterm")
    p = Printer(Tty(), 1, 200)
    assert p.line({"event": "error", "message": "boom"}).startswith("\x1b[1;31m== error")
    assert "\x1b" not in p.line(step_record(3))
    monkeypatch.setenv("NO_COLOR", "1")
    assert "\x1b" not in Printer(Tty(), 1, 200).line({"event": "error"})


def _writer(run, start: int, end: int, final: str) -> None:
    """Plays the engine: appends a step at a time (some split mid-line), then the end state."""
    for s in range(start, end + 1):
        text = json.dumps(step_record(s)) + "\n"
        with open(run.default_metrics, "a") as fh:
            fh.write(text[:20])
            fh.flush()
            time.sleep(0.005)
            fh.write(text[20:])
        time.sleep(0.01)
    with open(run.default_metrics, "a") as fh:
        fh.write(json.dumps({"event": final, "step": end}) + "\n")
    status = json.loads(run.status_file.read_text())
    status.update(state=final if final != "error" else "failed", step=end,
                  error="boom" if final == "error" else None)
    run.status_file.write_text(json.dumps(status))


def test_follow_prints_every_new_step_and_stops_when_the_run_ends(tmp_path):
    run = write_run(tmp_path, "live", steps=10)
    out = io.StringIO()
    writer = threading.Thread(target=_writer, args=(run, 11, 60, "finished"))
    writer.start()
    code = tail_command(str(run.path), follow=True, lines=3, interval=0.02, out=out)
    writer.join()
    assert code == 0
    text = out.getvalue()
    assert steps_in(text) == list(range(8, 61))
    assert "== finished  step 60" in text
    assert text.rstrip().endswith("run finished at step 60")


def test_follow_reports_a_failure_with_status_1(tmp_path):
    run = write_run(tmp_path, "dies", steps=5)
    out = io.StringIO()
    writer = threading.Thread(target=_writer, args=(run, 6, 8, "error"))
    writer.start()
    code = tail_command(str(run.path), follow=True, lines=0, interval=0.02, out=out)
    writer.join()
    assert code == 1
    assert "run failed at step 8: boom" in out.getvalue()


def test_a_200mb_file_is_read_only_at_its_end(tmp_path):
    """Bytes the process read (Linux rchar: every read() call, imports included) stay far below
    the file's size: the tail is found by seeking back from the end."""
    path = tmp_path / "metrics.jsonl"
    size = 200 << 20
    with open(path, "wb") as fh:
        fh.write((json.dumps(header()) + "\n").encode())
        fh.seek(size)  # a sparse middle: real disk use stays small
        fh.write(b"\n")
        for s in range(1, 3001):
            fh.write((json.dumps(step_record(s, total=3000)) + "\n").encode())
    code = ("import sys\nfrom aios_tui.cli import main\n"
            f"rc = main(['tail', {str(path)!r}, '-n', '20', '--every', '10'])\n"
            "io = dict(l.split(': ') for l in open('/proc/self/io').read().splitlines())\n"
            "print('RCHAR', io['rchar'], rc, file=sys.stderr)\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    rchar, rc = proc.stderr.split("RCHAR")[-1].split()
    assert rc == "0"
    assert path.stat().st_size > size
    assert int(rchar) < 16 << 20, f"read {int(rchar) >> 20} MiB of a {size >> 20} MiB file"
    assert steps_in(proc.stdout)[-1] == 3000 and len(steps_in(proc.stdout)) == 20


def test_follow_from_before_the_engine_wrote_anything(tmp_path):
    run = write_run(tmp_path, "early", steps=0, state="starting")
    run.default_metrics.unlink()
    out = io.StringIO()

    def engine():
        time.sleep(0.1)
        with open(run.default_metrics, "w") as fh:
            fh.write(json.dumps(header()) + "\n")
        _writer(run, 1, 5, "finished")

    writer = threading.Thread(target=engine)
    writer.start()
    code = tail_command(str(run.path), follow=True, interval=0.02, out=out)
    writer.join()
    lines = out.getvalue().splitlines()
    assert code == 0
    assert lines[0].startswith("run early  method lora") and "no header" not in out.getvalue()
    assert steps_in(out.getvalue()) == [1, 2, 3, 4, 5]
    assert lines[-2].startswith("== finished  step 5")


def test_an_hrm_step_line_shows_its_act_figures():
    from aios_tui.metrics.fmt import step_line

    line = step_line({**step_record(12), "act_segments": 2.375, "halt_accuracy": 0.8125}, total=40)
    assert "  act 2.38  halt 81%  lr " in line
    assert "act " not in step_line(step_record(12), total=40)


def test_a_run_killed_mid_way_is_said_to_be_dead_with_the_way_on(cli, tmp_path):
    from runfiles import add_checkpoint

    gone = subprocess.Popen([sys.executable, "-c", ""])
    gone.wait()  # a pid no process has now, as after kill -9
    run = write_run(tmp_path, "killed", steps=130, state="running", pid=gone.pid)
    add_checkpoint(run, 100)
    code, out, err = cli("tail", str(run.path), "-n", "2")
    assert code == 0, err
    assert steps_in(out) == [129, 130]
    last = out.splitlines()[-1]
    assert f"run failed at step 130: its process (pid {gone.pid}) ended without saying why" in last
    assert f"continue from step-000100 with `aios-tui train --resume {run.path}`" in last


def test_a_run_killed_after_its_final_checkpoint_is_not_sent_to_resume_it(cli, tmp_path):
    from runfiles import add_checkpoint

    gone = subprocess.Popen([sys.executable, "-c", ""])
    gone.wait()
    run = write_run(tmp_path, "killed", steps=200, state="running", pid=gone.pid)
    add_checkpoint(run, 200)
    code, out, err = cli("tail", str(run.path), "-n", "0")
    assert code == 0, err
    assert out.splitlines()[-1].endswith("its final checkpoint step-000200 was saved: export it, or train "
                                         f"further with `aios-tui train --resume {run.path} --steps N`")


def test_ctrl_c_ends_a_follow_with_the_chart_it_asked_for(tmp_path):
    run = write_run(tmp_path, "live", steps=30)

    def interrupted(_):  # the user's Ctrl-C while the run still trains
        raise KeyboardInterrupt

    out = io.StringIO()
    code = tail_command(str(run.path), follow=True, lines=0, chart=True, interval=0.02, out=out, sleep=interrupted)
    assert code == 130
    assert "• train loss" in out.getvalue() and "└" in out.getvalue()


def test_the_chart_covers_the_whole_run_however_long(cli, tmp_path):
    # the loss falls from 6.6 to 1.2 in the first few hundred of 3,000 steps: a chart of the
    # file's end alone would start near 1.2
    run = write_run(tmp_path, "long", steps=3000, total=3000, state="finished", pid=0)
    code, out, _ = cli("tail", str(run.path), "-n", "0", "--chart")
    assert code == 0
    lines = out.splitlines()
    assert float(lines[1].split("┤")[0]) > 6.5
    assert lines[-2].split() == ["1", "3000"]


def test_the_chart_of_a_shared_file_is_its_last_run(cli, tmp_path):
    run = write_run(tmp_path, "first", steps=300, total=300, state="finished", pid=0)
    with open(run.default_metrics, "a") as fh:  # a second run into the same file, its loss flat
        fh.write(json.dumps(header("lora", None, "cpu")) + "\n")
        for s in range(1, 51):
            fh.write(json.dumps({"step": s, "loss": 0.5}) + "\n")
    code, out, _ = cli("tail", str(run.default_metrics), "-n", "0", "--chart")
    assert code == 0
    axis = out.splitlines()[-2].split()
    assert axis == ["1", "50"]
    assert all(float(line.split("┤")[0]) <= 1 for line in out.splitlines()[1:-2] if "┤" in line)
