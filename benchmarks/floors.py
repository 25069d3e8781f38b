"""GEMM peaks for the benchmarks' FLOP floors, measured in the run that uses them.

A floor fraction is (the step's FLOPs / its time) over the GEMM peak of its precision on this
machine, now. On AMD CPUs PyTorch's BLAS (MKL) takes its AVX2 path at about half of what
oneDNN's product (:func:`cyclevae.ops.linear_product`, which our float32 CPU path uses)
reaches, so the float32 floor is the faster of the two: using oneDNN cannot inflate the
fraction.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

import torch


def synchronize(device: torch.device | str = "cpu") -> None:
    """Wait for the device's queued work (CUDA kernels run asynchronously); nothing on CPU."""
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize(device)


def gemm_peak(dtype: torch.dtype, n: int | None = None, repeats: int = 5,
              device: torch.device | str = "cpu",
              product: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None
              ) -> float:
    """Best-of GFLOP/s of an ``n x n x n`` matrix product in ``dtype`` on ``device`` (n: 2048 on
    CPU, 8192 on CUDA, where smaller products do not fill the GPU): ``a @ b`` (PyTorch's
    BLAS), or ``product(a, b)``."""
    device = torch.device(device)
    n = n or (8192 if device.type == "cuda" else 2048)
    a = torch.randn(n, n, device=device).to(dtype)
    b = torch.randn(n, n, device=device).to(dtype)
    product = product or torch.matmul
    product(a, b)
    synchronize(device)
    best = math.inf
    for _ in range(repeats):
        t = time.perf_counter()
        product(a, b)
        synchronize(device)
        best = min(best, time.perf_counter() - t)
    return 2 * n**3 / best / 1e9


def fp32_peaks(n: int | None = None, device: torch.device | str = "cpu") -> dict[str, float]:
    """Float32 GFLOP/s: ``{"blas": ..., "linear_product": ..., "peak": max of the two}``.

    ``linear_product`` (oneDNN) is measured on CPU only; elsewhere it equals the BLAS figure.
    """
    from cyclevae.ops import linear_product

    blas = gemm_peak(torch.float32, n, device=device)
    onednn = (gemm_peak(torch.float32, n, device=device,
                        product=lambda a, b: linear_product(a, b.t()))
              if torch.device(device).type == "cpu" else blas)
    return {"blas": blas, "linear_product": onednn, "peak": max(blas, onednn)}
