"""Fast building blocks that change no numbers: a fused output projection + cross-entropy.

The decoder's output layer dominates a text VAE's cost (70% of the FLOPs at V = 10k). Written
naively it materialises logits, log-softmax and their gradients as separate ``[N, V]`` tensors
(about 30 MB each for a PTB batch). :func:`linear_cross_entropy` computes the per-row negative
log-likelihood chunk by chunk and, in the same pass, the gradient of the logits
(softmax - one-hot), written in place over the logits (computed in one product when the
gradient is wanted, chunk by chunk otherwise), so the backward pass is two matrix products and
nothing else (the incoming per-row scale multiplies the [N, H] factors). Float32 inference
(evaluation, IW-NLL) computes the logits vocabulary-major, ``[V, chunk]``: a faster product.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch.autograd.function import once_differentiable


def _compute_dtype(x: torch.Tensor) -> torch.dtype:
    """The dtype matrix products should use: autocast's if it is on for x's device."""
    device = x.device.type
    if torch.is_autocast_enabled(device):
        return torch.get_autocast_dtype(device)
    return x.dtype


def _use_onednn(x: torch.Tensor, weight: torch.Tensor) -> bool:
    """Whether :func:`linear_product` sends ``x @ weight.T`` to oneDNN: float32 CPU tensors
    where PyTorch has oneDNN enabled (``torch.backends.mkldnn``) and its linear kernel."""
    return (x.device.type == "cpu" and x.dtype == weight.dtype == torch.float32
            and x.dim() == weight.dim() == 2 and x.numel() > 0 and weight.numel() > 0
            and torch.backends.mkldnn.enabled and torch.backends.mkldnn.is_available()
            and hasattr(torch.ops.mkldnn, "_linear_pointwise"))


def linear_product(x: torch.Tensor, weight: torch.Tensor,
                   bias: torch.Tensor | None = None) -> torch.Tensor:
    """``x @ weight.T (+ bias)`` for ``x [M, K]``, ``weight [N, K]`` (either may be a strided
    view, e.g. a transpose), ``bias [N]``: ``[M, N]``. No autograd (called inside
    :class:`torch.autograd.Function` code, or use :func:`linear`).

    Float32 on CPU runs oneDNN's matrix product (``torch.ops.mkldnn._linear_pointwise``, the
    kernel PyTorch's compiler uses), in float32 (no reduced-precision mode): on AMD CPUs
    PyTorch's default BLAS (MKL) takes its AVX2 path, at about half of what oneDNN's AVX-512
    kernels reach (measured on AMD EPYC Zen 5: 100-110 against 200-235 GFLOP/s per core,
    ``benchmarks/NOTES.md``). Other dtypes and devices: ``torch.addmm`` / ``torch.mm``. The
    two agree to float32 rounding (another summation order).
    """
    if _use_onednn(x, weight):
        return torch.ops.mkldnn._linear_pointwise(x, weight, bias, "none", [], "")
    return torch.addmm(bias, x, weight.t()) if bias is not None else x @ weight.t()


class _Linear(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, weight, bias):  # type: ignore[override]
        ctx.save_for_backward(x, weight)
        ctx.has_bias = bias is not None
        return linear_product(x, weight, bias)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad):  # type: ignore[override]
        x, weight = ctx.saved_tensors
        grad_x = grad_w = grad_b = None
        if ctx.needs_input_grad[0]:
            grad_x = linear_product(grad, weight.t())  # grad @ weight
        if ctx.needs_input_grad[1]:
            grad_w = linear_product(grad.t(), x.t())  # grad.T @ x
        if ctx.has_bias and ctx.needs_input_grad[2]:
            grad_b = grad.sum(0)
        return grad_x, grad_w, grad_b


def linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None
           ) -> torch.Tensor:
    """``F.linear`` for 2-d ``x [M, K]``, ``weight [N, K]``, ``bias [N]`` -> ``[M, N]``, with
    every product (forward and backward) through :func:`linear_product`. Equal to
    ``F.linear`` up to float32 rounding, with the same gradients; differentiable once (the
    backward raises if asked for a graph of its own). Other shapes, dtypes and devices, and
    autocast, take ``F.linear`` itself."""
    if not _use_onednn(x, weight) or torch.is_autocast_enabled(x.device.type):
        return F.linear(x, weight, bias)
    if not torch.is_grad_enabled():
        return linear_product(x, weight, bias)
    return _Linear.apply(x, weight, bias)


#: log2(e) and ln(2): the softmax runs in base 2 (see :func:`_base2_nll`)
LOG2E = math.log2(math.e)
LN2 = math.log(2.0)


def _base2_nll(logits2: torch.Tensor, target: torch.Tensor, dim: int
               ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Cross-entropy (nats) from logits in base 2 (``logits * log2(e)``), along ``dim``.

    ``exp2`` is the same function as ``exp`` after that change of base but runs about four
    times faster in PyTorch's CPU kernels (measured on AMD Zen 5: 0.14 against 0.62 ns per
    float32 element; the exponential was a quarter of an evaluation's time). The scale is
    folded into the product's small factor by the callers, so the arguments of ``exp2``
    carry the same rounding as those of ``exp`` would.

    Args:
        logits2: ``[N, V]`` (``dim=1``) or ``[V, N]`` (``dim=0``) base-2 logits; overwritten
            with the unnormalised probabilities ``2^(logits2 - max)``.
        target: ``[N, 1]`` or ``[1, N]`` class ids.
    Returns:
        ``(nll [N], probs, total)``: ``probs`` is ``logits2`` itself, ``total`` its sum along
        ``dim`` (kept), so ``probs / total`` is the softmax.
    """
    picked = logits2.gather(dim, target).squeeze(dim)
    top = logits2.amax(dim=dim, keepdim=True)
    probs = logits2.sub_(top).exp2_()  # unnormalised, in place
    total = probs.sum(dim=dim, keepdim=True)
    nll = top.squeeze(dim).sub_(picked).mul_(LN2).add_(total.log().squeeze(dim))
    return nll, probs, total


