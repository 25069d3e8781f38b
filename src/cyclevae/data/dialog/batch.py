"""The batch of the dialog CVAE: (context, response) examples, each distinct utterance once."""

from __future__ import annotations

from dataclasses import dataclass

import torch

__all__ = ["DialogBatch"]


@dataclass(frozen=True)
class DialogBatch:
    """A batch of (context, response) examples, each distinct utterance stored once.

    Attributes:
        utterances: LongTensor ``[U, L]``, the batch's distinct utterances, rows
            ``<s> w_1 .. w_n </s>`` padded with ``<pad>`` (0).
        lengths: LongTensor ``[U]``, tokens per row (``<s>`` and ``</s>`` included, >= 2).
        context: LongTensor ``[B, C]``, row of ``utterances`` of each context slot, oldest
            first; slots ``>= context_lengths[b]`` hold 0 and must not be read.
        context_lengths: LongTensor ``[B]``, context utterances per example (1..C).
        floors: LongTensor ``[B, C]``, 1 where the context utterance is by the response's
            speaker (Zhao's floor), else 0 (and 0 in unused slots).
        response: LongTensor ``[B]``, row of ``utterances`` of each example's response.
        acts: LongTensor ``[B]``, the response's dialog-act id (-1: unknown).
        topics: LongTensor ``[B]``, the conversation's topic id (0: :data:`TOPIC_UNK`), or
            None when the topic feature is off.
        callers: FloatTensor ``[B, 2, CALLER_DIM]``, the responding speaker's ("my") and the
            other caller's vectors (:func:`parse_caller`), or None when the feature is off.

    ``repeat``/``repeat_each`` repeat the index maps only (the utterances are shared).
    """

    utterances: torch.Tensor
    lengths: torch.Tensor
    context: torch.Tensor
    context_lengths: torch.Tensor
    floors: torch.Tensor
    response: torch.Tensor
    acts: torch.Tensor
    topics: torch.Tensor | None = None
    callers: torch.Tensor | None = None

    def _rows(self, fn) -> DialogBatch:
        return DialogBatch(self.utterances, self.lengths, fn(self.context),
                           fn(self.context_lengths), fn(self.floors), fn(self.response),
                           fn(self.acts), None if self.topics is None else fn(self.topics),
                           None if self.callers is None else fn(self.callers))

    def to(self, device: torch.device | str, non_blocking: bool = False) -> DialogBatch:
        """The same batch on ``device``."""
        return DialogBatch(*(None if getattr(self, f) is None else
                             getattr(self, f).to(device, non_blocking=non_blocking)
                             for f in self.__dataclass_fields__))

    def repeat(self, n: int) -> DialogBatch:
        """Examples stacked ``n`` times (rows ``i, i + B, ...`` are example ``i``)."""
        return self._rows(lambda t: t.repeat(n, *([1] * (t.dim() - 1))))

    def repeat_each(self, n: int) -> DialogBatch:
        """Every example repeated ``n`` times in place (rows ``n i .. n i + n - 1``)."""
        return self._rows(lambda t: t.repeat_interleave(n, dim=0))

    def select(self, index: torch.Tensor) -> DialogBatch:
        """The examples ``index`` (LongTensor ``[M]``, repeats allowed)."""
        return self._rows(lambda t: t[index])

    @property
    def device(self) -> torch.device:
        return self.utterances.device

    @property
    def num_examples(self) -> int:
        """B, examples (responses) in the batch."""
        return int(self.response.shape[0])

    @property
    def num_tokens(self) -> int:
        """Predicted response tokens: the words plus one ``</s>`` per response."""
        return int((self.lengths[self.response] - 1).sum())

    @property
    def max_context(self) -> int:
        """C, context slots per example."""
        return int(self.context.shape[1])

    def response_tokens(self) -> torch.Tensor:
        """LongTensor ``[B, Lr]``: the responses ``<s> .. </s>`` padded with ``<pad>``, ``Lr``
        the longest response."""
        longest = int(self.lengths[self.response].max())
        return self.utterances[self.response, :longest]
