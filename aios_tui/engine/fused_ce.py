"""Cross-entropy fused with the lm_head matmul, computed a chunk of rows at a time.

The plain path, ``F.cross_entropy(hidden @ W.T, labels)``, holds the logits for every token
over the whole vocabulary at once: for a 128K vocabulary and 8K tokens per step that is
4 GiB in fp32 (and again in bf16 under autocast, and again for their gradient). Here the rows
are taken in chunks: each chunk's logits are made, turned into a loss and a gradient, and
dropped before the next chunk starts, so the peak extra memory is one chunk's logits.

Gradients are computed in the forward pass. While a chunk's logits exist, the gradient of
the summed loss with respect to them is just ``softmax - onehot``, so the gradients of the
hidden states (and of the weight, when it is trained) are finished right there and kept
until backward, which only scales them by the incoming gradient. The alternative, keeping
each row's log-sum-exp and recomputing the logits in backward, saves the ``[N, H]`` hidden
gradient between forward and backward (the size of one activation) but pays one more
``N x V x H`` matmul, about a tenth of a Llama-3.2-1B LoRA step. Speed wins here. The costs:
the loss must be a scalar that is backpropagated once (no double backward), and gradients
are computed whenever grad mode is on, even if backward is never called (evaluation runs
under ``torch.no_grad``, which skips them). A frozen weight (LoRA, IA3) gets no weight
gradient and no ``[V, H]`` buffer at all.

Under autocast the matmuls run in the autocast dtype (bf16 as a rule) and the softmax and
log-sum-exp in fp32, chunk by chunk, which is what autocast does for the plain path. On CUDA,
where torch allows it, the bf16 logits matmul writes fp32 directly, which saves a pass over
the chunk and the rounding of the logits to bf16.

On CUDA with liger-kernel installed, its Triton kernel can do the same job
(``backend="liger"``, or ``"auto"`` with ``AIOS_TUI_FUSED_CE=liger``); the chunked torch
version is the default everywhere because it is the one tested on every machine.
"""

from __future__ import annotations

import functools
import os

import torch
from torch import Tensor

# One chunk's fp32 logits stay under this many bytes (rows rounded down to a multiple of 64
# so the matmuls keep a friendly shape). 256 MiB is 512 rows for a 128K vocabulary: large
# enough that the matmuls stay efficient, small next to the 4 GiB the plain path needs.
DEFAULT_CHUNK_BYTES = 256 << 20
BACKENDS = ("auto", "torch", "liger")


