"""Sentences in a model's own subword tokens: what the data layer needs to batch a corpus for a
pretrained Hugging Face encoder or decoder, as plain values.

The data layer knows no model: a model family (:mod:`cyclevae.families`) hands it a
:class:`Tokenizers` naming, where the model needs them, a tokenizer for the decoder's rows (the
tokens predicted, instead of the corpus vocabulary's ids) and one for the encoder's own input
(a second stream of ids per batch, as Optimus's BERT encoder reads BERT tokens while its GPT-2
decoder writes GPT-2 tokens; Li et al. 2020, section 3). Without them a corpus is batched in the
vocabulary's word ids, as always (:func:`~cyclevae.data.batching.encode_corpus`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import torch

from .batching import BatchedCorpus, SubwordRows, TextBatch, encode_corpus
from .vocab import Vocabulary

__all__ = ["SentenceTokenizer", "Tokenizers"]


class SentenceTokenizer(Protocol):
    """A model's tokenizer seen by the data layer (e.g.
    :class:`~cyclevae.models.hf_files.HFSentenceTokenizer`)."""

    #: the id that pads a row (and is masked out)
    pad_index: int

    def __call__(self, sentences: Sequence[Sequence[str]]) -> list[list[int]]:
        """One complete row of ids per sentence (a list of words), with the start and end
        tokens the model reads (at least one id per row)."""

    def decode(self, ids: Sequence[int]) -> str:
        """Generated ids (no start token) -> text."""


@dataclass(frozen=True)
class Tokenizers:
    """How sentences become a batch besides the corpus vocabulary.

    decoder: the rows of :attr:`TextBatch.tokens` in this tokenizer's ids instead of the
    vocabulary's (each batch then carries :attr:`TextBatch.words`, the words and ``</s>`` of
    each sentence, for a per-word perplexity); encoder: a second stream of ids per batch,
    :attr:`TextBatch.encoder_input`, for an encoder that reads its own subword tokens.
    """

    decoder: SentenceTokenizer | None = None
    encoder: SentenceTokenizer | None = None

    def rows(self, sentences: Sequence[Sequence[str]], vocab: Vocabulary) -> list[list[int]]:
        """The rows of ``tokens``: ``<s> ids </s>`` per sentence."""
        if self.decoder is None:
            return encode_corpus(sentences, vocab)
        return self.decoder(sentences)

    def corpus(self, sentences: Sequence[Sequence[str]], vocab: Vocabulary, *,
               batch_size: int, seed: int) -> BatchedCorpus:
        """``sentences`` cut into equal-length batches (:class:`BatchedCorpus`) with the
        streams named here."""
        return BatchedCorpus(
            self.rows(sentences, vocab), batch_size=batch_size, seed=seed,
            encoder_rows=None if self.encoder is None else self.encoder(sentences),
            encoder_pad=0 if self.encoder is None else self.encoder.pad_index,
            words=None if self.decoder is None else [len(s) + 1 for s in sentences])

    def batch(self, sentence: Sequence[str], vocab: Vocabulary) -> TextBatch:
        """One sentence as a batch of one row, as :meth:`corpus` batches it."""
        tokens = torch.tensor(self.rows([sentence], vocab), dtype=torch.long)
        encoder_input = (None if self.encoder is None else
                         SubwordRows.pad(self.encoder([sentence]), self.encoder.pad_index))
        words = None if self.decoder is None else torch.tensor([len(sentence) + 1])
        return TextBatch(tokens, encoder_input, words)

    def text(self, ids: Sequence[int], vocab: Vocabulary) -> str:
        """Generated ids (no ``<s>``, no ``</s>``) -> text: the vocabulary's words joined by
        spaces, or the decoder tokenizer's decoding."""
        if self.decoder is None:
            return " ".join(vocab.decode(ids))
        return self.decoder.decode(ids)
