"""A pretrained encoder q(z|x) from a local Hugging Face model directory (BERT, MiniLM, ...).

As in Optimus (Li et al. 2020, section 3: a BERT encoder reads BERT's subword tokens while the
decoder writes its own), the encoder reads each sentence in its own tokenizer's subword tokens
and the decoder keeps the corpus vocabulary: the corpus ids of a batch are turned back into
words, joined with spaces, and tokenised by the model's tokenizer. The last hidden layer is
pooled (``mean`` over the real subword tokens, as sentence-transformers' MiniLM does, or the
``first`` token, BERT's ``[CLS]``) and one linear map gives ``(mu, logvar)``. The pretrained
weights are fine-tuned with the rest of the VAE, or ``freeze`` keeps them (and their dropout
off: a frozen encoder is a fixed feature map).

Loading never runs code from the directory (:mod:`.hf_files`). ``transformers`` is imported
only when an encoder is loaded (extra ``hf``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..data.vocab import Vocabulary
from ..errors import check_fields
from .encoders import GaussianEncoder
from .hf_files import load_pretrained

__all__ = ["POOLINGS", "HFEncoder", "HFEncoderConfig", "load_hf_encoder"]

#: ``model.hf_encoder.pooling`` values
POOLINGS = ("mean", "first")


@dataclass
class HFEncoderConfig:
    """The pretrained encoder (``model.hf_encoder.*``).

    path: a local directory in the Hugging Face layout (``config.json``, ``model.safetensors``
    and the tokenizer's files, e.g. ``tokenizer.json``); pooling: ``mean`` or ``first``;
    freeze: keep the pretrained weights fixed (only the map to mu and logvar trains);
    max_tokens: subword tokens read per sentence (longer ones are cut).
    """

    path: str | None = None
    pooling: str = "mean"
    freeze: bool = False
    max_tokens: int = 128

    def validate(self, prefix: str = "model.hf_encoder") -> None:
        """Raise :class:`UserError` naming the first bad field (``prefix.field``)."""
        check_fields(self, prefix, [
            (self.path is not None and self.path != "", "path",
             "a local Hugging Face model directory"),
            (self.pooling in POOLINGS, "pooling", " or ".join(map(repr, POOLINGS))),
            (self.max_tokens >= 2, "max_tokens", ">= 2"),
        ])


def load_hf_encoder(path: str | Path, *, field: str = "model.hf_encoder.path"
                    ) -> tuple[nn.Module, Any]:
    """``(model, tokenizer)`` of a pretrained encoder from the local directory ``path``
    (:func:`~cyclevae.models.hf_files.load_pretrained`: no code run, safetensors only; a
    one-line :class:`UserError` naming ``field`` for a directory that does not load)."""
    return load_pretrained(path, causal_lm=False, field=field, need_padding=True)


class HFEncoder(GaussianEncoder):
    """A pretrained Hugging Face encoder -> pooled last layer -> linear -> (mu, logvar).

    Args:
        model, tokenizer: from :func:`load_hf_encoder`; words: the corpus vocabulary, word
        of each id (e.g. ``Vocabulary.tokens``); latent_dim: D; config: pooling, freeze,
        max_tokens; skip: corpus ids that are not words (``<pad>``, ``<s>``, ``</s>``);
        unk_index: the corpus ``<unk>`` id, given to the tokenizer as its own unknown token.
    Input ``tokens``: LongTensor ``[B, L]`` of corpus ids (rows ``<s> w_1 .. </s>``).
    """

    def __init__(self, model: nn.Module, tokenizer: Any, words: Sequence[str],
                 latent_dim: int, config: HFEncoderConfig, *,
                 skip: Sequence[int] = (Vocabulary.PAD_INDEX, Vocabulary.BOS_INDEX,
                                        Vocabulary.EOS_INDEX),
                 unk_index: int = Vocabulary.UNK_INDEX) -> None:
        super().__init__()
        self.latent_dim = latent_dim
        self.model = model
        self.tokenizer = tokenizer
        self.pooling = config.pooling
        self.freeze = config.freeze
        self.max_tokens = config.max_tokens
        unk = tokenizer.unk_token if tokenizer.unk_token is not None else words[unk_index]
        skipped = set(skip)
        self.words = ["" if i in skipped else unk if i == unk_index else w
                      for i, w in enumerate(words)]
        hidden = model.get_input_embeddings().embedding_dim
        self.to_params = nn.Linear(hidden, 2 * latent_dim)
        if self.freeze:
            self.model.requires_grad_(False)
            self.model.eval()

    def train(self, mode: bool = True) -> HFEncoder:
        """Train/eval mode as usual; a frozen pretrained model stays in eval mode."""
        super().train(mode)
        if self.freeze:
            self.model.eval()
        return self

    def texts(self, tokens: torch.Tensor) -> list[str]:
        """``tokens [B, L]`` corpus ids -> one space-joined sentence per row."""
        return [" ".join(w for w in map(self.words.__getitem__, row) if w)
                for row in tokens.tolist()]

    def features(self, texts: list[str]) -> torch.Tensor:
        """The pooled last hidden layer of each text, ``[B, hidden]``: the pretrained
        model's sentence embedding with no VAE (the baseline a probe compares with)."""
        device = self.to_params.weight.device
        batch = self.tokenizer(texts, padding=True, truncation=True,
                               max_length=self.max_tokens, return_tensors="pt")
        ids, mask = batch["input_ids"].to(device), batch["attention_mask"].to(device)
        with torch.set_grad_enabled(torch.is_grad_enabled() and not self.freeze):
            hidden = self.model(input_ids=ids, attention_mask=mask).last_hidden_state
        if self.pooling == "first":
            return hidden[:, 0]
        weights = mask.to(hidden.dtype).unsqueeze(-1)  # [B, T, 1]
        return (hidden * weights).sum(dim=1) / weights.sum(dim=1).clamp_min(1.0)

    def forward(self, tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mu, logvar = self.to_params(self.features(self.texts(tokens))).chunk(2, dim=-1)
        return mu, logvar
