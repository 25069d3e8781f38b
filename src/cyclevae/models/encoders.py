"""Gaussian encoders q(z|x) = N(mu(x), diag(exp(logvar(x))))."""

from __future__ import annotations

import math

import torch
from torch import nn


class GaussianEncoder(nn.Module):
    """Base class: subclasses implement ``forward(tokens) -> (mu, logvar)``, each ``[B, D]``.

    Owns sampling (reparameterisation) and the log-density of q, reused by the metrics.
    """

    latent_dim: int

    @staticmethod
    def reparameterize(mu: torch.Tensor, logvar: torch.Tensor, n_samples: int = 1) -> torch.Tensor:
        """z = mu + sigma * eps, differentiable in mu and logvar.

        Args:
            mu, logvar: ``[B, D]``.
            n_samples: K samples per row.
        Returns:
            ``[B, D]`` if ``n_samples == 1`` else ``[B, K, D]``.
        """
        std = (0.5 * logvar).exp()
        if n_samples == 1:
            return mu + std * torch.randn_like(std)
        eps = torch.randn(mu.shape[0], n_samples, mu.shape[1], dtype=mu.dtype, device=mu.device)
        return mu.unsqueeze(1) + std.unsqueeze(1) * eps

    @staticmethod
    def log_density(z: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
        """log N(z; mu, diag(exp(logvar))), summed over the last dimension.

        ``z``, ``mu`` and ``logvar`` broadcast against each other (``[..., D]``); returns ``[...]``.
        """
        return -0.5 * (
            ((z - mu) ** 2) * torch.exp(-logvar) + logvar + math.log(2 * math.pi)
        ).sum(dim=-1)


class LSTMEncoder(GaussianEncoder):
    """Embedding -> LSTM -> last hidden state of the top layer -> linear -> (mu, logvar).

    Args:
        vocab_size: V; emb_dim: word embedding size; hidden: LSTM units; num_layers: LSTM depth;
        latent_dim: D.
    Input ``tokens``: LongTensor ``[B, L]`` (all rows the same length, no padding).
    """

    def __init__(
        self, vocab_size: int, emb_dim: int, hidden: int, num_layers: int, latent_dim: int
    ) -> None:
        super().__init__()
        self.latent_dim = latent_dim
        self.embedding = nn.Embedding(vocab_size, emb_dim)
        self.lstm = nn.LSTM(emb_dim, hidden, num_layers=num_layers, batch_first=True)
        self.to_params = nn.Linear(hidden, 2 * latent_dim)

    def forward(self, tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        _, (h, _) = self.lstm(self.embedding(tokens))
        mu, logvar = self.to_params(h[-1]).chunk(2, dim=-1)
        return mu, logvar
