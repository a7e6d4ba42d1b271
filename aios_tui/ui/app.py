"""The console app: a thin shell that owns the screens, the GPU source and the runs it watches."""

from __future__ import annotations

import time
from collections import deque
from functools import partial
from pathlib import Path
from typing import Any, Callable, Iterable

from textual import events
from textual.app import App, ScreenStackError, SystemCommand
from textual.binding import Binding
from textual.css.query import NoMatches
from textual.screen import ModalScreen, Screen
from textual.widget import Widget
from textual.worker import Worker, WorkerState

from aios_tui.config import RunConfig
from aios_tui.config.validate import field_problems
from aios_tui.errors import UserError
from aios_tui.metrics.rundir import LIVE_STATES, RunDir, default_runs_root, stop_outcome, trainer_command
from aios_tui.ui import runctl
from aios_tui.ui.gpu_source import open_gpu
from aios_tui.ui.messages import ExportFinished
from aios_tui.ui.screens.configure import ConfigureScreen
from aios_tui.ui.screens.quit import QuitScreen
from aios_tui.ui.widgets.field_row import FieldRow

# The run and runs screens (plotting, tables) are imported when first opened: the form
# paints first.


def attach_name(run: RunDir) -> str:
    """What to give `aios-tui attach`: the name for a run under the runs root, else its path.

    A relative root (the default artifacts/runs, or a relative $AIOS_TUI_RUNS) finds the run
    only from this directory, and after a dropped SSH link the shell starts elsewhere: then the
    whole path."""
    root = default_runs_root()
    try:
        if root.is_absolute() and run.path.resolve().parent == root.resolve():
            return run.name
        return str(run.path.resolve())
    except OSError:
        return str(run.path)


# How often keys typed ahead of a screen that is still being built check whether it is ready.
TYPED_AHEAD_POLL_S = 0.01

# From this many rows on, the configure screen stacks the VRAM and GPU panes; below it, it shows
# one at a time.
TALL_ROWS = 32


