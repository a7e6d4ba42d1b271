"""Starting, resuming, stopping and exporting runs: each one a process, never a thread here."""

from __future__ import annotations

import copy
import os
import subprocess
import sys
import threading
from pathlib import Path

from aios_tui.config import RunConfig
from aios_tui.errors import UserError
from aios_tui.metrics.launch import start_detached
from aios_tui.metrics.run_lock import RunLock
from aios_tui.metrics.rundir import LIVE_STATES, RunDir, default_runs_root, generated_run_name, prepare_run


def run_name_for(cfg: RunConfig, now: float | None = None, command: str = "train") -> str:
    if cfg.train.run_name:
        return cfg.train.run_name
    return generated_run_name(cfg.method_label(), command, now)


def plan_run_dir(cfg: RunConfig, root: str | os.PathLike | None = None,
                 now: float | None = None, command: str = "train") -> tuple[str, Path]:
    """(run name, directory) for a new run; a generated name gets a suffix instead of clashing."""
    if cfg.train.run_dir:
        path = Path(cfg.train.run_dir)
        if RunDir(path).exists():
            raise UserError(f"run directory {path} already holds a run; resume it from the Runs "
                            "screen or clear run_dir")
        return (cfg.train.run_name or path.name), path
    root = Path(root) if root else default_runs_root()
    name = run_name_for(cfg, now, command)
    path = root / name
    if RunDir(path).exists():
        if cfg.train.run_name:
            raise UserError(f"a run named '{name}' exists in {root}; choose another run_name or resume it")
        n = 2
        while RunDir(root / f"{name}-{n}").exists():
            n += 1
        name, path = f"{name}-{n}", root / f"{name}-{n}"
    return name, path


RUN_COMMANDS = ("train", "train-actv1")
ERROR_PREFIX = "aios-tui: error: "
CHECK_TIMEOUT_S = 900  # long enough to fetch an hf:// dataset or a model's config


