"""The fused output projection + cross-entropy equals the straightforward one, values and grads."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from cyclevae import ops
from cyclevae.ops import linear_cross_entropy, reference_linear_cross_entropy


@settings(max_examples=25, deadline=None)
@given(n=st.integers(1, 70), hdim=st.integers(1, 9), vocab=st.integers(2, 40),
       chunk=st.integers(1, 80), seed=st.integers(0, 10_000))
def test_matches_reference_values_and_gradients(n, hdim, vocab, chunk, seed):
    gen = torch.Generator().manual_seed(seed)
    h = torch.randn(n, hdim, generator=gen, dtype=torch.float64, requires_grad=True)
    w = torch.randn(vocab, hdim, generator=gen, dtype=torch.float64, requires_grad=True)
    b = torch.randn(vocab, generator=gen, dtype=torch.float64, requires_grad=True)
    t = torch.randint(0, vocab, (n,), generator=gen)
    upstream = torch.randn(n, generator=gen, dtype=torch.float64)
    ours = linear_cross_entropy(h, w, b, t, chunk_rows=chunk)
    grads = torch.autograd.grad((ours.double() * upstream).sum(), (h, w, b))
    ref = torch.nn.functional.cross_entropy(torch.nn.functional.linear(h, w, b), t,
                                            reduction="none")
    ref_grads = torch.autograd.grad((ref * upstream).sum(), (h, w, b))
    # the NLL is returned in float32 (the dtype metrics are reported in)
    torch.testing.assert_close(ours.double(), ref, rtol=1e-5, atol=1e-5)
    for g, r in zip(grads, ref_grads):
        torch.testing.assert_close(g, r, rtol=1e-5, atol=1e-5)


@settings(max_examples=25, deadline=None)
@given(n=st.integers(1, 70), hdim=st.integers(1, 9), vocab=st.integers(2, 40),
       chunk=st.integers(1, 80), seed=st.integers(0, 10_000))
def test_inference_path_matches_reference(n, hdim, vocab, chunk, seed):
    """Without gradients, float64/float32 logits are computed vocabulary-major ([V, chunk]):
    a different reduction axis, gather and chunking than the training path."""
    gen = torch.Generator().manual_seed(seed)
    h = torch.randn(n, hdim, generator=gen, dtype=torch.float64)
    w = torch.randn(vocab, hdim, generator=gen, dtype=torch.float64)
    b = torch.randn(vocab, generator=gen, dtype=torch.float64)
    t = torch.randint(0, vocab, (n,), generator=gen)
    ref = torch.nn.functional.cross_entropy(torch.nn.functional.linear(h, w, b), t,
                                            reduction="none")
    ours = linear_cross_entropy(h, w, b, t, chunk_rows=chunk)
    assert ours.dtype == torch.float64
    torch.testing.assert_close(ours, ref, rtol=1e-10, atol=1e-10)


def test_float32_and_no_grad_path():
    torch.manual_seed(0)
    h, w, b = torch.randn(50, 16), torch.randn(300, 16), torch.randn(300)
    t = torch.randint(0, 300, (50,))
    with torch.no_grad():
        ours = linear_cross_entropy(h, w, b, t, chunk_rows=7)
    torch.testing.assert_close(ours, reference_linear_cross_entropy(h, w, b, t))


def test_bf16_autocast_close_to_float32():
    torch.manual_seed(0)
    h = torch.randn(40, 32, requires_grad=True)
    w = (0.1 * torch.randn(500, 32)).requires_grad_()
    b = torch.zeros(500, requires_grad=True)
    t = torch.randint(0, 500, (40,))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        ours = linear_cross_entropy(h, w, b, t)
    assert ours.dtype == torch.float32
    ours.sum().backward()
    assert h.grad.dtype == torch.float32 and w.grad.dtype == torch.float32
    ref = reference_linear_cross_entropy(h.detach(), w.detach(), b.detach(), t)
    assert (ours.detach() - ref).abs().max() < 0.05
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        inference = linear_cross_entropy(h, w, b, t)
    assert inference.dtype == torch.float32
    torch.testing.assert_close(inference, ours.detach())


@pytest.mark.parametrize("chunk", [1, 3, 64])
def test_chunking_does_not_change_result(chunk):
    torch.manual_seed(1)
    h, w, b = torch.randn(20, 8), torch.randn(30, 8), torch.randn(30)
    t = torch.randint(0, 30, (20,))
    torch.testing.assert_close(linear_cross_entropy(h, w, b, t, chunk_rows=chunk),
                               linear_cross_entropy(h, w, b, t, chunk_rows=20))


def test_no_grad_mode_takes_the_inference_path(monkeypatch):
    """Under torch.no_grad() a layer's parameters still have requires_grad=True; evaluation must
    not go through the autograd Function (which computes and keeps the [N, V] softmax
    gradient: 1.6x slower evaluation when it did)."""
    torch.manual_seed(0)
    layer = torch.nn.Linear(16, 300)
    h, t = torch.randn(50, 16), torch.randint(0, 300, (50,))

    def fail(*_args):
        raise AssertionError("autograd Function used under torch.no_grad()")

    monkeypatch.setattr(ops._LinearCrossEntropy, "apply", fail)
    with torch.no_grad():
        ours = linear_cross_entropy(h, layer.weight, layer.bias, t)
    torch.testing.assert_close(ours, reference_linear_cross_entropy(h, layer.weight, layer.bias, t))


@settings(max_examples=40, deadline=None)
@given(shapes=st.lists(st.tuples(st.integers(1, 30), st.integers(1, 20)), min_size=1,
                       max_size=5),
       scale=st.floats(1e-3, 1e3), max_norm=st.sampled_from([0.1, 1.0, 5.0, 1e4, math.inf]),
       missing=st.booleans(), seed=st.integers(0, 10_000))
def test_clip_grad_norm_equals_pytorchs_to_float32_rounding(shapes, scale, max_norm, missing,
                                                            seed):
    """The total norm (per-tensor dots) is within float32 rounding of the exact float64 norm
    and of PyTorch's; the gradients equal torch.nn.utils.clip_grad_norm_'s to the same
    rounding, clipped or not, and bit for bit given the same norm (skipping the multiply by
    1.0 changes nothing); a parameter without a gradient is left alone."""
    gen = torch.Generator().manual_seed(seed)
    ours = [torch.nn.Parameter(torch.zeros(s)) for s in shapes]
    theirs = [torch.nn.Parameter(torch.zeros(s)) for s in shapes]
    for i, (a, b) in enumerate(zip(ours, theirs)):
        if missing and i == 0:
            continue
        g = scale * torch.randn(a.shape, generator=gen)
        a.grad, b.grad = g.clone(), g.clone()
    originals = [None if a.grad is None else a.grad.clone() for a in ours]
    grads64 = [b.grad.double() for b in theirs if b.grad is not None]
    exact = math.sqrt(sum(float((g * g).sum()) for g in grads64))
    n = sum(g.numel() for g in grads64)
    norm = ops.clip_grad_norm_(ours, max_norm)
    # a float32 sum of n squares, in any order: relative error <= (n + 1) eps; sqrt halves it
    assert abs(float(norm) - exact) <= (n + 4) * torch.finfo(torch.float32).eps * exact
    expected = torch.nn.utils.clip_grad_norm_(theirs, max_norm, foreach=True)
    torch.testing.assert_close(norm, expected, rtol=(n + 4) * 1.2e-7, atol=0)
    for a, b in zip(ours, theirs):
        assert (a.grad is None) == (b.grad is None)
        if a.grad is not None:
            torch.testing.assert_close(a.grad, b.grad, rtol=(n + 4) * 1.2e-7, atol=0)
    # given the same norm, PyTorch's scaling (or its multiply by 1.0) and ours agree exactly
    same = [torch.nn.Parameter(torch.zeros(s)) for s in shapes]
    for a, g in zip(same, originals):
        a.grad = g
    torch.nn.utils.clip_grads_with_norm_(same, max_norm, norm, foreach=True)
    for a, b in zip(ours, same):
        assert (a.grad is None and b.grad is None) or torch.equal(a.grad, b.grad)


def test_total_grad_norm_takes_pytorchs_path_for_other_layouts():
    """A non-contiguous gradient (or mixed dtypes) goes through PyTorch's own norm, bit for
    bit; contiguous float32 gradients through the dots."""
    g = torch.randn(7, 5)
    grads = [g.t(), torch.randn(3)]
    assert torch.equal(ops.total_grad_norm(grads),
                       torch.nn.utils.get_total_norm(grads, 2.0, foreach=True))
    flat = [g, torch.randn(3)]
    dots = torch.stack([torch.dot(x.reshape(-1), x.reshape(-1)) for x in flat]).sum().sqrt()
    assert torch.equal(ops.total_grad_norm(flat), dots)


def test_clip_grad_norm_leaves_non_finite_gradients_for_the_caller():
    p = torch.nn.Parameter(torch.zeros(3))
    p.grad = torch.tensor([1.0, float("inf"), 2.0])
    norm = ops.clip_grad_norm_([p], 1.0)
    assert not torch.isfinite(norm)
    assert torch.equal(p.grad, torch.tensor([1.0, float("inf"), 2.0]))  # untouched
    assert float(ops.clip_grad_norm_([torch.nn.Parameter(torch.zeros(2))], 1.0)) == 0.0


@pytest.mark.parametrize("max_norm", [1.0, 5.0, 0.3])
def test_clip_to_norm_decides_as_pytorch_does_at_the_boundary(max_norm):
    """Norms a few float32 ulps either side of max_norm - 1e-6, where the decision depends on
    PyTorch's 1e-6 and on the precision of its coefficient (float64 and float32 disagree on
    some; there the float32 coefficient clamps to exactly 1): the gradients must equal
    PyTorch's clip_grads_with_norm_ with the same norm, bit for bit."""
    centre = torch.tensor(max_norm - 1e-6, dtype=torch.float32)
    values = [centre]
    for _ in range(6):
        values.append(torch.nextafter(values[-1], torch.tensor(math.inf)))
        values.insert(0, torch.nextafter(values[0], torch.tensor(-math.inf)))
    for norm in values:
        ours, theirs = (torch.nn.Parameter(torch.zeros(3)) for _ in range(2))
        g = torch.tensor([0.6, -0.8, 0.1]) * norm
        ours.grad, theirs.grad = g.clone(), g.clone()
        ops.clip_to_norm_([ours], max_norm, norm, float(norm))
        torch.nn.utils.clip_grads_with_norm_([theirs], max_norm, norm, foreach=True)
        assert torch.equal(ours.grad, theirs.grad), float(norm)


