"""Equal-length batches on a slice of PTB train: shapes, coverage, determinism, sharding."""

from __future__ import annotations

import math
from collections import Counter
from itertools import islice
from pathlib import Path

import pytest
import torch

from cyclevae.data.batching import BatchedCorpus, encode_corpus
from cyclevae.data.corpus import read_sentences
from cyclevae.data.vocab import Vocabulary
from cyclevae.errors import UserError


@pytest.fixture(scope="module")
def encoded(shared_data: Path) -> list[list[int]]:
    """The first 2,000 lines of PTB train, encoded."""
    with open(shared_data / "ptb" / "train.txt", encoding="utf-8") as f:
        sentences = [line.split() for line in islice(f, 2000)]
    return encode_corpus(sentences, Vocabulary.build(sentences))


def rows(batches: list[torch.Tensor]) -> Counter[tuple[int, ...]]:
    return Counter(tuple(row) for b in batches for row in b.tolist())


def test_encode_corpus_adds_bos_eos() -> None:
    v = Vocabulary.build([["a", "b"]])
    assert encode_corpus([["a", "b", "zz"], []], v) == [
        [1, v.index("a"), v.index("b"), 3, 2],
        [1, 2],
    ]


def test_rows_equal_length_and_each_sentence_once(encoded: list[list[int]]) -> None:
    corpus = BatchedCorpus(encoded, batch_size=32, seed=0)
    batches = [b.tokens for b in corpus.batches(epoch=0)]
    assert len(batches) == len(corpus)
    for b in batches:
        assert b.dtype == torch.long and b.dim() == 2 and 1 <= b.shape[0] <= 32
        assert (b[:, 0] == Vocabulary.BOS_INDEX).all() and (b[:, -1] == Vocabulary.EOS_INDEX).all()
    assert rows(batches) == Counter(tuple(s) for s in encoded)
    assert corpus.num_sentences == len(encoded) == sum(b.shape[0] for b in batches)
    assert corpus.num_tokens == sum(len(s) - 1 for s in encoded)
    assert corpus.num_tokens == sum(b.numel() - b.shape[0] for b in batches)
    # Fewest batches possible: one partial batch per length at most.
    lengths = Counter(len(s) for s in encoded)
    assert len(corpus) == sum(math.ceil(n / 32) for n in lengths.values())


def test_batch_indices_align_with_batches(encoded: list[list[int]]) -> None:
    corpus = BatchedCorpus(encoded, batch_size=16, seed=3)
    for b, idx in zip(corpus.batches(5), corpus.batch_indices(5), strict=True):
        assert b.tokens.tolist() == [encoded[i] for i in idx.tolist()]


def test_deterministic_given_seed_and_epoch(encoded: list[list[int]]) -> None:
    a = BatchedCorpus(encoded, batch_size=32, seed=1)
    b = BatchedCorpus(encoded, batch_size=32, seed=1)
    c = BatchedCorpus(encoded, batch_size=32, seed=2)
    as_lists = [t.tokens.tolist() for t in a.batches(0)]
    assert as_lists == [t.tokens.tolist() for t in b.batches(0)]
    assert as_lists != [t.tokens.tolist() for t in c.batches(0)]
    assert as_lists != [t.tokens.tolist() for t in a.batches(1)]
    assert rows([b.tokens for b in a.batches(1)]) == rows([b.tokens for b in a.batches(0)])
    # A different seed also changes which sentences share a batch.
    comp = {frozenset(map(tuple, t.tokens.tolist())) for t in a.batches(0)}
    assert comp != {frozenset(map(tuple, t.tokens.tolist())) for t in c.batches(0)}


def test_no_shuffle_is_sorted_by_length(encoded: list[list[int]]) -> None:
    corpus = BatchedCorpus(encoded, batch_size=32, seed=0)
    widths = [b.tokens.shape[1] for b in corpus.batches(shuffle=False)]
    assert widths == sorted(widths)
    assert [t.tokens.tolist() for t in corpus.batches(0, shuffle=False)] == [
        t.tokens.tolist() for t in corpus.batches(7, shuffle=False)
    ]


@pytest.mark.parametrize("world_size", [2, 3, 4])
def test_rank_sharding_partitions_batches(encoded: list[list[int]], world_size: int) -> None:
    corpus = BatchedCorpus(encoded, batch_size=32, seed=0)
    full = corpus.batch_indices(epoch=2)
    shards = [corpus.batch_indices(2, rank=r, world_size=world_size) for r in range(world_size)]
    assert len({len(s) for s in shards}) == 1
    assert sum(map(len, shards)) == len(corpus) - len(corpus) % world_size
    taken = [idx.tolist() for shard in shards for idx in shard]
    # Disjoint, and exactly the epoch's order minus its tail, dealt round-robin.
    kept = [idx.tolist() for idx in full[: len(taken)]]
    assert sorted(taken) == sorted(kept)
    assert shards[1][0].tolist() == full[1].tolist()
    # Without drop_last every batch is used exactly once (for evaluation).
    loose = [corpus.batch_indices(2, rank=r, world_size=world_size, drop_last=False)
             for r in range(world_size)]
    assert sorted(i.tolist() for s in loose for i in s) == sorted(i.tolist() for i in full)


def test_bad_arguments(encoded: list[list[int]]) -> None:
    with pytest.raises(ValueError):
        BatchedCorpus(encoded, batch_size=0)
    with pytest.raises(UserError):
        BatchedCorpus([], batch_size=4)
    with pytest.raises(ValueError):
        BatchedCorpus([[1]], batch_size=4)
    corpus = BatchedCorpus(encoded[:3], batch_size=32)
    with pytest.raises(ValueError):
        corpus.batches(rank=2, world_size=2)
    with pytest.raises(UserError, match="processes"):
        corpus.batches(rank=0, world_size=64)


def test_ptb_train_matches_paper(shared_data: Path) -> None:
    """All 42,068 PTB train sentences, batches of 32: the paper's 1,359 / 929,589 (about 1 s)."""
    sentences, stats = read_sentences(shared_data / "ptb" / "train.txt")
    corpus = BatchedCorpus(encode_corpus(sentences, Vocabulary.build(sentences)), 32, seed=0)
    assert (stats.too_long, corpus.num_sentences) == (0, 42_068)
    assert (len(corpus), corpus.num_tokens) == (1_359, 929_589)
