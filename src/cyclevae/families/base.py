"""What a model family declares: its model, its data, its checks and its own evaluation.

A family is one object (:class:`Family`) that the rest of the code asks; no other module
branches on ``model.kind``. The registry (:data:`cyclevae.families.FAMILIES`) maps each
``model.kind`` to its family.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, TypeVar

import torch

from ..config import Config, ModelConfig
from ..data.batching import BatchSource
from ..data.tokenizers import Tokenizers
from ..data.vocab import Vocabulary
from ..errors import UserError
from ..models.base import LatentTextModel

__all__ = ["CheckpointEvalOptions", "Family", "Labels", "RunData", "RunMonitor", "SplitData",
           "require"]

#: the batched form of a split (a :class:`~cyclevae.data.batching.BatchSource`)
S = TypeVar("S", bound=BatchSource)


@dataclass(frozen=True)
class Labels:
    """The label sets a model is sized by besides the vocabulary, in id order: the dialog
    CVAE's dialog acts and topics (``<unk>`` first); empty for sentence models. Saved in every
    checkpoint (:func:`cyclevae.checkpoint.saved_labels` reads them back)."""

    acts: tuple[str, ...] = ()
    topics: tuple[str, ...] = ()


@dataclass
class RunData(Generic[S]):
    """A run's data: the vocabulary, the batched splits (None where the config names no
    file), the label sets and the JSON statistics written to metrics.json (``data``)."""

    vocab: Vocabulary
    train: S
    valid: S | None
    test: S | None
    stats: dict[str, Any]
    labels: Labels = field(default_factory=Labels)


@dataclass
class SplitData(Generic[S]):
    """One file read as a checkpoint's run reads its splits: its batches and statistics."""

    batches: S
    stats: dict[str, Any]


@dataclass(frozen=True)
class CheckpointEvalOptions:
    """The options of ``cyclevae evaluate`` a family may use for its own evaluation (None:
    the run's setting). ``samples``/``contexts``/``glove``: the dialog responses
    (:func:`cyclevae.metrics.text.evaluate_responses`); ``contexts`` ``"run"`` means the
    run's ``train.response_contexts``."""

    iw_samples: int | None = None
    samples: int | None = None
    contexts: int | str | None = "run"
    glove: str | None = None
    data_dir: str | None = None


class Family(ABC, Generic[S]):
    """One model family: what the Trainer, ``cyclevae evaluate``/``diagnose`` and the
    checkpoint loader ask instead of branching on ``model.kind``.

    To add a family, write a module with a subclass and add one entry to
    :data:`cyclevae.families.FAMILIES` (see the package docstring).
    """

    #: the ``model.kind`` this family answers to
    kind: str

    def validate(self, config: Config) -> None:
        """Checks of the family's own config sections beyond :func:`~cyclevae.config.
        validate_config` (one-line :class:`~cyclevae.errors.UserError`); none by default."""

    @abstractmethod
    def build_model(self, config: ModelConfig, vocab_size: int, labels: Labels
                    ) -> LatentTextModel:
        """A new model for a vocabulary of ``vocab_size`` tokens (and the label sets)."""

    def tokenizers(self, config: Config) -> Tokenizers:
        """How the family's sentences become token ids besides the vocabulary (a pretrained
        model's tokenizers, :class:`~cyclevae.data.tokenizers.Tokenizers`): what ``cyclevae
        generate`` and ``embed`` encode and decode sentences with. By default none: the
        vocabulary's word ids alone."""
        return Tokenizers()

    def initialise(self, model: LatentTextModel, config: ModelConfig, vocab: Vocabulary
                   ) -> dict[str, Any] | None:
        """Initialise a new model from files its config names (e.g. word vectors); returns a
        log record (None: nothing done)."""
        return None

    @abstractmethod
    def load_data(self, config: Config, *, vocab: Vocabulary | None = None,
                  labels: Labels | None = None) -> RunData[S]:
        """The splits a run's config names, read and batched (``vocab``/``labels``: a resumed
        run's, else built from the training split)."""

    @abstractmethod
    def load_split(self, config: Config, spec: str, vocab: Vocabulary, labels: Labels, *,
                   data_dir: str | None = None) -> SplitData[S]:
        """One file (or ``NAME:SPLIT``) read and batched as the run reads its splits."""

    def log_records(self, data: RunData[S]) -> list[dict[str, Any]]:
        """Records of the data for a new run's log (e.g. what a leakage filter dropped)."""
        return []

    def run_evaluator(self, config: Config, vocab: Vocabulary
                      ) -> RunEvaluator[S] | None:
        """The family's own evaluation of a run's test split at the end of training (the
        dialog responses), or None."""
        return None

    def run_monitor(self, config: Config) -> RunMonitor | None:
        """The family's own measurements of the model while it trains (the synthetic
        experiment's learning curves and latent snapshots), or None."""
        return None

    @abstractmethod
    def evaluate_checkpoint(self, path: str | Path, model: LatentTextModel, config: Config,
                            vocab: Vocabulary, labels: Labels, *, split: str, spec: str,
                            options: CheckpointEvalOptions) -> dict[str, Any]:
        """``cyclevae evaluate``'s result for a checkpoint's model on the file ``spec``,
        reported under ``split``: the family's part of
        :func:`cyclevae.inference.evaluate_checkpoint`'s result, which puts the checkpoint's
        path, the data spec and the epoch before it. ``path`` names the checkpoint in
        messages; ``labels`` are the ones it saved."""


class RunEvaluator(ABC, Generic[S]):
    """A family's own evaluation of a split during a run (built once per run, so that what it
    loads, e.g. word vectors, is loaded once)."""

    @abstractmethod
    def __call__(self, model: LatentTextModel, split: S, device: torch.device
                 ) -> dict[str, Any]:
        """Metrics to merge into the split's block."""


class RunMonitor(ABC):
    """A family's measurements of a run's model during training: the Trainer calls it before
    the first step of a new run and after every epoch, and logs the records it returns
    (``log.jsonl``, each with its ``kind`` and ``step``), so that a resumed run keeps the
    records up to its checkpoint. It must not change the training: its random numbers come
    from generators of its own, and it leaves the model's mode as it found it."""

    @abstractmethod
    def __call__(self, model: LatentTextModel, step: int, beta: float
                 ) -> list[dict[str, Any]]:
        """Records of the model after ``step`` optimizer steps, ``beta`` the weight of the
        update that produced it (at step 0, of the first update)."""


def require(condition: bool, key: str, expected: str, value: Any) -> None:
    """A family's config check: raise :class:`UserError` ``config: KEY must be EXPECTED, got
    VALUE`` (the form of :func:`~cyclevae.config.validate_config`) unless ``condition``."""
    if not condition:
        raise UserError(f"config: {key} must be {expected}, got {value!r}")
