"""The chunked lm_head + cross-entropy against the plain ``F.cross_entropy(hidden @ W.T)``."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch.utils._python_dispatch import TorchDispatchMode

from aios_tui.engine.fused_ce import (
    causal_lm_fused_cross_entropy,
    default_chunk_rows,
    fused_linear_cross_entropy,
)

IGNORE = -100


def make_case(n, h, v, ignore, seed=0, dtype=torch.float32, bias=False):
    g = torch.Generator().manual_seed(seed)
    hidden = torch.randn(n, h, generator=g, dtype=dtype).requires_grad_()
    weight = (torch.randn(v, h, generator=g, dtype=dtype) * 0.5).requires_grad_()
    b = (torch.randn(v, generator=g, dtype=dtype) * 0.1).requires_grad_() if bias else None
    labels = torch.randint(0, v, (n,), generator=g)
    if ignore == "some":
        labels[torch.rand(n, generator=g) < 0.3] = IGNORE
    elif ignore == "prefix":  # prompt tokens masked, completion counted
        labels[: n // 2] = IGNORE
    elif ignore == "all":
        labels[:] = IGNORE
    return hidden, weight, b, labels


def grads(*tensors):
    out = [t.grad.clone() if t is not None and t.grad is not None else None for t in tensors]
    for t in tensors:
        if t is not None:
            t.grad = None
    return out


def reference(hidden, weight, bias, labels):
    logits = F.linear(hidden, weight, bias)
    return F.cross_entropy(logits.float(), labels, ignore_index=IGNORE, reduction="sum")


@pytest.mark.parametrize("n,h,v", [(1, 4, 3), (37, 16, 50), (64, 32, 259), (130, 8, 1000)])
@pytest.mark.parametrize("chunk", [1, 7, 64, None, 10_000])
@pytest.mark.parametrize("ignore", ["none", "some", "prefix"])
def test_matches_plain_cross_entropy_fp32(n, h, v, chunk, ignore):
    hidden, weight, _, labels = make_case(n, h, v, ignore)
    loss, n_tok = fused_linear_cross_entropy(hidden, weight, labels, chunk_size=chunk)
    assert n_tok.item() == int((labels != IGNORE).sum())
    (loss / n_tok.clamp(min=1)).backward()
    got_h, got_w = grads(hidden, weight)

    ref = reference(hidden, weight, None, labels)
    (ref / n_tok.clamp(min=1)).backward()
    ref_h, ref_w = grads(hidden, weight)

    torch.testing.assert_close(loss, ref, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(got_h, ref_h, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(got_w, ref_w, rtol=1e-5, atol=1e-5)


def test_bias_and_incoming_gradient_scale():
    hidden, weight, bias, labels = make_case(29, 12, 40, "some", bias=True)
    loss, _ = fused_linear_cross_entropy(hidden, weight, labels, chunk_size=5, bias=bias)
    (3.5 * loss).backward()
    got = grads(hidden, weight, bias)
    (3.5 * reference(hidden, weight, bias, labels)).backward()
    for a, b in zip(got, grads(hidden, weight, bias)):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)


def test_every_label_ignored_gives_zero_loss_and_zero_grads():
    hidden, weight, _, labels = make_case(16, 8, 20, "all")
    loss, n_tok = fused_linear_cross_entropy(hidden, weight, labels, chunk_size=4)
    assert n_tok.item() == 0 and loss.item() == 0.0
    loss.backward()
    assert torch.count_nonzero(hidden.grad) == 0 and torch.count_nonzero(weight.grad) == 0


def test_frozen_weight_gets_no_gradient():
    hidden, weight, _, labels = make_case(40, 16, 64, "some")
    weight.requires_grad_(False)
    loss, n_tok = fused_linear_cross_entropy(hidden, weight, labels, chunk_size=9)
    (loss / n_tok).backward()
    assert weight.grad is None
    got_h = hidden.grad.clone()
    hidden.grad = None
    (reference(hidden, weight, None, labels) / n_tok).backward()
    torch.testing.assert_close(got_h, hidden.grad, rtol=1e-5, atol=1e-5)


def test_tied_embedding_accumulates_both_uses():
    """A weight used as input embedding and as lm_head gets the sum of both gradients."""
    torch.manual_seed(0)
    emb = torch.nn.Embedding(30, 8)
    proj = torch.nn.Linear(8, 8)
    ids = torch.randint(0, 30, (3, 11))

    def run(fused: bool):
        hidden = torch.tanh(proj(emb(ids)))
        if fused:
            loss, n = causal_lm_fused_cross_entropy(hidden, emb.weight, ids, chunk_size=4)
        else:
            logits = hidden @ emb.weight.t()
            loss = F.cross_entropy(logits[:, :-1].reshape(-1, 30), ids[:, 1:].reshape(-1), reduction="sum")
            n = torch.tensor(ids[:, 1:].numel())
        (loss / n).backward()
        out = [emb.weight.grad.clone(), proj.weight.grad.clone(), loss.detach() / n]
        emb.zero_grad(set_to_none=True)
        proj.zero_grad(set_to_none=True)
        return out

    for a, b in zip(run(True), run(False)):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)


def test_bf16_autocast_close_to_fp32_and_to_plain_autocast():
    hidden, weight, _, labels = make_case(96, 32, 300, "some")
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss, n_tok = fused_linear_cross_entropy(hidden, weight, labels, chunk_size=40)
    assert loss.dtype == torch.float32
    (loss / n_tok).backward()
    got_h, got_w = grads(hidden, weight)
    assert got_h.dtype == torch.float32 and got_w.dtype == torch.float32

    with torch.autocast("cpu", dtype=torch.bfloat16):
        plain = F.cross_entropy(F.linear(hidden, weight), labels, ignore_index=IGNORE, reduction="sum")
    (plain / n_tok).backward()
    plain_h, plain_w = grads(hidden, weight)
    exact = reference(hidden, weight, None, labels)

    # bf16 keeps ~3 significant digits: both autocast paths land within that of the exact loss
    # and of each other (they round the same operands the same way).
    torch.testing.assert_close(loss, exact, rtol=1e-2, atol=0)
    torch.testing.assert_close(loss, plain, rtol=2e-3, atol=0)
    torch.testing.assert_close(got_h, plain_h, rtol=2e-2, atol=2e-3)
    torch.testing.assert_close(got_w, plain_w, rtol=2e-2, atol=2e-3)


def test_bf16_weights_return_bf16_grads():
    hidden, weight, _, labels = make_case(50, 16, 120, "some", dtype=torch.bfloat16)
    loss, n_tok = fused_linear_cross_entropy(hidden, weight, labels, chunk_size=16)
    (loss / n_tok).backward()
    assert hidden.grad.dtype == torch.bfloat16 and weight.grad.dtype == torch.bfloat16
    h32 = hidden.detach().float().requires_grad_()
    w32 = weight.detach().float().requires_grad_()
    (reference(h32, w32, None, labels) / n_tok).backward()
    torch.testing.assert_close(hidden.grad.float(), h32.grad, rtol=3e-2, atol=3e-3)
    torch.testing.assert_close(weight.grad.float(), w32.grad, rtol=3e-2, atol=3e-3)


def test_gradcheck_float64():
    hidden, weight, bias, labels = make_case(7, 5, 6, "some", seed=3, dtype=torch.float64, bias=True)
    labels[0] = IGNORE

    def f(h, w, b):
        return fused_linear_cross_entropy(h, w, labels, chunk_size=3, bias=b)[0]

    assert torch.autograd.gradcheck(f, (hidden, weight, bias), eps=1e-6, atol=1e-6)


def test_matches_hugging_face_causal_lm_loss():
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=97, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, tie_word_embeddings=True)
    model = LlamaForCausalLM(cfg)
    ids = torch.randint(0, 97, (3, 17))
    labels = ids.clone()
    labels[0, :5] = IGNORE

    ref = model(input_ids=ids, labels=labels).loss
    ref.backward()
    ref_grads = {k: p.grad.clone() for k, p in model.named_parameters()}
    model.zero_grad(set_to_none=True)

    hidden = model.model(input_ids=ids).last_hidden_state
    loss_sum, n_tok = causal_lm_fused_cross_entropy(
        hidden, model.get_output_embeddings().weight, labels, chunk_size=10)
    loss = loss_sum / n_tok
    loss.backward()
    torch.testing.assert_close(loss, ref, rtol=1e-5, atol=1e-6)
    for k, p in model.named_parameters():
        torch.testing.assert_close(p.grad, ref_grads[k], rtol=1e-5, atol=1e-6, msg=k)


class LargestTensor(TorchDispatchMode):
    """Records the largest tensor any operator produces, and which matmuls ran."""

    def __init__(self):
        super().__init__()
        self.largest = 0
        self.shapes: list[tuple[int, ...]] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in out if isinstance(out, (tuple, list)) else (out,):
            if isinstance(t, torch.Tensor):
                self.largest = max(self.largest, t.numel())
                self.shapes.append(tuple(t.shape))
        return out


def test_never_materialises_full_logits_and_frozen_weight_has_no_buffer():
    n, h, v, chunk = 256, 16, 500, 32
    hidden, weight, _, labels = make_case(n, h, v, "some")
    weight.requires_grad_(False)
    with LargestTensor() as seen:
        loss, n_tok = fused_linear_cross_entropy(hidden, weight, labels, chunk_size=chunk)
        (loss / n_tok).backward()
    assert seen.largest == chunk * v  # one chunk's logits, never n * v
    assert (v, h) not in seen.shapes  # no weight gradient was ever built

    weight.requires_grad_(True)
    with LargestTensor() as plain:
        (reference(hidden, weight, None, labels) / n_tok).backward()
    assert plain.largest == n * v


class LiveChunkBytes(TorchDispatchMode):
    """The most bytes of [rows, vocab] buffers alive at once (swept at every op)."""

    def __init__(self, rows: int, vocab: int):
        super().__init__()
        self.shape, self.live, self.peak = (rows, vocab), {}, 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        from torch.multiprocessing.reductions import StorageWeakRef

        out = func(*args, **(kwargs or {}))
        self.live = {k: v for k, v in self.live.items() if not v[0].expired()}
        for t in out if isinstance(out, (tuple, list)) else [out]:
            if isinstance(t, torch.Tensor) and tuple(t.shape) == self.shape:
                st = t.untyped_storage()
                self.live.setdefault(st.data_ptr(), (StorageWeakRef(st), st.nbytes(), func))
        self.peak = max(self.peak, sum(v[1] for v in self.live.values()))
        return out


@pytest.mark.parametrize("autocast", [False, True])
def test_one_chunk_of_logits_at_a_time(autocast):
    # the previous chunk's logits and gradient are gone before the next chunk's logits exist:
    # the VRAM calculator counts one fp32 chunk plus its compute-dtype copy
    n, h, v, chunk = 256, 16, 500, 32
    hidden, weight, _, labels = make_case(n, h, v, "some")
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast), LiveChunkBytes(chunk, v) as seen:
        loss, n_tok = fused_linear_cross_entropy(hidden, weight, labels, chunk_size=chunk)
        (loss / n_tok).backward()
    assert seen.peak == chunk * v * (4 + (2 if autocast else 0))


def test_evaluation_holds_one_chunk_of_logits_at_a_time():
    n, h, v, chunk = 256, 16, 500, 32
    hidden, weight, _, labels = make_case(n, h, v, "some")
    with torch.no_grad(), LiveChunkBytes(chunk, v) as seen:
        fused_linear_cross_entropy(hidden, weight, labels, chunk_size=chunk)
    assert seen.peak == chunk * v * 4


def test_no_grad_mode_computes_loss_only():
    hidden, weight, _, labels = make_case(64, 16, 100, "some")
    with torch.no_grad(), LargestTensor() as seen:
        loss, _ = fused_linear_cross_entropy(hidden, weight, labels, chunk_size=16)
    assert (64, 16) not in seen.shapes[1:] and (100, 16) not in seen.shapes
    torch.testing.assert_close(loss, reference(hidden, weight, None, labels).detach(), rtol=1e-5, atol=1e-5)


def test_default_chunk_rows():
    assert default_chunk_rows(8192, 128256) == 512
    assert default_chunk_rows(100, 259) == 100
    assert default_chunk_rows(10, 10**12) == 1


def test_shape_errors_are_clear():
    hidden, weight, _, labels = make_case(8, 4, 10, "none")
    with pytest.raises(ValueError, match="shape mismatch"):
        fused_linear_cross_entropy(hidden, weight[:, :3], labels)
    with pytest.raises(ValueError, match="expected hidden"):
        fused_linear_cross_entropy(hidden[None], weight, labels)


cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


@cuda
@pytest.mark.parametrize("trainable", [True, False], ids=["trainable-weight", "frozen-weight"])
@pytest.mark.parametrize("backend", ["torch", "liger"])
def test_cuda_bf16_autocast_matches_plain(trainable, backend):
    from aios_tui.engine.fused_ce import liger_available

    if backend == "liger" and not liger_available():
        pytest.skip("liger-kernel is not installed")
    hidden, weight, _, labels = make_case(1024, 256, 32000, "some")
    hidden = hidden.detach().cuda().requires_grad_()
    weight = weight.detach().cuda().requires_grad_(trainable)
    labels = labels.cuda()
    with torch.autocast("cuda", dtype=torch.bfloat16):
        loss, n_tok = fused_linear_cross_entropy(hidden, weight, labels, chunk_size=192, backend=backend)
    (loss / n_tok).backward()
    got = grads(hidden, weight)
    with torch.autocast("cuda", dtype=torch.bfloat16):
        plain = F.cross_entropy(F.linear(hidden, weight), labels, ignore_index=IGNORE, reduction="sum")
    (plain / n_tok).backward()
    ref = grads(hidden, weight)
    torch.testing.assert_close(loss, plain.float(), rtol=2e-3, atol=0)
    torch.testing.assert_close(got[0], ref[0], rtol=2e-2, atol=2e-3)
    if trainable:
        torch.testing.assert_close(got[1].float(), ref[1].float(), rtol=2e-2, atol=2e-3)
    else:
        assert got[1] is None


@cuda
def test_cuda_peak_memory_is_a_fraction_of_the_plain_path():
    n, h, v = 4096, 512, 64000  # plain fp32 logits alone: 1 GiB
    hidden, weight, _, labels = make_case(n, h, v, "none")
    hidden = hidden.detach().cuda().bfloat16().requires_grad_()
    weight = weight.detach().cuda().bfloat16()
    labels = labels.cuda()

    def peak(fn) -> int:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
        fn()
        torch.cuda.synchronize()
        hidden.grad = None
        return torch.cuda.max_memory_allocated() - base

    def fused():
        loss, n_tok = fused_linear_cross_entropy(hidden, weight, labels, chunk_size=256)
        (loss / n_tok).backward()

    def plain():
        (F.cross_entropy(F.linear(hidden, weight).float(), labels, reduction="sum") / n).backward()

    fused_peak, plain_peak = peak(fused), peak(plain)
    assert fused_peak < 0.25 * plain_peak, (fused_peak, plain_peak)
