"""A run's data: the vocabulary and the batched train/valid/test splits named by a config."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import UserError
from .batching import BatchedCorpus, encode_corpus
from .corpus import read_labelled, read_sentences
from .sources import data_dir as default_data_dir
from .sources import resolve_data_path
from .vocab import Vocabulary

if TYPE_CHECKING:
    from ..config import Config, DataConfig

__all__ = ["Corpora", "EncoderLimit", "encoder_limit", "is_labelled", "load_corpora",
           "load_run_data", "load_split", "read_split", "split_spec"]

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


def read_split(spec: str, root: Any, data: DataConfig, limit: EncoderLimit | None = None
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


def encoder_limit(model: Any) -> EncoderLimit | None:
    """The input limit of a model config's encoder (the CNN's ``input_length``), or None."""
    if getattr(model, "encoder", "lstm") != "cnn":
        return None
    return EncoderLimit(model.cnn.input_length, model.cnn.long_inputs)


def load_split(data: DataConfig, spec: str, vocab: Vocabulary, *, seed: int,
               data_dir: str | None = None, limit: EncoderLimit | None = None
               ) -> tuple[BatchedCorpus, dict[str, Any]]:
    """One corpus file (or known data set ``NAME:SPLIT``) batched as the run batches its splits
    (same batch size, same seed, same length limits); returns it with its read statistics."""
    sentences, _, stats = read_split(spec, default_data_dir(data_dir or data.data_dir), data,
                                     limit)
    return BatchedCorpus(encode_corpus(sentences, vocab), batch_size=data.batch_size,
                         seed=seed), stats


def load_corpora(data: DataConfig, *, seed: int, vocab: Vocabulary | None = None,
                 limit: EncoderLimit | None = None) -> Corpora:
    """Read the splits named in ``data`` (labels of ``LABEL<TAB>SENTENCE`` files ignored);
    build the vocabulary from train unless given. ``limit``: :func:`encoder_limit`."""
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
        return BatchedCorpus(encode_corpus(rows, vocab), batch_size=data.batch_size, seed=seed)

    train = batched("train")
    assert train is not None
    return Corpora(vocab, train, batched("valid"), batched("test"), stats)


def load_run_data(config: Config, *, vocab: Vocabulary | None = None,
                  act_labels: list[str] | None = None,
                  topic_labels: list[str] | None = None) -> Any:
    """The data a run trains on, by model kind: conversation files for the dialog CVAE
    (:func:`cyclevae.data.dialog.load_dialog_corpora`, ``act_labels``/``topic_labels`` a
    resumed run's, the topic/caller features as ``model.cvae`` says), else
    sentence corpora (:func:`load_corpora`). Both give ``vocab``, ``train``/``valid``/``test``
    (objects with ``batches(epoch, shuffle=..., rank=..., world_size=..., drop_last=...)``,
    ``len`` and ``num_tokens``) and JSON ``stats``."""
    if config.model.kind == "cvae":
        from .dialog import load_dialog_corpora

        cvae = config.model.cvae
        return load_dialog_corpora(config.data, seed=config.train.seed, vocab=vocab,
                                   act_labels=act_labels, use_topic=cvae.use_topic,
                                   use_caller=cvae.use_caller, topic_labels=topic_labels)
    return load_corpora(config.data, seed=config.train.seed, vocab=vocab,
                        limit=encoder_limit(config.model))