class _LinearCrossEntropy(torch.autograd.Function):
    @staticmethod
    def forward(ctx, hidden, weight, bias, targets, chunk_rows: int):  # type: ignore[override]
        dtype = _compute_dtype(hidden)
        acc = torch.promote_types(dtype, torch.float32)  # softmax dtype: float32, or float64
        n = hidden.shape[0]
        h = hidden.to(dtype)
        w = weight.to(dtype)
        b = bias.to(dtype)
        nll = torch.empty(n, dtype=acc, device=hidden.device)
        need_grad = ctx.needs_input_grad[0] or ctx.needs_input_grad[1] or ctx.needs_input_grad[2]
        in_place = need_grad and dtype == acc
        grad_logits = None
        # logits in base 2 (see _base2_nll): all in one product (faster than per chunk) when
        # they become G itself, the scale folded into the small [N, H] factor and the bias
        if in_place:
            grad_logits = linear_product(h * LOG2E, w, b * LOG2E)
        elif need_grad:
            grad_logits = torch.empty(n, weight.shape[0], dtype=dtype, device=hidden.device)
        for start in range(0, n, chunk_rows):
            rows = slice(start, min(start + chunk_rows, n))
            if in_place:
                logits = grad_logits[rows]  # type: ignore[index]
            else:  # low precision: the product in its dtype, scaled after it in float32
                logits = torch.addmm(b, h[rows], w.t()).to(acc).mul_(LOG2E)
            target = targets[rows].unsqueeze(1)
            nll[rows], probs, total = _base2_nll(logits, target, dim=1)
            if grad_logits is not None:
                probs.div_(total).scatter_add_(1, target, torch.full_like(total, -1.0))
                if dtype != acc:
                    grad_logits[rows] = probs
        ctx.save_for_backward(h, w, grad_logits)
        ctx.input_dtype = hidden.dtype
        ctx.weight_dtype = weight.dtype
        return nll

    @staticmethod
    @once_differentiable  # the saved softmax is a constant: no second derivatives
    def backward(ctx, grad_nll):  # type: ignore[override]
        h, w, grad_logits = ctx.saved_tensors
        # d nll_i / d logits_i = softmax_i - onehot_i (G), scaled by the incoming grad of row i;
        # the row scale is applied to the [N, H] factors, never to the [N, V] matrix
        scale = grad_nll.to(grad_logits.dtype).unsqueeze(1)
        grad_hidden = grad_weight = grad_bias = None
        if ctx.needs_input_grad[0]:
            grad_hidden = linear_product(grad_logits, w.t()).mul_(scale).to(ctx.input_dtype)
        if ctx.needs_input_grad[1]:
            grad_weight = linear_product(grad_logits.t(), (h * scale).t()).to(ctx.weight_dtype)
        if ctx.needs_input_grad[2]:
            acc = torch.promote_types(grad_logits.dtype, torch.float32)
            if grad_logits.dtype == acc:
                grad_bias = torch.mv(grad_logits.t(), scale.squeeze(1))
            else:  # low precision: sum in float32
                grad_bias = (grad_logits * scale).sum(0, dtype=acc)
            grad_bias = grad_bias.to(ctx.weight_dtype)
        return grad_hidden, grad_weight, grad_bias, None, None


