"""The synthetic data set of the paper's section 4 (Figures 3 and 4).

Ten sequences; sequence n (n = 1..10) is the 10-dimensional one-hot vector with its 1 at
position n, read as a sequence of 10 binary tokens. As a batch for :class:`~cyclevae.models.TextVAE`
each row is ``<s> x_1 .. x_10``: token ids 0 and 1 are the binary symbols and 2 is ``<s>``
(vocabulary of 3, no end token: every sequence has the same fixed length).

A run trains on the full batch of the ten sequences at every step (the paper's iterations);
:class:`RepeatedBatch` is that data set for the Trainer: an epoch is the one batch repeated
``data.synthetic.steps_per_epoch`` times (:class:`SyntheticDataConfig`).

Example::

    >>> one_hot_sequences()[2]
    tensor([2, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0])
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..errors import check_fields
from .batching import TextBatch, epoch_batch_order

__all__ = ["BOS", "VOCAB_SIZE", "ZERO", "ONE", "RepeatedBatch", "SyntheticDataConfig",
           "one_hot_sequences"]

ZERO = 0
"""Token id of the binary symbol 0."""
ONE = 1
"""Token id of the binary symbol 1."""
BOS = 2
"""Token id of the start symbol ``<s>``."""
VOCAB_SIZE = 3
"""Size of the vocabulary {0, 1, <s>}."""


def one_hot_sequences(n: int = 10) -> torch.Tensor:
    """All ``n`` one-hot sequences as one batch.

    Args:
        n: number of sequences, which is also their length (the paper uses 10).
    Returns:
        LongTensor ``[n, n + 1]``: row ``i`` (sequence number ``i + 1``) is ``<s>`` followed by
        ``n`` binary tokens, all 0 except a 1 at token position ``i + 1`` (column ``i + 1``).
    """
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"n must be a positive integer, got {n!r}")
    tokens = torch.full((n, n + 1), ZERO, dtype=torch.long)
    tokens[:, 0] = BOS
    idx = torch.arange(n)
    tokens[idx, idx + 1] = ONE
    return tokens


@dataclass
class SyntheticDataConfig:
    """The synthetic data set of a run's ``data`` section (``data.synthetic.*``; used when
    ``model.kind`` is ``synthetic``).

    ``sequences``: n, the number of one-hot sequences and their length (the paper: 10).
    ``steps_per_epoch``: optimizer steps per epoch, each on the full batch of the n sequences:
    how often the run ends an epoch (its record, checkpoint and the family's measurements).
    ``snapshots``: evenly spaced iterations, ending at the last, at which the run samples its
    latent space (the paper's Figure 4).
    """

    sequences: int = 10
    steps_per_epoch: int = 1
    snapshots: int = 8

    def validate(self, prefix: str = "data.synthetic") -> None:
        """Raise :class:`~cyclevae.errors.UserError` naming the first out-of-range field."""
        check_fields(self, prefix, [
            (self.sequences >= 1, "sequences", ">= 1"),
            (self.steps_per_epoch >= 1, "steps_per_epoch", ">= 1"),
            (self.snapshots >= 1, "snapshots", ">= 1"),
        ])


class RepeatedBatch:
    """One batch, ``repeat`` times per epoch: a full-batch data set as a
    :class:`~cyclevae.data.batching.BatchSource` (every optimizer step sees the whole data).

    Args:
        batch: the data set as one batch (:func:`one_hot_sequences` in a
            :class:`~cyclevae.data.batching.TextBatch`).
        repeat: batches (optimizer steps) per epoch.
    """

    def __init__(self, batch: TextBatch, repeat: int) -> None:
        if repeat < 1:
            raise ValueError(f"repeat must be >= 1, got {repeat}")
        self.batch, self.repeat = batch, repeat

    def __len__(self) -> int:
        """Batches per epoch."""
        return self.repeat

    @property
    def num_tokens(self) -> int:
        """Predicted tokens per epoch."""
        return self.batch.num_tokens * self.repeat

    def batches(self, epoch: int = 0, *, shuffle: bool = True, rank: int = 0,
                world_size: int = 1, drop_last: bool = True) -> list[TextBatch]:
        """The batch once per step of the epoch for one process (the order is immaterial:
        every batch is the same; split between processes as every batcher splits,
        :func:`~cyclevae.data.batching.epoch_batch_order`)."""
        order = epoch_batch_order(self.repeat, 0, epoch, shuffle=False, rank=rank,
                                  world_size=world_size, drop_last=drop_last)
        return [self.batch] * len(order)
