"""The training loop, top to bottom.

``run_training(cfg, run_dir)`` builds the model, data and adapter, and only then creates the
run directory, so a user mistake leaves nothing behind. It trains with AdamW under the
step-wise learning-rate schedule, logs a metrics line per ``log_every`` steps, evaluates,
checkpoints, and stops cleanly on a signal, a STOP file or ``stop_after``. ``resume=True``
continues from the run's latest checkpoint with exactly the state an uninterrupted run would
have had (weights, optimizer, scaler, RNG, data position, AdaLoRA's allocator).
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import hashlib
import math
import os
import random
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from aios_tui.atomic import open_like_plain_files
from aios_tui.config import RunConfig, load_config
from aios_tui.errors import UserError
from aios_tui.metrics.launch import launched_at
from aios_tui.metrics.rundir import RunDir, shown_method
from aios_tui.engine import checkpoint as ckpt
from aios_tui.engine.disk import no_room
from aios_tui.config.paths import anchored
from aios_tui import notes
from aios_tui.engine import fp8, quant, session
from aios_tui.engine.data import BlockSampler, eval_batches, make_batch, size_notes
from aios_tui.engine.log_lock import LogFileLock
from aios_tui.engine.models import resolve_device
from aios_tui.engine.preflight import (
    attention_problems, check_memory, compile_problems, output_problems, writable_problem,
)
from aios_tui.engine.optim import apply_options, build_optimizer, lr_at, schedule_of, set_lr
from aios_tui.engine.peft_setup import (
    adalora_model, adalora_state, apply_peft, check_targets, own_targets, parameters_summary, peft_config,
    quiet_imports, restore_adalora,
)
from aios_tui.engine.progress import Progress
from aios_tui.engine.readback import Readback
from aios_tui.engine.report import (Reporter, memory_fields, nvml_used_bytes, peak_rss_bytes, versions,
                                   vram_estimate)
from aios_tui.engine.resume import merge as merge_resume_config
from aios_tui.metrics.run_lock import RunLock
from aios_tui.engine.signals import StopControl
from aios_tui.engine.task import CausalLMTask, Task, task_spec

BASE_DIR = "base"  # a base model that cannot be re-read from its name (the built-in tiny)
MAX_BAD_LOGS = 3    # consecutive log steps with a non-finite loss before the run gives up


class TrainingFailed(Exception):
    """Training could not go on (out of memory, non-finite loss); ``problems`` are one line each."""

    def __init__(self, *problems: str, step: int | None = None):
        self.problems = list(problems)
        self.step = step  # the step it concerns, when that is not the loop's latest
        super().__init__("\n".join(problems))


@dataclass
class TrainResult:
    state: str                 # finished | stopped
    step: int
    run_dir: Path
    last_loss: float | None
    eval_loss: float | None
    checkpoint: Path | None
    exit_code: int = 0


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)


def autocast_dtype(cfg: RunConfig, device: torch.device) -> torch.dtype | None:
    if not cfg.memory.amp:
        return None
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.bfloat16


def _to_device(batch: dict, device: torch.device) -> dict:
    pin = device.type == "cuda"
    return {k: (v.pin_memory().to(device, non_blocking=True) if pin else v.to(device))
            if isinstance(v, torch.Tensor) else v for k, v in batch.items()}


def _item(x: Any) -> float | None:
    if x is None:
        return None
    value = float(x.item()) if isinstance(x, torch.Tensor) else float(x)
    return value if math.isfinite(value) else None


def _resume_plan(run: RunDir, cfg: RunConfig | None) -> tuple[RunConfig, Path, dict, list[str]]:
    """The config to continue with, the checkpoint, its meta, and the accepted changes."""
    if not run.path.is_dir():
        raise UserError(f"--resume {run.path}: no such run directory")
    blocker = run.resume_blocker(launchers=(os.getpid(), os.getppid()))
    if blocker:
        raise UserError(f"{run.path}: {blocker}")
    checkpoint = ckpt.find_checkpoint(run)
    saved = load_config(checkpoint / "config.toml")
    meta = ckpt.read_meta(checkpoint)
    requested = cfg or saved
    extended = run.read_status().get("total_steps")
    if (requested.train.steps == saved.train.steps and isinstance(extended, int)
            and extended > saved.train.steps and saved.method_label() != "adalora"):
        # a session that raised the total ended before its first checkpoint: the run's total is
        # still the one it was asked for, not the checkpoint's
        requested = dataclasses.replace(requested, train=dataclasses.replace(requested.train, steps=extended))
    cfg, changes = merge_resume_config(saved, requested)
    cfg.train.run_dir = str(run.path)
    if cfg.train.steps <= meta["step"]:
        if cfg.train.steps == saved.train.steps:  # no new total was asked for
            raise UserError(f"{run.path}: the run has done all {meta['step']} of its steps; to train further "
                            f"pass a new total with --steps (more than {meta['step']})")
        raise UserError(f"{run.path}: the run is already at step {meta['step']}, so --steps "
                        f"{cfg.train.steps} leaves nothing to train; --steps is the total, so pass "
                        f"more than {meta['step']} to train further")
    return cfg, checkpoint, meta, changes


def run_training(cfg: RunConfig | None, run_dir: str | os.PathLike, *, task: Task | None = None,
                 resume: bool = False, stop_after: int | None = None,
                 progress: str | Progress | None = "auto",
                 on_step: Callable[[int, dict], None] | None = None, generated: bool = False) -> TrainResult:
    """Train ``cfg`` in ``run_dir``; see the module docstring. ``cfg`` may be None with ``resume``.
    ``generated``: ``run_dir`` is a name session.choose_run_dir made up, which moves on to the
    next free one if another run takes it first.

    Raises UserError (nothing created) for bad input, TrainingFailed when training breaks down.
    ``on_step(step, record)`` is called with every metrics line (for benchmarks and tests), once
    the step after it has been queued (see ``flush``).
    """
    held: list[RunLock] = []
    try:
        return _session(cfg, run_dir, task, resume, stop_after, progress, on_step, generated, held)
    except Exception as exc:
        # a write that found no room anywhere else (config, status): one line, not a traceback
        failed = _room_failure(exc, run_dir)
        if failed is None:
            raise
        raise failed from None
    finally:
        for lock in held:  # a lock also goes with its process, however that ends
            lock.release()


def _room_failure(exc: Exception, where: str | os.PathLike) -> TrainingFailed | None:
    """A write under ``where`` that found no room (a full disk, a quota), as one line for the
    user; None for any other failure, a refusal or one already worded."""
    if isinstance(exc, (UserError, TrainingFailed)):
        return None
    why = no_room(exc, where)
    return None if why is None else TrainingFailed(f"writing the run's files in {where} failed: {why}")


def _session(cfg: RunConfig | None, run_dir: str | os.PathLike, task: Task | None, resume: bool,
             stop_after: int | None, progress: str | Progress | None,
             on_step: Callable[[int, dict], None] | None, generated: bool, held: list[RunLock]) -> TrainResult:
    began = time.time()
    quiet_imports()
    task = task or CausalLMTask()
    run = RunDir(Path(run_dir).resolve())
    prog = progress if isinstance(progress, Progress) else Progress(progress or "none")

    if resume:
        # before the status check and the long load: of two resumes started together, one trains.
        # The other never owned the run: its refusal leaves the status to the one that does.
        lock = RunLock.take(run.path)
        if lock is not None:
            held.append(lock)
    # A launcher (`--detach`, the console) marked the run starting and waits on this process:
    # a refusal or crash from here on must reach it as the run's failure, not as a silent exit.
    interrupted = functools.partial(_interrupted_before_training, run, False, resume, prog, task.command)
    with _refusals_reach_the_launcher(run, interrupted):
        # -- which config, which checkpoint ------------------------------------------------------
        checkpoint: Path | None = None
        changes: list[str] = []
        if resume:
            cfg, checkpoint, meta, changes = _resume_plan(run, cfg)
        else:
            assert cfg is not None, "a new run needs a config"
            run, cfg = session.take(run, cfg, generated)
            cfg = anchored(cfg)
        # a new run too: a directory left by a start that died while loading may hold a STOP
        _clear_old_requests(run, launched_at(began))
        task.preflight(cfg)
        device = resolve_device(cfg.train.device)
        check_memory(cfg, task)
        problems = (compile_problems(cfg, device.type) + attention_problems(cfg, device.type, task)
                    + fp8.problems(cfg, device, task.command)
                    + output_problems(cfg, None if resume else run.path))
        if resume and not cfg.train.log_file.strip():  # a new run's own file is made with its directory
            problems += filter(None, [writable_problem(session.metrics_path(cfg, run), "the run's metrics file",
                                                       directory=False, fix="move it away and resume")])
        if problems:
            raise UserError(problems)

        # -- model, data, adapter: everything that can fail for a user reason, before the run dir --
        seed_everything(cfg.train.seed)
        build_cfg = cfg
        if (run.path / BASE_DIR).is_dir():
            build_cfg = dataclasses.replace(cfg, model=dataclasses.replace(cfg.model, model=str(run.path / BASE_DIR)))
        model, tokenizer = task.build(build_cfg, device)
        data = task.load_data(cfg, tokenizer)
        if data.n_train < 1:
            raise UserError(f"dataset {cfg.data.dataset_file or '(sample)'}: no training blocks left after "
                            "the eval split; lower --eval-fraction or add text")
        model_name = cfg.model.model
        if cfg.peft.use_peft:
            cfg = own_targets(model, cfg, model_name)
        check_targets(model, cfg, model_name, task.peft_extras(cfg).get("modules_to_save", ()))
        if cfg.peft.use_peft:
            peft_config(cfg, cfg.train.steps, task.peft_extras(cfg))  # refuses bad combinations now
        state = None
        if checkpoint is not None:
            state = ckpt.load_trainer_state(checkpoint)
            with ckpt.applying(checkpoint):
                _check_same_data(state, data, cfg, checkpoint)

        if not resume:
            # again: another run may have taken the directory while the model loaded (two runs
            # started in the same second pick the same generated name)
            run, cfg = session.take(run, cfg, generated)
        # held until this session ends: two runs started at once must not share one --log-file
        log_lock = LogFileLock.take(cfg.train.log_file)

    try:
        log = Path(cfg.train.log_file) if cfg.train.log_file.strip() else None
        if not resume and log is not None and log.is_file() and log.stat().st_size > 0:
            notes.say(f"{log} holds earlier runs' metrics; this run's lines follow them")
        if not resume:
            for line in size_notes(data, cfg):
                notes.say(line)
        created = session.prepare(run, cfg, pid=os.getpid(), total_steps=cfg.train.steps, command=task.command,
                                  write_config=not resume)
        try:
            if not resume:
                if task.save_base(model, tokenizer, cfg, run.path / BASE_DIR):
                    open_like_plain_files(run.path / BASE_DIR)
            if cfg.memory.gradient_checkpointing:
                task.enable_gradient_checkpointing(model, cfg.peft.use_peft)
            model = apply_peft(model, cfg, cfg.train.steps, task.peft_extras(cfg), model_name)
            if cfg.train.fp8:
                fp8.apply(model, model_name)
        except KeyboardInterrupt:
            _interrupted_before_training(run, created, resume, prog, task.command)
            raise
        except Exception as exc:
            failed = exc if isinstance(exc, UserError) else _room_failure(exc, run.path)
            if failed is None:
                raise
            if created:  # a run that never began leaves nothing, and its room goes back
                shutil.rmtree(run.path, ignore_errors=True)
            else:
                _record_failure(run, failed, device)
            raise failed from None
        notes.release()  # the start is through: nothing from here on is a refusal
        try:
            return _train(cfg, run, task, model, tokenizer, data, device, checkpoint, state, changes,
                          stop_after, prog, on_step)
        except BaseException as exc:
            # The loop records its own failures; this catches what broke before it began.
            if isinstance(exc, KeyboardInterrupt) and run.read_status().get("state") in ("starting", "running"):
                _interrupted_before_training(run, created, resume, prog, task.command)
            else:
                _record_failure(run, exc, device)
            raise
    finally:
        if log_lock is not None:
            log_lock.release()


@contextlib.contextmanager
def _refusals_reach_the_launcher(run: RunDir, interrupted: Callable[[], None]):
    try:
        yield
    except KeyboardInterrupt:  # Ctrl-C while the model loads: no failure, and say so
        interrupted()
        raise
    except BaseException as exc:
        _record_failure(run, exc)
        raise


def _interrupted_before_training(run: RunDir, created: bool, resume: bool, prog: Progress,
                                 command: str) -> None:
    """Ctrl-C before the loop could stop at a step (the model loading, the run directory made): a new
    run has nothing worth keeping and leaves nothing (its name stays free); a resume leaves its
    run stopped at the checkpoint it had."""
    prog.close()
    if created:
        shutil.rmtree(run.path, ignore_errors=True)
        prog.message("interrupted before the first step: nothing was trained, and the run directory is removed")
        return
    status = run.read_status()  # a status another process owns (a refused resume) is left alone
    if status.get("state") in ("starting", "running") and status.get("pid") in (os.getpid(), os.getppid()):
        with contextlib.suppress(OSError):
            run.write_status(state="stopped", error=None)
    if resume:
        prog.message(f"interrupted before training resumed; the run stays stopped at its checkpoint: "
                     f"continue with `aios-tui {command} --resume {run.path}`")
    else:
        prog.message("interrupted before the first step: nothing was trained")


def _record_failure(run: RunDir, exc: BaseException, device: torch.device | None = None) -> None:
    """A run marked live under this process, or under the launcher that started it, says why it
    ended; a status another process owns (a run this one was refused) is left alone."""
    status = run.read_status()
    if status.get("state") in ("starting", "running") and status.get("pid") in (os.getpid(), os.getppid()):
        with contextlib.suppress(OSError):  # a full disk: the failure itself must still be raised
            run.write_status(state="failed", error=_failure_message(exc, device))


def _clear_old_requests(run: RunDir, since: float) -> None:
    """Requests left by an earlier session go; one made since this session was launched (say,
    while the model loads) is for this session and stays."""
    for request in (run.stop_file, run.checkpoint_request_file):
        try:
            if request.stat().st_mtime < since:
                request.unlink()
        except OSError:  # none there, or no directory to hold one (the output checks say why)
            pass


def _eta(step_time: float | None, steps_left: int) -> float | None:
    """Seconds to go, or None until a step after a session's first gives a rate: the first
    waits for compilation and warm-up, and an ETA from it alone can be off by hours."""
    if steps_left <= 0:
        return 0.0
    return None if step_time is None else step_time * steps_left


def data_digest(data) -> str:
    """A fingerprint of the packed blocks: resume must see exactly the data it left. Worked out
    once per session (a resume checks it, then its checkpoints record it), from the blocks in
    place rather than a copy of their bytes."""
    cached = getattr(data, "_digest", None)
    if cached is not None:
        return cached
    h = hashlib.blake2b(digest_size=16)
    for t in (data.train_ids, data.train_labels, data.eval_ids, data.eval_labels):
        h.update(np.ascontiguousarray(t.numpy()).view(np.uint8))
    data._digest = h.hexdigest()
    return data._digest


def _check_same_data(state: dict, data, cfg: RunConfig, checkpoint: Path) -> None:
    BlockSampler(data.n_train, cfg.train.seed).load_state_dict(state["data"])
    if state.get("data_digest") not in (None, data_digest(data)):
        raise UserError(f"dataset {cfg.data.dataset_file or '(the bundled sample)'}: its contents changed "
                        f"since {checkpoint.name}; resume needs the data the run was trained on")


def _train(cfg: RunConfig, run: RunDir, task: Task, model: torch.nn.Module, tokenizer: Any, data,
           device: torch.device, checkpoint: Path | None, state: dict | None, changes: list[str],
           stop_after: int | None, prog: Progress,
           on_step: Callable[[int, dict], None] | None) -> TrainResult:
    t = cfg.train
    total = t.steps
    peak_lr = t.effective_lr(cfg.peft)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    trainable = [p for p in model.parameters() if p.requires_grad]
    model.train()
    optimizer = build_optimizer(model, cfg, device)
    amp_dtype = autocast_dtype(cfg, device)
    scaler = torch.amp.GradScaler("cuda") if amp_dtype == torch.float16 else None
    sampler = BlockSampler(data.n_train, t.seed)
    evals = eval_batches(data, t.batch_size, t.eval_batches, pad_id)
    adalora = adalora_model(model)
    if t.torch_compile:
        if device.type == "cuda":
            task.compile(model)
        else:
            prog.message("note: torch_compile applies on CUDA only; training uncompiled on the CPU")

    reporter = Reporter(run, session.metrics_path(cfg, run))
    step, tokens_seen, elapsed_before = 0, 0, 0.0
    digest = data_digest(data)
    if checkpoint is not None and state is not None:
        ckpt.load_trainable(checkpoint, model)
        with ckpt.applying(checkpoint):
            optimizer.load_state_dict(state["optimizer"])
            apply_options(optimizer, cfg)
            if scaler is not None and state.get("scaler"):
                scaler.load_state_dict(state["scaler"])
            sampler.load_state_dict(state["data"])
            restore_adalora(model, state.get("adalora"), device)
            task.load_state_dict(state.get("task") or {})
            step, tokens_seen = int(state["step"]), int(state["tokens"])
            elapsed_before = float(state.get("elapsed_s", 0.0))
            ckpt.restore_rng(state["rng"])  # last: building the model above drew random numbers

    params = parameters_summary(model)
    spec = task_spec(task)
    savers = quant.summary(cfg, device)
    # A new run writes its header even into a shared --log-file that already has one.
    if checkpoint is None or not reporter.has_header():
        estimate, why = vram_estimate(cfg, task.model_config_dict(model), device)
        if why:
            prog.message(f"note: no VRAM estimate ({why})")
        reporter.header({
            "peft": "enabled" if cfg.peft.use_peft else "disabled", "method": cfg.method_label(),
            "config": cfg.to_dict(), "parameters": params, "model": task.describe_model(cfg),
            "device": str(device), "vram_estimate": estimate, "task": spec, "data": data.summary,
            "run_dir": str(run.path), "versions": versions(), "memory_savers": savers,
        })
    if checkpoint is None:
        reporter.event("started", step=0, total_steps=total, pid=os.getpid(), run_dir=str(run.path))
    else:
        reporter.event("resumed", step=step, total_steps=total, pid=os.getpid(),
                       checkpoint=str(checkpoint), changes=changes, config=cfg.to_dict())
    started_at = run.read_status().get("started_at") or time.time()
    reporter.status(force=True, state="running", pid=os.getpid(), step=step, total_steps=total,
                    run_name=run.name, method=shown_method(cfg.method_label(), task.command),
                    metrics=str(reporter.metrics_path),
                    started_at=started_at, error=None)
    prog.message(f"{'resuming' if checkpoint else 'training'} {cfg.method_label()} on {task.describe_model(cfg)} "
                 f"({params['trainable']:,} of {params['total']:,} parameters trainable, "
                 f"{params['trainable_pct']:.2f}%) on {device}; step {step}/{total}; run {run.path}")
    if savers:
        prog.message(quant.describe(savers))
    if t.fp8:
        prog.message("note: " + fp8.note(fp8.converted(model), t.torch_compile, device))
    for line in changes:
        prog.message(f"changed on resume: {line}")

    meta = {"task": spec, "method": cfg.method_label(), "model": cfg.model.model,
            "peft": cfg.peft.use_peft, "base": BASE_DIR if (run.path / BASE_DIR).is_dir() else None}
    last_checkpoint: Path | None = checkpoint
    session_start = time.monotonic()

    def save(at_step: int) -> Path:
        nonlocal last_checkpoint
        trainer_state = {
            "version": ckpt.STATE_VERSION, "step": at_step, "optimizer": optimizer.state_dict(),
            "scaler": scaler.state_dict() if scaler is not None else None, "rng": ckpt.capture_rng(),
            "data": sampler.state_dict(), "adalora": adalora_state(model), "task": task.state_dict(),
            "schedule": schedule_of(cfg), "tokens": tokens_seen, "data_digest": digest,
            "elapsed_s": elapsed_before + time.monotonic() - session_start,
        }
        path = ckpt.save_checkpoint(run, at_step, model=model, cfg=cfg, trainer_state=trainer_state, meta=meta,
                                    extra_writer=lambda d: task.save_artifacts(model, tokenizer, cfg, d))
        ckpt.prune(run, t.keep_last)
        last_checkpoint = path
        reporter.event("checkpoint", step=at_step, path=str(path))
        reporter.status(force=True, checkpoint=str(path), step=at_step)
        return path

    def evaluate() -> float | None:
        if not evals:
            return None
        model.eval()
        total_loss, total_w = torch.zeros((), device=device), 0
        with torch.no_grad(), torch.autocast(device.type, dtype=amp_dtype, enabled=amp_dtype is not None):
            for batch in evals:
                loss, w = task.eval_loss(model, _to_device(batch, device))
                total_loss += loss.float() * w
                total_w += w
        model.train()
        return _item(total_loss / max(1, total_w))

    control = StopControl(run.stop_file, run.checkpoint_request_file)
    session_steps = 0
    last_loss: float | None = None
    last_eval: float | None = None
    interval_loss = torch.zeros((), device=device)
    interval_extras: dict[str, Any] = {}
    interval_steps, interval_tokens = 0, 0
    interval_start, overhead = time.monotonic(), 0.0
    step_time_ema: float | None = None
    bad_logs = 0
    exit_state = "finished"
    pending: dict | None = None  # the last log step's line, its device values still on their way

    def flush() -> None:
        """Write the pending metrics line, once its device values have reached the host."""
        nonlocal pending, last_loss, bad_logs
        entry, pending = pending, None
        if entry is None:
            return
        at, force = entry["step"], entry["force"]
        record = {**entry["values"].values(), **entry["record"]}  # loss and grad_norm first
        loss_value, eval_loss = record["loss"], record.get("eval_loss")
        reporter.log(at, record)
        last_loss = loss_value
        reporter.status(force=force, step=at, last_loss=loss_value,
                        **({"eval_loss": eval_loss} if eval_loss is not None else {}))
        prog.update(at, total, loss_value, record["tokens_per_s"], record["eta_s"], eval_loss, force=force)
        if on_step is not None:
            on_step(at, {"step": at, **record})
        # A step that overflowed in fp16 is skipped by the scaler; a loss that stays
        # non-finite means the weights are gone and more steps only burn time.
        bad_logs = bad_logs + 1 if loss_value is None else 0
        if bad_logs >= MAX_BAD_LOGS:
            raise TrainingFailed(f"the loss is not finite (NaN or inf) at step {at}; "
                                 "lower the learning rate (--lr) or check the data", step=at)

    def flush_quietly() -> None:
        """On the way out after a failure: the last line if it can still be read, else nothing."""
        try:
            flush()
        except Exception:
            pass

    try:
        with control:
            while step < total:
                if control.stop_requested() or (stop_after is not None and session_steps >= stop_after):
                    exit_state = "stopped"
                    break

                # One optimizer step: grad_accum micro-batches, each weighted by its share of the
                # step's loss-carrying tokens, so the gradient is that of the token mean.
                set_lr(optimizer, lr_at(step, peak_lr, t.effective_warmup(), total, t.lr_schedule))
                batches = [make_batch(data.train_ids, data.train_labels, sampler.take(t.batch_size), pad_id)
                           for _ in range(t.grad_accum)]
                weights = [task.batch_weight(b) for b in batches]
                denom = max(1, sum(weights))
                for batch, w in zip(batches, weights):
                    with torch.autocast(device.type, dtype=amp_dtype, enabled=amp_dtype is not None):
                        out = task.loss(model, _to_device(batch, device), step)
                    share = w / denom
                    scaled = out.loss * share
                    (scaler.scale(scaled) if scaler is not None else scaled).backward()
                    report = out.report if out.report is not None else out.loss
                    interval_loss += report.detach().float() * share
                    for key, value in out.metrics.items():
                        value = value.detach().float() if isinstance(value, torch.Tensor) else float(value)
                        interval_extras[key] = interval_extras.get(key, 0.0) + value * share
                    interval_tokens += batch["n_tokens"]
                    # The graph ends here. Kept until the next forward, its nodes would hold
                    # what some kernels store on themselves rather than save for backward
                    # (bitsandbytes' 8-bit layer inputs): a second step's worth of them.
                    del out, scaled, report
                if scaler is not None:
                    scaler.unscale_(optimizer)
                grad_norm = torch.nn.utils.clip_grad_norm_(trainable, t.max_grad_norm or float("inf"))
                if scaler is not None:
                    scaler.step(optimizer)
                    scaler.update()
                else:
                    optimizer.step()
                if adalora is not None:
                    # Importance scores read the gradients: after step(), before zero_grad().
                    # peft counts from 0 (the updates done before this one), as in its examples;
                    # counting from 1 would reach the final allocation of a 1-step run before
                    # any importance was measured.
                    adalora.update_and_allocate(step)
                optimizer.zero_grad(set_to_none=True)
                step += 1
                session_steps += 1
                interval_steps += 1
                tokens_seen += sum(b["n_tokens"] for b in batches)

                eval_loss = None
                if evals and ((t.eval_every and step % t.eval_every == 0) or step == total):
                    flush()  # evaluation waits for the device anyway
                    t0 = time.monotonic()
                    eval_loss = last_eval = evaluate()
                    overhead += time.monotonic() - t0
                stopping = (control.stop_requested() or step == total
                            or (stop_after is not None and session_steps >= stop_after))
                # The first step of a session is logged at once, so a user sees a loss right away.
                first = session_steps == 1
                if step % t.log_every == 0 or stopping or eval_loss is not None or first:
                    now = time.monotonic()
                    span = max(1e-9, now - interval_start - overhead)  # eval and saving are not training
                    step_time = span / interval_steps
                    if not first:  # the first step waits for compilation and warm-up; the ETA must not
                        step_time_ema = step_time if step_time_ema is None else 0.7 * step_time_ema + 0.3 * step_time
                    # This line is written once the next step is queued; its device values are
                    # copied off now, behind this step's own work, so nothing waits for that.
                    flush()
                    pending = {
                        "step": step, "force": stopping,
                        "values": Readback({"loss": interval_loss / interval_steps, "grad_norm": grad_norm,
                                            **{k: v / interval_steps for k, v in interval_extras.items()}}),
                        "record": {
                            "lr": optimizer.param_groups[0]["lr"], "tokens_per_s": interval_tokens / span,
                            "step_time_s": step_time, "elapsed_s": elapsed_before + now - session_start,
                            "eta_s": _eta(step_time_ema, total - step), "tokens": tokens_seen,
                            **memory_fields(device),
                            **({"eval_loss": eval_loss} if eval_loss is not None else {}),
                        },
                    }
                    if stopping or eval_loss is not None:
                        flush()
                    interval_loss = torch.zeros((), device=device)
                    interval_extras, interval_steps, interval_tokens = {}, 0, 0
                    interval_start, overhead = time.monotonic(), 0.0
                elif pending is not None and step > pending["step"]:
                    flush()

                if (t.save_every and step % t.save_every == 0 and step < total) or control.checkpoint_requested():
                    flush()
                    t0 = time.monotonic()
                    save(step)
                    control.checkpoint_done()
                    overhead += time.monotonic() - t0

            flush()
            if exit_state == "finished" and step >= total:
                path = save(step)
                task.on_finish(model, tokenizer, cfg, run.path)
                _report_vram(reporter, device)
                reporter.event("finished", step=step, loss=last_loss, eval_loss=last_eval,
                               elapsed_s=elapsed_before + time.monotonic() - session_start)
                reporter.status(force=True, state="finished", step=step, checkpoint=str(path))
                prog.close()
                prog.message(f"finished at step {step}: loss {_fmt(last_loss)}"
                             + (f", eval loss {_fmt(last_eval)}" if last_eval is not None else "")
                             + f"; checkpoint {path}")
                return TrainResult("finished", step, run.path, last_loss, last_eval, path)

            # Stopped: by a signal, the STOP file or stop_after. Save unless nothing new was trained.
            reason = control.reason or (f"--stop-after {stop_after}" if stop_after is not None else "stop")
            reporter.status(force=True, state="stopping", step=step)
            path = save(step) if step > 0 and session_steps > 0 else last_checkpoint
            if control.reason == "STOP file":
                run.stop_file.unlink(missing_ok=True)
            _report_vram(reporter, device)
            reporter.event("stopped", step=step, reason=reason, checkpoint=str(path) if path else None)
            reporter.status(force=True, state="stopped", step=step, checkpoint=str(path) if path else None)
            prog.close()
            prog.message(f"stopped at step {step}/{total} ({reason})"
                         + (f"; checkpoint {path}; continue with `aios-tui {task.command} --resume {run.path}`"
                            if path else ""))
            return TrainResult("stopped", step, run.path, last_loss, last_eval, path, control.exit_code)
    except KeyboardInterrupt:
        flush_quietly()
        reporter.event("stopped", step=step, reason="interrupted twice", checkpoint=None)
        reporter.status(force=True, state="stopped", step=step)
        prog.close()
        raise
    except BaseException as exc:
        flush_quietly()
        room = _no_room_message(exc, run, task.command, step)
        message = room or _failure_message(exc, device)
        at = getattr(exc, "step", None) or step
        # on a full disk these may fail too; the error line to the user must still come out
        with contextlib.suppress(OSError):
            reporter.event("error", step=at, message=message, type=type(exc).__name__)
        with contextlib.suppress(OSError):
            reporter.status(force=True, state="failed", step=at, error=message)
        prog.close()
        if isinstance(exc, torch.cuda.OutOfMemoryError):
            raise TrainingFailed(message, "lower --batch-size or --max-seq-len, or turn on "
                                          "--gradient-checkpointing or --amp") from None
        if room:
            raise TrainingFailed(message) from None
        raise
    finally:
        reporter.close()


def _no_room_message(exc: BaseException, run: RunDir, command: str, step: int) -> str | None:
    """For a write that found no room (a checkpoint, a metrics line): what failed, and the
    checkpoint the run can go on from once there is room; None for any other failure."""
    if isinstance(exc, ckpt.CheckpointWriteFailed):
        what = str(exc)
    elif isinstance(exc, Exception) and not isinstance(exc, (TrainingFailed, UserError)):
        why = no_room(exc, run.path)
        if why is None:
            return None
        what = f"writing the run's files failed: {why}"
    else:
        return None
    latest = run.latest_checkpoint()
    if latest is None:
        return f"{what}; the run stopped at step {step} with no complete checkpoint"
    return (f"{what}; the run stopped at step {step}; its last good checkpoint is {latest.name}: make room, "
            f"then continue with `aios-tui {command} --resume {run.path}`")


def _fmt(x: float | None) -> str:
    return f"{x:.4f}" if x is not None else "n/a"


def _failure_message(exc: BaseException, device: torch.device | None) -> str:
    if isinstance(exc, torch.cuda.OutOfMemoryError):
        return f"out of GPU memory on {device or 'the GPU'}"
    if isinstance(exc, TrainingFailed):
        return " ".join(exc.problems)
    if isinstance(exc, UserError):
        return "; ".join(exc.problems)
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}".strip()


def _max_known(*values: int | None) -> int | None:
    known = [v for v in values if v is not None]
    return max(known) if known else None


def _report_vram(reporter: Reporter, device: torch.device) -> None:
    """Measured peaks next to the estimate in the header, for the calculator's users."""
    fields: dict[str, Any] = {"device": str(device)}
    if device.type == "cuda":
        fields.update(peak_allocated=torch.cuda.max_memory_allocated(device),
                      peak_reserved=torch.cuda.max_memory_reserved(device),
                      nvml_peak=_max_known(reporter.peak_nvml, nvml_used_bytes(fresh=True)))
    else:
        fields.update(peak_rss=peak_rss_bytes())
    try:
        from aios_tui.metrics.jsonl import read_header

        estimate = (read_header(reporter.metrics_path) or {}).get("vram_estimate")
    except Exception:
        estimate = None
    if isinstance(estimate, dict):
        fields["estimate_peak_allocated"] = estimate.get("peak_allocated_bytes")
        fields["estimate_device_used"] = estimate.get("device_used_bytes")
    reporter.event("vram_measured", **fields)
