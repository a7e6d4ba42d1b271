"""Checkpoints: written whole or not at all, loaded without unpickling arbitrary objects.

    checkpoints/step-000200/
      trainable.safetensors   every trainable tensor at full shape (adapter, saved heads, or the
                              whole model for full fine-tuning): what resume loads
      adapter/                the adapter in peft's own format (PeftModel.from_pretrained)
      trainer_state.pt        optimizer, AMP scaler, RNG states, data position, step, AdaLoRA's
                              rank allocator; tensors and plain values only (weights_only=True)
      config.toml             the config in effect when it was written
      meta.json               step, task, method, model
      COMPLETE                written last

A checkpoint is assembled in ``.tmp-step-NNNNNN-<pid>`` and renamed into place, so a reader
(``RunDir.list_checkpoints``) never sees a partial one.
"""

from __future__ import annotations

import json
import os
import pickle
import random
import shutil
import time
import warnings
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np
import torch
from torch import nn

from aios_tui.atomic import atomic_write_json, open_like_plain_files
from aios_tui.config import RunConfig, save_config
from aios_tui.engine.disk import no_room
from aios_tui.errors import UserError, first_line
from aios_tui.metrics.rundir import RunDir, pid_alive

TRAINABLE = "trainable.safetensors"
TRAINER_STATE = "trainer_state.pt"
ADAPTER = "adapter"
ADAPTER_CONFIG = "adapter_config.json"
ADAPTER_WEIGHTS = "adapter_model.safetensors"
META = "meta.json"
COMPLETE = "COMPLETE"
STATE_VERSION = 1


def step_name(step: int) -> str:
    return f"step-{step:06d}"


def capture_rng() -> dict:
    """Python, NumPy, torch and CUDA generator states, in types torch.load(weights_only) accepts."""
    version, internal, gauss = random.getstate()
    np_state = np.random.get_state()
    state = {
        "python": [version, list(internal), gauss],
        "numpy": [np_state[0], torch.from_numpy(np_state[1].astype(np.int64)), int(np_state[2]),
                  int(np_state[3]), float(np_state[4])],
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }
    return state


