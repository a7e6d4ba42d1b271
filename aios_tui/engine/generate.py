"""Sampling from what a run trained: a run directory, an exported adapter or a model directory."""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch

from aios_tui.errors import UserError
from aios_tui.engine.peft_setup import quiet_imports
from aios_tui.engine.task import CausalLMTask


def _load_exported(path: Path, device: torch.device):
    """(model, tokenizer) from an exported adapter dir or a plain model dir."""
    from aios_tui.engine.models import build_tiny, load_hf_model, load_tokenizer

    if (path / "adapter_config.json").is_file():
        from peft import PeftModel

        base_name = json.loads((path / "adapter_config.json").read_text(encoding="utf-8")).get(
            "base_model_name_or_path") or ""
        if not base_name:
            raise UserError(f"{path}: adapter_config.json does not name its base model")
        base = build_tiny() if base_name == "tiny" else load_hf_model(base_name, torch.float32, "sdpa")
        model = PeftModel.from_pretrained(base.to(device), path)
    else:
        model = load_hf_model(str(path), torch.float32, "sdpa").to(device)
    tok_source = str(path) if (path / "tokenizer_config.json").is_file() else "tiny"
    return model.eval(), load_tokenizer(tok_source)


def _hrm_generator(path: Path):
    """HRM ACTv1's sampler when ``path`` is a brain bundle or a saved HRM model, else None."""
    try:
        from aios_tui.engine.hrm.generate import generate_from_path, is_hrm_path
    except ImportError:
        return None
    return generate_from_path if is_hrm_path(path) else None


def generate(path: str | os.PathLike, prompt: str, *, max_new_tokens: int = 64, temperature: float = 0.8,
             top_k: int = 50, seed: int = 0, step: int | None = None, device: str = "auto",
             chat: bool = False) -> str:
    """The sampled continuation of ``prompt`` (the prompt itself not included); with ``chat``, the
    answer to ``prompt`` as one user turn of the model's chat template."""
    quiet_imports()
    from aios_tui.engine.models import resolve_device

    path = Path(path).expanduser()
    if not path.exists():
        raise UserError(f"{path}: no such run or model directory")
    dev = resolve_device(device)
    if (path / "checkpoints").is_dir() or (path / "status.json").is_file():
        from aios_tui.engine.export import load_trained

        trained = load_trained(path, step, dev)
        return trained.task.generate(trained.model, trained.tokenizer, prompt, max_new_tokens=max_new_tokens,
                                     temperature=temperature, top_k=top_k, seed=seed, chat=chat)
    if step is not None:
        # An export (or a brain bundle) holds one set of weights: a step cannot be chosen there.
        raise UserError(f"--checkpoint: {path} is not a run directory; it holds one set of weights "
                        "(export an older checkpoint with `aios-tui export RUN --checkpoint STEP`)")
    hrm = _hrm_generator(path)
    if hrm is not None:
        return hrm(path, prompt, max_new_tokens=max_new_tokens, temperature=temperature, top_k=top_k,
                   seed=seed, device=device, chat=chat).text
    if (path / "adapter_config.json").is_file() or (path / "config.json").is_file():
        model, tokenizer = _load_exported(path, dev)
        return CausalLMTask().generate(model, tokenizer, prompt, max_new_tokens=max_new_tokens,
                                       temperature=temperature, top_k=top_k, seed=seed, chat=chat)
    raise UserError(f"{path}: not a run directory, an exported adapter or a model directory")
