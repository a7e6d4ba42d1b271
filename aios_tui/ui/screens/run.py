"""A run as it trains: progress, loss chart, figures, events; stop, checkpoint, export, resume.

Everything shown comes from the run directory (a worker tails it), so this screen works the
same for a run this console started and for one it re-attached to.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.screen import Screen
from textual.widgets import Footer, Static
from textual.worker import Worker, get_current_worker

from aios_tui.errors import UserError
from aios_tui.metrics.rundir import UNREADABLE, RunDir, pid_alive
from aios_tui.metrics.runstate import MISSING, RunTracker, RunView
from aios_tui.ui import runctl
from aios_tui.ui.messages import RunUpdated
from aios_tui.ui.pacing import STEP_S, nap
from aios_tui.ui.screens.confirm import ConfirmScreen
from aios_tui.ui.widgets.event_log import EventLog
from aios_tui.ui.widgets.loss_chart import LossChart
from aios_tui.ui.widgets.run_progress import RunProgress
from aios_tui.ui.widgets.run_stats import RunStats

LOG_TAIL_LINES = 3
# How long a run with no status.json (and no process of ours behind it) counts as starting.
STATUS_GRACE_S = 3.0

def engine_log_tail(run: RunDir, n: int = LOG_TAIL_LINES) -> list[str]:
    try:
        with open(run.log_path, "rb") as fh:
            fh.seek(0, 2)
            fh.seek(max(0, fh.tell() - 4096))
            lines = fh.read().decode("utf-8", "replace").splitlines()
    except OSError:
        return []
    return [l for l in lines if l.strip()][-n:]


class RunMain(Horizontal):
    """The figures beside the chart. Its height follows the terminal's and the events box's;
    the figures leave out rows to fit it (at 80x24 a GPU run has more than there is room for)."""

    def on_resize(self) -> None:
        self.query_one(RunStats).refit()


class RunScreen(Screen):
    BINDINGS = [
        # Priority on the keys that change screens: they act before the next key is routed, so
        # keys typed right after Escape reach the form, not this screen's bindings, and those
        # typed right after s reach its question, which only a y typed once it shows answers.
        Binding("s", "stop", "Stop", priority=True,
                tooltip="Stop the run, once you confirm (it saves a checkpoint first)"),
        Binding("c", "checkpoint", "Checkpoint", tooltip="Save a checkpoint now and keep training"),
        Binding("e", "export", "Export", priority=True, tooltip="Export the adapter, or a merged model, of a checkpoint"),
        Binding("r", "resume", "Resume", priority=True, tooltip="Resume the run from its latest checkpoint"),
        Binding("g", "try_model", "Try it", priority=True,
                tooltip="Prompt the latest checkpoint in this terminal (aios-tui generate), the console back after"),
        Binding("n", "runs", "Runs", priority=True, tooltip="List runs"),
        # the form's key for the same list, so a hand used to it is not left doing nothing here
        Binding("ctrl+n", "runs", "Runs", priority=True, show=False, tooltip="List runs"),
        Binding("escape", "configure", "Configure", priority=True, tooltip="Back to the configuration form"),
    ]

    def __init__(self, run_path: str | Path, pid: int | None = None) -> None:
        super().__init__()
        self.run = RunDir(run_path)
        self.pid = pid
        self.tracker = RunTracker(self.run)
        self.view: RunView | None = None
        self.stop_requested = False
        self.resume_pending = False
        self._no_status_since: float | None = None
        self._export_busy = False
        self._has_checkpoint = False
        self._back_at: float | None = None  # when a "try it" session last gave the terminal back

    def compose(self) -> ComposeResult:
        yield Static("", id="run-title")
        yield RunProgress(id="run-progress")
        with RunMain(id="run-main"):
            yield RunStats(id="run-stats")
            yield LossChart(id="loss-chart")
        yield EventLog(id="run-events")
        yield Footer(compact=True)

    def on_mount(self) -> None:
        # Even the first read is the worker's: a run's own lines in a big --log-file other runs
        # share are found by reading back to its header, seconds the first frame must not wait.
        self.query_one("#run-title", Static).update(Text(f" {self.run.name}", style="bold"))
        self.query_one(EventLog).show((), ["reading the run's metrics..."])
        self._follow()

    def _corrected(self, view: RunView) -> RunView:
        """Without a readable status.json, the engine this console started (if any) says how the
        run is going: alive, starting; dead, failed. With no engine of ours, a missing status is
        waited for a little (an engine writes it first thing), a malformed one given up on at once."""
        if view.status_problem is None or view.state == MISSING:
            self._no_status_since = None
            return view  # a directory gone (deleted) says so, whatever became of its engine
        if self.pid:
            return dataclasses.replace(view, state="starting" if pid_alive(self.pid) else "failed")
        if view.state == UNREADABLE:
            return view
        now = time.monotonic()
        if self._no_status_since is None:
            self._no_status_since = now
        if now - self._no_status_since >= STATUS_GRACE_S:
            return dataclasses.replace(view, state=UNREADABLE)
        return view

    @work(thread=True, exclusive=True, group="run-follow", exit_on_error=False)
    def _follow(self) -> None:
        worker = get_current_worker()
        interval = getattr(self.app, "poll_interval", 0.5)
        ticks = 0
        while not worker.is_cancelled:
            ticks += 1
            # Unchanged files still get a refresh now and then: a process can die silently. The
            # first read always shows: it replaces what the screen showed before any read.
            if self.tracker.poll() or ticks % 4 == 1:
                self.post_message(RunUpdated(self._corrected(self.tracker.view())))
            # a long history is read a bounded piece a poll: the next piece without waiting
            nap(worker, STEP_S if self.tracker.behind else interval)

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        self.app.on_worker_state_changed(event)

    def on_run_updated(self, message: RunUpdated) -> None:
        self._show(message.view)

    def _show(self, view: RunView) -> None:
        was_live = self.view.live if self.view else None
        self.view = view
        if not view.live:
            self.stop_requested = False
        else:
            self.resume_pending = False
        if self.resume_pending and self.pid and not pid_alive(self.pid):
            self.resume_pending = False
            self.notify(f"{self.run.name} did not resume; see {self.run.log_path}", severity="error",
                        markup=False)
        title = Text()
        title.append(f" {view.name}", style="bold")
        header = view.header or {}
        bits = [view.method or "", header.get("model") or "", header.get("device") or ""]
        title.append("  " + "  ".join(b for b in bits if b), style="dim")
        if view.truncated:
            title.append("  (history: the file's last lines)", style="dim")
        self.query_one("#run-title", Static).update(title)
        self.query_one(RunProgress).update_view(view, self._shown_state(view))
        self.query_one(RunStats).update_view(view)
        self.query_one(LossChart).update_view(view)
        self.query_one(EventLog).show(view.events, self._notes(view), runctl.export_lines(self.run))
        busy = runctl.export_running(self.run)  # another screen may have started or finished one
        # Read once a view, not in check_action: bindings are checked far more often than that.
        has_checkpoint = self.run.latest_checkpoint() is not None
        if was_live != view.live or busy != self._export_busy or has_checkpoint != self._has_checkpoint:
            self._export_busy, self._has_checkpoint = busy, has_checkpoint
            self.refresh_bindings()

    def _notes(self, view: RunView) -> list[str]:
        """What the events cannot say: why the run failed, or why its state is unknown."""
        if view.log_gone:
            return [view.log_gone]
        if view.state == "failed":
            reason = f"failed: {view.error or 'the engine exited without a reason'}"
        elif view.state == MISSING:
            return [f"the run directory is gone (deleted?): {self.run.path}"]
        elif view.state == UNREADABLE:
            see = f"; see {self.run.log_path}" if self.run.log_path.is_file() else ""
            reason = f"cannot read the run's status: {view.status_problem}{see}"
        else:
            return ["starting the engine..."] if view.state == "starting" and view.status_problem else []
        return [reason] + [f"  {line}" for line in engine_log_tail(self.run)]

    def _shown_state(self, view: RunView) -> str | None:
        if self.stop_requested and view.live:
            return "stopping"
        if self.resume_pending and not view.live:
            return "resuming"
        return None

    # -- actions ---------------------------------------------------------------
    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if runctl.typed_before(self.app, self._back_at):
            return False  # typed while the session started: meant for it, not for this screen
        live = self.view.live if self.view else False
        if action == "try_model":
            return self._has_checkpoint
        if action in ("stop", "checkpoint"):
            return live
        # Export and resume start from a checkpoint: without one they could only refuse.
        if action == "resume":
            return not live and self._has_checkpoint
        if action == "export":
            if not self._has_checkpoint:
                return False
            return None if runctl.export_running(self.run) else True
        return True

    def action_stop(self) -> None:
        """Ask first: a stray s (typed for the form as this view opened) would end hours of training."""
        question, detail = runctl.stop_question(self.run.name, self.view.step if self.view else None)
        self.app.push_screen(ConfirmScreen(question, detail, careful=True),
                             lambda yes: self._stop() if yes else None)

    def _stop(self) -> None:
        try:
            runctl.stop_run(self.run)
        except UserError as exc:
            self.notify("; ".join(exc.problems), severity="warning", markup=False)
            return
        self.stop_requested = True
        self.notify(runctl.stop_notice(self.run.name, self.view.step if self.view else None), markup=False)
        if self.view:
            self.query_one(RunProgress).update_view(self.view, self._shown_state(self.view))

    def action_checkpoint(self) -> None:
        try:
            runctl.checkpoint_run(self.run)
        except UserError as exc:
            self.notify("; ".join(exc.problems), severity="warning", markup=False)
            return
        self.notify("checkpoint requested; it appears under Events when written")

    def action_resume(self) -> None:
        self.app.resume_run(self.run)

    def action_try_model(self) -> None:
        """Prompt the latest checkpoint in the terminal, the console suspended until Ctrl-D."""
        self._back_at = runctl.try_in_terminal(self, self.run) or self._back_at

    def action_export(self) -> None:
        """Pick a checkpoint (the latest first) and export its adapter or a merged model."""
        from aios_tui.ui.screens.checkpoints import CheckpointPicker, checkpoint_infos

        view = self.view
        infos = checkpoint_infos(self.run.list_checkpoints(), view.loss if view else (),
                                 view.eval_loss if view else ())

        adapter = runctl.peft_run(self.run)

        def chosen(answer: tuple[int, bool] | None) -> None:
            if answer is not None:
                step, merge = answer
                # always this step, even if a newer checkpoint lands before the export starts
                self._export(merge, step=step, adapter=adapter)

        self.app.push_screen(CheckpointPicker(self.run.name, infos, adapter=adapter), chosen)

    def _export(self, merge: bool, step: int | None = None, adapter: bool = True) -> None:
        if not runctl.claim_export(self.run, runctl.export_line(self.run, merge, adapter, step)):
            self.notify(f"an export of {self.run.name} is already running", severity="warning", markup=False)
            return
        self.exports_changed()
        self.app.start_export(self.run, merge, step)

    def exports_changed(self) -> None:
        """An export of this run started or ended: its line under Events and the Export key follow."""
        if self.view is not None:
            self._show(self.view)
        self.refresh_bindings()

    def action_runs(self) -> None:
        self.app.open_runs()

    def action_configure(self) -> None:
        self.app.back_to_configure()

    def resumed(self, pid: int) -> None:
        """The app restarted this run's engine: watch the new process."""
        self.pid = pid
        self.stop_requested = False
        self.resume_pending = True
        if self.view:
            self.query_one(RunProgress).update_view(self.view, self._shown_state(self.view))
