"""The main screen: preset picker and form on the left, VRAM budget and GPU on the right."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import Screen
from textual.timer import Timer
from textual.widgets import Footer, Label, Select

from aios_tui.ui.widgets.choice import Choice
from aios_tui.config import ConfigError, RunConfig, list_presets, load_config, save_user_preset
from aios_tui.config.presets import slug, user_dir, user_preset_key
from aios_tui.errors import UserError
from aios_tui.metrics.rundir import RunDir
from aios_tui.ui import runctl
from aios_tui.ui.cmdline import changed_fields, command_line, diff_lines
from aios_tui.ui.messages import GpuSampled
from aios_tui.ui.screens.confirm import ConfirmScreen
from aios_tui.ui.screens.prompt import PromptScreen
from aios_tui.ui.screens.text_view import TextScreen
from aios_tui.ui.start_problems import start_problems
from aios_tui.ui.widgets.command_preview import CommandPreview
from aios_tui.ui.widgets.config_form import ConfigForm
from aios_tui.ui.widgets.form_status import FormStatus
from aios_tui.ui.widgets.gpu_pane import GpuPane
from aios_tui.ui.widgets.vram_pane import VramPane

try:  # the calculator is stdlib-only and fast enough to run on every edit
    from aios_tui.vram import estimate_for_run
except ImportError:  # pragma: no cover - a build without the calculator still configures and trains
    estimate_for_run = None

NO_PRESET = "(defaults)"
FILE_CHOICE = "\x00file"  # the picker's entry for a loaded TOML file (no preset key can be this)
VRAM_DEBOUNCE_S = 0.1
NOTICE_LINES = 6  # problems in one notice; a small terminal shows a notice of about this many
PROMPT_LINES = 3  # problems under a prompt's answer: the dialog stays whole at 80x24


def problems_notice(problems: list[str], prefix: str = "", limit: int = NOTICE_LINES) -> str:
    """Problems as one notice, one a line: separate toasts push the first ones (often the most
    useful) off a small terminal. Past ``limit`` the rest are counted, not listed; ``prefix``
    (a file name every problem repeats, shown beside them) is dropped."""
    lines = [p.removeprefix(prefix) if prefix else p for p in problems]
    if len(lines) > limit:
        more = len(lines) - (limit - 1)
        lines = lines[:limit - 1] + [f"+{more} more problem{'s' if more > 1 else ''}"]
    return "\n".join(lines)


class ConfigureScreen(Screen):
    BINDINGS = [
        Binding("ctrl+r", "start_run", "Run", tooltip="Start a training run with this configuration"),
        Binding("ctrl+g", "start_hrm_run", "HRM",
                tooltip="Train an HRM ACTv1 brain with this configuration (the HRM tab's architecture)"),
        # Priority on the keys that open another screen: they act before the next key is routed,
        # so what is typed right after them reaches that screen, not this form's field.
        Binding("ctrl+s", "save_preset", "Save", priority=True, tooltip="Save the form as a user preset"),
        Binding("ctrl+o", "load_toml", "Load", priority=True, tooltip="Load a configuration from a TOML file"),
        Binding("ctrl+t", "show_diff", "Diff", priority=True, tooltip="Show what differs from the preset"),
        Binding("ctrl+l", "show_command", "Cmd", priority=True,
                tooltip="Show the equivalent `aios-tui train` (or `train-actv1`) command"),
        Binding("ctrl+n", "runs", "Runs", priority=True, tooltip="List runs: attach, resume, stop, export"),
        Binding("ctrl+b", "run_view", "View", priority=True, tooltip="Back to the current run's view"),
        # ctrl+b is tmux's prefix key, so inside tmux it never reaches the console
        Binding("f2", "run_view", "View", show=False, priority=True),
    ]
    AUTO_FOCUS = "#f-model"

    def __init__(self, cfg: RunConfig, preset: str | None = None, base: RunConfig | None = None,
                 base_file: str | None = None) -> None:
        super().__init__()
        self._preset_problems: list[str] = []
        self.initial = cfg
        self.preset_key = preset or ""
        self.base_file = base_file
        try:
            self.base = base or self._preset_config(self.preset_key) or RunConfig()
        except ConfigError as exc:
            self._preset_problems += exc.problems
            self.base = RunConfig()
        self._vram_timer: Timer | None = None
        self._starting = False
        self._picker_reset: str | None = None  # the value the picker is being put back to
        self._last_estimate: dict[str, Any] | None = None
        self._estimated = False
        self._estimate_problems: tuple[str, ...] = ()  # what the last estimate says stops a start

    # -- layout ----------------------------------------------------------------
    def compose(self) -> ComposeResult:
        with Horizontal(id="preset-bar"):
            yield Label("Preset", id="preset-label")
            yield Choice(self._preset_options(), value=self._picker_value(), allow_blank=False,
                         compact=True, id="preset")
            yield FormStatus(id="form-status")
        with Horizontal(id="configure-main"):
            yield ConfigForm(self.initial, self.base, id="form")
            with Vertical(id="side"):
                yield VramPane(id="vram")
                yield GpuPane(interval=getattr(self.app, "gpu_interval", 1.0), id="gpu")
        yield CommandPreview(id="command")
        yield Footer(compact=True)

    def _presets(self) -> list:
        """Shipped and user presets; a broken user preset file is reported, not fatal."""
        problems: list[str] = []
        presets = list_presets(problems)
        if problems:
            self._preset_problems = problems
        return presets

    def _preset_options(self) -> list[tuple[str, str]]:
        opts = [(NO_PRESET, "")]
        for p in self._presets():
            opts.append((f"{p.name} (user)" if p.user else p.name, p.key))
        if self.preset_key and self.preset_key not in [v for _, v in opts]:
            opts.append((self.preset_key, self.preset_key))
        if self.base_file:  # the form came from a file: the picker names it, not "(defaults)"
            opts.append((f"{Path(self.base_file).name} (file)", FILE_CHOICE))
        return opts

    def _picker_value(self) -> str:
        """What the picker shows for the form's base: the loaded file, else the preset."""
        return FILE_CHOICE if self.base_file else self.preset_key

    def _refresh_picker(self) -> None:
        """Rebuild the picker's entries (a loaded file's comes and goes) and show the base."""
        select = self.query_one("#preset", Select)
        with select.prevent(Select.Changed):
            select.set_options(self._preset_options())
            select.value = self._picker_value()

    def _preset_config(self, key: str) -> RunConfig | None:
        if not key:
            return None
        for p in self._presets():
            if p.key == key:
                return p.config()
        return None

    def on_mount(self) -> None:
        # Nothing here may query the children: the form announces itself (ConfigForm.Changed
        # on its mount) and the panes read the GPU themselves.
        if self._preset_problems:  # one notice: a toast each would bury the screen at 80x24
            self.notify(problems_notice(self._preset_problems), title="presets skipped", severity="warning",
                        timeout=10, markup=False)

    @property
    def form(self) -> ConfigForm:
        return self.query_one(ConfigForm)

    # -- reacting to edits -------------------------------------------------------
    def on_config_form_changed(self, event: ConfigForm.Changed) -> None:
        self._form_changed(event.result)
        if not self._estimated:
            self._estimated = True
            self._recompute_vram()  # the first estimate at once; edits after it are debounced
            return
        if self._vram_timer is not None:
            self._vram_timer.stop()
        self._vram_timer = self.set_timer(VRAM_DEBOUNCE_S, self._recompute_vram)

    def _form_changed(self, result) -> None:
        cfg = result.config
        self._show_status(result)
        self.query_one(CommandPreview).show(self.command(cfg) if cfg is not None else "")

    def _show_status(self, result=None) -> None:
        result = self.form.result if result is None else result
        changes = len(changed_fields(self.base, result.config)) if result.config else 0
        self.query_one(FormStatus).show([*result.problems, *self._estimate_problems], changes,
                                        self.base_label())

    def _estimate_found(self, problems: tuple[str, ...]) -> None:
        if problems != self._estimate_problems:
            self._estimate_problems = problems
            self._show_status()

    def command(self, cfg: RunConfig) -> str:
        return command_line(cfg, self.base, preset=self.preset_key or None, config_file=self.base_file)

    def _recompute_vram(self) -> None:
        self._vram_timer = None
        pane = self.query_one(VramPane)
        cfg = self.form.result.config
        estimate = getattr(self.app, "estimator", None) or estimate_for_run
        if estimate is None:
            pane.show(None, "the VRAM calculator is not installed")
            return
        if cfg is None:
            self._estimate_found(())  # the form's own problems say it will not start
            pane.show(self._last_estimate, "fix the form's problems to re-estimate")
            return
        try:
            result = estimate(cfg, None, pane.budget_bytes)
        except (UserError, ConfigError) as exc:
            self._estimate_found(start_problems(cfg, exc))
            pane.show(None, "; ".join(exc.problems))
            return
        except Exception as exc:  # noqa: BLE001 - a calculator bug must not take the console down
            self._estimate_found(())
            pane.show(None, f"estimate failed: {exc}")
            return
        self._last_estimate = result.to_dict()
        self._estimate_found(())
        pane.show(self._last_estimate)

    def on_vram_pane_size_changed(self, event: VramPane.SizeChanged) -> None:
        self._recompute_vram()

    def on_gpu_sampled(self, message: GpuSampled) -> None:
        self._detect_gpu(message.snapshot)

    def _detect_gpu(self, snapshot: Any) -> None:
        self.query_one(VramPane).detect(snapshot)

    def on_select_changed(self, event: Select.Changed) -> None:
        if event.select.id != "preset":
            return
        event.stop()
        key = event.value if isinstance(event.value, str) else ""
        if key == self._picker_reset or key == FILE_CHOICE or (key == self.preset_key and not self.base_file):
            self._picker_reset = None
            return  # the picker announcing its first value, put back, or no change
        try:
            cfg = self._preset_config(key) or RunConfig()
        except ConfigError as exc:
            self.notify(problems_notice(exc.problems), title="preset not loaded", severity="error",
                        markup=False)
            self._show_preset(self._picker_value())
            return
        self._unless_edits_kept(f"preset '{key}'", lambda: self._load_preset(key, cfg),
                                lambda: self._show_preset(self._picker_value()))

    def _unless_edits_kept(self, loading: str, load: Callable[[], None],
                           keep: Callable[[], None] | None = None) -> None:
        """Run ``load`` at once over an unedited form; over edits, only if the user says so."""
        current = self.form.result.config
        edits = len(changed_fields(self.base, current)) if current is not None else -1
        if edits == 0:
            load()
            return
        what = f"your {edits} change{'s' if edits > 1 else ''}" if edits > 0 else "your edits"

        def answered(yes: bool | None) -> None:
            if yes:
                load()
            elif keep is not None:
                keep()

        self.app.push_screen(
            ConfirmScreen(f"Load {loading} and discard {what}?", "n keeps the form as it is"), answered)

    def _load_preset(self, key: str, cfg: RunConfig) -> None:
        had_file = bool(self.base_file)
        self.preset_key, self.base_file, self.base = key, None, cfg
        if had_file:
            self._refresh_picker()
        self.form.load(cfg, base=cfg)

    def _show_preset(self, key: str) -> None:
        """Put the picker back on ``key`` (its change event then finds nothing to do)."""
        picker = self.query_one("#preset", Select)
        if picker.value != key:
            self._picker_reset = key
            picker.value = key

    # -- actions ---------------------------------------------------------------
    def _valid_config(self, doing: str) -> RunConfig | None:
        result = self.form.result
        if result.config is None:
            n = len(result.problems)
            self.notify(f"fix {n} problem{'s' if n > 1 else ''} before you {doing}: {result.problems[0]}",
                        severity="error", markup=False)
        return result.config

    def action_start_run(self) -> None:
        self._start("train")

    def action_start_hrm_run(self) -> None:
        self._start("train-actv1")

    def _start(self, command: str) -> None:
        cfg = self._valid_config("start a run")
        if cfg is None:
            return
        if self._starting:
            self.notify("a run is already being started", severity="warning")
            return
        self._starting = True
        self.notify("checking the data, target modules and memory settings...")
        self._check_and_start(cfg, command)

    @work(thread=True, group="start-run", exit_on_error=False)
    def _check_and_start(self, cfg: RunConfig, command: str) -> None:
        """The engine's checks take seconds (a child process imports torch), so not on the UI thread."""
        from textual.worker import get_current_worker

        worker = get_current_worker()
        problems: list[str] = []
        try:
            runctl.check_start(cfg, command, getattr(self.app, "runs_root", None))
            if worker.is_cancelled:
                return  # the console is closing: start nothing behind the user's back
            run, pid = runctl.start_run(cfg, getattr(self.app, "runs_root", None), command=command)
        except (UserError, ConfigError) as exc:
            problems = exc.problems
        except Exception as exc:  # noqa: BLE001 - say it, and let the next ctrl+r try again
            problems = [f"{type(exc).__name__}: {exc}"]
        if worker.is_cancelled:
            return
        if problems:
            self.app.call_from_thread(self._not_started, problems)
        else:
            self.app.call_from_thread(self._started, run, pid)

    def _not_started(self, problems: list[str]) -> None:
        self._starting = False
        # One toast: a refusal's reason and its advice as separate toasts let the advice push the
        # reason off a small terminal.
        self.notify("\n".join(problems), title="run not started", severity="error", timeout=15,
                    markup=False)

    def _started(self, run: Any, pid: int) -> None:
        self._starting = False
        self.notify(f"started {run.name} (pid {pid}); it keeps training if the console closes", markup=False)
        self.app.open_run(run.path, pid=pid)

    def action_save_preset(self) -> None:
        cfg = self._valid_config("save a preset")
        if cfg is None:
            return

        agreed: set[str] = set()  # the names the user said to overwrite

        def check(name: str) -> str | None:
            try:
                key = user_preset_key(name)
            except ConfigError as exc:
                return exc.problems[0]
            path = user_dir() / f"{key}.toml"
            if key in agreed or not path.exists():
                return None

            def answered(yes: bool) -> None:
                if yes:
                    agreed.add(key)
                    prompt.action_accept()

            # Asked over the prompt, which stays open with the name: a no goes back to it.
            self.app.push_screen(ConfirmScreen(f"Overwrite user preset '{key}'?", str(path)), answered)
            return f"user preset '{key}' exists: type another name, or esc to cancel"

        def named(name: str | None) -> None:
            if name is not None:
                self._save(name, cfg, force=user_preset_key(name) in agreed)

        prompt = PromptScreen("Save as a user preset", placeholder="preset name",
                              hint=f"saved to {user_dir()}/NAME.toml", check=check)
        self.app.push_screen(prompt, named)

    def _save(self, name: str, cfg: RunConfig, force: bool) -> None:
        try:
            path = save_user_preset(name, cfg, force=force)
        except ConfigError as exc:
            self.notify(problems_notice(exc.problems), title="preset not saved", severity="error",
                        markup=False)
            return
        except OSError as exc:
            self.notify(str(exc), title="preset not saved", severity="error", markup=False)
            return
        self.preset_key, self.base_file, self.base = slug(name), None, cfg
        self._refresh_picker()
        self.form.set_base(cfg)
        self.notify(f"saved preset '{name}' to {path}", markup=False)

    def action_load_toml(self) -> None:
        read: dict[str, RunConfig] = {}  # the file is read once: what was checked is what loads

        def check(path: str) -> str | None:
            file = Path(path).expanduser()
            try:
                read[path] = load_config(file)
            except ConfigError as exc:
                # The path shows right above: the problems without it, as many as the dialog fits.
                return problems_notice(exc.problems, prefix=f"{file}: ", limit=PROMPT_LINES)
            return None

        def chosen(path: str | None) -> None:
            if path is None:
                return
            cfg, file = read[path], Path(path).expanduser()
            note = ""
            if cfg.train.run_dir.strip() and RunDir(Path(cfg.train.run_dir)).exists():
                # A run's own config.toml: its directory is taken; a new run needs its own.
                note = f"; run_dir and run_name cleared ({cfg.train.run_dir} holds a run: resume it from the runs list)"
                cfg.train.run_dir = cfg.train.run_name = ""

            def load() -> None:
                self.preset_key, self.base_file, self.base = "", path, cfg
                self._refresh_picker()
                self.form.load(cfg, base=cfg)
                self.notify(f"loaded {path}{note}", timeout=10 if note else 5, markup=False)

            self._unless_edits_kept(file.name, load)

        self.app.push_screen(PromptScreen("Load a configuration TOML", placeholder="path/to/config.toml",
                                          value=self.base_file or "", check=check), chosen)

    def base_label(self) -> str:
        if self.base_file:
            return self.base_file
        return f"preset {self.preset_key}" if self.preset_key else "the defaults"

    def action_show_diff(self) -> None:
        cfg = self._valid_config("compare")
        if cfg is not None:
            self.app.push_screen(TextScreen(f"Changes from {self.base_label()}",
                                            "\n".join(diff_lines(self.base, cfg))))

    def action_show_command(self) -> None:
        cfg = self._valid_config("build the command")
        if cfg is not None:
            self.app.push_screen(TextScreen("Equivalent command", self.command(cfg)))

    def action_runs(self) -> None:
        self.app.open_runs()

    def action_run_view(self) -> None:
        if getattr(self.app, "current_run", None) is not None:
            self.app.open_run(self.app.current_run)

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "run_view":
            return getattr(self.app, "current_run", None) is not None
        return True
