"""Batches of equal-length sentences, as in Kim et al.'s SA-VAE and Fu et al.'s PTB code.

Sentences are shuffled with the seed, stably sorted by length and cut into batches of at most
``batch_size`` sentences of the same length, so no batch needs padding. On PTB train
(42,068 sentences, none dropped) with ``batch_size=32`` this gives exactly the paper's
1,359 batches and 929,589 predicted tokens (887,521 words + 42,068 ``</s>``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol, TypeVar

import numpy as np
import torch

from ..errors import UserError
from .vocab import Vocabulary

__all__ = ["Batch", "BatchSource", "BatchedCorpus", "SubwordRows", "TextBatch", "encode_corpus"]

B = TypeVar("B", bound="Batch")
T = TypeVar("T")


def _opt(value: T | None, fn: Callable[[T], T]) -> T | None:
    """``fn(value)``, or None for None (a batch's optional parts)."""
    return None if value is None else fn(value)


class Batch(Protocol):
    """What every batch of the data layer is (:class:`TextBatch`, the dialog
    :class:`~cyclevae.data.dialog.DialogBatch`): a model's input that knows its device move,
    its example and token counts, and how to take or repeat rows."""

    def to(self: B, device: torch.device | str, non_blocking: bool = False) -> B:
        """The same batch on ``device``."""

    @property
    def device(self) -> torch.device: ...

    @property
    def num_examples(self) -> int:
        """Examples (rows) in the batch."""

    @property
    def num_tokens(self) -> int:
        """Predicted tokens in the batch (the denominator of a perplexity)."""

    @property
    def num_words(self) -> int | None:
        """Predicted words (words and one end-of-sentence each) where the tokens are subwords
        of a tokenizer, the denominator of a per-word perplexity; None where the tokens are
        the words."""

    def select(self: B, index: torch.Tensor) -> B:
        """The rows ``index`` (a LongTensor), in that order."""

    def repeat_each(self: B, n: int) -> B:
        """Every example repeated ``n`` times in place (rows ``n i .. n i + n - 1``)."""


class BatchSource(Protocol):
    """A split cut into batches (:class:`BatchedCorpus`,
    :class:`~cyclevae.data.dialog.DialogBatcher`): the batches of an epoch, deterministic
    given the seed and the epoch."""

    def batches(self, epoch: int = 0, *, shuffle: bool = True, rank: int = 0,
                world_size: int = 1, drop_last: bool = True) -> Sequence[Batch]:
        """The batches of one epoch for one process."""

    def __len__(self) -> int:
        """Batches per epoch."""

    @property
    def num_tokens(self) -> int:
        """Predicted tokens of the split."""


@dataclass(frozen=True)
class SubwordRows:
    """Sentences in another tokenizer's ids, padded: the input of an encoder that reads its own
    subword tokens (a pretrained Hugging Face encoder) while the decoder predicts the rows of
    :attr:`TextBatch.tokens`.

    ``ids``: LongTensor ``[B, T]`` right-padded with the tokenizer's padding id; ``mask``:
    LongTensor ``[B, T]``, 1 on real tokens, 0 on padding (Hugging Face's ``attention_mask``).
    """

    ids: torch.Tensor
    mask: torch.Tensor

    def to(self, device: torch.device | str, non_blocking: bool = False) -> SubwordRows:
        return SubwordRows(self.ids.to(device, non_blocking=non_blocking),
                           self.mask.to(device, non_blocking=non_blocking))

    def repeat(self, n: int) -> SubwordRows:
        return SubwordRows(self.ids.repeat(n, 1), self.mask.repeat(n, 1))

    def repeat_each(self, n: int) -> SubwordRows:
        return SubwordRows(self.ids.repeat_interleave(n, dim=0),
                           self.mask.repeat_interleave(n, dim=0))

    def select(self, index: torch.Tensor) -> SubwordRows:
        return SubwordRows(self.ids[index], self.mask[index])

    @classmethod
    def pad(cls, rows: Sequence[Sequence[int]], pad_index: int) -> SubwordRows:
        """Right-pad id lists of any lengths (each at least one id) to the longest."""
        longest = max(map(len, rows))
        ids = torch.full((len(rows), longest), pad_index, dtype=torch.long)
        mask = torch.zeros(len(rows), longest, dtype=torch.long)
        for i, row in enumerate(rows):
            ids[i, : len(row)] = torch.as_tensor(row, dtype=torch.long)
            mask[i, : len(row)] = 1
        return cls(ids, mask)


@dataclass(frozen=True)
class TextBatch:
    """A batch of equal-length sentences, the input of every sentence model.

    ``tokens``: LongTensor ``[B, L+1]`` of rows ``<s> w_1 .. w_n </s>``; the model reads the
    whole row and predicts ``tokens[:, 1:]`` (L tokens per row, ``</s>`` included). Where the
    rows are a tokenizer's subword ids rather than the corpus's words, ``bos`` and ``eos`` are
    that tokenizer's.

    ``encoder_input``: the same sentences in an encoder's own subword ids
    (:class:`SubwordRows`), for an encoder that does not read ``tokens`` (None: there is none).
    ``words``: LongTensor ``[B]``, the predicted words of each sentence counted as a word-level
    corpus counts them (its words and one ``</s>``), where ``tokens`` are subwords (None: the
    tokens are the words); the denominator of a per-word perplexity.
    """

    tokens: torch.Tensor
    encoder_input: SubwordRows | None = None
    words: torch.Tensor | None = None

    def to(self, device: torch.device | str, non_blocking: bool = False) -> TextBatch:
        """The same batch on ``device``."""
        return TextBatch(self.tokens.to(device, non_blocking=non_blocking),
                         _opt(self.encoder_input, lambda e: e.to(device, non_blocking)),
                         _opt(self.words, lambda w: w.to(device, non_blocking=non_blocking)))

    def repeat(self, n: int) -> TextBatch:
        """The batch stacked ``n`` times (rows ``i, i + B, ...`` are sentence ``i``):
        ``[n B, L+1]``."""
        return TextBatch(self.tokens.repeat(n, 1), _opt(self.encoder_input, lambda e: e.repeat(n)),
                         _opt(self.words, lambda w: w.repeat(n)))

    def repeat_each(self, n: int) -> TextBatch:
        """Every sentence repeated ``n`` times in place (rows ``n i .. n i + n - 1`` are
        sentence ``i``): ``[n B, L+1]``."""
        return TextBatch(self.tokens.repeat_interleave(n, dim=0),
                         _opt(self.encoder_input, lambda e: e.repeat_each(n)),
                         _opt(self.words, lambda w: w.repeat_interleave(n)))

    def select(self, index: torch.Tensor) -> TextBatch:
        """The sentences ``index`` (a LongTensor), in that order."""
        return TextBatch(self.tokens[index], _opt(self.encoder_input, lambda e: e.select(index)),
                         _opt(self.words, lambda w: w[index.to(w.device)]))

    @property
    def device(self) -> torch.device:
        return self.tokens.device

    @property
    def num_examples(self) -> int:
        """B, sentences in the batch."""
        return int(self.tokens.shape[0])

    @property
    def num_tokens(self) -> int:
        """Predicted tokens in the batch: B * L (``<s>`` excluded, one ``</s>`` per sentence)."""
        return int(self.tokens.shape[0] * (self.tokens.shape[1] - 1))

    @property
    def num_words(self) -> int | None:
        """Predicted words (words and one ``</s>`` per sentence) where the tokens are subwords
        (:attr:`words`); None where the tokens are the words."""
        return None if self.words is None else int(self.words.sum())


def encode_corpus(sentences: Iterable[Sequence[str]], vocab: Vocabulary) -> list[list[int]]:
    """Token lists -> ``[BOS] + ids + [EOS]`` index lists (unknown words -> ``UNK``)."""
    bos, eos = [Vocabulary.BOS_INDEX], [Vocabulary.EOS_INDEX]
    return [bos + vocab.encode(sentence) + eos for sentence in sentences]


def epoch_batch_order(n: int, seed: int, epoch: int, *, shuffle: bool, rank: int,
                      world_size: int, drop_last: bool) -> list[int]:
    """Which of ``n`` batches one process runs in ``epoch``, in order (the rule every batcher
    shares: :meth:`BatchedCorpus.batches` documents it).

    With ``shuffle`` a permutation drawn from ``(seed, epoch)``, else ``0..n-1``; with
    ``drop_last`` the last ``n % world_size`` of that order are dropped; then every
    ``world_size``-th from ``rank``. Raises ``ValueError`` for a bad rank and
    :class:`UserError` when ``drop_last`` leaves a process no batch.
    """
    if world_size < 1 or not 0 <= rank < world_size:
        raise ValueError(f"need 0 <= rank < world_size, got rank={rank}, "
                         f"world_size={world_size}")
    ids = np.random.default_rng([seed, epoch]).permutation(n) if shuffle else np.arange(n)
    if drop_last:
        if n < world_size:
            raise UserError(f"only {n} batches for {world_size} processes: use a smaller "
                            "batch size or fewer processes")
        ids = ids[: n - n % world_size]
    return ids[rank::world_size].tolist()


class BatchedCorpus:
    """A corpus of encoded sentences cut into equal-length batches.

    Batch composition is fixed at construction and depends only on ``seed``; the order in
    which :meth:`batches` returns them depends on ``(seed, epoch)``. A batch is a
    :class:`TextBatch` of ``tokens [B, L+1]``, rows ``<s> w_1 .. w_n </s>`` (``L = n + 1``
    predicted tokens per row), ``B <= batch_size``.

    Args:
        encoded: sentences as index lists, each starting with ``<s>`` and ending with ``</s>``
            (see :func:`encode_corpus`), at least 2 indices long.
        batch_size: maximum sentences per batch.
        seed: seeds the shuffle that decides which sentences of equal length share a batch.
        encoder_rows: the same sentences in an encoder's own subword ids (any lengths), given
            to each batch as :attr:`TextBatch.encoder_input`, padded with ``encoder_pad``.
        words: the predicted words of each sentence (words and ``</s>``) where ``encoded``
            are subword ids, given to each batch as :attr:`TextBatch.words`.
    """

    def __init__(self, encoded: Sequence[Sequence[int]], batch_size: int, seed: int = 0, *,
                 encoder_rows: Sequence[Sequence[int]] | None = None, encoder_pad: int = 0,
                 words: Sequence[int] | None = None) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if seed < 0:
            raise ValueError(f"seed must be >= 0, got {seed}")
        if len(encoded) == 0:
            raise UserError("cannot batch an empty corpus: no sentences")
        for name, extra in (("encoder_rows", encoder_rows), ("words", words)):
            if extra is not None and len(extra) != len(encoded):
                raise ValueError(f"{name}: {len(extra)} rows for {len(encoded)} sentences")
        self.batch_size = batch_size
        self.seed = seed
        lengths = np.fromiter((len(s) for s in encoded), dtype=np.int64, count=len(encoded))
        if lengths.min() < 2:
            raise ValueError("every encoded sentence needs at least <s> and </s> (2 indices)")
        self._num_tokens = int(lengths.sum()) - len(encoded)
        order = np.random.default_rng(seed).permutation(len(encoded))
        order = order[np.argsort(lengths[order], kind="stable")]
        self._batches: list[TextBatch] = []
        self._indices: list[torch.Tensor] = []
        # One [n, L+1] array per length, then cut into row blocks (views, no copies).
        bounds = np.flatnonzero(np.diff(lengths[order])) + 1
        for group in np.split(order, bounds):
            rows = torch.from_numpy(np.array([encoded[i] for i in group], dtype=np.int64))
            idx = torch.from_numpy(group)
            for t, i in zip(torch.split(rows, batch_size), torch.split(idx, batch_size)):
                self._batches.append(TextBatch(
                    t, None if encoder_rows is None else
                    SubwordRows.pad([encoder_rows[j] for j in i.tolist()], encoder_pad),
                    None if words is None else torch.tensor([words[j] for j in i.tolist()])))
            self._indices.extend(torch.split(idx, batch_size))

    def __len__(self) -> int:
        """Number of batches in one epoch (all ranks together)."""
        return len(self._batches)

    @property
    def num_sentences(self) -> int:
        """Sentences in the corpus."""
        return sum(len(idx) for idx in self._indices)

    @property
    def num_tokens(self) -> int:
        """Predicted tokens per epoch: words + one ``</s>`` per sentence (``<s>`` excluded)."""
        return self._num_tokens

    def _batch_ids(self, epoch: int, shuffle: bool, rank: int, world_size: int,
                   drop_last: bool) -> list[int]:
        return epoch_batch_order(len(self._batches), self.seed, epoch, shuffle=shuffle,
                                 rank=rank, world_size=world_size, drop_last=drop_last)

    def batches(
        self,
        epoch: int = 0,
        *,
        shuffle: bool = True,
        rank: int = 0,
        world_size: int = 1,
        drop_last: bool = True,
    ) -> list[TextBatch]:
        """The batches of one epoch for one process.

        Args:
            epoch: with ``shuffle``, the order is a permutation drawn from ``(seed, epoch)``:
                the same on every process, different from epoch to epoch.
            shuffle: if False, batches come in their fixed order (shortest sentences first).
            rank, world_size: distributed training. After ordering, batch ``i`` goes to rank
                ``i % world_size``. With ``drop_last`` (default) the last
                ``len(self) % world_size`` batches of the epoch's order are dropped first, so
                every rank runs the same number of steps (which DistributedDataParallel needs);
                as the order changes with the epoch, different batches are dropped each epoch.
                Use ``drop_last=False`` for evaluation, where every batch must be seen once and
                ranks may get one batch more or less than each other.

        Returns:
            :class:`TextBatch` objects (their tensors are shared with this object: do not modify
            them in place).
        """
        return [self._batches[i] for i in self._batch_ids(epoch, shuffle, rank, world_size,
                                                           drop_last)]

    def batch_indices(
        self,
        epoch: int = 0,
        *,
        shuffle: bool = True,
        rank: int = 0,
        world_size: int = 1,
        drop_last: bool = True,
    ) -> list[torch.Tensor]:
        """Positions in ``encoded`` of the rows of each batch, aligned with :meth:`batches`.

        Same arguments as :meth:`batches`; use it to fetch per-sentence data such as labels:
        ``labels[idx]`` for ``idx`` in ``batch_indices(...)``.
        """
        return [self._indices[i] for i in self._batch_ids(epoch, shuffle, rank, world_size,
                                                          drop_last)]