def default_chunk_rows(n_rows: int, vocab: int, budget_bytes: int = DEFAULT_CHUNK_BYTES) -> int:
    """Rows per chunk so that one chunk's fp32 logits fit in ``budget_bytes``."""
    rows = max(1, budget_bytes // (4 * max(1, vocab)))
    if rows >= 64:
        rows -= rows % 64
    return max(1, min(n_rows, rows))


@functools.lru_cache(maxsize=1)
def liger_available() -> bool:
    """Whether liger-kernel's fused linear cross-entropy can be imported (it needs Triton)."""
    try:
        from liger_kernel.transformers import LigerFusedLinearCrossEntropyLoss  # noqa: F401
    except Exception:  # ImportError, or Triton failing to find a GPU at import time
        return False
    return True


def _compute_dtype(hidden: Tensor, weight: Tensor) -> torch.dtype:
    device_type = hidden.device.type
    if torch.is_autocast_enabled(device_type):
        return torch.get_autocast_dtype(device_type)
    return torch.promote_types(hidden.dtype, weight.dtype)


_MM_OUT_DTYPE_OK: bool | None = None  # whether this torch/GPU can write a bf16 matmul to fp32


def _mm_into(a: Tensor, b: Tensor, out_dtype: torch.dtype) -> Tensor:
    """``a @ b`` as ``out_dtype``; on CUDA a bf16/fp16 matmul writes fp32 directly when it can.

    That skips rounding the logits to bf16 and the separate pass that widens them again.
    """
    global _MM_OUT_DTYPE_OK
    if a.dtype != out_dtype and a.is_cuda and _MM_OUT_DTYPE_OK is not False:
        try:
            out = torch.mm(a, b, out_dtype=out_dtype)
            _MM_OUT_DTYPE_OK = True
            return out
        except (RuntimeError, TypeError, NotImplementedError):
            _MM_OUT_DTYPE_OK = False
    return (a @ b).to(out_dtype)


class _ChunkedLinearCrossEntropy(torch.autograd.Function):
    """Summed cross-entropy of ``hidden @ weight.T + bias`` against ``labels``."""

    @staticmethod
    def forward(ctx, hidden: Tensor, weight: Tensor, bias: Tensor | None, labels: Tensor,
                ignore_index: int, chunk_rows: int, compute_dtype: torch.dtype,
                want_grads: bool) -> Tensor:
        n_rows = hidden.shape[0]
        need_h = want_grads and ctx.needs_input_grad[0]
        need_w = want_grads and ctx.needs_input_grad[1]
        need_b = want_grads and bias is not None and ctx.needs_input_grad[2]

        # fp32 at least for softmax and sums; float64 stays float64 (gradcheck)
        acc = torch.promote_types(compute_dtype, torch.float32)
        w = weight if weight.dtype == compute_dtype else weight.to(compute_dtype)
        b32 = bias.to(acc) if bias is not None else None
        grad_h = torch.empty_like(hidden) if need_h else None
        # fp32 accumulator: summing many bf16 chunk products in bf16 would lose the small ones
        grad_w = torch.zeros(weight.shape, dtype=acc, device=weight.device) if need_w else None
        grad_b = torch.zeros(weight.shape[0], dtype=acc, device=weight.device) if need_b else None
        loss = torch.zeros((), dtype=acc, device=hidden.device)

        with torch.autocast(hidden.device.type, enabled=False):
            for start in range(0, n_rows, chunk_rows):
                end = min(start + chunk_rows, n_rows)
                h = hidden[start:end].to(compute_dtype)
                y = labels[start:end]
                valid = y != ignore_index
                safe_y = torch.where(valid, y, torch.zeros_like(y)).unsqueeze(1)

                logits = _mm_into(h, w.t(), acc)
                if b32 is not None:
                    logits += b32
                lse = torch.logsumexp(logits, dim=-1)
                target = logits.gather(1, safe_y).squeeze(1)
                loss += torch.where(valid, lse - target, torch.zeros_like(lse)).sum()

                if not (need_h or need_w or need_b):
                    del logits  # before the next chunk's logits exist, not after
                    continue
                # d(sum of losses)/d(logits) = softmax - onehot, built in place over the logits
                # so a chunk never holds two [rows, V] fp32 buffers. Ignored rows are zeroed
                # on the [rows, H] side below, which saves a pass over [rows, V].
                g = logits.sub_(lse.unsqueeze(1)).exp_()
                g.scatter_add_(1, safe_y, torch.full_like(target, -1.0).unsqueeze(1))
                keep = valid.unsqueeze(1)
                if grad_b is not None:
                    grad_b += valid.to(acc) @ g
                g = g.to(compute_dtype)
                if grad_h is not None:
                    grad_h[start:end] = (g @ w) * keep
                if grad_w is not None:
                    # add_ promotes a bf16 product on the fly: no fp32 [V, H] temporary
                    grad_w.add_(g.t() @ (h * keep))
                # Released here, or this chunk's fp32 logits and compute-dtype gradient would
                # still be alive while the next chunk's logits are made: 10 bytes an entry at the
                # peak instead of 6.
                del logits, g

        ctx.weight_dtype = weight.dtype
        ctx.bias_dtype = bias.dtype if bias is not None else None
        # Saved (not stashed on ctx) so autograd frees them after backward unless the graph is
        # retained, even when a caller keeps the loss tensor around for logging.
        ctx.save_for_backward(grad_h, grad_w, grad_b)
        return loss

    @staticmethod
    def backward(ctx, grad_loss: Tensor):
        grad_h, grad_w, grad_b = ctx.saved_tensors
        if grad_h is not None:
            grad_h = grad_h * grad_loss.to(grad_h.dtype)
        if grad_w is not None:
            grad_w = (grad_w * grad_loss).to(ctx.weight_dtype)
        if grad_b is not None:
            grad_b = (grad_b * grad_loss).to(ctx.bias_dtype)
        return grad_h, grad_w, grad_b, None, None, None, None, None


def _liger_sum(hidden: Tensor, weight: Tensor, labels: Tensor, ignore_index: int,
               bias: Tensor | None) -> Tensor:
    from liger_kernel.transformers import LigerFusedLinearCrossEntropyLoss

    dtype = _compute_dtype(hidden, weight)
    # The Triton kernel takes one dtype for both operands; cast as autocast would.
    with torch.autocast(hidden.device.type, enabled=False):
        loss_fn = LigerFusedLinearCrossEntropyLoss(ignore_index=ignore_index, reduction="sum")
        out = loss_fn(weight.to(dtype), hidden.to(dtype), labels,
                      bias.to(dtype) if bias is not None else None)
    if isinstance(out, tuple):  # versions that can also return a z-loss
        out = out[0]
    return out.float()


def _pick_backend(backend: str, hidden: Tensor) -> str:
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, not {backend!r}")
    if backend == "auto":
        backend = os.environ.get("AIOS_TUI_FUSED_CE", "torch")
        if backend not in ("torch", "liger"):
            backend = "torch"
    if backend == "liger" and not (hidden.is_cuda and liger_available()):
        return "torch"
    return backend


def fused_linear_cross_entropy(hidden: Tensor, weight: Tensor, labels: Tensor,
                               ignore_index: int = -100, chunk_size: int | None = None,
                               bias: Tensor | None = None, *, backend: str = "auto",
                               ) -> tuple[Tensor, Tensor]:
    """Summed cross-entropy of ``hidden @ weight.T (+ bias)`` and the number of counted tokens.

    ``hidden`` is ``[N, H]``, ``weight`` ``[V, H]`` (an lm_head or tied embedding), ``labels``
    ``[N]`` already aligned with the rows (shifted for next-token prediction). Returns
    ``(loss_sum, n_tokens)`` as 0-d tensors on the device (fp32 and int64): the mean is
    ``loss_sum / n_tokens``, and keeping both lets gradient accumulation weight micro-batches
    by their real token counts. Nothing here waits on the device. ``chunk_size`` is rows per
    chunk (default: see ``default_chunk_rows``).
    """
    if hidden.dim() != 2 or weight.dim() != 2 or labels.dim() != 1:
        raise ValueError(f"expected hidden [N, H], weight [V, H], labels [N]; got "
                         f"{tuple(hidden.shape)}, {tuple(weight.shape)}, {tuple(labels.shape)}")
    if hidden.shape[0] != labels.shape[0] or hidden.shape[1] != weight.shape[1]:
        raise ValueError(f"shape mismatch: hidden {tuple(hidden.shape)}, weight "
                         f"{tuple(weight.shape)}, labels {tuple(labels.shape)}")
    n_tokens = (labels != ignore_index).sum()
    if _pick_backend(backend, hidden) == "liger":
        return _liger_sum(hidden, weight, labels, ignore_index, bias), n_tokens
    rows = chunk_size if chunk_size else default_chunk_rows(hidden.shape[0], weight.shape[0])
    if rows < 1:
        raise ValueError(f"chunk_size must be at least 1, not {chunk_size}")
    loss = _ChunkedLinearCrossEntropy.apply(
        hidden, weight, bias, labels, ignore_index, rows, _compute_dtype(hidden, weight),
        torch.is_grad_enabled())
    return loss, n_tokens


def causal_lm_fused_cross_entropy(hidden_states: Tensor, weight: Tensor, labels: Tensor,
                                  ignore_index: int = -100, chunk_size: int | None = None,
                                  bias: Tensor | None = None, *, backend: str = "auto",
                                  ) -> tuple[Tensor, Tensor]:
    """Next-token loss from a decoder's last hidden states ``[B, T, H]`` and ``labels [B, T]``.

    Position t predicts label t+1, as Hugging Face's causal-LM loss does. The labels are
    shifted (the last position gets ``ignore_index``) instead of slicing the hidden states,
    so no ``[B, T-1, H]`` copy is made. Returns ``(loss_sum, n_tokens)``.
    """
    shifted = torch.nn.functional.pad(labels[:, 1:], (0, 1), value=ignore_index)
    return fused_linear_cross_entropy(
        hidden_states.reshape(-1, hidden_states.shape[-1]), weight, shifted.reshape(-1),
        ignore_index=ignore_index, chunk_size=chunk_size, bias=bias, backend=backend)
