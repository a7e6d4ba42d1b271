"""Getting a trained model out of a run: the adapter as peft saves it, or a merged model.

``load_trained`` rebuilds base + adapter (or the fully trained model) from a checkpoint, the
same way for export, ``aios-tui generate`` and tests. ``export_run`` writes:

- an adapter directory (``adapter_config.json`` + ``adapter_model.safetensors`` + tokenizer)
  that ``PeftModel.from_pretrained(base, DIR)`` loads; its ``base_model_name_or_path`` names
  the base the run used (for the built-in ``tiny``, the run's saved ``base/`` directory);
- with ``merge``, a plain model directory (adapter folded into the weights, or the fully
  trained weights) that ``AutoModelForCausalLM.from_pretrained(DIR)`` loads, tokenizer included.
  An adapter trained on a quantized base is folded into the base reloaded in full precision
  (a de-quantized copy); ``export.json`` records that under ``note``.

Each export is assembled under a temporary name and renamed into place, with an
``export.json`` saying where it came from.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from aios_tui.atomic import atomic_write_json, open_like_plain_files
from aios_tui.config import RunConfig, load_config
from aios_tui.errors import UserError
from aios_tui.metrics.rundir import RunDir
from aios_tui.engine import checkpoint as ckpt
from aios_tui.engine import quant
from aios_tui.engine.adapter_check import check_adapter, loading_adapter
from aios_tui.engine.disk import no_room
from aios_tui.engine.models import save_tokenizer
from aios_tui.engine.peft_setup import quiet_imports
from aios_tui.engine.task import Task, load_task

EXPORT_MARKER = "export.json"
BASE_DIR = "base"


@dataclass
class Trained:
    model: nn.Module
    tokenizer: Any
    task: Task
    cfg: RunConfig
    meta: dict
    checkpoint: Path
    base_source: str  # what the adapter applies to: a hub id or an absolute directory


def base_source(run: RunDir, cfg: RunConfig) -> str:
    if (run.path / BASE_DIR).is_dir():
        return str((run.path / BASE_DIR).resolve())
    name = cfg.model.model
    path = Path(name).expanduser()
    return str(path.resolve()) if path.is_dir() else name


def load_trained(run_dir: str | os.PathLike, step: int | None = None,
                 device: torch.device | str = "cpu", full_precision: bool = False) -> Trained:
    """Base model + the checkpoint's adapter (or its full weights), in eval mode.

    A run trained on a quantized base loads it quantized again, unless ``full_precision``:
    then the base comes in its full-precision dtype (what a merge goes into).
    """
    quiet_imports()
    run = RunDir(Path(run_dir).resolve())
    if not run.path.is_dir():
        raise UserError(f"{run_dir}: no such run directory")
    checkpoint = ckpt.find_checkpoint(run, step)
    cfg = load_config(checkpoint / "config.toml")
    meta = ckpt.read_meta(checkpoint)
    task = load_task(meta.get("task"))
    source = base_source(run, cfg)
    build_cfg = dataclasses.replace(cfg, model=dataclasses.replace(cfg.model, model=source))
    if full_precision:
        build_cfg = dataclasses.replace(build_cfg, memory=dataclasses.replace(
            cfg.memory, load_in_8bit=False, load_in_4bit=False))
    device = torch.device(device)
    if quant.mode(build_cfg):  # a quantized base is placed while it loads: there, not where it trained
        build_cfg = dataclasses.replace(build_cfg, train=dataclasses.replace(build_cfg.train, device=device.type))
    if meta.get("peft"):
        check_adapter(checkpoint)  # before the base loads: a damaged adapter fails at once
    base, tokenizer = task.build(build_cfg, device)
    if meta.get("peft"):
        from peft import PeftModel

        with loading_adapter(checkpoint):
            model = PeftModel.from_pretrained(base, checkpoint / ckpt.ADAPTER, is_trainable=False)
    else:
        model = base
        for p in model.parameters():
            p.requires_grad_(True)  # the checkpoint holds every trainable tensor: all of them
        ckpt.load_trainable(checkpoint, model)
        for p in model.parameters():
            p.requires_grad_(False)
    model.eval()
    return Trained(model, tokenizer, task, cfg, meta, checkpoint, source)


def check_out(out: Path) -> None:
    """Refuses an ``out`` that cannot become an export directory, before anything is loaded or made."""
    if out.exists():
        if not out.is_dir():
            raise UserError(f"--out {out}: exists and is not a directory")
        if any(out.iterdir()) and not (out / EXPORT_MARKER).is_file():
            raise UserError(f"--out {out}: exists and is not an earlier export; choose another --out")
        return
    check_parent(out)


def check_parent(out: Path) -> None:
    """Refuses an ``out`` under a file: its directory could never be made."""
    parent = out.parent
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir():
        raise UserError(f"--out {out}: {parent} is a file, not a directory")


def _prepare_out(out: Path) -> tuple[Path, Path | None]:
    """A temp dir beside ``out``, and the topmost parent made for it (None if none was);
    refuses to replace anything but an earlier export."""
    check_out(out)
    made = None
    for parent in reversed(out.parents):
        if not parent.exists():
            made = parent
            break
    tmp = out.parent / f".{out.name}.tmp-{os.getpid()}"
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        ckpt.remove_dead_temps(out.parent, f".{out.name}.tmp-")
        tmp.mkdir()
    except OSError as exc:
        _discard(tmp, made)
        raise UserError(f"--out {out}: cannot create a directory in {out.parent} ({exc.strerror or exc})") from None
    return tmp, made


def _discard(tmp: Path, made: Path | None) -> None:
    """Removes a failed export's temp dir and the parents made for it, so nothing is left behind."""
    shutil.rmtree(tmp, ignore_errors=True)
    if made is None:
        return
    parent = tmp.parent
    while True:
        try:
            parent.rmdir()
        except OSError:
            return
        if parent == made:
            return
        parent = parent.parent


