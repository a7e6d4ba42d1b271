"""`aios-tui train`: fine-tune headless, in the foreground or detached; resume a stopped run."""

from __future__ import annotations

import argparse
import os
import signal
import sys
from functools import partial
from pathlib import Path

from aios_tui.config import (
    ConfigError, RunConfig, add_config_args, build, config_from_args, load_config, overrides_from_args,
    read_config_file,
)
from aios_tui.config.resolve import flag_name
from aios_tui.errors import UserError

DEFAULT_TASK = "aios_tui.engine.task:CausalLMTask"

EPILOG = """\
examples:
  aios-tui train --steps 100                          the built-in tiny model on the sample data
  aios-tui train --preset efficient --model DIR --dataset-file data.jsonl --steps 500
  aios-tui train --preset balanced --detach           keep training after you log out
  aios-tui train --resume artifacts/runs/NAME --steps 800   continue (here: to 800 steps in all)

A run directory holds config.toml, metrics.jsonl, status.json and checkpoints/. Stop a run
cleanly with Ctrl-C, SIGTERM or `touch RUN_DIR/STOP` (it saves a checkpoint first); ask for a
checkpoint without stopping with `touch RUN_DIR/CHECKPOINT`.
"""


def add_run_control_args(p: argparse.ArgumentParser) -> None:
    """The flags that control a training process rather than what it trains."""
    g = p.add_argument_group("run control")
    g.add_argument("--resume", metavar="RUN_DIR", default=None,
                   help="continue the run in RUN_DIR (or of that name) from its latest checkpoint; flags given with it "
                        "change what may change (e.g. --steps, --lr) and anything else is refused")
    g.add_argument("--stop-after", metavar="K", type=int, default=None,
                   help="save a checkpoint and stop after K steps of this session, exactly as an "
                        "interruption would")
    g.add_argument("--detach", action="store_true",
                   help="check the config, create the run directory, start training in the "
                        "background (it survives logout) and return at once")
    # default None: a --progress the user gave is told apart from the default, which is auto
    g.add_argument("--progress", choices=("auto", "bar", "lines", "none"), default=None,
                   help="progress display: a bar on a terminal and plain lines otherwise (auto); "
                        "a detached run writes lines (or none) to its log")
    g.add_argument("--check", action="store_true",
                   help="check the config, data, target modules and memory as a start would, "
                        "without loading weights or creating anything; exit 0 if it would start")


def check_conflicts(args: argparse.Namespace) -> None:
    """--check starts nothing, so the flags that say how to run what it starts would be ignored
    without a word; a check of a resume (--resume) is a check like any other. A detached run has
    no terminal, so a bar asked for beside --detach would silently become lines."""
    if not args.check:
        if args.detach and args.progress == "bar":
            raise UserError("--progress bar: a detached run has no terminal to draw a bar on; drop --progress "
                            "(its log gets plain lines) or pass --progress none")
        args.progress = args.progress or "auto"
        return
    given = [flag for flag, value in (("--detach", args.detach), ("--stop-after", args.stop_after),
                                      ("--progress", args.progress))
             if value not in (False, None)]
    if given:
        them = ", ".join(given[:-1]) + " and " + given[-1] if len(given) > 1 else given[0]
        raise UserError(f"--check starts nothing, so {them} {'has' if len(given) == 1 else 'have'} no effect "
                        f"with it; drop --check to start the run, or drop {them} to only check")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="fine-tune a model (LoRA, AdaLoRA, IA3 or full) headless",
                       description="Train with the resolved configuration (defaults < --preset <\n"
                                   "--config < flags). Writes a run directory you can follow with\n"
                                   "`aios-tui tail RUN --follow` or the console.",
                       epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_run_control_args(p)
    add_config_args(p)
    p.set_defaults(func=run, task_spec=DEFAULT_TASK, command_name="train")


