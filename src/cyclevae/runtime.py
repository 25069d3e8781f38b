"""Process-wide settings and hardware capabilities.

Nothing here runs at import. The ``cyclevae`` command calls :func:`configure_process` once at
start (thread count, glibc allocator); a library user who builds a
:class:`~cyclevae.training.Trainer` directly may call it too (or set threads themselves): the
Trainer itself never changes process-wide state. :func:`check_precision` refuses bf16 where the
hardware has no native bf16 matrix support, with a one-line error instead of a oneDNN traceback.
"""

from __future__ import annotations

import ctypes
import functools
import platform
import sys
from pathlib import Path

import torch

from .errors import UserError

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


def configure_process(num_threads: int | None = None) -> None:
    """Process-wide settings of a training or evaluation process: ``num_threads`` intra-op
    threads (None: PyTorch's default) and :func:`keep_freed_memory`. Neither changes a number,
    only the speed."""
    if num_threads:
        torch.set_num_threads(num_threads)
    keep_freed_memory()


@functools.lru_cache(maxsize=1)
def _cpuinfo() -> dict[str, str]:
    """The first processor's fields of ``/proc/cpuinfo`` (empty where unreadable)."""
    fields: dict[str, str] = {}
    try:
        text = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return fields
    for line in text.splitlines():
        if not line.strip():
            break  # the end of the first processor's block
        key, _, value = line.partition(":")
        fields.setdefault(key.strip(), value.strip())
    return fields


def cpu_flags() -> frozenset[str]:
    """The CPU feature flags the kernel reports (x86 ``flags``, Arm ``Features``)."""
    info = _cpuinfo()
    return frozenset((info.get("flags") or info.get("Features") or "").split())


def cpu_name() -> str:
    """The CPU model name (``/proc/cpuinfo``) with, on x86, its family and model numbers (a
    VM's name is often just "AMD EPYC", the same for Zen 3, 4 and 5: "AMD EPYC (family 26
    model 2)"), or the platform's processor string."""
    info = _cpuinfo()
    name = info.get("model name") or platform.processor() or platform.machine()
    if info.get("cpu family") and info.get("model"):
        name += f" (family {info['cpu family']} model {info['model']})"
    return name


def native_bf16(device: torch.device) -> tuple[bool, str]:
    """Whether ``device`` has native bf16 matrix support, and what was checked.

    CUDA: ``torch.cuda.is_bf16_supported()``. x86 CPUs: the ``avx512_bf16`` or ``amx_bf16``
    flag (without them oneDNN has no bf16 LSTM: "could not create a primitive descriptor").
    Arm CPUs: the ``bf16`` feature.
    """
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported(), "CUDA bf16 support"
    if device.type != "cpu":
        return False, f"bf16 on {device.type}"
    flags = cpu_flags()
    if {"avx512_bf16", "amx_bf16"} & flags:
        return True, "avx512_bf16/amx_bf16"
    if "bf16" in flags:
        return True, "bf16 (Arm)"
    return False, "avx512_bf16 or amx_bf16 (x86) / bf16 (Arm) CPU flags"


def check_precision(precision: str, device: torch.device) -> None:
    """Raise a one-line :class:`UserError` if ``precision`` is bf16 and ``device`` lacks native
    bf16 matrix support (naming the capability and the alternative)."""
    if precision != "bf16":
        return
    ok, capability = native_bf16(device)
    if not ok:
        where = cpu_name() if device.type == "cpu" else str(device)
        raise UserError(f"config: train.precision=bf16 needs native bf16 matrix support "
                        f"({capability}), which {where} lacks; use train.precision=fp32")