def _finish(tmp: Path, out: Path, record: dict) -> Path:
    atomic_write_json(tmp / EXPORT_MARKER, {**record, "time": round(time.time(), 3)})
    open_like_plain_files(tmp)
    if out.exists():
        old = out.parent / f".{out.name}.old-{os.getpid()}"
        os.replace(out, old)
        os.replace(tmp, out)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(tmp, out)
    return out


def export_run(run_dir: str | os.PathLike, out: str | os.PathLike | None = None, *, merge: bool = False,
               step: int | None = None) -> tuple[Path, str]:
    """Write the adapter (or, with ``merge`` or for a full run, the model); returns (dir, kind)."""
    quiet_imports()
    run = RunDir(Path(run_dir).resolve())
    if not run.path.is_dir():
        raise UserError(f"{run_dir}: no such run directory")
    checkpoint = ckpt.find_checkpoint(run, step)
    meta = ckpt.read_meta(checkpoint)
    cfg = load_config(checkpoint / "config.toml")
    kind = "merged" if merge or not meta.get("peft") else "adapter"
    # An older checkpoint goes beside the latest's export, never over it.
    # (The latest when none was named, even if a live run saves a newer one meanwhile.)
    latest = step is None or checkpoint == run.list_checkpoints()[-1]
    target = Path(out).resolve() if out else run.path / (kind if latest else f"{kind}-step-{meta['step']:06d}")
    record = {"run": str(run.path), "checkpoint": str(checkpoint), "step": meta["step"],
              "method": meta.get("method"), "kind": kind, "base": base_source(run, cfg)}
    if meta.get("task"):
        record["task"] = meta["task"]
    quantized = quant.mode(cfg) if meta.get("peft") else None
    if quantized:
        record["quantized_base"] = quantized
        if kind == "merged":
            problem = quant.merge_problem(record["base"], quantized)
            if problem:
                raise UserError(problem)
            record["merged_into"] = f"{cfg.model.model_dtype} base reloaded from {record['base']}"
            record["note"] = quant.merge_note(quantized, record["base"], cfg.model.model_dtype)
        else:
            record["note"] = (f"the adapter was trained on {quant.a_label(quantized)} base; load that base with "
                              f"the same quantization to use it as trained, or in full precision to merge it")
    if kind == "adapter":
        src = checkpoint / ckpt.ADAPTER
        check_adapter(checkpoint)
    # Made before a merge loads the model, so an --out that cannot be written fails at once.
    tmp, made = _prepare_out(target)
    try:
        if kind == "merged":
            trained = load_trained(run.path, step, full_precision=bool(quantized))
            tokenizer = trained.tokenizer
        else:
            trained, tokenizer = None, _tokenizer_for(run, cfg, meta)
    except BaseException as exc:
        _discard(tmp, made)
        if isinstance(exc, Exception) and _removed(checkpoint, exc):
            raise _removed_error(checkpoint) from None
        raise
    try:
        if trained is None:
            for f in src.iterdir():
                if f.is_file():
                    shutil.copy2(f, tmp / f.name)
            config_path = tmp / ckpt.ADAPTER_CONFIG
            adapter_config = json.loads(config_path.read_text(encoding="utf-8"))
            adapter_config["base_model_name_or_path"] = record["base"]
            atomic_write_json(config_path, adapter_config)
        else:
            tied = bool(getattr(trained.model.config, "tie_word_embeddings", False))
            model = trained.model.merge_and_unload() if meta.get("peft") else trained.model
            if tied and not getattr(model.config, "tie_word_embeddings", True):
                untied = ("the output layer was trained apart from the input embeddings, so the merged "
                          "model keeps them untied (tie_word_embeddings = false)")
                record["note"] = f"{record['note']}; {untied}" if record.get("note") else untied
            model.save_pretrained(tmp)
        save_tokenizer(tokenizer, tmp)
        return _finish(tmp, target, record), kind
    except BaseException as exc:
        _discard(tmp, made)
        if not isinstance(exc, Exception):
            raise
        if isinstance(exc, OSError) and _removed(checkpoint, exc):
            raise _removed_error(checkpoint) from None
        # safetensors reports a full disk as its own error type, not an OSError
        why = no_room(exc, target.parent)
        if why:
            raise UserError(f"--out {target}: cannot write the export ({why}); free space there "
                            f"or export elsewhere with --out") from None
        if isinstance(exc, OSError):
            raise UserError(f"--out {target}: cannot write the export ({exc.strerror or exc})") from None
        raise


def _removed(checkpoint: Path, exc: BaseException) -> bool:
    """Whether ``exc`` came of ``checkpoint`` going away (a live run keeps only its last
    keep_last checkpoints, and deletes older ones as it saves)."""
    if isinstance(exc, FileNotFoundError) and str(exc.filename or "").startswith(str(checkpoint)):
        return True
    return not (checkpoint / ckpt.COMPLETE).exists()


def _removed_error(checkpoint: Path) -> UserError:
    return UserError(f"{checkpoint}: was removed while it was being exported (a run keeps only its last "
                     "--keep-last checkpoints); export again")


def _tokenizer_for(run: RunDir, cfg: RunConfig, meta: dict):
    from aios_tui.engine.models import load_tokenizer

    source = base_source(run, cfg)
    return load_tokenizer(source if source != "tiny" else "tiny")
