"""Checkpoints: model, optimizer, schedulers, RNG states, counters, config and vocabulary.

Written through the one atomic writer (:mod:`cyclevae.atomic`: temp file in the same
directory, fsync, ``os.replace``), so a run killed at any moment, even during a write, leaves
the previous complete checkpoint loadable.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .atomic import atomic_open
from .errors import UserError


def rng_state() -> dict[str, Any]:
    """The state of every random generator a run uses (Python, NumPy, PyTorch CPU and CUDA)."""
    state: dict[str, Any] = {
        "python": random.getstate(),
        "numpy": np.random.get_state(),
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what :func:`rng_state` captured."""
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_checkpoint(state: dict[str, Any], path: str | Path) -> None:
    """``torch.save`` through the atomic writer (:func:`cyclevae.atomic.atomic_open`).

    Raises :class:`UserError` naming the path if the disk is full or read-only; the previous
    checkpoint at ``path`` is then left untouched.
    """
    with atomic_open(path, "wb", what="checkpoint") as handle:
        torch.save(state, handle)


def check_vocabulary_file(vocab_path: str | Path, tokens: list[str],
                          checkpoint_path: str | Path) -> None:
    """Raise :class:`UserError` if the vocabulary file beside a checkpoint is not the
    checkpoint's own vocabulary (``tokens``, specials first): the file, the first line that
    differs and what was expected. A missing file is not an error (the checkpoint holds the
    vocabulary); an unreadable or malformed one is."""
    from .data.vocab import Vocabulary

    vocab_path = Path(vocab_path)
    if not vocab_path.exists():
        return
    found = Vocabulary.load(vocab_path).tokens
    if found == tokens:
        return
    for lineno, (a, b) in enumerate(zip(found, tokens), start=1):
        if a != b:
            raise UserError(f"{vocab_path}, line {lineno}: token {a!r} does not match the "
                            f"vocabulary of {checkpoint_path} ({b!r} expected); the file belongs "
                            "to another run")
    raise UserError(f"{vocab_path}: {len(found)} tokens, but the vocabulary of {checkpoint_path} "
                    f"has {len(tokens)}; the file belongs to another run")


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load a checkpoint written by :func:`save_checkpoint`; a clear error if it is not one."""
    path = Path(path)
    if not path.is_file():
        others = sorted(p.name for p in path.parent.glob("checkpoint_*.pt") if p != path)
        hint = ""
        if others:  # e.g. no checkpoint_best.pt: the run had no validation split to choose it
            hint = (f"; {path.parent} holds {', '.join(others)}" +
                    (" (a run without a validation split, data.valid, keeps no best "
                     "checkpoint)" if path.name == "checkpoint_best.pt" else ""))
        raise UserError(f"{path}: checkpoint not found{hint}")
    try:
        state = torch.load(path, map_location=map_location, weights_only=False)
    except Exception as exc:  # noqa: BLE001 - any unpickling failure means "not a checkpoint"
        raise UserError(f"{path}: not a cyclevae checkpoint ({type(exc).__name__})") from None
    if not isinstance(state, dict) or "model" not in state or "config" not in state:
        raise UserError(f"{path}: not a cyclevae checkpoint (missing model/config)")
    return state
