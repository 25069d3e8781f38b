"""A :class:`~.examples.DialogCorpus` cut into batches, deterministic given the seed.

Speed: an utterance sits in the contexts of up to 9 examples. :class:`DialogBatcher` puts
runs of consecutive examples of one conversation into the same batch, and a
:class:`~.batch.DialogBatch` carries each distinct utterance of the batch once
(``utterances``) with index maps from context slots and responses to it, so the model encodes
each utterance once.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ...errors import UserError
from ..batching import epoch_batch_order
from .batch import DialogBatch
from .examples import DialogCorpus

__all__ = ["DialogBatcher"]


class _LazyBatches(Sequence[DialogBatch]):
    """A list of batches built on access (a corpus's padded batches would take ~100 MB)."""

    def __init__(self, corpus: DialogCorpus, groups: list[np.ndarray]) -> None:
        self._corpus, self._groups = corpus, groups

    def __len__(self) -> int:
        return len(self._groups)

    def __getitem__(self, i):  # type: ignore[override]
        if isinstance(i, slice):
            return _LazyBatches(self._corpus, self._groups[i])
        return self._corpus.batch(self._groups[i])


class DialogBatcher:
    """Examples of a :class:`DialogCorpus` cut into batches, deterministic given ``seed``.

    Composition (fixed at construction): each conversation's examples are cut into runs of
    ``run_length`` consecutive examples (the first run of a conversation is 1..run_length
    long, drawn with the seed), runs are shuffled with the seed, cut into pools of
    ``pool_batches * batch_size`` examples, and within a pool sorted by their longest
    response and shortest context (bucketing), then cut every ``batch_size`` examples. Consecutive examples share 9 of their 10
    utterances, so a run of r examples needs r + 9 distinct utterances instead of 10 r.
    ``run_length=1`` gives independent examples. The order of the batches in an epoch is a
    permutation drawn from ``(seed, epoch)``.
    """

    def __init__(self, corpus: DialogCorpus, batch_size: int = 30, seed: int = 0, *,
                 run_length: int = 5, pool_batches: int = 100) -> None:
        for name, value in (("batch_size", batch_size), ("run_length", run_length),
                            ("pool_batches", pool_batches)):
            if value < 1:
                raise ValueError(f"{name} must be >= 1, got {value}")
        if seed < 0:
            raise ValueError(f"seed must be >= 0, got {seed}")
        if len(corpus) == 0:
            raise UserError("cannot batch an empty dialog corpus: no examples")
        self.corpus, self.batch_size, self.seed = corpus, batch_size, seed
        rng = np.random.default_rng(seed)
        conv = corpus.conversation_of
        bounds = np.flatnonzero(np.diff(conv)) + 1
        runs: list[np.ndarray] = []
        for ids in np.split(np.arange(len(corpus)), bounds):
            first = int(rng.integers(1, run_length + 1)) if run_length > 1 else 1
            cuts = list(range(first, len(ids), run_length))
            runs.extend(np.split(ids, cuts))
        order = rng.permutation(len(runs))
        lengths = np.fromiter((len(u) for u in corpus.utterances), np.int64,
                              count=len(corpus.utterances))
        resp_len = lengths[corpus.examples[:, 1]]
        ctx_len = corpus.examples[:, 1] - corpus.examples[:, 0]
        run_key = np.array([resp_len[r].max() * 64 + ctx_len[r].min() for r in runs])
        flat = np.concatenate([runs[r] for r in order])  # examples, runs in shuffled order
        key = np.concatenate([np.full(len(runs[r]), run_key[r]) for r in order])
        pool = pool_batches * batch_size
        groups: list[np.ndarray] = []
        for start in range(0, len(flat), pool):  # a run may straddle two pools
            part = slice(start, start + pool)
            # stable: a run's examples stay together, equal keys keep the shuffled order
            sorted_ids = flat[part][np.argsort(key[part], kind="stable")]
            groups.extend(np.split(sorted_ids, range(batch_size, len(sorted_ids), batch_size)))
        self._groups = groups

    def __len__(self) -> int:
        """Batches in one epoch (all ranks together)."""
        return len(self._groups)

    @property
    def num_examples(self) -> int:
        return len(self.corpus)

    @property
    def num_tokens(self) -> int:
        """Predicted response tokens per epoch."""
        return self.corpus.num_tokens

    def _batch_ids(self, epoch: int, shuffle: bool, rank: int, world_size: int,
                   drop_last: bool) -> list[int]:
        return epoch_batch_order(len(self._groups), self.seed, epoch, shuffle=shuffle,
                                 rank=rank, world_size=world_size, drop_last=drop_last)

    def batches(self, epoch: int = 0, *, shuffle: bool = True, rank: int = 0,
                world_size: int = 1, drop_last: bool = True) -> Sequence[DialogBatch]:
        """The batches of one epoch for one process (same arguments and distribution rules as
        :meth:`cyclevae.data.batching.BatchedCorpus.batches`); built on access."""
        ids = self._batch_ids(epoch, shuffle, rank, world_size, drop_last)
        return _LazyBatches(self.corpus, [self._groups[i] for i in ids])

    def batch_indices(self, epoch: int = 0, *, shuffle: bool = True, rank: int = 0,
                      world_size: int = 1, drop_last: bool = True) -> list[np.ndarray]:
        """Example ids (rows of ``corpus.examples``) of each batch, aligned with
        :meth:`batches`."""
        ids = self._batch_ids(epoch, shuffle, rank, world_size, drop_last)
        return [self._groups[i] for i in ids]
