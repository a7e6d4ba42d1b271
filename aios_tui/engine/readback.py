"""Reading a step's figures off the GPU without making the GPU wait.

``tensor.item()`` copies on the compute stream, so it waits for everything queued before it:
called once the next step is queued, it waits for that step too, and the GPU runs dry while
Python writes the metrics line. Instead the figures of a log step are copied right away, behind
that step's own work, into pinned host memory, and an event marks when the copy is done;
reading them later waits for that event only, never for the work queued after it.
"""

from __future__ import annotations

import math
from typing import Any

import torch


class Readback:
    """Scalar values (0-d tensors or plain numbers) on their way to the host."""

    def __init__(self, values: dict[str, Any]):
        self._plain = {k: v for k, v in values.items() if not isinstance(v, torch.Tensor)}
        self._keys = [k for k, v in values.items() if isinstance(v, torch.Tensor)]
        self._event = None
        if not self._keys:
            self._host = None
            return
        stacked = torch.stack([values[k].detach().float().reshape(()) for k in self._keys])
        if stacked.is_cuda:
            self._host = torch.empty(stacked.shape, dtype=stacked.dtype, pin_memory=True)
            self._host.copy_(stacked, non_blocking=True)
            self._event = torch.cuda.Event()
            self._event.record()
        else:
            self._host = stacked

    def values(self) -> dict[str, float | None]:
        """The values as floats (None where not finite), waiting only for their own copy."""
        if self._event is not None:
            self._event.synchronize()
        out: dict[str, float | None] = {}
        if self._host is not None:
            out.update(zip(self._keys, self._host.tolist()))
        out.update({k: float(v) if v is not None else None for k, v in self._plain.items()})
        return {k: (v if v is not None and math.isfinite(v) else None) for k, v in out.items()}