def _inference_nll_transposed(hidden: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor,
                              targets: torch.Tensor, chunk: int) -> torch.Tensor:
    """Per-row NLL without gradients, logits in the ``[V, chunk]`` (vocabulary-major) layout.

    ``weight @ hidden[rows].T`` runs 1.5-1.7x faster than ``hidden[rows] @ weight.T`` with
    MKL on CPU float32 for H = 256, V = 10k (measured on an AMX Xeon, ``benchmarks/NOTES.md``),
    and the softmax reductions over dim 0 stay vectorised across the ``chunk`` contiguous
    columns. Float32 on CPU computes the product with :func:`linear_product` (oneDNN; on AMD
    CPUs about twice MKL's speed) and adds the bias after it; the result differs from
    ``addmm`` by float32 rounding only.
    """
    n = hidden.shape[0]
    b = bias.to(hidden.dtype).mul(LOG2E).unsqueeze(1)  # [V, 1], base-2 logits (_base2_nll)
    w = weight.to(hidden.dtype)
    h = hidden * LOG2E
    nll = torch.empty(n, dtype=hidden.dtype, device=hidden.device)  # float32 or float64
    onednn = _use_onednn(w, h)
    for start in range(0, n, chunk):
        cols = slice(start, min(start + chunk, n))
        if onednn:
            logits = linear_product(w, h[cols]).add_(b)  # [V, c]
        else:
            logits = torch.addmm(b, w, h[cols].t())  # [V, c]
        nll[cols] = _base2_nll(logits, targets[cols].unsqueeze(0), dim=0)[0]
    return nll


def linear_cross_entropy(
    hidden: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor,
    targets: torch.Tensor,
    *,
    chunk_rows: int | None = None,
) -> torch.Tensor:
    """Per-row ``cross_entropy(hidden @ weight.T + bias, targets)`` without keeping the logits.

    Args:
        hidden: ``[N, H]`` decoder outputs; weight: ``[V, H]``; bias: ``[V]``;
        targets: ``[N]`` class ids.
        chunk_rows: rows per chunk (the working set is ``chunk_rows x V`` floats); default 64
            when a gradient is wanted or products run in low precision, 256 for float32/64
            inference (the vocabulary-major layout, which needs wider chunks).
    Returns:
        ``[N]`` float32 (float64 for float64 inputs) negative log-likelihoods in nats. Equal to
        ``F.cross_entropy(F.linear(hidden, weight, bias), targets, reduction="none")`` up to
        float rounding, with the same gradients. Under autocast the products run in the autocast
        dtype and the softmax in float32. Differentiable once: the backward raises if asked
        for a graph of its own (``create_graph=True``) with respect to these inputs.
    """
    # parameters keep requires_grad=True under torch.no_grad(): grad mode decides as well,
    # or evaluation would compute and store the [N, V] softmax gradient for nothing
    if not torch.is_grad_enabled() or not (
        hidden.requires_grad or weight.requires_grad or bias.requires_grad
    ):
        dtype = _compute_dtype(hidden)
        with torch.no_grad():
            if dtype in (torch.float32, torch.float64):
                return _inference_nll_transposed(hidden.to(dtype), weight, bias, targets,
                                                 chunk_rows or 256)
            return _LinearCrossEntropy.forward(_NoGradContext(), hidden, weight, bias, targets,
                                               chunk_rows or 64)
    return _LinearCrossEntropy.apply(hidden, weight, bias, targets, chunk_rows or 64)


class _NoGradContext:
    """Stand-in for autograd's ctx when no gradient is needed (low-precision inference)."""

    needs_input_grad = (False, False, False, False, False)

    def save_for_backward(self, *tensors: torch.Tensor) -> None:
        pass