@settings(max_examples=300, deadline=None)
@given(max_norm=st.one_of(st.sampled_from([0.1, 0.25, 0.3, 1.0, 5.0, 10.0]),
                          st.floats(1e-3, 1e3)),
       offset=st.floats(-1e-5, 1e-5), wide=st.floats(0.0, 2.0), near=st.booleans(),
       dtype=st.sampled_from([torch.float32, torch.float64]))
def test_clip_to_norm_coefficient_on_the_host_is_pytorchs(max_norm, offset, wide, near, dtype):
    """The host's NumPy arithmetic gives PyTorch's clipping coefficient to the bit, near the
    boundary and away from it, in float32 and float64: the gradients after clip_to_norm_ equal
    clip_grads_with_norm_'s."""
    value = (max_norm - 1e-6) * (1 + offset) if near else wide * max_norm
    norm = torch.tensor(value, dtype=dtype)
    g = torch.tensor([0.6, -0.8], dtype=dtype) * norm
    ours, theirs = (torch.nn.Parameter(torch.zeros(2, dtype=dtype)) for _ in range(2))
    ours.grad, theirs.grad = g.clone(), g.clone()
    ops.clip_to_norm_([ours], max_norm, norm, float(norm))
    torch.nn.utils.clip_grads_with_norm_([theirs], max_norm, norm, foreach=True)
    assert torch.equal(ours.grad, theirs.grad)
