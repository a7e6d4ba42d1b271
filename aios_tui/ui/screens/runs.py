"""Every run under the runs root, then those started from other directories: attach to one,
resume, stop, export or delete it."""

from __future__ import annotations

from pathlib import Path

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Static
from textual.worker import Worker, get_current_worker

from aios_tui.errors import UserError
from aios_tui.metrics import run_delete
from aios_tui.metrics.fmt import human_bytes
from aios_tui.metrics.rundir import LIVE_STATES, UNREADABLE, RunDir, default_runs_root
from aios_tui.metrics.summary import RunSummary, summarize_all
from aios_tui.ui import cursor_keys, runctl
from aios_tui.ui.messages import RunsListed
from aios_tui.ui.pacing import nap
from aios_tui.ui.screens.confirm import ConfirmScreen

REFRESH_S = 2.0
ROW_ACTIONS = ("attach", "resume", "stop", "export", "try_model", "delete")  # each needs a selected run
COLUMNS = ("name", "state", "step", "loss", "age", "size", "method")
ELSEWHERE_MARK = " *"  # after the name of a run started from another directory


class RunsScreen(Screen):
    BINDINGS = [
        # Priority on the keys that change screens: they act before the next key is routed, so
        # keys typed right after them reach the screen they open, not this one.
        Binding("a", "attach", "Attach", priority=True, tooltip="Open the selected run's live view"),
        Binding("r", "resume", "Resume", priority=True, tooltip="Resume the selected run from its latest checkpoint"),
        Binding("s", "stop", "Stop", priority=True,
                tooltip="Stop the selected run, once you confirm (it saves a checkpoint first)"),
        Binding("e", "export", "Export", priority=True, tooltip="Export the adapter, or a merged model, of a checkpoint"),
        Binding("g", "try_model", "Try it", priority=True,
                tooltip="Prompt the selected run's latest checkpoint in this terminal (aios-tui generate)"),
        Binding("d", "delete", "Delete", priority=True,
                tooltip="Delete the selected run with its checkpoints, once you confirm"),
        Binding("escape", "configure", "Configure", priority=True, tooltip="Back to the configuration form"),
        *cursor_keys.bindings(),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.runs: list[RunSummary] = []
        self._shown: dict[str, tuple[str, ...]] = {}  # the table's rows, by run path, as drawn
        self._back_at: float | None = None  # when a "try it" session last gave the terminal back

    def compose(self) -> ComposeResult:
        root = getattr(self.app, "runs_root", None) or default_runs_root()
        yield Static(f" Runs in {root}", id="runs-title")
        table = DataTable(cursor_type="row", zebra_stripes=True, id="runs-table")
        for col in COLUMNS:
            table.add_column(col.upper(), key=col)
        yield table
        yield Static("", id="runs-empty", markup=False)  # paths and run names are no markup
        yield Footer(compact=True)

    def on_mount(self) -> None:
        self._fill(self._list())
        self._refresh_loop()

    def _root(self) -> Path | None:
        root = getattr(self.app, "runs_root", None)
        return Path(root) if root else None

    def _list(self) -> list[RunSummary]:
        root = self._root()
        return summarize_all(root, elsewhere=root is None)  # a root named on purpose: only it

    @work(thread=True, exclusive=True, group="runs-refresh", exit_on_error=False)
    def _refresh_loop(self) -> None:
        worker = get_current_worker()
        while nap(worker, REFRESH_S):
            self.post_message(RunsListed(self._list()))

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        self.app.on_worker_state_changed(event)

    def on_runs_listed(self, message: RunsListed) -> None:
        self._fill(message.runs)

    def _fill(self, runs: list[RunSummary]) -> None:
        table = self.query_one(DataTable)
        selected = self.selected()
        self.runs = runs
        now = self.app.clock() if hasattr(self.app, "clock") else None
        rows = {r.path: self._cells(r, now) for r in runs}
        if list(rows) == list(self._shown):
            # The same runs in the same order (most refreshes): only changed cells are redrawn,
            # not hundreds of rows every two seconds over SSH.
            for key, cells in rows.items():
                for col, old, new in zip(COLUMNS, self._shown[key], cells):
                    if old != new:
                        table.update_cell(key, col, new, update_width=True)
        else:
            table.clear()
            for key, cells in rows.items():
                table.add_row(*cells, key=key)
        self._shown = rows
        if selected is not None:
            for i, r in enumerate(runs):
                if r.path == selected.path:
                    table.move_cursor(row=i)
        self.exports_changed()
        self.refresh_bindings()

    @staticmethod
    def _cells(r: RunSummary, now: float | None) -> tuple[str, ...]:
        return (r.name + (ELSEWHERE_MARK if r.elsewhere else ""), *r.cells(now))

    def exports_changed(self) -> None:
        """Say what each export under way is doing, until it ends (the app says how it ended)."""
        lines = [] if self.runs else ["no runs yet: start one from the configuration form (ctrl+r)"]
        if any(r.elsewhere for r in self.runs):
            picked = self.selected()
            lines.append(f"{ELSEWHERE_MARK.strip()} started from another directory"
                         + (f": {picked.path}" if picked is not None and picked.elsewhere else ""))
        self.query_one("#runs-empty", Static).update("\n".join(lines + runctl.export_lines()))

    def selected(self) -> RunSummary | None:
        table = self.query_one(DataTable)
        if not self.runs or table.cursor_row is None or table.cursor_row >= len(self.runs):
            return None
        return self.runs[table.cursor_row]

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        # As in a run's own view, a key that could only refuse for the selected row is not
        # offered: export and resume need a checkpoint, resume and stop the right state. An
        # unreadable status keeps both, so pressing them says why nothing can be done.
        if runctl.typed_before(self.app, self._back_at):
            return False  # typed while a "try it" session started: meant for it, not for this list
        if action not in ROW_ACTIONS or not self.is_mounted:
            return True
        picked = self.selected()
        if picked is None:
            return False  # an empty list: nothing to act on
        if action in ("attach", "delete"):
            return True
        live = picked.state in LIVE_STATES
        if action == "stop":
            return live or picked.state == UNREADABLE
        return picked.has_checkpoint and not (action == "resume" and live)  # try_model: live is fine

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        self.exports_changed()  # where the selected run is, if elsewhere
        self.refresh_bindings()

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        event.stop()
        if not runctl.typed_before(self.app, self._back_at):
            self.action_attach()

    def _pick(self, needs_status: str = "") -> RunDir | None:
        """The selected run; with ``needs_status`` (a verb), only if its status.json can be read:
        without it, whether its process still runs cannot be checked."""
        r = self.selected()
        if r is None:
            self.notify("no run selected", severity="warning")
            return None
        if needs_status and r.state == UNREADABLE:
            self.notify(f"cannot {needs_status} {r.name}: {r.error}", severity="warning", markup=False)
            return None
        return RunDir(r.path)

    def action_attach(self) -> None:
        run = self._pick()
        if run is not None:
            self.app.open_run(run.path)

    def action_resume(self) -> None:
        run = self._pick("resume")
        if run is not None:
            self.app.resume_run(run)

    def action_stop(self) -> None:
        """Ask first, about the run selected now: the list may reorder while the question shows."""
        picked = self.selected()
        run = self._pick("stop")
        if run is None or picked is None:
            return
        question, detail = runctl.stop_question(run.name, picked.step)
        self.app.push_screen(ConfirmScreen(question, detail, careful=True),
                             lambda yes: self._stop(picked.path) if yes else None)

    def _stop(self, path: str) -> None:
        run = RunDir(path)
        try:
            runctl.stop_run(run)
        except UserError as exc:
            self.notify("; ".join(exc.problems), severity="warning", markup=False)
            return
        # its step now, not when asked: before its first step there is nothing to save
        now = next((r for r in self.runs if r.path == path), None)
        self.notify(runctl.stop_notice(run.name, now.step if now else None), markup=False)

    def action_delete(self) -> None:
        """Ask first, naming what goes: a run's checkpoints can be days of training."""
        picked = self._pick()
        if picked is None:
            return
        blocker = self._delete_blocker(picked)
        if blocker:
            self.notify(blocker, severity="warning", markup=False)
            return
        doomed = run_delete.measure(picked)
        self.app.push_screen(
            ConfirmScreen(run_delete.question([doomed]), "Its checkpoints, metrics and exports are removed "
                          "for good.", careful=True),
            lambda yes: self._delete(doomed) if yes else None)

    @staticmethod
    def _delete_blocker(run: RunDir) -> str | None:
        # An export reads the run's checkpoint and writes beside it: deleted under it, the
        # export fails or leaves a stray folder where the run was.
        if runctl.export_running(run):
            return f"an export of {run.name} is running; delete the run once it has finished"
        return run_delete.delete_blocker(run, runctl.CONSOLE_STOP_HOW)

    def _delete(self, doomed: run_delete.Doomed) -> None:
        blocker = self._delete_blocker(doomed.run)  # an export started while the question showed
        if blocker:
            self.notify(blocker, severity="warning", markup=False)
            return
        try:  # checked again: it may have been resumed while the question showed
            hidden = run_delete.hide([doomed], runctl.CONSOLE_STOP_HOW)
        except UserError as exc:
            self.notify("; ".join(exc.problems), severity="warning", markup=False)
            return
        self.app.forget_run(doomed.run.path)
        self._fill(self._list())  # gone from the list at once; removing it takes a while
        self._remove(hidden)

    @work(thread=True, group="runs-delete", exit_on_error=False)
    def _remove(self, hidden: list[tuple[run_delete.Doomed, Path]]) -> None:
        for done in run_delete.finish(hidden, self._root()):
            self.app.call_from_thread(self._removed, done)

    def _removed(self, done: run_delete.Deleted) -> None:
        if done.left is None:
            self.notify(f"deleted {done.name}: {human_bytes(done.freed)} freed", markup=False)
        else:
            self.notify(f"deleted {done.name} in part ({human_bytes(done.freed)} freed): {done.why}; "
                        f"the rest is hidden in {done.left}", severity="warning", markup=False)

    def action_try_model(self) -> None:
        """Prompt the selected run's latest checkpoint in the terminal, the console suspended."""
        run = self._pick()
        if run is not None:
            self._back_at = runctl.try_in_terminal(self, run) or self._back_at

    def action_export(self) -> None:
        from aios_tui.ui.screens.checkpoints import CheckpointPicker, infos_for_run

        run = self._pick()
        if run is None:
            return
        if runctl.export_running(run):
            self.notify(f"an export of {run.name} is already running", severity="warning", markup=False)
            return
        infos = infos_for_run(run)
        adapter = runctl.peft_run(run)

        def chosen(answer: tuple[int, bool] | None) -> None:
            if answer is None:
                return
            step, merge = answer
            if not runctl.claim_export(run, runctl.export_line(run, merge, adapter, step)):
                self.notify(f"an export of {run.name} is already running", severity="warning", markup=False)
                return
            self.exports_changed()
            # always this step, even if a newer checkpoint lands before the export starts
            self.app.start_export(run, merge, step)

        self.app.push_screen(CheckpointPicker(run.name, infos, adapter=adapter), chosen)

    async def action_list_cursor(self, key: str) -> None:
        await cursor_keys.move(self.query_one(DataTable), key)

    def action_configure(self) -> None:
        self.app.back_to_configure()
