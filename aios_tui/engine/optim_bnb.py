"""bitsandbytes' 8-bit AdamW: the optimizer behind ``--use-8bit-optimizer``.

- On CUDA the paged variant (``PagedAdamW8bit``): state buffers of 100K elements or more live in
  unified memory, which the driver pages out to host RAM when the GPU runs short and back in
  before the update. That is the optimizer-state offload this engine offers; there is no
  separate ``--cpu-offload`` switch, because paging already moves exactly the optimizer state,
  only when memory is short, inside a library that is maintained for it.
- On the CPU the plain ``AdamW8bit`` (bitsandbytes has CPU kernels for it; paging is CUDA only).
- Tensors under bitsandbytes' ``min_8bit_size`` (4096 elements: norms, biases, small adapter
  matrices) keep 32-bit state, as bitsandbytes decides.
- Embedding tables that are trained keep 32-bit state too (bitsandbytes' advice for word
  embeddings, which an 8-bit state makes unstable; Hugging Face's Trainer does the same). The
  override is registered on a manager private to the optimizer, so nothing leaks into other
  optimizers of the same process.

The state round-trips through ``state_dict``/``load_state_dict`` exactly (uint8 states, absmax
and quantisation maps included), and holds only tensors and plain values, so a checkpoint
loads with ``torch.load(weights_only=True)``. ``after_load`` puts paged states back into
paged memory, which ``load_state_dict`` alone would not.
"""

from __future__ import annotations

import torch
from torch import nn

from aios_tui.errors import UserError

PAGED_MIN_ELEMENTS = 100_000  # bitsandbytes pages a state buffer from this size up (get_state_buffer)
BETAS = (0.9, 0.999)
EPS = 1e-8

_probed: dict[str, str | None] = {}


def import_problem() -> str | None:
    """Why bitsandbytes cannot be imported here, or None."""
    from aios_tui.engine.peft_setup import quiet_imports

    quiet_imports()
    try:
        import bitsandbytes  # noqa: F401
    except Exception as exc:  # ImportError, or a native library that fails to load
        text = str(exc).strip()
        return text.splitlines()[0] if text else type(exc).__name__
    return None


def import_bnb():
    """bitsandbytes, or a UserError saying how to get it."""
    reason = import_problem()
    if reason:
        raise UserError(f"bitsandbytes cannot be imported here ({reason}); install it with `pip install bitsandbytes`")
    import bitsandbytes as bnb

    return bnb


def optimizer_name(device: torch.device) -> str:
    return "PagedAdamW8bit" if device.type == "cuda" else "AdamW8bit"


def remembered_probe(cache: dict, key, trial) -> str | None:
    """``trial(bnb)`` once per ``key`` for the life of the process: None when it works, else one
    line saying why (bitsandbytes failing to import included). ``trial`` returns None or a reason."""
    if key in cache:
        return cache[key]
    try:
        cache[key] = trial(import_bnb())
    except UserError as exc:
        cache[key] = exc.problems[0]
    except Exception as exc:  # a kernel missing for this device, a native library that fails
        text = str(exc).strip().splitlines()
        cache[key] = f"{type(exc).__name__}: {text[0] if text else ''}".strip()
    return cache[key]


def probe(device: torch.device) -> str | None:
    """Run one real 8-bit AdamW step on ``device``; None when it works, else why not.

    A tensor big enough for 8-bit (and, on CUDA, paged) state, so the kernels the run will
    use are the ones tried. Remembered per device for the life of the process.
    """
    def trial(bnb) -> str | None:
        p = nn.Parameter(torch.linspace(-1, 1, PAGED_MIN_ELEMENTS, device=device))
        cls = getattr(bnb.optim, optimizer_name(device))
        opt = cls([p], lr=1e-3, betas=BETAS, eps=EPS, weight_decay=0.0)
        p.grad = torch.full_like(p, 0.5)
        opt.step()
        ok = opt.state[p]["state1"].dtype == torch.uint8 and bool(torch.isfinite(p).all())
        return None if ok else "an 8-bit AdamW step did not produce 8-bit state"

    return remembered_probe(_probed, device.type, trial)


def embedding_params(model: nn.Module) -> list[nn.Parameter]:
    """Trainable weights of the model's embedding tables (a tied lm_head shares one)."""
    seen: dict[int, nn.Parameter] = {}
    for module in model.modules():
        if isinstance(module, nn.Embedding) and module.weight.requires_grad:
            seen.setdefault(id(module.weight), module.weight)
    return list(seen.values())


def _private_manager(bnb):
    """A config manager of our own: bitsandbytes' global one keys overrides by id(param),
    which a later model in the same process can reuse for an unrelated tensor."""
    manager_cls = bnb.optim.GlobalOptimManager
    manager = manager_cls.__new__(manager_cls)
    manager.initialize()
    return manager


def build_adamw8bit(groups: list[dict], lr: float, device: torch.device, model: nn.Module) -> torch.optim.Optimizer:
    """8-bit AdamW (paged on CUDA) over the engine's parameter groups."""
    bnb = import_bnb()
    cls = getattr(bnb.optim, optimizer_name(device))
    optimizer = cls(groups, lr=lr, betas=BETAS, eps=EPS, weight_decay=0.0)
    embeddings = embedding_params(model)
    if embeddings:
        manager = _private_manager(bnb)
        for p in embeddings:
            manager.override_config(p, "optim_bits", 32)
        optimizer.mng = manager
    return optimizer


def after_load(optimizer: torch.optim.Optimizer) -> None:
    """Put a resumed paged optimizer's big states back into paged memory.

    ``load_state_dict`` moves every state to its parameter's device as an ordinary tensor;
    the optimizer's own ``get_state_buffer`` hands out the paged buffer a fresh state would
    have had, and the saved values are copied into it.
    """
    if not getattr(optimizer, "is_paged", False):
        return
    for group in optimizer.param_groups:
        for p in group["params"]:
            state = optimizer.state.get(p)
            if not state or not p.is_cuda or p.numel() < PAGED_MIN_ELEMENTS:
                continue
            for key in ("state1", "state2"):
                saved = state.get(key)
                if isinstance(saved, torch.Tensor) and not getattr(saved, "is_paged", False):
                    buffer = optimizer.get_state_buffer(p, dtype=saved.dtype)
                    buffer.copy_(saved.reshape(buffer.shape))
                    state[key] = buffer
    if torch.cuda.is_available():
        torch.cuda.synchronize()
