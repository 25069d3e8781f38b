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
        counted_tokens: :attr:`num_tokens` counted on the host when the batch was built from
            arrays (:meth:`~.examples.DialogCorpus.batch`), so that the Trainer reads no
            tensor of a batch on an accelerator to count it; None: counted from ``lengths``.

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
    counted_tokens: int | None = None

    def _rows(self, fn, counted_tokens: int | None) -> DialogBatch:
        return DialogBatch(self.utterances, self.lengths, fn(self.context),
                           fn(self.context_lengths), fn(self.floors), fn(self.response),
                           fn(self.acts), None if self.topics is None else fn(self.topics),
                           None if self.callers is None else fn(self.callers), counted_tokens)

    def to(self, device: torch.device | str, non_blocking: bool = False) -> DialogBatch:
        """The same batch on ``device``."""
        def move(t: torch.Tensor | None) -> torch.Tensor | None:
            return None if t is None else t.to(device, non_blocking=non_blocking)

        return DialogBatch(move(self.utterances), move(self.lengths), move(self.context),
                           move(self.context_lengths), move(self.floors), move(self.response),
                           move(self.acts), move(self.topics), move(self.callers),
                           self.counted_tokens)

    def _times(self, n: int) -> int | None:
        return None if self.counted_tokens is None else self.counted_tokens * n

    def repeat(self, n: int) -> DialogBatch:
        """Examples stacked ``n`` times (rows ``i, i + B, ...`` are example ``i``)."""
        return self._rows(lambda t: t.repeat(n, *([1] * (t.dim() - 1))), self._times(n))

    def repeat_each(self, n: int) -> DialogBatch:
        """Every example repeated ``n`` times in place (rows ``n i .. n i + n - 1``)."""
        return self._rows(lambda t: t.repeat_interleave(n, dim=0), self._times(n))

    def select(self, index: torch.Tensor) -> DialogBatch:
        """The examples ``index`` (LongTensor ``[M]``, repeats allowed)."""
        return self._rows(lambda t: t[index], None)

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
        if self.counted_tokens is not None:
            return self.counted_tokens
        return int((self.lengths[self.response] - 1).sum())

    @property
    def num_words(self) -> None:
        """None: the tokens are the words (:class:`~cyclevae.data.batching.Batch`)."""
        return None

    @property
    def max_context(self) -> int:
        """C, context slots per example."""
        return int(self.context.shape[1])

    def response_tokens(self) -> torch.Tensor:
        """LongTensor ``[B, Lr]``: the responses ``<s> .. </s>`` padded with ``<pad>``, ``Lr``
        the longest response."""
        longest = int(self.lengths[self.response].max())
        return self.utterances[self.response, :longest]
