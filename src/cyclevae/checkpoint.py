"""Checkpoints: what they hold, how they are written and how they are read back.

A checkpoint is a dict of tensors and plain data (numbers, strings, lists, dicts): the model's
and the optimizer's state dicts, the schedulers', the RNG states, the progress counters, the
config, the vocabulary and the label sets (:func:`training_state`). It is read with
``torch.load(weights_only=True)``, so a file from outside never runs code: a pickle holding
anything else is refused without being unpickled (:func:`load_checkpoint`). Checkpoints of
earlier versions, whose NumPy RNG state is a NumPy array, load too (those three NumPy types are
allowed and nothing else).

Written through the one atomic writer (:mod:`cyclevae.atomic`: temp file in the same
directory, fsync, ``os.replace``), so a run killed at any moment, even during a write, leaves
the previous complete checkpoint loadable. This module is also the one place that turns a
checkpoint file back into a model (:func:`load_model`), and the one that knows a checkpoint's
layout: what a run saves (:func:`training_state`) and reads back (:func:`restore_training_state`,
:func:`saved_config`, :func:`saved_vocabulary`, :func:`saved_labels`, :func:`saved_epoch`,
:func:`swapped_weights`).
"""

from __future__ import annotations

import contextlib
import pickle
import random
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from . import __version__
from .atomic import atomic_open
from .config import Config, config_from_dict
from .data.vocab import Vocabulary
from .errors import UserError
from .families import Labels, family_of
from .models.base import LatentTextModel
from .schedules import BetaScheduler, CyclicalLR
from .stopping import EarlyStopping

__all__ = ["check_vocabulary_file", "load_checkpoint", "load_model", "load_weights",
           "restore_training_state", "rng_state", "save_checkpoint", "saved_config",
           "saved_epoch", "saved_labels", "saved_tokens", "saved_valid", "saved_vocabulary",
           "set_rng_state", "swapped_weights", "training_state"]


def _legacy_numpy_globals() -> list[Any]:
    """The NumPy types of a NumPy RNG state (a uint32 array) in checkpoints of earlier
    versions: allowed to unpickle so that those checkpoints still load."""
    from numpy._core.multiarray import _reconstruct  # numpy >= 2

    return [_reconstruct, (_reconstruct, "numpy.core.multiarray._reconstruct"), np.ndarray,
            np.dtype, type(np.dtype(np.uint32))]


def rng_state() -> dict[str, Any]:
    """The state of every random generator a run uses (Python, NumPy, PyTorch CPU and CUDA),
    as tensors and plain data."""
    _, key, pos, has_gauss, cached = np.random.get_state()
    state: dict[str, Any] = {
        "python": random.getstate(),
        "numpy": {"key": torch.from_numpy(key.astype(np.int64)), "pos": int(pos),
                  "has_gauss": int(has_gauss), "cached_gaussian": float(cached)},
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: Mapping[str, Any]) -> None:
    """Restore what :func:`rng_state` captured (also the NumPy tuple of earlier versions)."""
    random.setstate(state["python"])
    numpy_state = state["numpy"]
    if isinstance(numpy_state, Mapping):
        numpy_state = ("MT19937", numpy_state["key"].numpy().astype(np.uint32),
                       numpy_state["pos"], numpy_state["has_gauss"],
                       numpy_state["cached_gaussian"])
    np.random.set_state(numpy_state)
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def training_state(*, model: torch.nn.Module, optimizer: torch.optim.Optimizer,
                   beta: BetaScheduler, lr_schedule: CyclicalLR | None,
                   progress: Mapping[str, Any], config: Config, vocab: Vocabulary,
                   labels: Labels, stopping: EarlyStopping | None = None
                   ) -> dict[str, Any]:
    """Everything a resumed run needs: weights, optimizer, schedulers, RNG, counters
    (``progress``), config, vocabulary and label sets, the stopping rule's state (plain
    numbers; None when the rule is off), and the package version."""
    return {
        "model": model.state_dict(), "optimizer": optimizer.state_dict(),
        "beta_scheduler": beta.state_dict(),
        "lr_scheduler": lr_schedule.state_dict() if lr_schedule else None,
        "rng": rng_state(), "progress": dict(progress),
        "config": config.to_dict(), "vocab": vocab.tokens,
        "act_labels": list(labels.acts), "topic_labels": list(labels.topics),
        "early_stopping": stopping.state_dict() if stopping is not None else None,
        "version": __version__,
    }


def restore_training_state(checkpoint: Mapping[str, Any], *, model: torch.nn.Module,
                           optimizer: torch.optim.Optimizer, beta: BetaScheduler,
                           lr_schedule: CyclicalLR | None,
                           stopping: EarlyStopping | None = None) -> dict[str, Any]:
    """Load what :func:`training_state` saved into the run's objects and the RNGs (the
    stopping rule's state if the checkpoint has one: checkpoints from before the rule have
    none); returns the saved progress counters."""
    model.load_state_dict(checkpoint["model"])
    optimizer.load_state_dict(checkpoint["optimizer"])
    beta.load_state_dict(checkpoint["beta_scheduler"])
    if lr_schedule is not None and checkpoint.get("lr_scheduler") is not None:
        lr_schedule.load_state_dict(checkpoint["lr_scheduler"])
    if stopping is not None and checkpoint.get("early_stopping") is not None:
        stopping.load_state_dict(checkpoint["early_stopping"])
    set_rng_state(checkpoint["rng"])
    return dict(checkpoint["progress"])


