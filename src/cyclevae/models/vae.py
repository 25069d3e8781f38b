"""The LSTM text VAE: encoder -> q(z|x) -> reparameterised z -> decoder, and its config."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ..losses import gaussian_kl_per_dim
from .decoders import LSTMDecoder
from .encoders import LSTMEncoder


@dataclass
class VAEConfig:
    """Sizes and regularisers of :class:`TextVAE` (defaults: the paper's PTB model).

    ``vocab_size`` is filled in from the data's vocabulary, never by hand.
    """

    vocab_size: int = 0
    emb_dim: int = 256
    enc_hidden: int = 256
    dec_hidden: int = 256
    enc_layers: int = 1
    dec_layers: int = 1
    latent_dim: int = 32
    dropout: float = 0.5
    word_dropout: float = 0.0
    init_range: float = 0.1
    unk_index: int = 3


@dataclass
class VAEOutput:
    """Unreduced per-sentence outputs of one forward pass.

    rec: ``[B]`` -log p(x|z) (nats, summed over tokens); kl: ``[B]`` KL(q(z|x)||p(z));
    kl_per_dim: ``[B, D]``; mu, logvar, z: ``[B, D]``.
    """

    rec: torch.Tensor
    kl: torch.Tensor
    kl_per_dim: torch.Tensor
    mu: torch.Tensor
    logvar: torch.Tensor
    z: torch.Tensor


class TextVAE(nn.Module):
    """Sentence VAE with an LSTM encoder and an auto-regressive LSTM decoder.

    A batch is a LongTensor ``tokens [B, L+1]`` of equal-length rows: ``<s> w_1 .. w_L``
    where the last word is usually ``</s>``. The encoder reads the whole row; the decoder
    predicts ``tokens[:, 1:]`` from ``tokens[:, :-1]`` and z.
    """

    def __init__(self, config: VAEConfig) -> None:
        super().__init__()
        if config.vocab_size < 2:
            raise ValueError(f"model.vocab_size must be >= 2, got {config.vocab_size}")
        self.config = config
        self.encoder = LSTMEncoder(
            config.vocab_size, config.emb_dim, config.enc_hidden, config.enc_layers,
            config.latent_dim,
        )
        self.decoder = LSTMDecoder(
            config.vocab_size, config.emb_dim, config.dec_hidden, config.dec_layers,
            config.latent_dim, dropout=config.dropout, word_dropout=config.word_dropout,
            unk_index=config.unk_index,
        )
        if config.init_range > 0:
            for p in self.parameters():
                nn.init.uniform_(p, -config.init_range, config.init_range)

    @property
    def latent_dim(self) -> int:
        return self.config.latent_dim

    def encode(self, tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``tokens [B, L+1]`` -> ``(mu, logvar)``, each ``[B, D]``."""
        return self.encoder(tokens)

    def forward(self, tokens: torch.Tensor, *, sample: bool = True) -> VAEOutput:
        """One pass with one z per sentence (the posterior mean if ``sample=False``)."""
        mu, logvar = self.encode(tokens)
        z = self.encoder.reparameterize(mu, logvar) if sample else mu
        rec = self.decoder.reconstruction_loss(tokens, z)
        kl_per_dim = gaussian_kl_per_dim(mu.float(), logvar.float())
        return VAEOutput(rec=rec, kl=kl_per_dim.sum(-1), kl_per_dim=kl_per_dim, mu=mu,
                         logvar=logvar, z=z)
