"""ACT-aware decoding: every new token gets the segments the model would train with.

For each token the prefix (its last ``max_seq_len`` tokens) runs from the initial carry
through up to ``halt_max_steps`` segments. With ``halting="adaptive"`` decoding stops
early when the halting head, read at the last position, prefers halting
(``q_halt > q_continue``), exactly the rule training uses; ``halting="max"`` always runs
every segment, as evaluation does. There is no key/value cache: the recurrent state of the
whole prefix is recomputed per token, which is what the recurrence costs without one.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch

from aios_tui.engine.hrm.model import HRMForCausalLM

HALTING_MODES = ("adaptive", "max")


@dataclass
class Generation:
    text: str
    token_ids: list[int]
    segments: list[int] = field(default_factory=list)  # segments used for each new token

    @property
    def mean_segments(self) -> float:
        return sum(self.segments) / len(self.segments) if self.segments else 0.0


def _unwrap(model: torch.nn.Module) -> HRMForCausalLM:
    model = getattr(model, "_orig_mod", model)
    if hasattr(model, "get_base_model"):
        model = model.get_base_model()
    if not isinstance(model, HRMForCausalLM):
        raise TypeError(f"expected an HRM ACTv1 model, got {type(model).__name__}")
    return model


@torch.no_grad()
def next_token_logits(model: torch.nn.Module, ids: torch.Tensor, halting: str = "adaptive") -> tuple[torch.Tensor, int]:
    """Logits for the token after ``ids`` ([1, T]) and the number of segments used."""
    if halting not in HALTING_MODES:
        raise ValueError(f"halting must be one of {HALTING_MODES}, not {halting!r}")
    hrm = _unwrap(model)
    max_steps = hrm.config.halt_max_steps
    carry = hrm.initial_carry(ids.shape[0], ids.shape[1])
    for step in range(1, max_steps + 1):
        out = hrm.segment(ids, carry, compute_logits=False)
        carry = out.carry
        if halting == "adaptive" and step < max_steps and bool((out.q_halt_logits > out.q_continue_logits).all()):
            break
    return hrm.lm_head(out.hidden_states[:, -1]).float(), step


@torch.no_grad()
def generate_ids(model: torch.nn.Module, prompt_ids: list[int], *, max_new_tokens: int = 64,
                 temperature: float = 0.8, top_k: int | None = 50, eos_token_id: int | None = None,
                 halting: str = "adaptive", seed: int | None = None,
                 on_token: Callable[[int], None] | None = None) -> tuple[list[int], list[int]]:
    """New token ids after ``prompt_ids`` and the segments each one took; ``on_token`` gets each
    new token as it is sampled (not the eos that ends the answer)."""
    hrm = _unwrap(model)
    was_training = hrm.training
    hrm.eval()
    device = hrm.embed_tokens.weight.device
    gen = torch.Generator(device="cpu")
    gen.manual_seed(seed if seed is not None else torch.seed())
    window = hrm.config.max_seq_len
    ids = list(prompt_ids) or [hrm.config.bos_token_id if hrm.config.bos_token_id is not None else 0]
    new: list[int] = []
    segments: list[int] = []
    try:
        for _ in range(max_new_tokens):
            ctx = torch.tensor([ids[-window:]], device=device)
            logits, used = next_token_logits(hrm, ctx, halting)
            logits = logits[0].cpu()
            if temperature <= 0:
                token = int(logits.argmax())
            else:
                logits = logits / temperature
                if top_k:
                    kth = torch.topk(logits, min(top_k, logits.numel())).values[-1]
                    logits = logits.masked_fill(logits < kth, float("-inf"))
                token = int(torch.multinomial(torch.softmax(logits, -1), 1, generator=gen))
            segments.append(used)
            if eos_token_id is not None and token == eos_token_id:
                break
            ids.append(token)
            new.append(token)
            if on_token is not None:
                on_token(token)
    finally:
        hrm.train(was_training)
    return new, segments


def generate_text(model: torch.nn.Module, tokenizer, prompt: str, chat: bool = False, **kwargs) -> Generation:
    from aios_tui.engine.data import encode_prompt

    prompt_ids = encode_prompt(tokenizer, prompt, chat)  # framed as training framed documents
    kwargs.setdefault("eos_token_id", tokenizer.eos_token_id)
    new, segments = generate_ids(model, prompt_ids, **kwargs)
    return Generation(text=tokenizer.decode(new, skip_special_tokens=True), token_ids=new, segments=segments)


def is_hrm_path(path: str | Path) -> bool:
    """A brain bundle, or a directory holding a saved HRMForCausalLM (e.g. a merged export)."""
    from aios_tui.engine.hrm.task import is_hrm_dir

    path = Path(path).expanduser()
    return (path / "brain.json").exists() or is_hrm_dir(str(path)) or _hrm_adapter_base(path) is not None


def _hrm_adapter_base(path: Path) -> Path | None:
    """The bundle or saved HRM model an exported adapter at ``path`` applies to, else None."""
    import json

    from aios_tui.engine.hrm.task import is_hrm_dir

    try:
        config = json.loads((path / "adapter_config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    base = config.get("base_model_name_or_path") if isinstance(config, dict) else None
    if not base:
        return None
    base_path = Path(base).expanduser()
    if (base_path / "brain.json").exists() or is_hrm_dir(str(base_path)):
        return base_path
    return None


def load_for_generation(path: str | Path, device: torch.device):
    """(model, tokenizer) from a bundle (adapter merged in), an adapter exported from one (or
    from an HRM run), or a saved model directory."""
    from aios_tui.engine.hrm.bundle import load_bundle
    from aios_tui.engine.hrm.task import load_saved

    path = Path(path).expanduser()
    if (path / "brain.json").exists():
        loaded = load_bundle(path, device=device)
        return loaded.model, loaded.tokenizer
    adapter_base = _hrm_adapter_base(path)
    if adapter_base is not None:
        # an adapter exported from a bundle or an HRM run: its base, the adapter folded in
        from peft import PeftModel

        from aios_tui.engine.hrm.bundle import load_base, load_tokenizer

        if (adapter_base / "brain.json").exists():
            base = load_base(adapter_base, device=device)
        else:
            base = load_saved(adapter_base, device)[0]
        model = PeftModel.from_pretrained(base, str(path)).merge_and_unload().eval()
        has_tokenizer = (path / "tokenizer_config.json").is_file()
        return model, load_tokenizer(path if has_tokenizer else adapter_base)
    model, tokenizer = load_saved(path, device)
    return model.eval(), tokenizer


def generate_from_path(path: str | Path, prompt: str, *, max_new_tokens: int = 64,
                       temperature: float = 0.8, top_k: int | None = 50, seed: int | None = None,
                       halting: str = "adaptive", device: str = "auto", chat: bool = False) -> Generation:
    """Sample from a brain bundle (its adapter applied, if it has one) or a saved model directory."""
    from aios_tui.engine.models import resolve_device

    model, tokenizer = load_for_generation(path, resolve_device(device))
    return generate_text(model, tokenizer, prompt, max_new_tokens=max_new_tokens,
                         temperature=temperature, top_k=top_k or None, seed=seed, halting=halting, chat=chat)
