"""A sentence run's data: the vocabulary and the batched train/valid/test splits named by a
run's ``data`` section (:class:`CorpusFiles`; which reader a model family uses is the family's
choice, :mod:`cyclevae.families`)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from ..errors import UserError
from .batching import BatchedCorpus
from .corpus import read_labelled, read_sentences
from .sources import data_dir as default_data_dir
from .sources import resolve_data_path
from .tokenizers import Tokenizers
from .vocab import Vocabulary

__all__ = ["Corpora", "CorpusFiles", "EncoderLimit", "is_labelled", "load_corpora",
           "load_split", "read_split", "split_spec"]

SPLITS = ("train", "valid", "test")


class CorpusFiles(Protocol):
    """The settings of a run's ``data`` section that reading and batching use (the config's
    :class:`~cyclevae.config.DataConfig` is one): the split files (a path or ``NAME:SPLIT``),
    where known data sets live, the length and vocabulary limits, the batch size, the format."""

    train: str
    valid: str | None
    test: str | None
    data_dir: str | None
    max_length: int | None
    max_vocab: int | None
    min_count: int
    batch_size: int
    format: str


@dataclass
class Corpora:
    """Vocabulary and batched splits of one run (``stats``: lines, sentences, blank and
    too-long lines, tokens, per split)."""

    vocab: Vocabulary
    train: BatchedCorpus
    valid: BatchedCorpus | None
    test: BatchedCorpus | None
    stats: dict[str, Any]


def split_spec(data: CorpusFiles, split: str) -> str | None:
    """The file (or ``NAME:SPLIT``) a config names for ``split`` (``train``/``valid``/``test``)."""
    return {"train": data.train, "valid": data.valid, "test": data.test}[split]


@dataclass(frozen=True)
class EncoderLimit:
    """A fixed-size encoder's input: at most ``positions`` positions (words and ``</s>``);
    longer sentences are ``cut`` (the encoder reads a prefix) or ``drop``-ped when read."""

    positions: int
    policy: str


def is_labelled(path: Path, data_format: str) -> bool:
    """Whether ``path`` is read as ``LABEL<TAB>SENTENCE`` lines: ``data.format`` ``labelled``,
    or ``auto`` and a ``.tsv`` file."""
    return data_format == "labelled" or (data_format == "auto" and path.suffix == ".tsv")


def read_split(spec: str, root: Path, data: CorpusFiles, limit: EncoderLimit | None = None
               ) -> tuple[list[list[str]], list[str] | None, dict[str, Any]]:
    """One split's sentences, its labels (None for an unlabelled file; a run trains on the
    sentences alone) and its read statistics. With ``limit``, sentences longer than the
    encoder's input are dropped or counted as cut (``encoder_dropped``/``encoder_cut``)."""
    path = resolve_data_path(spec, root)
    labels: list[str] | None = None
    if is_labelled(path, data.format):
        labels, sentences, st = read_labelled(path, max_length=data.max_length)
    else:
        sentences, st = read_sentences(path, max_length=data.max_length)
    stats: dict[str, Any] = {"lines": st.lines, "sentences": st.sentences, "blank": st.blank,
                             "too_long": st.too_long, "tokens": st.tokens}
    if limit is not None:
        over = [len(words) + 1 > limit.positions for words in sentences]
        if limit.policy == "drop":
            keep = [i for i, long in enumerate(over) if not long]
            if not keep:
                raise UserError(f"{path}: no sentence fits the encoder's {limit.positions} input "
                                "positions (model.cnn.input_length, words and </s>)")
            sentences = [sentences[i] for i in keep]
            labels = None if labels is None else [labels[i] for i in keep]
            stats.update(sentences=len(sentences), tokens=sum(map(len, sentences)),
                         encoder_dropped=sum(over))
        else:
            stats["encoder_cut"] = sum(over)
    return sentences, labels, stats


def load_split(data: CorpusFiles, spec: str, vocab: Vocabulary, *, seed: int,
               data_dir: str | None = None, limit: EncoderLimit | None = None,
               tokenizers: Tokenizers = Tokenizers()) -> tuple[BatchedCorpus, dict[str, Any]]:
    """One corpus file (or known data set ``NAME:SPLIT``) batched as the run batches its splits
    (same batch size, same seed, same length limits, same ``tokenizers``); returns it with its
    read statistics."""
    sentences, _, stats = read_split(spec, default_data_dir(data_dir or data.data_dir), data,
                                     limit)
    return tokenizers.corpus(sentences, vocab, batch_size=data.batch_size, seed=seed), stats


def load_corpora(data: CorpusFiles, *, seed: int, vocab: Vocabulary | None = None,
                 limit: EncoderLimit | None = None, tokenizers: Tokenizers = Tokenizers()
                 ) -> Corpora:
    """Read the splits named in ``data`` (labels of ``LABEL<TAB>SENTENCE`` files ignored);
    build the vocabulary from train unless given. ``limit``: the encoder's input limit, if
    any; ``tokenizers``: a model's own tokenizers (:class:`~cyclevae.data.tokenizers.
    Tokenizers`; default the vocabulary's word ids alone)."""
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
        sentences[split], _, stats[split] = read_split(spec, root, data, limit)
    if vocab is None:
        vocab = Vocabulary.build(sentences["train"] or [], max_size=data.max_vocab,
                                 min_count=data.min_count)

    def batched(split: str) -> BatchedCorpus | None:
        rows = sentences[split]
        if rows is None:
            return None
        return tokenizers.corpus(rows, vocab, batch_size=data.batch_size, seed=seed)

    train = batched("train")
    assert train is not None
    return Corpora(vocab, train, batched("valid"), batched("test"), stats)
