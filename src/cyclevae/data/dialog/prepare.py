"""One call that reads a dialog run's files: conversations read, leaked training
conversations dropped, vocabularies built, every file encoded (:func:`prepare_dialog_data`)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field

from ...errors import UserError
from ..vocab import Vocabulary
from .examples import DialogCorpus, encode_dialogs
from .leakage import drop_leaked
from .reading import ReadStats, check_features, read_conversations
from .vocabularies import build_act_vocabulary, build_topic_vocabulary, build_vocabulary

__all__ = ["DialogData", "prepare_dialog_data"]


@dataclass
class DialogData:
    """Everything a dialog run reads (:func:`prepare_dialog_data`).

    Attributes: vocab; act_labels; train (the training :class:`DialogCorpus`, leaked
    conversations removed); evaluations (name -> :class:`DialogCorpus`, e.g. ``valid``,
    ``test``); stats (name -> :class:`ReadStats`, ``train`` included); leaked (training
    conversations dropped for overlapping an evaluation file); leaked_by (evaluation name ->
    training conversations matching one of its conversations; a conversation may match
    several files, so these can add up to more than ``leaked``); topic_labels
    (:func:`build_topic_vocabulary`, empty when the topic feature is off).
    """

    vocab: Vocabulary
    act_labels: list[str]
    train: DialogCorpus
    evaluations: dict[str, DialogCorpus]
    stats: dict[str, ReadStats]
    leaked: int
    leaked_by: dict[str, int] = field(default_factory=dict)
    topic_labels: list[str] = field(default_factory=list)


def prepare_dialog_data(train: str | os.PathLike[str],
                        evaluations: dict[str, str | os.PathLike[str]], *,
                        max_vocab: int | None = 10_000, max_context: int = 9,
                        max_utterance_length: int = 40, drop_leakage: bool = True,
                        leakage_threshold: float = 0.5, vocab: Vocabulary | None = None,
                        act_labels: Sequence[str] | None = None,
                        leakage_against: Sequence[str] | None = None,
                        min_count: int = 1, use_topic: bool = False, use_caller: bool = False,
                        topic_labels: Sequence[str] | None = None, preparation: str = "swda"
                        ) -> DialogData:
    """Read the training file and the evaluation files, drop from training the conversations
    that (almost) occur in an evaluation file (:func:`~.leakage.drop_leaked`, if ``drop_leakage``;
    ``leakage_against``: the names of the evaluations to check, default all), build the
    vocabulary (``max_vocab`` most frequent tokens, None: all; ``min_count``) and act labels
    from what remains (unless given, e.g. from a checkpoint) and encode every file. The caller
    logs ``leaked``, ``leaked_by`` and each ``stats``.

    ``use_topic`` / ``use_caller``: the conversation features the model conditions on
    (:func:`check_features`: every training conversation must have them, an evaluation file
    its callers; one-line :class:`UserError` naming the file otherwise); the topic labels are
    built from the remaining training conversations unless given (``topic_labels``).
    ``preparation``: the text preparation of swda-layout files (:data:`PREPARATIONS`,
    :func:`read_conversations`)."""
    conversations, stats = {}, {}
    conversations["train"], stats["train"] = read_conversations(train, preparation)
    check_features(conversations["train"], train, use_topic=use_topic, use_caller=use_caller)
    for name, path in evaluations.items():
        conversations[name], stats[name] = read_conversations(path, preparation)
        check_features(conversations[name], path, use_topic=use_topic, use_caller=use_caller,
                       training=False)
    leaked, leaked_by = 0, {}
    against = list(evaluations) if leakage_against is None else list(leakage_against)
    if drop_leakage and against:
        kept, counts = drop_leaked(conversations["train"], [conversations[n] for n in against],
                                   leakage_threshold)
        leaked_by = dict(zip(against, counts))
        leaked = len(conversations["train"]) - len(kept)
        conversations["train"] = kept
        if not kept:
            raise UserError(f"{train}: every training conversation also occurs in an "
                            "evaluation file")
    if vocab is None:
        vocab = build_vocabulary(conversations["train"], max_size=max_vocab,
                                 min_count=min_count)
    acts = list(act_labels) if act_labels is not None else build_act_vocabulary(
        conversations["train"])
    topics: list[str] = []
    if use_topic:
        topics = (list(topic_labels) if topic_labels else
                  build_topic_vocabulary(conversations["train"]))

    def encode(name: str) -> DialogCorpus:
        return encode_dialogs(conversations[name], vocab, max_context=max_context,
                              max_utterance_length=max_utterance_length, act_labels=acts,
                              topic_labels=topics, callers=use_caller)

    return DialogData(vocab, acts, encode("train"), {n: encode(n) for n in evaluations},
                      stats, leaked, leaked_by, topics)
