"""Will the model fit? Its parameter memory, estimated before anything is allocated.

A size typed one zero too many (``model.dec_hidden=100000``) used to end in an allocator
traceback asking for 160 GB. :func:`check_parameter_memory` builds the model on PyTorch's
``meta`` device (shapes only, no storage), counts its parameters and refuses, with the numbers,
a model whose training state cannot fit in the device's memory. Training keeps four float32
copies of every parameter: the weights, their gradients and Adam's two moment estimates
(Kingma and Ba 2015, Algorithm 1), hence :data:`BYTES_PER_PARAMETER`; activations come on top,
so passing the check does not promise the run fits, only that refusing it is certain.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

from .errors import UserError

__all__ = ["BYTES_PER_PARAMETER", "check_parameter_memory", "device_memory_bytes",
           "parameter_count"]

#: float32 weights, gradients and Adam's first and second moments
BYTES_PER_PARAMETER = 4 * 4


def parameter_count(build: Callable[[], nn.Module]) -> int:
    """Parameters of the model ``build()`` makes, built on the ``meta`` device (no memory)."""
    with torch.device("meta"):
        model = build()
    return sum(p.numel() for p in model.parameters())


def _cgroup_limit() -> int | None:
    """The memory limit of this process's cgroup (v2, then v1), if one is set."""
    for path in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        try:
            text = Path(path).read_text().strip()
        except OSError:
            continue
        if text.isdigit() and int(text) < 1 << 60:
            return int(text)
    return None


def device_memory_bytes(device: torch.device) -> int | None:
    """Total memory of ``device``: the GPU's, or for the CPU the machine's physical memory
    (or the container's limit, if smaller); None where it cannot be read."""
    if device.type == "cuda":
        return int(torch.cuda.get_device_properties(device).total_memory)
    try:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None
    limit = _cgroup_limit()
    return min(total, limit) if limit else total


def _gb(n: float) -> str:
    return f"{n / 1e9:,.1f} GB"


def check_parameter_memory(build: Callable[[], nn.Module], device: torch.device) -> int:
    """Refuse (:class:`UserError` with the numbers) a model whose parameters, gradients and
    Adam state (:data:`BYTES_PER_PARAMETER` per parameter) exceed the memory of ``device``;
    return the parameter count. A model that cannot be built on the meta device is not
    checked (0 is returned) and is left to the real build."""
    try:
        count = parameter_count(build)
    except (RuntimeError, NotImplementedError, TypeError, ValueError):
        return 0
    available = device_memory_bytes(device)
    needed = count * BYTES_PER_PARAMETER
    if available is not None and needed > available:
        where = "GPU" if device.type == "cuda" else "machine"
        raise UserError(
            f"config: the model.* sizes give {count:,} parameters, which need about "
            f"{_gb(needed)} to train ({BYTES_PER_PARAMETER} bytes each: weights, gradients and "
            f"Adam's two moments) before any activation, more than this {where}'s "
            f"{_gb(available)}; choose smaller sizes (e.g. model.dec_hidden, model.emb_dim, "
            "data.max_vocab)")
    return count
