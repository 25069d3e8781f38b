"""The vocabularies of dialog data, built from the training conversations: words (with the
beginning-of-dialog word ``<d>``), dialog acts and topics; each list's index is the id."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from ..vocab import Vocabulary
from .reading import Conversation

__all__ = ["DIALOG_START", "TOPIC_UNK", "build_act_vocabulary", "build_topic_vocabulary",
           "build_vocabulary"]

#: the beginning-of-dialog utterance's one word (Zhao's ``<d>``); a vocabulary word
DIALOG_START = "<d>"
#: the topic of id 0: a topic the training conversations do not have (or none)
TOPIC_UNK = "<unk>"


def _with_start(conversations: Sequence[Conversation]) -> Iterator[Sequence[str]]:
    for conv in conversations:
        yield (DIALOG_START,)
        for utt in conv.utterances:
            yield utt.tokens


def build_vocabulary(conversations: Sequence[Conversation], max_size: int = 10_000,
                     min_count: int = 1) -> Vocabulary:
    """The ``max_size`` most frequent tokens of the (training) conversations, ``<d>``
    counted once per conversation as in Zhao's code, plus the four specials."""
    return Vocabulary.build(_with_start(conversations), max_size=max_size, min_count=min_count)


def build_act_vocabulary(conversations: Sequence[Conversation]) -> list[str]:
    """The dialog-act labels of the conversations, sorted (index = act id)."""
    return sorted({u.act for c in conversations for u in c.utterances if u.act is not None})


def build_topic_vocabulary(conversations: Sequence[Conversation]) -> list[str]:
    """The topic labels (index = topic id): :data:`TOPIC_UNK` (id 0, for topics the
    (training) conversations do not have), then their topics, sorted."""
    return [TOPIC_UNK, *sorted({c.topic for c in conversations
                                if c.topic is not None and c.topic != TOPIC_UNK})]