def saved_config(checkpoint: Mapping[str, Any]) -> Config:
    """The run's config as the checkpoint saved it (older keys migrated by
    :func:`cyclevae.config.config_from_dict`)."""
    return config_from_dict(checkpoint["config"])


def saved_vocabulary(checkpoint: Mapping[str, Any]) -> Vocabulary:
    """The run's vocabulary as the checkpoint saved it (its tokens, specials first)."""
    return Vocabulary(saved_tokens(checkpoint)[len(Vocabulary.SPECIALS):])


def saved_tokens(checkpoint: Mapping[str, Any]) -> list[str]:
    """The vocabulary's tokens as the checkpoint saved them, specials first (index order)."""
    return list(checkpoint["vocab"])


def saved_labels(checkpoint: Mapping[str, Any]) -> Labels:
    """The label sets the checkpoint saved (empty for a sentence model's)."""
    return Labels(tuple(checkpoint.get("act_labels") or ()),
                  tuple(checkpoint.get("topic_labels") or ()))


def saved_epoch(checkpoint: Mapping[str, Any]) -> int:
    """The number of epochs trained when the checkpoint was written."""
    return int(checkpoint["progress"]["epoch"])


def saved_valid(checkpoint: Mapping[str, Any]) -> dict[str, Any] | None:
    """The valid block of the checkpoint's last epoch (None when no valid split was
    evaluated)."""
    return checkpoint["progress"]["history"][-1].get("valid")


@contextlib.contextmanager
def swapped_weights(model: torch.nn.Module, checkpoint: Mapping[str, Any]) -> Iterator[None]:
    """Inside the block ``model`` holds the checkpoint's weights; its own are restored after
    (e.g. to evaluate the best checkpoint at the end of a run)."""
    current = {k: v.clone() for k, v in model.state_dict().items()}
    model.load_state_dict(checkpoint["model"])
    try:
        yield
    finally:
        model.load_state_dict(current)


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


def _unsafe_globals(path: Path) -> list[str]:
    """The names a refused pickle would have imported (read without running anything)."""
    try:
        return list(torch.serialization.get_unsafe_globals_in_checkpoint(path))
    except Exception:  # noqa: BLE001 - not a readable pickle at all
        return []


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load a checkpoint written by :func:`save_checkpoint` (or by an earlier version) with
    ``torch.load(weights_only=True)``: a file holding anything but tensors and plain data is
    refused without running it; a clear one-line error if it is not a checkpoint."""
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
        with torch.serialization.safe_globals(_legacy_numpy_globals()):
            state = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as exc:
        names = _unsafe_globals(path)
        if not names:
            raise UserError(f"{path}: not a cyclevae checkpoint ({type(exc).__name__})") from None
        raise UserError(f"{path}: refused without loading it: it holds "
                        f"{', '.join(names[:3])}{' ...' if len(names) > 3 else ''}, not only "
                        "tensors and plain data, and unpickling that could run code; cyclevae "
                        "checkpoints (also those of earlier versions) never do, so it was not "
                        "written by cyclevae or was altered") from None
    except Exception as exc:  # noqa: BLE001 - any other failure means "not a checkpoint"
        raise UserError(f"{path}: not a cyclevae checkpoint ({type(exc).__name__})") from None
    if not isinstance(state, dict) or "model" not in state or "config" not in state:
        raise UserError(f"{path}: not a cyclevae checkpoint (missing model/config)")
    return state


def load_weights(model: torch.nn.Module, path: str | Path,
                 map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load the model weights of the checkpoint ``path`` into ``model``; returns the
    checkpoint."""
    checkpoint = load_checkpoint(path, map_location=map_location)
    model.load_state_dict(checkpoint["model"])
    return checkpoint


def load_model(path: str | Path, device: str | torch.device = "cpu"
               ) -> tuple[LatentTextModel, Vocabulary, Config, dict[str, Any]]:
    """Model (in eval mode), vocabulary, config and raw checkpoint from a checkpoint file: the
    model built by its family (:func:`cyclevae.families.family_of`) from the saved config,
    vocabulary and label sets, with the saved weights."""
    checkpoint = load_checkpoint(path, map_location=device)
    config = saved_config(checkpoint)
    vocab = saved_vocabulary(checkpoint)
    check_vocabulary_file(Path(path).parent / "vocab.txt", vocab.tokens, path)
    family = family_of(config)
    model = family.build_model(config.model, len(vocab),
                               saved_labels(checkpoint)).to(device)
    try:
        model.load_state_dict(checkpoint["model"])
    except RuntimeError as exc:
        first = str(exc).splitlines()[0]
        raise UserError(f"{path}: weights do not match the saved config/vocabulary ({first})") from None
    model.eval()
    return model, vocab, config, checkpoint