class AiosApp(App[None]):
    CSS_PATH = "app.tcss"
    TITLE = "aios-tui"
    BINDINGS = [
        # The configure screen's side column, when there is room for only one of its panes.
        Binding("ctrl+y", "side_pane('gpu')", "GPU", tooltip="Show the GPU pane in place of the VRAM budget"),
        Binding("ctrl+y", "side_pane('vram')", "VRAM", tooltip="Show the VRAM budget in place of the GPU pane"),
        Binding("ctrl+q", "quit", "Quit", priority=True, tooltip="Quit the console"),
        # Escape closes the keys panel first; with none open it falls through to the screen's own
        # escape (check_action says no), so a run view still goes back to the form.
        Binding("escape", "hide_help_panel", "Hide keys", show=False, priority=True),
    ]
    HORIZONTAL_BREAKPOINTS = [(0, "-narrow"), (110, "-wide")]
    VERTICAL_BREAKPOINTS = [(0, "-short"), (TALL_ROWS, "-tall")]

    def __init__(self, config: RunConfig | None = None, *, preset: str | None = None,
                 base: RunConfig | None = None, base_file: str | None = None,
                 attach: str | Path | None = None, gpu: Any = None, simulate_gpu: bool = False,
                 runs_root: str | Path | None = None, clock: Callable[[], float] = time.time,
                 poll_interval: float = 0.5, gpu_interval: float = 1.0,
                 estimator: Callable[..., Any] | None = None) -> None:
        super().__init__()
        self.config = config or RunConfig()
        self.preset = preset
        self.base = base
        self.base_file = base_file
        self.attach_to = Path(attach) if attach else None
        self.gpu = gpu if gpu is not None else open_gpu(simulate_gpu, gpu_interval)
        self.runs_root = Path(runs_root) if runs_root else None
        self.clock = clock
        self.poll_interval = poll_interval
        self.gpu_interval = gpu_interval
        self.estimator = estimator  # None: aios_tui.vram.estimate_for_run
        self.watched: dict[Path, int | None] = {}   # runs started or opened here -> engine pid
        self.current_run: Path | None = None
        self.farewell: list[str] = []
        self._typed_ahead: deque[events.Key] = deque()
        self.key_typed_at: float | None = None  # when the key being handled now was read

    def get_default_screen(self) -> Screen:
        return ConfigureScreen(self.config, self.preset, self.base, self.base_file)

    def on_mount(self) -> None:
        if self.attach_to is not None:
            self.open_run(self.attach_to)

    def on_unmount(self) -> None:
        stop = getattr(self.gpu, "stop", None)
        if stop:
            stop()

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        """The one place a failed background task is reported; the console carries on.

        Worker messages do not bubble: widgets and screens that run workers forward theirs here.
        """
        if event.state == WorkerState.ERROR:
            error = event.worker.error
            self.notify(f"{type(error).__name__}: {error}", title=f"{event.worker.name or 'background task'} failed",
                        severity="error", timeout=15, markup=False)

    # -- keys typed ahead of a screen ------------------------------------------
    async def on_event(self, event: events.Event) -> None:
        """Keys that arrive while the screen on top is still being built wait for it.

        Textual hands a key to the focused widget of the screen on top; a screen just pushed
        focuses its first field only once it has composed, and until then its keys go to the
        screen itself and are dropped. A busy box (a run on every core) delivers keys in bursts,
        so the name typed right after Ctrl+S lost its first letters."""
        if isinstance(event, events.Key) and not event.is_forwarded:
            if self._typed_ahead or not self._screen_ready():
                self._typed_ahead.append(event)
                if len(self._typed_ahead) == 1:
                    self.set_timer(TYPED_AHEAD_POLL_S, self._release_typed_ahead)
                return
            await self._deliver(event)
        else:
            await super().on_event(event)

    async def _deliver(self, key: events.Key) -> None:
        # While a key's priority bindings act, a dialog can ask when it was typed: a question
        # that should count only keys typed after it showed (stopping a run) ignores the rest.
        self.key_typed_at = key.time
        try:
            await super().on_event(key)
        finally:
            self.key_typed_at = None

    def _screen_ready(self) -> bool:
        try:
            # a dialog judging an answer holds the keys typed after it (PromptScreen.action_accept)
            return self.screen.is_mounted and not getattr(self.screen, "holding_keys", False)
        except ScreenStackError:
            return False

    async def _release_typed_ahead(self) -> None:
        # In order, and only while the screen on top is ready: a released key may open another.
        while self._typed_ahead and self._screen_ready():
            await self._deliver(self._typed_ahead.popleft())
        if self._typed_ahead:
            self.set_timer(TYPED_AHEAD_POLL_S, self._release_typed_ahead)

    # -- navigation ------------------------------------------------------------
    def _show(self, screen: Screen) -> bool:
        """Show ``screen`` in place of the run or runs view on top, or over the form; False, and
        nothing shown, while a dialog is open (a run the form started may finish its checks
        then): replacing the dialog would drop its question unanswered and leave the view
        stacked over the screen that asked."""
        if isinstance(self.screen, ModalScreen):
            return False
        if len(self.screen_stack) > 1:
            self.switch_screen(screen)
        else:
            self.push_screen(screen)
        return True

    def open_run(self, path: str | Path, pid: int | None = None) -> None:
        path = Path(path).resolve()
        self.watched.setdefault(path, pid)
        if pid is not None:
            self.watched[path] = pid
            self._mark_own_pids()
        self.current_run = path
        from aios_tui.ui.screens.run import RunScreen
        if not self._show(RunScreen(path, pid=self.watched[path])):
            self.notify(f"{path.name}: its view opens with ctrl+b on the form once the dialog is closed",
                        markup=False)

    def _mark_own_pids(self) -> None:
        """The GPU pane marks the engines this console started as its own processes."""
        mark = getattr(self.gpu, "set_own_pids", None)
        if mark is not None:
            mark([p for p in self.watched.values() if p])

    def forget_run(self, path: str | Path) -> None:
        """A run deleted here: no longer watched, nor offered as the view to go back to."""
        path = Path(path).resolve()
        self.watched.pop(path, None)
        if self.current_run == path:
            self.current_run = None
        self._mark_own_pids()
        self.refresh_bindings()

    def open_runs(self) -> None:
        from aios_tui.ui.screens.runs import RunsScreen
        self._show(RunsScreen())

    def back_to_configure(self) -> None:
        if len(self.screen_stack) > 1:
            self.pop_screen()

    def resume_run(self, run: RunDir, steps: int | None = None) -> None:
        """Restart a run's engine from its latest checkpoint and show it."""
        from aios_tui.ui.screens.prompt import PromptScreen
        from aios_tui.ui.screens.run import RunScreen

        blocker = run.resume_blocker(stop_how=runctl.CONSOLE_STOP_HOW)
        if blocker:
            self.notify(f"cannot resume: {blocker}", severity="warning", markup=False)
            return
        state = run.state()
        if state == "finished" and steps is None:
            total = run.read_status().get("total_steps") or 0

            def check(text: str) -> str | None:
                try:
                    n = int(text)
                except ValueError:
                    return f"{text!r} is not a whole number of steps"
                if n <= total:
                    return f"give more than the {total} steps it already ran"
                # past the config's range the engine would refuse it after the run was marked resuming
                steps = RunConfig()
                steps.train.steps = n
                return next((p for p in field_problems(steps) if p.startswith("train.steps:")), None)

            self.push_screen(PromptScreen(f"{run.name} has finished. Train to how many steps in total?",
                                          placeholder=f"more than {total}", check=check),
                             lambda text: self.resume_run(run, int(text)) if text else None)
            return
        try:
            pid = runctl.resume_run(run, steps)
        except UserError as exc:
            self.notify("; ".join(exc.problems), title="not resumed", severity="error", markup=False)
            return
        self.notify(f"resuming {run.name} (pid {pid})", markup=False)
        path = run.path.resolve()
        self.watched[path] = pid
        self._mark_own_pids()
        if isinstance(self.screen, RunScreen) and self.screen.run.path == path:
            self.screen.resumed(pid)
        else:
            self.open_run(path, pid=pid)
            if isinstance(self.screen, RunScreen):
                self.screen.resumed(pid)

    # -- exports -----------------------------------------------------------------
    def start_export(self, run: RunDir, merge: bool, step: int | None) -> None:
        """Export ``run`` (claimed with ``runctl.claim_export``) in the background. The app, not
        the screen that asked, runs it and says how it ended: the user may have moved on."""
        def export() -> None:
            self.post_message(ExportFinished(run.name, *runctl.export_claimed(run, merge, step)))

        self.run_worker(export, name=f"export of {run.name}", group="export", thread=True,
                        exit_on_error=False)

    def on_export_finished(self, message: ExportFinished) -> None:
        changed = getattr(self.screen, "exports_changed", None)
        if changed is not None:  # the run and runs screens stop saying it is under way
            changed()
        self.screen.refresh_bindings()  # and offer Export again
        last = message.text.strip().splitlines()[-1] if message.text.strip() else "done"
        self.notify(last, title=f"export of {message.run_name}", severity="information" if message.ok else "error",
                    timeout=10, markup=False)

    # -- keys the screens share ------------------------------------------------
    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "side_pane":
            side = self._side_column()
            if side is None or self.size.height >= TALL_ROWS:
                return False  # tall enough for both panes, or not the configure screen
            return parameters[0] != ("gpu" if side.has_class("-gpu") else "vram")
        if action == "hide_help_panel":
            return bool(self.screen.query("HelpPanel"))
        if action == "quit":
            return not isinstance(self.screen, QuitScreen)  # it is already asking
        return True

    def _side_column(self) -> Widget | None:
        try:
            return self.screen.query_one("#side")
        except NoMatches:
            return None

    def action_side_pane(self, pane: str) -> None:
        side = self._side_column()
        if side is None:
            return
        # The VRAM pane's size picker goes with its pane: keys typed next would reach nothing.
        hidden = self.focused is not None and side in self.focused.ancestors
        side.set_class(pane == "gpu", "-gpu")
        if hidden:  # to the first field of the form's tab shown
            self.screen.set_focus(next((w for w in self.screen.focus_chain
                                        if any(isinstance(a, FieldRow) for a in w.ancestors)), None))
        self.refresh_bindings()

    def on_resize(self) -> None:
        self.refresh_bindings()  # the side-pane key comes and goes with the screen's height

    # -- command palette: every key binding of the screen, by its long name -----
    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:
        seen = set()
        for key, active in screen.active_bindings.items():
            b = active.binding
            if not b.show or not b.description or b.action in seen or not active.enabled:
                continue
            seen.add(b.action)
            title = b.tooltip or b.description
            yield SystemCommand(title, f"key: {self.get_key_display(b)}",
                                partial(self.run_action, b.action, active.node))
        for command in super().get_system_commands(screen):
            if command.title not in ("Quit",):
                yield command

    # -- quitting --------------------------------------------------------------
    def live_runs(self) -> list[RunDir]:
        return [RunDir(p) for p in self.watched if RunDir(p).state() in LIVE_STATES]

    async def action_quit(self) -> None:
        live = self.live_runs()
        exports = runctl.exports_running()
        if not live and not exports:
            self.exit()
            return

        def chosen(choice: str | None) -> None:
            if choice == "quit":
                self.exit()
            elif choice == "leave":
                for run in live:
                    self.farewell.append(f"{run.name} keeps training; re-attach with: "
                                         f"aios-tui attach {attach_name(run)}")
                self.exit()
            elif choice == "stop":
                for run in live:
                    try:
                        runctl.stop_run(run)
                        outcome, resumable = stop_outcome(run)
                        how = f"aios-tui {trainer_command(run.read_status())} --resume {run.path}"
                        self.farewell.append(f"asked {run.name} to stop ({outcome})"
                                             + (f"; resume with: {how}" if resumable else ""))
                    except UserError:
                        pass
                self.exit()

        self.push_screen(QuitScreen([attach_name(r) for r in live], [r.name for r in exports]), chosen)

    def export_wait_line(self) -> str | None:
        """What to say while quitting waits for exports to end, or None if none is running."""
        exports = [r.name for r in runctl.exports_running()]
        if not exports:
            return None
        many = len(exports) > 1
        return (f"waiting for the export{'s' if many else ''} of {', '.join(exports)} to finish "
                f"(Ctrl-C abandons {'them' if many else 'it'})...")

    async def run_async(self, *args: Any, **kwargs: Any) -> Any:
        try:
            return await super().run_async(*args, **kwargs)
        finally:
            # The screen is back to the shell here; an export's thread is waited for next, before
            # run() returns: say so, or the terminal just sits there.
            line = self.export_wait_line()
            if line:
                print(line, flush=True)
