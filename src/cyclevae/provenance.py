"""Where a run's code came from: package version, git commit, torch, machine."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import torch

from . import __version__
from .runtime import cpu_name

__all__ = ["git_commit", "provenance"]


def git_commit() -> str | None:
    """The commit of the source tree this package runs from, if it is a git checkout, with
    ``+dirty`` if its tracked files under ``src/`` differ from that commit."""
    here = Path(__file__).resolve().parent
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=here, capture_output=True,
                             text=True, timeout=5, check=True)
        dirty = subprocess.run(["git", "diff", "--quiet", "HEAD", "--", str(here)], cwd=here,
                               capture_output=True, timeout=5).returncode == 1
        return out.stdout.strip() + ("+dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return None


def provenance(commit: str | None, device: torch.device) -> dict[str, Any]:
    """The fields every run's metrics.json records about its code and machine (``commit``:
    :func:`git_commit` as read when the process started)."""
    return {
        "version": __version__,
        "git_commit": commit,
        "torch": torch.__version__,
        "device": str(device),
        "num_threads": torch.get_num_threads(),
        "cpu": cpu_name(),
    }
