"""Process-level settings that make the CPU training path fast without changing any number."""

from __future__ import annotations

import ctypes
import sys

import torch

_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
_configured = False


def keep_freed_memory(threshold_bytes: int = 1 << 30) -> bool:
    """Stop glibc from returning large freed buffers to the OS after every batch.

    By default glibc serves allocations above 128 KiB-32 MiB with ``mmap`` and unmaps them on
    ``free``, so every ~30 MB activation buffer of a PTB batch is page-faulted in again on the
    next batch (up to 40% of a training step here). Raising the mmap and trim thresholds keeps
    the memory in the heap for reuse. Equivalent to ``GLIBC_TUNABLES=glibc.malloc.mmap_threshold
    =...:glibc.malloc.trim_threshold=...``. Returns False where this is not glibc (no effect).
    """
    global _configured
    if _configured:
        return True
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
        ok = bool(libc.mallopt(_M_MMAP_THRESHOLD, threshold_bytes)) and bool(
            libc.mallopt(_M_TRIM_THRESHOLD, threshold_bytes)
        )
    except (OSError, AttributeError):
        return False
    _configured = ok
    return ok


def make_adam(params, lr: float) -> torch.optim.Adam:
    """Adam with the fused single-pass kernel where PyTorch has one (same algorithm)."""
    params = list(params)
    devices = {p.device.type for p in params}
    if devices <= {"cpu", "cuda"}:
        try:
            return torch.optim.Adam(params, lr=lr, fused=True)
        except (RuntimeError, ValueError):
            pass
    return torch.optim.Adam(params, lr=lr)