def restore_rng(state: dict) -> None:
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    name, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(state["torch"])
    if state.get("cuda") and torch.cuda.is_available() and len(state["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(state["cuda"])


def trainable_state(model: nn.Module) -> dict[str, torch.Tensor]:
    return {n: p.detach().to("cpu", copy=True).contiguous()
            for n, p in model.named_parameters() if p.requires_grad}


def _fsync_tree(path: Path) -> None:
    for f in sorted(path.rglob("*")):
        if f.is_file():
            with open(f, "rb") as fh:
                os.fsync(fh.fileno())


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


class CheckpointWriteFailed(Exception):
    """A checkpoint found no room on disk; nothing of it is left behind. One line for the user."""


def save_checkpoint(run: RunDir, step: int, *, model: nn.Module, cfg: RunConfig, trainer_state: dict,
                    meta: dict, extra_writer=None) -> Path:
    """Write ``checkpoints/step-NNNNNN`` atomically; returns its path (an existing one is kept)."""
    from safetensors.torch import save_file

    final = run.checkpoints / step_name(step)
    if (final / COMPLETE).exists():
        return final
    run.checkpoints.mkdir(parents=True, exist_ok=True)
    _remove_dead_temps(run)  # a killed writer's leftovers: their room may be what this one needs
    tmp = run.checkpoints / f".tmp-{step_name(step)}-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        save_file(trainable_state(model), str(tmp / TRAINABLE))
        with open(tmp / TRAINER_STATE, "wb") as fh:  # through Python: a failed write keeps its errno
            torch.save(trainer_state, fh)
        if hasattr(model, "peft_config"):
            with warnings.catch_warnings():
                # AdaLoRA may prune a layer to rank 0; peft then warns about sharded (DeepSpeed)
                # tensors, which is not what happened here.
                warnings.filterwarnings("ignore", message=".*have invalid shape.*")
                model.save_pretrained(tmp / ADAPTER)
        save_config(cfg, tmp / "config.toml")
        atomic_write_json(tmp / META, {**meta, "step": step, "time": round(time.time(), 3)})
        if extra_writer is not None:
            extra_writer(tmp)
        open_like_plain_files(tmp)
        _fsync_tree(tmp)
        (tmp / COMPLETE).write_text(f"{step}\n")
        _fsync_tree(tmp)
        if final.exists():  # a leftover without COMPLETE: never a valid checkpoint
            shutil.rmtree(final)
        os.replace(tmp, final)
        _fsync_dir(run.checkpoints)
    except BaseException as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        why = no_room(exc, run.checkpoints) if isinstance(exc, Exception) else None
        if why:
            raise CheckpointWriteFailed(f"checkpoint {step_name(step)} could not be written in "
                                        f"{run.checkpoints}: {why}") from exc
        raise
    return final


def prune(run: RunDir, keep_last: int) -> list[Path]:
    """Delete all but the newest ``keep_last`` complete checkpoints, and dead temp dirs."""
    removed = []
    for old in run.list_checkpoints()[:-keep_last] if keep_last > 0 else []:
        # COMPLETE first: a kill halfway through the removal must not leave a checkpoint that
        # still claims to be whole with its weights gone
        (old / COMPLETE).unlink(missing_ok=True)
        shutil.rmtree(old, ignore_errors=True)
        removed.append(old)
    _remove_dead_temps(run)
    return removed


def _remove_dead_temps(run: RunDir) -> None:
    if run.checkpoints.is_dir():
        remove_dead_temps(run.checkpoints, ".tmp-step-")


def remove_dead_temps(directory: Path, prefix: str) -> None:
    """Remove the temp dirs ``prefix``-NAME-PID in ``directory`` that no live writer owns (a killed
    checkpoint save or export leaves one, as big as what it wrote). One named with this process's
    pid is a leftover too: after a reboot a new process may well be given a killed one's pid."""
    try:
        names = [p for p in directory.iterdir() if p.name.startswith(prefix)]
    except OSError:
        return
    for tmp in names:
        pid = tmp.name.rsplit("-", 1)[-1]
        if not (pid.isdigit() and pid_alive(int(pid))) or pid == str(os.getpid()):
            shutil.rmtree(tmp, ignore_errors=True)


def find_checkpoint(run: RunDir, step: int | None = None) -> Path:
    cps = run.list_checkpoints()
    if not cps:
        raise UserError(f"{run.path}: has no complete checkpoint")
    if step is None:
        return cps[-1]
    for cp in cps:
        if cp.name == step_name(step):
            return cp
    have = ", ".join(str(int(c.name.split("-")[1])) for c in cps)
    raise UserError(f"{run.path}: no checkpoint at step {step} (checkpoints: {have})")


def damaged(checkpoint: Path, name: str, exc: BaseException | str) -> UserError:
    """The error for a checkpoint file that cannot be read, with the way back to an earlier one."""
    why = first_line(exc)
    names = [p.name for p in RunDir(checkpoint.parent.parent).list_checkpoints()]  # in step order
    earlier = names[:names.index(checkpoint.name)] if checkpoint.name in names else []
    fix = (f"remove it (rm -r {checkpoint}) to use {earlier[-1]} instead" if earlier
           else "there is no earlier checkpoint to fall back on")
    return UserError(f"{checkpoint}: {name} cannot be read ({why}); the checkpoint is damaged: {fix}")


def read_meta(checkpoint: Path) -> dict[str, Any]:
    try:
        meta = json.loads((checkpoint / META).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise damaged(checkpoint, META, exc) from None
    if not isinstance(meta, dict):
        raise damaged(checkpoint, META, f"it holds {type(meta).__name__}, not an object")
    step = meta.get("step")
    if "step" not in meta:
        raise damaged(checkpoint, META, "it has no 'step'")
    if not isinstance(step, int) or isinstance(step, bool) or step < 0:
        raise damaged(checkpoint, META, f"its step is {step!r}, not a whole number")
    if not isinstance(meta.get("peft", False), bool):  # "no" would count as an adapter run
        raise damaged(checkpoint, META, f"its peft is {meta['peft']!r}, not true or false")
    return meta


def load_trainer_state(checkpoint: Path, device: torch.device | str = "cpu") -> dict:
    try:
        state = torch.load(checkpoint / TRAINER_STATE, map_location=device, weights_only=True)
    except pickle.UnpicklingError:
        raise damaged(checkpoint, TRAINER_STATE, "it holds objects other than tensors and plain values, "
                      "which are never loaded") from None
    except Exception as exc:  # a truncated or overwritten file fails in torch's zip or pickle readers
        raise damaged(checkpoint, TRAINER_STATE, exc) from None
    if not isinstance(state, dict):
        raise damaged(checkpoint, TRAINER_STATE, f"it holds {type(state).__name__}, not a trainer state")
    if state.get("version") != STATE_VERSION:
        raise UserError(f"{checkpoint}: trainer state version {state.get('version')} is not supported")
    return state


@contextmanager
def applying(checkpoint: Path, name: str = TRAINER_STATE,
             fail: Callable[[Path, str, BaseException | str], UserError] = damaged) -> Iterator[None]:
    """Around putting a checkpoint file's contents to use: a file that loads but holds the wrong
    things (a field missing, of another type or shape) is a damaged checkpoint, said as one.
    ``fail`` makes the error (a brain bundle says it its own way)."""
    from safetensors import SafetensorError

    try:
        yield
    except (KeyError, TypeError, ValueError, IndexError, AttributeError, SafetensorError) as exc:
        why = f"it has no {exc.args[0]!r}" if isinstance(exc, KeyError) and exc.args else exc
        raise fail(checkpoint, name, why) from None
    except RuntimeError as exc:  # torch's load_state_dict on a tensor of another shape
        if type(exc).__name__ == "OutOfMemoryError" or "size mismatch" not in str(exc):
            raise
        raise fail(checkpoint, name, next(line.strip() for line in str(exc).splitlines()
                                          if "size mismatch" in line)) from None


def load_trainable(checkpoint: Path, model: nn.Module, strict: bool = True) -> None:
    """Copy the saved trainable tensors into ``model`` (same names, same shapes)."""
    from safetensors.torch import load_file

    try:
        saved = load_file(str(checkpoint / TRAINABLE), device="cpu")
    except Exception as exc:  # safetensors' own error type for a torn header or body
        raise damaged(checkpoint, TRAINABLE, exc) from None
    params = dict(model.named_parameters())
    wanted = {n for n, p in params.items() if p.requires_grad}
    missing = sorted(wanted - saved.keys())
    unknown = sorted(saved.keys() - params.keys())
    if strict and (missing or unknown):
        detail = (f"missing {', '.join(missing[:3])}" if missing else f"unexpected {', '.join(unknown[:3])}")
        raise UserError(f"{checkpoint}: does not fit the model ({detail}); "
                        "was it written with another model or adapter config?")
    with torch.no_grad():
        for name, tensor in saved.items():
            if name not in params:
                continue
            p = params[name]
            if p.shape != tensor.shape:
                raise UserError(f"{checkpoint}: {name} has shape {tuple(tensor.shape)}, the model "
                                f"has {tuple(p.shape)}")
            p.copy_(tensor.to(p.device, p.dtype))