def _resume_config(args: argparse.Namespace) -> RunConfig:
    """The run's saved config with the config file and flags of this command applied on top."""
    from aios_tui.metrics.rundir import RunDir

    if args.preset:
        raise UserError("--preset cannot be combined with --resume: a run keeps its settings; "
                        "pass only the flags to change (e.g. --steps, --lr)")
    run = RunDir(args.resume)
    if not run.path.is_dir():
        raise UserError(f"--resume {args.resume}: no such run directory")
    if not run.exists():
        raise UserError(f"--resume {args.resume}: not a run directory (it has no status.json or config.toml)")
    # a console or `--detach` marks the run starting under its pid just before it starts us
    blocker = run.resume_blocker(launchers=(os.getpid(), os.getppid()))
    if blocker:
        raise UserError(f"--resume {args.resume}: {blocker}")
    latest = run.latest_checkpoint()
    if latest is None:
        from aios_tui.engine.session import start_again_hint

        raise UserError(f"--resume {args.resume}: the run has no complete checkpoint to continue from",
                        *start_again_hint(run))
    saved = load_config(latest / "config.toml")
    layers = [(saved.to_dict(), f"{latest}/config.toml")]
    if args.config:
        layers.append((read_config_file(args.config), args.config))
    overrides = overrides_from_args(args)
    _same_run(run, saved, overrides.pop("run_dir", None), overrides.pop("run_name", None))
    if overrides:
        layers.append((overrides, "command line"))
    try:
        return build(layers)
    except ConfigError as exc:
        # the changes a resume refuses, reported with the values that are wrong anyway
        from aios_tui.config import field_index
        from aios_tui.engine.resume import START_NEW, refusal

        refused = [problem for name, value in overrides.items()
                   if name in field_index() and (problem := refusal(saved, name, value))]
        raise ConfigError(exc.problems + refused + ([START_NEW] if refused else [])) from None


def _same_run(run, saved: RunConfig, run_dir: str | None, run_name: str | None) -> None:
    """A resume continues the run it names: --run-dir or --run-name naming another is refused."""
    problems = []
    if run_dir is not None and Path(run_dir).expanduser().resolve() != run.path.resolve():
        problems.append(f"--run-dir {run_dir}: a resume continues {run.path} in place")
    if run_name is not None and run_name not in (run.name, saved.train.run_name):
        problems.append(f"--run-name {run_name}: a resume keeps the run's name '{saved.train.run_name or run.name}'")
    if problems:
        raise UserError(problems + ["start a new run to train under another name or directory"])


def _task_for(args: argparse.Namespace):
    """The task a resumed run was trained with (an HRM run resumes as HRM), else this command's."""
    from aios_tui.engine.task import load_task

    if args.resume:
        from aios_tui.engine.checkpoint import read_meta
        from aios_tui.metrics.rundir import RunDir

        latest = RunDir(args.resume).latest_checkpoint()
        if latest is not None:
            recorded = read_meta(latest).get("task")
            if recorded:
                return load_task(recorded)
    return load_task(args.task_spec)


def _flag_args(overrides: dict) -> list[str]:
    out: list[str] = []
    for name, value in overrides.items():
        flag = flag_name(name)
        if isinstance(value, bool):
            out.append(flag if value else "--no-" + flag[2:])
        else:
            out += [flag, str(value)]
    return out


def _checked(args: argparse.Namespace, cfg: RunConfig):
    """Everything a start checks before it creates anything; (the config to run, its RunDir, its task)."""
    import dataclasses

    from aios_tui.engine import session
    from aios_tui.engine.preflight import check_all
    from aios_tui.metrics.rundir import RunDir

    if args.resume:
        from aios_tui.engine.resume import merge

        run = RunDir(Path(args.resume).resolve())
        merge(load_config(run.latest_checkpoint() / "config.toml"), cfg)  # refused changes exit 2 here
    else:
        run = RunDir(session.choose_run_dir(cfg, args.command_name).resolve())
        cfg = dataclasses.replace(cfg, train=dataclasses.replace(
            cfg.train, run_dir=str(run.path), run_name=cfg.train.run_name or run.name))
        session.ensure_free(run)
    task = _task_for(args)
    return check_all(cfg, task), run, task