def check_start(cfg: RunConfig, command: str = "train", root: str | os.PathLike | None = None) -> None:
    """The checks `aios-tui train --detach` makes before it creates anything (data, target
    modules, memory savers, compile, the run directory), run in a child process so the console
    never loads torch; raises UserError with the engine's own messages. ``root`` as for
    start_run, so the directory checked is the one a start would use."""
    import tempfile

    from aios_tui.config import config_to_toml

    if command not in RUN_COMMANDS:
        raise ValueError(f"unknown run command {command!r}")
    if not cfg.train.run_dir:
        if cfg.train.run_name:  # a taken name is the engine's to refuse, in its own words
            name, path = cfg.train.run_name, Path(root or default_runs_root()) / cfg.train.run_name
        else:
            name, path = plan_run_dir(cfg, root, command=command)
        cfg = copy.deepcopy(cfg)
        cfg.train.run_name, cfg.train.run_dir = name, str(path.resolve())
    with tempfile.TemporaryDirectory(prefix="aios-tui-check-") as tmp:
        config = Path(tmp) / "config.toml"
        config.write_text(config_to_toml(cfg), encoding="utf-8")
        try:
            proc = subprocess.run([sys.executable, "-m", "aios_tui", command, "--config", str(config), "--check"],
                                  stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=CHECK_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            raise UserError(f"the settings check took over {CHECK_TIMEOUT_S // 60} minutes (a slow download?); "
                            f"try `aios-tui {command} --check` in a shell") from None
    if proc.returncode != 0:
        raise UserError(child_problems(proc, "the settings check"))


def child_problems(proc: subprocess.CompletedProcess, what: str) -> list[str]:
    """What a failed ``aios-tui`` child process said: its own error lines, else its last line."""
    text = (proc.stdout or "") + (proc.stderr or "")
    ours = [line[len(ERROR_PREFIX):] for line in text.splitlines() if line.startswith(ERROR_PREFIX)]
    if ours:
        return ours
    last = [line for line in text.strip().splitlines() if line.strip()][-1:]
    return [f"{what} failed: {last[0]}" if last else f"{what} failed with exit status {proc.returncode}"]


def start_run(cfg: RunConfig, root: str | os.PathLike | None = None,
              command: str = "train") -> tuple[RunDir, int]:
    """Prepare the run directory as `aios-tui train --detach` does, then start the engine on it.

    A prepared directory holds config.toml and a ``starting`` status.json naming this process;
    the engine (our child) accepts exactly that, and the status names the engine's pid at once,
    so a watcher never waits on an engine that died before writing anything.
    """
    if command not in RUN_COMMANDS:
        raise ValueError(f"unknown run command {command!r}")
    name, path = plan_run_dir(cfg, root, command=command)
    path = path.resolve()
    cfg = copy.deepcopy(cfg)
    cfg.train.run_name = name
    cfg.train.run_dir = str(path)
    run = RunDir(path)
    prepare_run(run, cfg, pid=os.getpid(), total_steps=cfg.train.steps, command=command)
    pid = start_detached([command, "--config", str(run.config_toml), "--run-dir", str(path),
                          "--progress", "lines"], path)
    run.write_status(pid=pid)
    return run, pid


# how the console stops a live run, named in its refusals (still_training) instead of shell commands:
# the run view and the runs list both stop the run under the cursor with s
CONSOLE_STOP_HOW = "stop it first (s)"


def resume_run(run: RunDir, steps: int | None = None) -> int:
    """Continue a stopped or failed run; a finished one only with a larger total ``steps``."""
    blocker = run.resume_blocker(stop_how=CONSOLE_STOP_HOW)
    if blocker:
        raise UserError(blocker)
    state = run.state()
    if state == "finished" and not steps:
        raise UserError(f"run '{run.name}' has finished; give a larger total number of steps to train longer")
    if run.latest_checkpoint() is None:
        raise UserError(f"run '{run.name}' has no complete checkpoint to resume from")
    # As `train --resume --detach`: of two resumes started together (here and in a shell), the
    # one refused here says so and leaves the status alone; the engine takes the lock over.
    lock = RunLock.take(run.path, CONSOLE_STOP_HOW)
    try:
        for stale in (run.stop_file, run.checkpoint_request_file):
            try:
                stale.unlink()
            except FileNotFoundError:
                pass
        args = ["train", "--resume", str(run.path), "--progress", "lines"] + (["--steps", str(steps)] if steps else [])
        # the new total at once, so a watcher never shows the old run as complete while this one loads
        run.write_status(state="starting", pid=os.getpid(), error=None, **({"total_steps": steps} if steps else {}))
        pid = start_detached(args, run.path, **(lock.hand_down() if lock is not None else {}))
    finally:
        if lock is not None:
            lock.release()
    run.write_status(pid=pid)
    return pid


def stop_run(run: RunDir) -> None:
    state = run.state()
    if state not in LIVE_STATES:
        raise UserError(f"run '{run.name}' is not training (state: {state})")
    run.request_stop()


def stop_notice(name: str, step: int | None) -> str:
    """What stopping a run does: past its first step it saves a checkpoint first; before it,
    there is nothing to save and the run ends at step 0, to be started again from its config."""
    if step:
        return f"stopping {name}: saving a checkpoint first"
    return (f"stopping {name} before its first step: nothing will be saved "
            "(start it again from its config)")


def stop_question(name: str, step: int | None) -> tuple[str, str]:
    """What the console asks before it stops a run, and what answering does (as stop_notice)."""
    if step:
        return (f"Stop {name} at step {step}?",
                "It saves a checkpoint first; r resumes it exactly.\nn keeps it training.")
    return (f"Stop {name} before its first step?",
            "Nothing is saved yet: start it again from its config.\nn keeps it training.")


def checkpoint_run(run: RunDir) -> None:
    state = run.state()
    if state not in LIVE_STATES:
        raise UserError(f"run '{run.name}' is not training (state: {state})")
    run.request_checkpoint()


def peft_run(run: RunDir) -> bool:
    """Whether the run trains an adapter (its config says so; an unreadable one counts as yes)."""
    try:
        from aios_tui.config import load_config

        return bool(load_config(run.config_toml).peft.use_peft)
    except Exception:
        return True


def export_run(run: RunDir, merge: bool = False, timeout: float = 3600, step: int | None = None) -> str:
    """Run `aios-tui export` in a child process (the console never imports torch); its output.

    ``step`` names the checkpoint (the latest when None). Where it goes is the engine's choice,
    made when it writes: ``adapter/`` (``merged/`` for a merge or a full fine-tune) for the newest
    checkpoint, ``adapter-step-NNNNNN/`` beside it for an older one, even one that was the
    newest when the step was picked."""
    argv = [sys.executable, "-m", "aios_tui", "export", str(run.path)] + (["--merge"] if merge else [])
    if step is not None:
        argv += ["--checkpoint", str(step)]
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout,
                              stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        raise UserError(f"export of '{run.name}' took longer than {timeout:.0f} s; try it from a shell") from None
    if proc.returncode != 0:
        raise UserError(child_problems(proc, f"export of '{run.name}'"))
    return (proc.stdout + proc.stderr).strip()


# Runs with an export under way, whichever screen started it, and what each one writes: two
# exports of one run would write into the same folder.
_exporting: dict[Path, str] = {}
_exporting_lock = threading.Lock()


def export_what(merge: bool, adapter: bool) -> str:
    return "the adapter" if adapter and not merge else ("a merged model" if adapter else "the model")


def export_line(run: RunDir, merge: bool, adapter: bool, step: int | None) -> str:
    """What the screens say while an export of ``run`` runs."""
    which = f"step {step}" if step is not None else "the latest checkpoint"
    return f"exporting {export_what(merge, adapter)} of {run.name} ({which})..."


def claim_export(run: RunDir, doing: str = "") -> bool:
    """Mark an export of ``run`` as started (``doing``: what the screens say while it runs);
    False if one already is."""
    key = run.path.resolve()
    with _exporting_lock:
        if key in _exporting:
            return False
        _exporting[key] = doing or f"exporting {run.name}..."
        return True


def release_export(run: RunDir) -> None:
    with _exporting_lock:
        _exporting.pop(run.path.resolve(), None)


def export_running(run: RunDir) -> bool:
    with _exporting_lock:
        return run.path.resolve() in _exporting


def exports_running() -> list[RunDir]:
    """The runs with an export under way (the console waits for them when it quits)."""
    with _exporting_lock:
        return [RunDir(path) for path in sorted(_exporting)]


def export_lines(run: RunDir | None = None) -> list[str]:
    """What each export under way (of ``run`` only, when given) is doing, for as long as it runs."""
    key = run.path.resolve() if run is not None else None
    with _exporting_lock:
        return [doing for path, doing in sorted(_exporting.items()) if key is None or path == key]


def export_claimed(run: RunDir, merge: bool, step: int | None) -> tuple[bool, str]:
    """``export_run`` for an export claimed with ``claim_export``, which it releases; (ok, output)."""
    try:
        return True, export_run(run, merge=merge, step=step)
    except UserError as exc:
        return False, "\n".join(exc.problems)
    finally:
        release_export(run)


# -- trying a run's model in the terminal -------------------------------------------
def chat_run(run: RunDir) -> bool:
    """Whether the run trained on chat records, as its metrics header's data summary says (runs
    from before the summary said so count as not)."""
    from aios_tui.metrics.jsonl import read_header

    try:
        data = (read_header(run.metrics_path()) or {}).get("data")
    except (OSError, ValueError):
        return False
    return isinstance(data, dict) and data.get("chat") is True


def try_argv(run: RunDir) -> list[str] | None:
    """The `aios-tui generate RUN -i` that tries the run's latest checkpoint (a step named, so
    one written while the model loads changes nothing), with --chat for a run trained on chat;
    None while the run has no checkpoint."""
    latest = run.latest_checkpoint()
    if latest is None:
        return None
    step = int(latest.name.removeprefix("step-"))
    argv = [sys.executable, "-m", "aios_tui", "generate", str(run.path), "-i", "--checkpoint", str(step)]
    return argv + (["--chat"] if chat_run(run) else [])


def shown_command(argv: list[str]) -> str:
    """``argv`` (``python -m aios_tui ...``) as a user would type it."""
    import shlex

    return shlex.join(["aios-tui", *argv[3:]])


def no_checkpoint_notice(run: RunDir) -> str:
    try:
        from aios_tui.config import load_config

        every = load_config(run.config_toml).train.save_every
    except Exception:  # an unreadable config still gets its notice, without the step
        every = None
    when = f"at step {every}" if every else "when the run ends or is stopped"
    return f"{run.name}: no checkpoint yet: the first is saved {when}"


def run_in_terminal(app, argv: list[str]) -> bool:
    """Runs ``argv`` on the console's terminal, the console suspended until it ends; False where
    the console cannot be suspended (Textual's headless driver, some terminals), nothing run."""
    import signal

    from textual.app import SuspendNotSupported

    try:
        with app.suspend():
            print(f"$ {shown_command(argv)}", flush=True)
            # The terminal's Ctrl-C reaches the console too (Textual no longer reads it as a key):
            # a handler of its own keeps the console alive, and unlike SIG_IGN it is not inherited.
            before = signal.signal(signal.SIGINT, lambda signum, frame: None)
            try:
                code = subprocess.run(argv).returncode
                if code != 0:  # its error stays on screen until read
                    input(f"(ended with exit status {code}; press Enter to go back to the console) ")
            except (OSError, EOFError):
                pass
            finally:
                signal.signal(signal.SIGINT, before)
    except SuspendNotSupported:
        return False
    return True


def try_in_terminal(screen, run: RunDir) -> float | None:
    """The console's "try it": `aios-tui generate` on ``run``'s latest checkpoint in the terminal,
    or a notice saying why not; when a session ran, the time (``key_clock``) it gave the terminal
    back."""
    argv = try_argv(run)
    if argv is None:
        screen.notify(no_checkpoint_notice(run), severity="warning", markup=False)
        return None
    if not run_in_terminal(screen.app, argv):
        screen.notify(f"this console cannot hand its terminal over; in a shell run: {shown_command(argv)}",
                      timeout=20, markup=False)
        return None
    return key_clock()


def typed_before(app, when: float | None) -> bool:
    """Whether the key being handled now was read before ``when`` (on Textual's key clock): keys
    typed while a session was starting were meant for it, not for the console it returns to."""
    typed_at = getattr(app, "key_typed_at", None)
    return when is not None and typed_at is not None and typed_at < when


def key_clock() -> float:
    try:
        from textual._time import get_time
    except ImportError:  # a Textual that moved it: its keys have been stamped with the monotonic clock
        from time import monotonic as get_time
    return get_time()
