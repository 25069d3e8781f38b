"""The synthetic data set of the paper's section 4 (Figures 3 and 4).

Ten sequences; sequence n (n = 1..10) is the 10-dimensional one-hot vector with its 1 at
position n, read as a sequence of 10 binary tokens. As a batch for :class:`~cyclevae.models.TextVAE`
each row is ``<s> x_1 .. x_10``: token ids 0 and 1 are the binary symbols and 2 is ``<s>``
(vocabulary of 3, no end token: every sequence has the same fixed length).

Example::

    >>> one_hot_sequences()[2]
    tensor([2, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0])
"""

from __future__ import annotations

import torch

__all__ = ["BOS", "VOCAB_SIZE", "ZERO", "ONE", "one_hot_sequences"]

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
