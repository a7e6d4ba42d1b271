"""What the VRAM pane's estimate tells about whether the form's run would start at all.

The calculator reads the model's config.json as the engine's checks before a start do (without
torch, so it can run on every edit), and refuses what a start refuses (vram/refusals.py) in the
same words: the form's header counts these as problems, and a local model that is not there or
cannot be read. What only the calculator cannot do (an architecture it does not lay out, a hub
id it does not know, which training downloads) stays the pane's note.
"""

from __future__ import annotations

import os
from typing import Any

from aios_tui.vram.refusals import Refused


def _hub_id_shaped(name: str) -> bool:
    # as the engine tells a hub id from a path (engine.models.is_hub_id, which imports torch)
    parts = name.split("/")
    return 1 <= len(parts) <= 2 and all(p and not p.startswith(".") for p in parts) \
        and not name.startswith(("/", "~"))


def start_problems(cfg: Any, failure: Exception) -> tuple[str, ...]:
    """The problems that keep ``cfg`` from starting, among those the estimate failed with."""
    problems = getattr(failure, "problems", [])
    if isinstance(failure, Refused):
        return tuple(problems)
    if not problems or not problems[0].startswith("model.model:"):
        return ()
    model = cfg.model.model
    local = os.path.exists(os.path.expanduser(model))
    if not local and _hub_id_shaped(model):
        return ()   # a hub id training may still download
    return (problems[0] if local else f"model.model: {model}: no such directory",)
