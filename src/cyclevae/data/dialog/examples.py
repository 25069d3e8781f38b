"""Conversations -> encoded utterances and the (context, response) examples over them.

As in Zhao et al.'s code, every conversation starts with a beginning-of-dialog utterance
``<d>``; an example is one utterance (the response) with the up to 9 utterances before it (the
context), each utterance cut to 40 tokens counting ``<s>`` and ``</s>`` (38 words + ``</s>``
kept, Zhao's ``pad_to``). The speaker feature of a context utterance is Zhao's *floor*: 1 if
it was said by the response's speaker, 0 otherwise (and for ``<d>``). Per example,
:func:`encode_dialogs` also gives the topic id (:data:`~.vocabularies.TOPIC_UNK`, id 0, for a
topic not seen in training, or none) and Zhao's 4-d caller vectors ``[age / 100, education /
3] + sex one-hot`` of the responding speaker ("my") and of the other caller.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from ...errors import UserError
from ..vocab import Vocabulary
from .batch import DialogBatch
from .reading import CALLER_DIM, Conversation
from .vocabularies import DIALOG_START

__all__ = ["DialogCorpus", "encode_dialogs", "encode_utterance"]


@dataclass
class DialogCorpus:
    """Encoded conversations and the examples over them (:func:`encode_dialogs`).

    Attributes:
        utterances: every encoded utterance, ``<s> .. </s>`` (``<d>`` utterances included),
            conversation after conversation; global index = position in this list.
        speakers: ``[n_utts]`` int speaker id of each utterance within its conversation
            (-1 for ``<d>``).
        acts: ``[n_utts]`` int act id (-1: unknown or ``<d>``).
        examples: ``[N, 2]`` int, ``(context start, response)`` global utterance indices: the
            context is utterances ``start .. response - 1``.
        conversation_of: ``[N]`` int, the conversation (position in the input) of each example.
        topics: ``[N]`` int topic id of each example's conversation (0: unknown), or None.
        callers: ``[N, 2, CALLER_DIM]`` float32, "my" (the response's speaker) and "other"
            caller vectors of each example, or None.
        topic_labels: the topic ids' labels (:func:`build_topic_vocabulary`; empty: off).
    """

    utterances: list[np.ndarray]
    speakers: np.ndarray
    acts: np.ndarray
    examples: np.ndarray
    conversation_of: np.ndarray
    max_context: int
    act_labels: list[str] = field(default_factory=list)
    topics: np.ndarray | None = None
    callers: np.ndarray | None = None
    topic_labels: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return int(self.examples.shape[0])

    @property
    def num_tokens(self) -> int:
        """Predicted response tokens of all examples (words + ``</s>``)."""
        lengths = np.fromiter((len(u) for u in self.utterances), np.int64,
                              count=len(self.utterances))
        return int((lengths[self.examples[:, 1]] - 1).sum())

    def example_ids(self, min_context: int = 1) -> np.ndarray:
        """Examples with at least ``min_context`` context utterances (the evaluation of
        sampled responses uses ``min_context=2``: contexts of a single utterance, ``<d>``
        alone with ``dialog_start``, are skipped)."""
        return np.flatnonzero(self.examples[:, 1] - self.examples[:, 0] >= min_context)

    def batch(self, example_ids: Sequence[int]) -> DialogBatch:
        """The :class:`DialogBatch` of the examples ``example_ids`` (in that order)."""
        ids = np.asarray(example_ids, dtype=np.int64)
        ex = self.examples[ids]
        starts, responses = ex[:, 0], ex[:, 1]
        ctx_len = responses - starts
        # distinct utterances: the union of [start, response] of every example
        needed = np.unique(np.concatenate([np.arange(s, r + 1) for s, r in ex]))
        local = {int(g): i for i, g in enumerate(needed)}
        lengths = np.fromiter((len(self.utterances[g]) for g in needed), np.int64,
                              count=len(needed))
        tokens = np.zeros((len(needed), int(lengths.max())), dtype=np.int64)
        for i, g in enumerate(needed):
            tokens[i, : lengths[i]] = self.utterances[g]
        width = int(ctx_len.max())
        context = np.zeros((len(ex), width), dtype=np.int64)
        floors = np.zeros((len(ex), width), dtype=np.int64)
        for b, (s, r) in enumerate(ex):
            slots = np.arange(s, r)
            context[b, : r - s] = [local[int(g)] for g in slots]
            spk = self.speakers[slots]
            floors[b, : r - s] = (spk == self.speakers[r]) & (spk >= 0)
        response = np.array([local[int(r)] for r in responses], dtype=np.int64)
        return DialogBatch(
            utterances=torch.from_numpy(tokens), lengths=torch.from_numpy(lengths),
            context=torch.from_numpy(context), context_lengths=torch.from_numpy(ctx_len),
            floors=torch.from_numpy(floors), response=torch.from_numpy(response),
            acts=torch.from_numpy(self.acts[responses].astype(np.int64)),
            topics=None if self.topics is None else torch.from_numpy(self.topics[ids]),
            callers=None if self.callers is None else torch.from_numpy(self.callers[ids]),
            counted_tokens=int((lengths[response] - 1).sum()))

    def context_tokens(self, example: int) -> list[tuple[int, list[int]]]:
        """``(floor, ids)`` of each context utterance of ``example`` (for reports)."""
        s, r = (int(v) for v in self.examples[example])
        return [(int(self.speakers[g] == self.speakers[r] and self.speakers[g] >= 0),
                 self.utterances[g].tolist()) for g in range(s, r)]

    def response_ids(self, example: int) -> list[int]:
        """The response of ``example`` as ids, ``<s>`` and ``</s>`` included."""
        return self.utterances[int(self.examples[example, 1])].tolist()


def encode_utterance(vocab: Vocabulary, tokens: Sequence[str], max_length: int) -> np.ndarray:
    """One utterance's ids ``<s> w_1 .. w_n </s>`` (int64), cut to ``max_length`` ids counting
    ``<s>`` and ``</s>`` (Zhao's ``pad_to`` keeps the first words and ``</s>``)."""
    ids = vocab.encode(tokens)[: max_length - 2]
    return np.array([Vocabulary.BOS_INDEX, *ids, Vocabulary.EOS_INDEX], dtype=np.int64)


def encode_dialogs(conversations: Sequence[Conversation], vocab: Vocabulary, *,
                   max_context: int = 9, max_utterance_length: int = 40,
                   dialog_start: bool = True, act_labels: Sequence[str] = (),
                   topic_labels: Sequence[str] | None = None, callers: bool = False
                   ) -> DialogCorpus:
    """Conversations -> :class:`DialogCorpus` of (context, response) examples.

    Every utterance is a response (with ``dialog_start``, the first one too, whose context is
    the ``<d>`` utterance alone); its context is the up to ``max_context`` utterances before
    it. Utterances are cut to ``max_utterance_length`` ids counting ``<s>``/``</s>``
    (Zhao: 40). ``act_labels`` (:func:`build_act_vocabulary`) gives the act ids; acts not in
    it are -1. ``topic_labels`` (:func:`build_topic_vocabulary`; None or empty: no topics)
    gives each example its conversation's topic id, 0 (:data:`TOPIC_UNK`) for a topic not in
    it or none. ``callers``: each example gets its "my" (the response's speaker) and "other"
    caller vectors; a conversation without caller metadata is then a :class:`UserError` (check
    files first with :func:`check_features`, whose message names the file).
    """
    if max_context < 1:
        raise ValueError(f"max_context must be >= 1, got {max_context}")
    if max_utterance_length < 3:
        raise ValueError(f"max_utterance_length must be >= 3, got {max_utterance_length}")
    act_index = {a: i for i, a in enumerate(act_labels)}
    topic_index = {t: i for i, t in enumerate(topic_labels or ())}
    topic_ids: list[int] = []
    caller_rows: list[np.ndarray] = []
    start_utt = encode_utterance(vocab, [DIALOG_START], max_utterance_length)
    utterances: list[np.ndarray] = []
    speakers: list[int] = []
    acts: list[int] = []
    examples: list[tuple[int, int]] = []
    conv_of: list[int] = []
    for c, conv in enumerate(conversations):
        base = len(utterances)
        if dialog_start:
            utterances.append(start_utt)
            speakers.append(-1)
            acts.append(-1)
        speaker_ids: dict[str, int] = {}
        for utt in conv.utterances:
            utterances.append(encode_utterance(vocab, utt.tokens, max_utterance_length))
            speakers.append(speaker_ids.setdefault(utt.speaker, len(speaker_ids)))
            acts.append(act_index.get(utt.act, -1) if utt.act is not None else -1)
        first = len(examples)
        for r in range(base + 1, len(utterances)):
            examples.append((max(base, r - max_context), r))
            conv_of.append(c)
        if topic_index:
            topic_ids.extend([topic_index.get(conv.topic, 0)] * (len(examples) - first))
        if callers:
            caller_rows.extend(_caller_pairs(conv, dialog_start))
    if not examples:
        raise UserError("no (context, response) example: every conversation has a single "
                        "utterance (and dialog_start is off)")
    return DialogCorpus(
        utterances, np.array(speakers, dtype=np.int64), np.array(acts, dtype=np.int64),
        np.array(examples, dtype=np.int64), np.array(conv_of, dtype=np.int64), max_context,
        list(act_labels),
        topics=np.array(topic_ids, dtype=np.int64) if topic_index else None,
        callers=(np.stack(caller_rows).astype(np.float32) if caller_rows
                 else np.zeros((0, 2, CALLER_DIM), np.float32)) if callers else None,
        topic_labels=list(topic_labels or ()))


def _caller_pairs(conv: Conversation, dialog_start: bool) -> list[np.ndarray]:
    """``[2, CALLER_DIM]`` ("my", "other") per example of ``conv``, in example order (every
    utterance is a response; without ``dialog_start`` the first one is not)."""
    if conv.callers is None:
        raise UserError(f"conversation {conv.id}: no caller metadata 'A' and 'B' "
                        "(model.cvae.use_caller needs it)")
    vectors = {k: np.asarray(v, dtype=np.float32) for k, v in conv.callers.items()}
    responses = conv.utterances if dialog_start else conv.utterances[1:]
    out = []
    for utt in responses:
        if utt.speaker not in vectors:
            raise UserError(f"conversation {conv.id}: speaker {utt.speaker!r} has no caller "
                            "metadata")
        other = next((k for k in vectors if k != utt.speaker), None)
        if other is None:
            raise UserError(f"conversation {conv.id}: caller metadata for one caller only")
        out.append(np.stack([vectors[utt.speaker], vectors[other]]))
    return out
