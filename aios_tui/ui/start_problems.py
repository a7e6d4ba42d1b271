"""What the VRAM pane's estimate tells about whether the form's run would start at all.

The calculator reads the model's config.json as the engine's checks before a start do (without
torch, so it can run on every edit). Where it fails on a local model itself, or finds blocks
longer than a learned position table, the engine refuses the run too: the form's header counts
these as problems. What only the calculator cannot do (an architecture it does not lay out, a
hub id it does not know, which training downloads) stays the pane's note.
"""

from __future__ import annotations

import os
from typing import Any, Sequence


def _hub_id_shaped(name: str) -> bool:
    # as the engine tells a hub id from a path (engine.models.is_hub_id, which imports torch)
    parts = name.split("/")
    return 1 <= len(parts) <= 2 and all(p and not p.startswith(".") for p in parts) \
        and not name.startswith(("/", "~"))


def start_problems(cfg: Any, estimate: Any = None, failure: Sequence[str] = ()) -> tuple[str, ...]:
    """The problems that keep ``cfg`` from starting, from the estimate made for it: the estimate
    itself (one with a ``shape``), or the problems of the user error it failed with."""
    model = cfg.model.model
    if failure:
        local = os.path.exists(os.path.expanduser(model))
        if not failure[0].startswith("model.model:") or (not local and _hub_id_shaped(model)):
            return ()  # not about the model, or a hub id training may still download
        return (failure[0] if local else f"model.model: {model}: no such directory",)
    shape = getattr(estimate, "shape", None)
    positions = getattr(shape, "max_positions", 0)
    seq = cfg.data.max_seq_len
    if getattr(shape, "learned_positions", False) and 0 < positions < seq:
        return (f"data.max_seq_len: {seq} is longer than the model's {positions} positions",)
    return ()
