"""Sampling from what a run trained: a run directory, an exported adapter or a model directory.

``load`` reads the weights once; the ``Loaded`` it returns answers prompt after prompt (the
interactive `generate` and --prompt-file ask many), streaming each answer as it is sampled.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import torch

from aios_tui.errors import UserError
from aios_tui.engine.peft_setup import quiet_imports
from aios_tui.engine.task import CausalLMTask

Turns = Sequence[tuple[str, str]]  # (role, text), as aios_tui.data.chat holds conversations


@dataclass(frozen=True)
class Sampling:
    max_new_tokens: int = 64
    temperature: float = 0.8
    top_k: int = 50
    top_p: float | None = None  # None: the model's own generation config decides, as before --top-p
    seed: int = 0

    @property
    def greedy(self) -> bool:
        # Under 1e-4 the logits divided by the temperature overflow (inf, then NaN probabilities
        # that torch refuses to sample); sampling that cold picks the likeliest token anyway.
        return self.temperature < 1e-4


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


def _hrm_loader(path: Path):
    """HRM ACTv1's loader when ``path`` is a brain bundle or a saved HRM model, else None."""
    try:
        from aios_tui.engine.hrm.generate import is_hrm_path, load_for_generation
    except ImportError:
        return None
    return load_for_generation if is_hrm_path(path) else None


class Loaded:
    """A model and its tokenizer, loaded once, sampling answer after answer."""

    def __init__(self, model, tokenizer, hrm: bool):
        self.model, self.tokenizer, self.hrm = model, tokenizer, hrm

    def check(self, sampling: Sampling, chat: bool) -> None:
        """Refuses what this model cannot do, before any prompt is asked: --chat on a tokenizer
        without a chat template, --top-p on an HRM model."""
        if chat:
            from aios_tui.data.chat import generation_prompt

            generation_prompt(self.tokenizer, "")
        if self.hrm and sampling.top_p is not None and sampling.top_p < 1:
            raise UserError("--top-p: an HRM ACTv1 model samples with --top-k only; drop --top-p")

    def prompt_ids(self, prompt: str, chat: bool = False, history: Turns = ()) -> list[int]:
        """``prompt`` framed as training framed documents; with ``chat``, as the user's next turn
        after ``history`` (earlier turns), rendered by the chat template up to the answer."""
        from aios_tui.engine.data import encode_prompt

        if not chat or not history:
            ids = encode_prompt(self.tokenizer, prompt, chat)
            if ids or self.hrm:  # HRM ACTv1's sampler starts an empty prompt from its bos itself
                return ids
            # An empty prompt where the tokenizer puts nothing before a document (GPT-2's bos is
            # its eos, Qwen has none): training put an eos before every document but the first.
            if self.tokenizer.eos_token_id is None:
                raise UserError("the prompt is empty and the model's tokenizer has no bos or eos "
                                "token to start from; give some text to continue")
            return [self.tokenizer.eos_token_id]
        messages = [{"role": role, "content": text} for role, text in (*history, ("user", prompt))]
        try:
            text = self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        except Exception as exc:  # the template is the model's own code: whatever it raises, say it
            raise UserError(f"--chat: the model's chat template refuses this conversation ({exc})") from None
        return list(self.tokenizer(text, add_special_tokens=False, verbose=False)["input_ids"])

    def sample(self, ids: list[int], sampling: Sampling, on_text: Callable[[str], None] | None = None) -> str:
        """The text sampled after ``ids`` (special tokens left out); ``on_text`` gets it piece by
        piece as it is sampled, the pieces together the text itself."""
        try:
            return self._sample_hrm(ids, sampling, on_text) if self.hrm else self._sample_hf(ids, sampling, on_text)
        except torch.cuda.OutOfMemoryError:
            # a session goes on after it: the model stays loaded, what this answer took is freed
            torch.cuda.empty_cache()
            raise UserError(f"out of GPU memory sampling {sampling.max_new_tokens} tokens; ask for fewer "
                            "(--max-new-tokens), free the GPU (`aios-tui gpu` shows who holds it) "
                            "or use --device cpu") from None

    def _sample_hrm(self, ids: list[int], s: Sampling, on_text: Callable[[str], None] | None) -> str:
        from aios_tui.engine.hrm.generate import generate_ids

        self.check(s, chat=False)
        stream = None
        if on_text is not None:
            from aios_tui.engine.text_stream import TextStream

            stream = TextStream(self.tokenizer, on_text)
        new, _ = generate_ids(self.model, ids, max_new_tokens=s.max_new_tokens,
                              temperature=0.0 if s.greedy else s.temperature,
                              top_k=s.top_k or None, eos_token_id=self.tokenizer.eos_token_id, seed=s.seed,
                              on_token=None if stream is None else (lambda token: stream.add([token])))
        if stream is not None:
            stream.end()
        return self.tokenizer.decode(new, skip_special_tokens=True)

    def check_room(self, ids: list[int], s: Sampling) -> None:
        """Refuses a prompt that leaves no room for the answer in the model's positions."""
        limit = None if self.hrm else getattr(self.model.config, "max_position_embeddings", None)
        if limit and len(ids) + s.max_new_tokens > limit:
            # Past its positions a model with learned ones (GPT-2) fails on an index error.
            room = limit - len(ids)
            raise UserError(f"--max-new-tokens: the prompt's {len(ids)} tokens and {s.max_new_tokens} new "
                            f"ones exceed the model's {limit} positions; "
                            + (f"use --max-new-tokens {room} or less" if room > 0 else "use a shorter prompt"))

    def _sample_hf(self, prompt: list[int], s: Sampling, on_text: Callable[[str], None] | None) -> str:
        model, tokenizer = self.model, self.tokenizer
        self.check_room(prompt, s)
        ids = torch.tensor([prompt], device=next(model.parameters()).device)
        torch.manual_seed(s.seed)
        kwargs: dict[str, Any] = {"max_new_tokens": s.max_new_tokens, "pad_token_id": tokenizer.pad_token_id,
                                  "eos_token_id": tokenizer.eos_token_id}
        if not s.greedy:
            kwargs.update(do_sample=True, temperature=s.temperature, top_k=s.top_k or None)
            if s.top_p is not None:
                kwargs["top_p"] = s.top_p
        else:
            kwargs.update(do_sample=False)
        if on_text is not None:
            from aios_tui.engine.text_stream import TextStream

            kwargs["streamer"] = TextStream(tokenizer, on_text)
        with torch.no_grad():
            out = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), **kwargs)
        return tokenizer.decode(out[0, ids.shape[1]:], skip_special_tokens=True)


