"""A run's data: the vocabulary and the batched train/valid/test splits named by a config."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..errors import UserError
from .batching import BatchedCorpus, encode_corpus
from .corpus import read_sentences
from .sources import data_dir as default_data_dir
from .sources import resolve_data_path
from .vocab import Vocabulary

if TYPE_CHECKING:
    from ..config import DataConfig

__all__ = ["Corpora", "load_corpora", "load_split", "split_spec"]

SPLITS = ("train", "valid", "test")


@dataclass
class Corpora:
    """Vocabulary and batched splits of one run (``stats``: lines, sentences, blank and
    too-long lines, tokens, per split)."""

    vocab: Vocabulary
    train: BatchedCorpus
    valid: BatchedCorpus | None
    test: BatchedCorpus | None
    stats: dict[str, Any]


def split_spec(data: DataConfig, split: str) -> str | None:
    """The file (or ``NAME:SPLIT``) a config names for ``split`` (``train``/``valid``/``test``)."""
    return {"train": data.train, "valid": data.valid, "test": data.test}[split]


def _read(spec: str, root: Any, data: DataConfig) -> tuple[list[list[str]], dict[str, Any]]:
    sentences, st = read_sentences(resolve_data_path(spec, root), max_length=data.max_length)
    return sentences, {"lines": st.lines, "sentences": st.sentences, "blank": st.blank,
                       "too_long": st.too_long, "tokens": st.tokens}


def load_split(data: DataConfig, spec: str, vocab: Vocabulary, *, seed: int,
               data_dir: str | None = None) -> tuple[BatchedCorpus, dict[str, Any]]:
    """One corpus file (or known data set ``NAME:SPLIT``) batched as the run batches its splits
    (same batch size, same seed, same length limit); returns it with its read statistics."""
    sentences, stats = _read(spec, default_data_dir(data_dir or data.data_dir), data)
    return BatchedCorpus(encode_corpus(sentences, vocab), batch_size=data.batch_size,
                         seed=seed), stats


def load_corpora(data: DataConfig, *, seed: int, vocab: Vocabulary | None = None) -> Corpora:
    """Read the splits named in ``data``; build the vocabulary from train unless given."""
    if not data.train:
        raise UserError("config: data.train must name a corpus file or a data set (e.g. ptb:train)")
    root = default_data_dir(data.data_dir)
    stats: dict[str, Any] = {}
    sentences: dict[str, list[list[str]] | None] = {}
    for split in SPLITS:
        spec = split_spec(data, split)
        if not spec:
            sentences[split] = None
            continue
        sentences[split], stats[split] = _read(spec, root, data)
    if vocab is None:
        vocab = Vocabulary.build(sentences["train"] or [], max_size=data.max_vocab,
                                 min_count=data.min_count)

    def batched(split: str) -> BatchedCorpus | None:
        rows = sentences[split]
        if rows is None:
            return None
        return BatchedCorpus(encode_corpus(rows, vocab), batch_size=data.batch_size, seed=seed)

    train = batched("train")
    assert train is not None
    return Corpora(vocab, train, batched("valid"), batched("test"), stats)
