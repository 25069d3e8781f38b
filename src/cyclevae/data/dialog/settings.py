"""The dialog settings of a run's ``data`` section (``data.dialog``)."""

from __future__ import annotations

from dataclasses import dataclass

from ...errors import check_fields
from .text import PREPARATIONS

__all__ = ["DialogDataConfig"]


@dataclass
class DialogDataConfig:
    """The dialog settings of a run's ``data`` section (``data.dialog.*``; used when
    ``model.kind`` is ``cvae``; the vocabulary size is ``data.max_vocab``, the batch size
    ``data.batch_size``).

    ``max_context``: context utterances per example (Zhao: 9, a window of 10 with the
    response). ``utterance_length``: tokens kept per utterance counting ``<s>`` and ``</s>``
    (Zhao: 40; longer ones are cut). ``drop_leakage``: drop from training every conversation
    whose word-set Jaccard with a conversation of the valid or test file (when that is another
    file than the training one) exceeds ``leakage_threshold``; the count is logged.
    ``run_length``: consecutive examples of a conversation batched together
    (:class:`DialogBatcher`; 1 = independent examples). ``preparation``: the text of
    swda-layout files, ``swda`` (each SwDA utterance cleaned on its own, as the 3-pass rows
    were trained) or ``zhao`` (closer to Zhao et al.'s text: unfinished utterances joined with
    the speaker's next one, repeated words collapsed; :func:`read_conversations`).
    """

    max_context: int = 9
    utterance_length: int = 40
    drop_leakage: bool = True
    leakage_threshold: float = 0.5
    run_length: int = 5
    preparation: str = "swda"

    def validate(self, prefix: str = "data.dialog") -> None:
        """Raise :class:`UserError` naming the first out-of-range field."""
        check_fields(self, prefix, [
            (self.max_context >= 1, "max_context", ">= 1"),
            (self.utterance_length >= 3, "utterance_length", ">= 3 (<s>, a word, </s>)"),
            (0.0 <= self.leakage_threshold < 1.0, "leakage_threshold", "in [0, 1)"),
            (self.run_length >= 1, "run_length", ">= 1"),
            (self.preparation in PREPARATIONS, "preparation",
             " or ".join(map(repr, PREPARATIONS))),
        ])