def load(path: str | os.PathLike, *, step: int | None = None, device: str = "auto") -> Loaded:
    """The model a run (its latest checkpoint, or ``step``'s), an export or a model dir holds."""
    quiet_imports()
    from aios_tui.engine.models import resolve_device

    path = Path(path).expanduser()
    if not path.exists():
        raise UserError(f"{path}: no such run or model directory")
    dev = resolve_device(device)
    if (path / "checkpoints").is_dir() or (path / "status.json").is_file():
        from aios_tui.engine.export import load_trained

        trained = load_trained(path, step, dev)
        return Loaded(trained.model, trained.tokenizer, hrm=not isinstance(trained.task, CausalLMTask))
    if step is not None:
        # An export (or a brain bundle) holds one set of weights: a step cannot be chosen there.
        raise UserError(f"--checkpoint: {path} is not a run directory; it holds one set of weights "
                        "(export an older checkpoint with `aios-tui export RUN --checkpoint STEP`)")
    hrm = _hrm_loader(path)
    if hrm is not None:
        return Loaded(*hrm(path, dev), hrm=True)
    if (path / "adapter_config.json").is_file() or (path / "config.json").is_file():
        return Loaded(*_load_exported(path, dev), hrm=False)
    raise UserError(f"{path}: not a run directory, an exported adapter or a model directory")


def generate(path: str | os.PathLike, prompt: str, *, max_new_tokens: int = 64, temperature: float = 0.8,
             top_k: int = 50, top_p: float | None = None, seed: int = 0, step: int | None = None,
             device: str = "auto", chat: bool = False) -> str:
    """The sampled continuation of ``prompt`` (the prompt itself not included); with ``chat``, the
    answer to ``prompt`` as one user turn of the model's chat template."""
    loaded = load(path, step=step, device=device)
    sampling = Sampling(max_new_tokens=max_new_tokens, temperature=temperature, top_k=top_k, top_p=top_p, seed=seed)
    return loaded.sample(loaded.prompt_ids(prompt, chat), sampling)