def _detach(args: argparse.Namespace, cfg: RunConfig) -> int:
    """Check everything that needs no weights, prepare the run directory, start the child."""
    from aios_tui import notes
    from aios_tui.engine import session
    from aios_tui.metrics.run_lock import RunLock
    from aios_tui.metrics.launch import start_detached

    generated = not args.resume and session.is_generated(cfg)
    cfg, run, _ = _checked(args, cfg)
    notes.release()
    forward = ["--progress", "none" if args.progress == "none" else "lines"]
    if args.stop_after is not None:
        forward += ["--stop-after", str(args.stop_after)]
    lock, handed_down = None, {}
    if args.resume:
        overrides = overrides_from_args(args)
        overrides.pop("run_dir", None)
        child = [args.command_name, "--resume", str(run.path), *forward, *_flag_args(overrides)]
        if args.config:
            child += ["--config", str(Path(args.config).resolve())]
        # Of two resumes launched together, the one refused here says so and leaves the status
        # alone; a refusal in the engine would come after this process had exited 0.
        lock = RunLock.take(run.path)
        handed_down = lock.hand_down() if lock is not None else {}
        run.write_status(state="starting", pid=os.getpid(), error=None)
    else:
        # again: the checks above take a while, and a run may start meanwhile
        run, cfg = session.take(run, cfg, generated)
        session.prepare(run, cfg, pid=os.getpid(), total_steps=cfg.train.steps, command=args.command_name)
        child = [args.command_name, "--config", str(run.config_toml), "--run-dir", str(run.path), *forward]
    pid = start_detached(child, run.path, **handed_down)
    if lock is not None:
        lock.release()  # the engine holds it now
    run.write_status(pid=pid)
    print(f"run dir: {run.path}")
    print(f"pid: {pid}")
    print(f"follow it:  aios-tui tail {run.path} --follow")
    print(f"stop it:    touch {run.stop_file}   (saves a checkpoint first)")
    print(f"its output: {run.log_path}")
    return 0


def check_only(args: argparse.Namespace, cfg: RunConfig) -> int:
    """What `--detach` checks before it creates anything, and nothing more."""
    from aios_tui import notes

    cfg, _, task = _checked(args, cfg)
    notes.release()
    print(f"ok: {cfg.method_label()} on {task.describe_model(cfg)} would start")
    return 0


def run(args: argparse.Namespace) -> int:
    from aios_tui import notes

    # a refused start prints its errors alone: notes wait until the checks pass
    with notes.held():
        return _run(args)


def _run(args: argparse.Namespace) -> int:
    check_conflicts(args)
    if args.stop_after is not None and args.stop_after < 1:
        raise ConfigError([f"--stop-after: {args.stop_after} is out of range; valid: at least 1"])
    if args.resume:
        from aios_tui.commands.arguments import run_path

        args.resume = run_path(args.resume)
    cfg = _resume_config(args) if args.resume else config_from_args(args)
    if not args.resume:
        from aios_tui.commands.arguments import note_ignored_hrm_flags, note_ignored_peft_flags

        note_ignored_peft_flags(args, cfg.peft)
        note_ignored_hrm_flags(args)
    if args.check:
        return check_only(args, cfg)
    if args.detach:
        return _detach(args, cfg)

    task = _task_for(args)
    finish = None
    if getattr(task, "command", None) == "train-actv1":  # an HRM run resumed here: its bundle
        from aios_tui.commands.train_actv1 import finish_bundle

        finish = partial(finish_bundle, task)
    return train_in_foreground(args, cfg, task, finish)


def train_in_foreground(args: argparse.Namespace, cfg: RunConfig, task, finish=None) -> int:
    """Train in this process until the run ends, then ``finish(result)`` (a brain's bundle).

    A hang-up of the terminal must end neither: not while the model loads (the loop itself
    ignores it later) nor while ``finish`` completes the run."""
    from aios_tui.engine import session
    from aios_tui.engine.train import TrainingFailed, run_training

    run_dir = Path(args.resume) if args.resume else session.choose_run_dir(cfg, task.command)
    previous = signal.signal(signal.SIGHUP, signal.SIG_IGN) if _main_thread() else None
    try:
        try:
            result = run_training(cfg, run_dir, task=task, resume=bool(args.resume), stop_after=args.stop_after,
                                  progress=args.progress, generated=not args.resume and session.is_generated(cfg))
        except TrainingFailed as exc:
            for line in exc.problems:
                print(f"aios-tui: error: {line}", file=sys.stderr)
            return 1
        if finish is not None:
            finish(result)
    finally:
        if previous is not None:
            signal.signal(signal.SIGHUP, previous)
    return result.exit_code


def _main_thread() -> bool:
    import threading

    return threading.current_thread() is threading.main_thread()
