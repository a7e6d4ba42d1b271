"""The console in a real terminal (tmux): start a run by keys, kill the console, re-attach,
watch the run finish."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid

import pytest

from aios_tui.metrics.rundir import RunDir, pid_alive

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed"),
]


class Tmux:
    """A private tmux server (its own socket), so the test never touches the user's sessions."""

    def __init__(self, env: dict[str, str]):
        self.socket = f"aios-tui-test-{uuid.uuid4().hex[:8]}"
        self.env = env

    def __call__(self, *args: str) -> str:
        out = subprocess.run(["tmux", "-L", self.socket, *args], capture_output=True, text=True,
                             env=self.env, timeout=30)
        return out.stdout

    def start(self, name: str, command: str) -> None:
        self("new-session", "-d", "-s", name, "-x", "120", "-y", "40", command)

    def screen(self, name: str) -> str:
        return self("capture-pane", "-p", "-t", name)

    def pane_pid(self, name: str) -> int:
        return int(self("list-panes", "-t", name, "-F", "#{pane_pid}").split()[0])

    def wait_for(self, name: str, text: str, timeout: float) -> str:
        deadline = time.monotonic() + timeout
        screen = ""
        while time.monotonic() < deadline:
            screen = self.screen(name)
            if text in screen:
                return screen
            time.sleep(0.3)
        raise AssertionError(f"{text!r} never appeared in {name}; last screen:\n{screen}")

    def kill_server(self) -> None:
        self("kill-server")


def wait_until(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def test_run_survives_the_console_and_attach_sees_it_finish(tmp_path):
    runs = tmp_path / "runs"
    env = {**os.environ, "AIOS_TUI_RUNS": str(runs), "XDG_CONFIG_HOME": str(tmp_path / "xdg"),
           "TERM": "xterm-256color"}
    env.pop("TMUX", None)
    python = sys.executable
    flags = ("--use-peft --steps 400 --batch-size 2 --max-seq-len 32 --eval-every 100 --save-every 0 "
             "--warmup-steps 2 --run-name e2e-run")
    tmux = Tmux(env)
    run = RunDir(runs / "e2e-run")
    engine_pid = None
    try:
        # A session that outlives the console's keeps the tmux server up between the two
        # terminals: a new session must not race a server that is shutting down.
        tmux.start("keeper", "sleep 900")
        tmux.start("console", f"cd {tmp_path} && {python} -m aios_tui console {flags}")
        tmux.wait_for("console", "VRAM budget", 30)
        console_pid = tmux.pane_pid("console")
        tmux("send-keys", "-t", "console", "C-r")
        tmux.wait_for("console", "e2e-run", 30)
        wait_until(lambda: run.read_status().get("pid") not in (None, console_pid), 30, "the engine pid")
        engine_pid = run.read_status()["pid"]
        wait_until(lambda: (run.read_status().get("step") or 0) >= 1, 180, "the first step")
        tmux.wait_for("console", "RUNNING", 30)

        # An SSH drop: the terminal goes away and the console gets SIGHUP.
        tmux("kill-session", "-t", "console")
        wait_until(lambda: not pid_alive(console_pid), 15, "the console to exit")
        assert pid_alive(engine_pid), "the run died with the console"
        assert run.state() in ("running", "finished")

        # A new terminal: re-attach and watch it finish. (Named: on a fast machine the run may
        # be done by now, and plain `attach` only picks runs still training.)
        tmux.start("attach", f"cd {tmp_path} && {python} -m aios_tui attach e2e-run")
        screen = tmux.wait_for("attach", "FINISHED", 240)
        assert "e2e-run" in screen and "400/400" in screen
        status = run.read_status()
        assert status["state"] == "finished" and status["step"] == 400
        events = [json.loads(l).get("event") for l in run.default_metrics.read_text().splitlines()]
        assert "finished" in events and "stopped" not in events
        tmux("send-keys", "-t", "attach", "C-q")
        wait_until(lambda: "attach" not in tmux("list-sessions", "-F", "#{session_name}"), 15,
                   "the attached console to quit")
    finally:
        tmux.kill_server()
        if engine_pid and pid_alive(engine_pid):
            os.kill(engine_pid, signal.SIGTERM)
