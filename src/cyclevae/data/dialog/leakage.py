"""Training conversations that are (almost) evaluation conversations: word-set Jaccard.

The swda training split and Zhao et al.'s swda-zhao valid/test files overlap (the same SwDA
conversations, prepared differently); a run drops such training conversations
(``data.dialog.drop_leakage``) so that it is not evaluated on what it trained on.
"""

from __future__ import annotations

from collections.abc import Sequence

from .reading import Conversation

__all__ = ["drop_leaked", "find_leaked"]


def _word_set(conversation: Conversation) -> frozenset[str]:
    return frozenset(tok for utt in conversation.utterances for tok in utt.tokens)


def find_leaked(train: Sequence[Conversation], evaluation: Sequence[Conversation],
                threshold: float = 0.5) -> list[tuple[int, int, float]]:
    """Training conversations that are (almost) evaluation conversations.

    Returns ``(train index, evaluation index, Jaccard)`` for every training conversation whose
    word-set Jaccard with some evaluation conversation is > ``threshold``, with its best match.
    (On the shared data, 26 of the 62 swda-zhao test conversations match one of swda/train;
    matches score 0.59-0.97, non-matches at most 0.35.)
    """
    eval_sets = [_word_set(c) for c in evaluation]
    found = []
    for i, conv in enumerate(train):
        words = _word_set(conv)
        best, best_j = -1, 0.0
        for j, other in enumerate(eval_sets):
            union = len(words | other)
            score = len(words & other) / union if union else 0.0
            if score > best_j:
                best, best_j = j, score
        if best_j > threshold:
            found.append((i, best, best_j))
    return found


def drop_leaked(train: Sequence[Conversation], evaluations: Sequence[Sequence[Conversation]],
                threshold: float = 0.5) -> tuple[list[Conversation], list[int]]:
    """``train`` without the conversations :func:`find_leaked` matches in any of
    ``evaluations``; returns ``(kept, per evaluation the number of training conversations that
    match one of its conversations)``. A conversation may match several evaluations, so the
    counts can add up to more than the ``len(train) - len(kept)`` dropped (the caller logs
    both)."""
    leaked: set[int] = set()
    counts = []
    for evaluation in evaluations:
        found = {i for i, _, _ in find_leaked(train, evaluation, threshold)}
        counts.append(len(found))
        leaked |= found
    return [c for i, c in enumerate(train) if i not in leaked], counts