def reference_linear_cross_entropy(hidden: torch.Tensor, weight: torch.Tensor,
                                   bias: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """The straightforward formulation :func:`linear_cross_entropy` must equal (for tests)."""
    return F.cross_entropy(F.linear(hidden, weight, bias).float(), targets, reduction="none")


def total_grad_norm(grads: list[torch.Tensor]) -> torch.Tensor:
    """The 2-norm of all ``grads`` together (a 0-d tensor), as
    ``torch.nn.utils.get_total_norm(grads, 2.0)`` up to float rounding.

    Float32/float64 contiguous CPU gradients: the sum over tensors of ``torch.dot(g, g)``
    (BLAS, split across the intra-op threads like the elementwise passes that follow), then
    its square root. PyTorch's CPU 2-norm of a whole tensor runs on one thread, and on a
    2-core Zen 4 VM the multiply of the clipping that follows it measured 3.7-15 ms instead
    of 0.5 ms at 2 threads in some runs (the second thread then works on the data the first
    one has just read); the dots measured 0.5 ms against the norms' 1.0
    (``benchmarks/NOTES.md``, change 30). Other devices and layouts: PyTorch's.
    """
    if not all(g.device.type == "cpu" and g.dtype in (torch.float32, torch.float64)
               and g.is_contiguous() and g.dtype == grads[0].dtype for g in grads):
        return torch.nn.utils.get_total_norm(grads, 2.0, foreach=True)
    squares = [torch.dot(g.view(-1), g.view(-1)) for g in grads]
    return torch.stack(squares).sum().sqrt()


def clip_grad_norm_(parameters: list[torch.nn.Parameter], max_norm: float) -> torch.Tensor:
    """``torch.nn.utils.clip_grad_norm_(parameters, max_norm, foreach=True)`` up to float
    rounding of the total norm (:func:`total_grad_norm`), minus the pass that multiplies
    every gradient by 1.0 when the total norm is within ``max_norm`` (PyTorch always
    multiplies, to avoid a device sync; on CPU that pass is ~40% of the clipping's time, 2%
    of a PTB step). Given the same norm, the gradients equal PyTorch's bit for bit.
    ``max_norm``: ``inf`` for no clipping. Returns the total 2-norm of the gradients (a 0-d
    tensor; non-finite if a gradient is, in which case nothing is scaled: the caller skips
    the step). Reads the norm to the host once (:func:`clip_to_norm_`)."""
    norm = parameters_grad_norm(parameters)
    clip_to_norm_(parameters, max_norm, norm, float(norm))
    return norm


def parameters_grad_norm(parameters: list[torch.nn.Parameter]) -> torch.Tensor:
    """The total 2-norm of the parameters' gradients (:func:`total_grad_norm`; a 0-d tensor,
    0 on the first parameter's device, or the CPU, when no parameter has a gradient)."""
    grads = [p.grad for p in parameters if p.grad is not None]
    if not grads:
        return torch.zeros((), device=parameters[0].device if parameters else "cpu")
    return total_grad_norm(grads)


def clip_to_norm_(parameters: list[torch.nn.Parameter], max_norm: float, norm: torch.Tensor,
                  norm_value: float) -> None:
    """Scale the gradients by PyTorch's coefficient ``max_norm / (norm + 1e-6)`` when it is
    below 1, given their total 2-norm both as the tensor ``norm`` (0-d, what the gradients are
    scaled with) and as the host float ``norm_value`` it holds (what decides: a caller that
    reads several scalars at once passes the value it has read, so deciding costs no device
    sync). Nothing is scaled when ``norm_value`` is not finite or ``max_norm`` is ``inf``."""
    if not (math.isfinite(max_norm) and math.isfinite(norm_value)):
        return
    # PyTorch's coefficient, max_norm / (norm + 1e-6) in the norm's dtype (Tensor.__rtruediv__:
    # a reciprocal, then a product), computed on the host with NumPy scalars of that dtype
    # (IEEE, so the same to the bit: tests/test_ops.py); a multiply by 1.0 is exact, so
    # skipping it changes nothing
    real = {torch.float32: np.float32, torch.float64: np.float64}.get(norm.dtype)
    if real is None:  # half precisions: PyTorch's own arithmetic, on a CPU scalar
        coef = float(max_norm / (torch.tensor(norm_value, dtype=norm.dtype) + 1e-6))
    else:
        coef = float(real(1.0) / (real(norm_value) + real(1e-6)) * real(max_norm))
    if coef < 1.0:
        torch.nn.utils.clip_grads_with_norm_(parameters, max_norm, norm, foreach=True)
