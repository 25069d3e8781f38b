"""A pretrained encoder q(z|x) from a local Hugging Face model directory (BERT, MiniLM, ...).

As in Optimus (Li et al. 2020, section 3: a BERT encoder reads BERT's subword tokens while the
decoder writes its own), the encoder reads each sentence in its own tokenizer's subword tokens
and the decoder keeps the corpus vocabulary: every batch carries both streams, the decoder's
rows (``batch.tokens``) and the encoder's (``batch.encoder_input``,
:class:`~cyclevae.data.batching.SubwordRows`), made by the data layer with the tokenizer this
module loads (:class:`~cyclevae.models.hf_files.HFSentenceTokenizer`; the sentence's words
joined by spaces). The last hidden layer is pooled (``mean`` over the real subword tokens, as
sentence-transformers' MiniLM does, or the ``first`` token, BERT's ``[CLS]``) and one linear
map gives ``(mu, logvar)``. The pretrained weights are fine-tuned with the rest of the VAE, or
``freeze`` keeps them (and their dropout off: a frozen encoder is a fixed feature map).

Loading never runs code from the directory (:mod:`.hf_files`). ``transformers`` is imported
only when an encoder is loaded (extra ``hf``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..data.batching import SubwordRows, TextBatch
from ..errors import check_fields
from .encoders import GaussianEncoder
from .hf_files import HFSentenceTokenizer, SourceDigest, load_pretrained

__all__ = ["POOLINGS", "HFEncoder", "HFEncoderConfig", "encoder_tokenizer", "load_hf_encoder",
           "pool_hidden"]

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

    #: a local Hugging Face model directory (config.json, model.safetensors, tokenizer
    #: files), e.g. all-MiniLM-L6-v2's; its config and tokenizer are checked against a
    #: checkpoint's
    path: str | None = None
    #: mean (over the real subword tokens, as sentence-transformers' MiniLM) or first (the
    #: first token, BERT's [CLS])
    pooling: str = "mean"
    #: keep the pretrained weights fixed (only the map to mu and logvar trains); false:
    #: fine-tuned with the VAE
    freeze: bool = False
    #: subword tokens read per sentence (longer ones are cut)
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


def pool_hidden(hidden: torch.Tensor, mask: torch.Tensor, pooling: str) -> torch.Tensor:
    """A sentence vector ``[B, H]`` from a last hidden layer ``[B, T, H]`` and its attention
    mask ``[B, T]`` (1 on real tokens): the mean over the real tokens (``"mean"``, as
    sentence-transformers pools MiniLM) or the first token (``"first"``, BERT's ``[CLS]``)."""
    if pooling == "first":
        return hidden[:, 0]
    weights = mask.to(hidden.dtype).unsqueeze(-1)  # [B, T, 1]
    return (hidden * weights).sum(dim=1) / weights.sum(dim=1).clamp_min(1.0)


def encoder_tokenizer(tokenizer: Any, config: HFEncoderConfig) -> HFSentenceTokenizer:
    """What the data layer tokenises the encoder's stream with: the tokenizer's own rows
    (``[CLS] .. [SEP]`` for BERT), cut to ``config.max_tokens``."""
    return HFSentenceTokenizer(tokenizer, rows="model", max_tokens=config.max_tokens)


class HFEncoder(GaussianEncoder):
    """A pretrained Hugging Face encoder -> pooled last layer -> linear -> (mu, logvar).

    Args:
        model: from :func:`load_hf_encoder`; latent_dim: D; config: pooling, freeze;
        source: the model directory's :class:`~cyclevae.models.hf_files.SourceDigest`
        (default: none recorded).
    Input: a :class:`~cyclevae.data.batching.TextBatch` whose ``encoder_input`` holds the
    sentences in the model's tokenizer's ids (:meth:`encode`).
    """

    def __init__(self, model: nn.Module, latent_dim: int, config: HFEncoderConfig, *,
                 source: SourceDigest | None = None) -> None:
        super().__init__()
        self.latent_dim = latent_dim
        self.model = model
        self.pooling = config.pooling
        self.freeze = config.freeze
        self.source = source if source is not None else SourceDigest()
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

    def features(self, rows: SubwordRows) -> torch.Tensor:
        """The pooled last hidden layer of each row, ``[B, hidden]``: the pretrained model's
        sentence embedding with no VAE (the baseline a probe compares with)."""
        device = self.to_params.weight.device
        ids, mask = rows.ids.to(device), rows.mask.to(device)
        with torch.set_grad_enabled(torch.is_grad_enabled() and not self.freeze):
            hidden = self.model(input_ids=ids, attention_mask=mask).last_hidden_state
        return pool_hidden(hidden, mask, self.pooling)

    def forward(self, rows: SubwordRows) -> tuple[torch.Tensor, torch.Tensor]:
        """``rows`` in the model's ids -> ``(mu, logvar)``, each ``[B, D]``."""
        mu, logvar = self.to_params(self.features(rows)).chunk(2, dim=-1)
        return mu, logvar

    def encode(self, batch: TextBatch) -> tuple[torch.Tensor, torch.Tensor]:
        """q(z|x) from the batch's ``encoder_input``; a batch without one (data not read with
        this encoder's tokenizer, :func:`encoder_tokenizer`) is a ``ValueError``."""
        if batch.encoder_input is None:
            raise ValueError("the pretrained encoder reads batch.encoder_input (the sentences "
                             "in its tokenizer's ids); this batch has none: read the data "
                             "with cyclevae.data.tokenizers.Tokenizers(encoder=...)")
        return self(batch.encoder_input)
