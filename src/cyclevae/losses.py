"""The VAE objective: closed-form Gaussian KL and the beta-weighted loss (one place only)."""

from __future__ import annotations

from collections.abc import Mapping

import torch


def gaussian_kl_per_dim(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(mu, diag(exp(logvar))) || N(0, I)) per dimension, in nats.

    Args:
        mu, logvar: ``[B, D]``.
    Returns:
        ``[B, D]``: 0.5 * (mu^2 + sigma^2 - log sigma^2 - 1), written with ``expm1`` so that
        it never rounds below 0 near the prior.
    """
    return 0.5 * (mu.pow(2) + torch.expm1(logvar) - logvar)


def gaussian_kl(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(q(z|x) || p(z)) per sentence, summed over latent dimensions: ``[B, D] -> [B]`` nats."""
    return gaussian_kl_per_dim(mu, logvar).sum(dim=-1)


def gaussian_kl_between(mu_q: torch.Tensor, logvar_q: torch.Tensor, mu_p: torch.Tensor,
                        logvar_p: torch.Tensor) -> torch.Tensor:
    """KL(N(mu_q, diag(exp(logvar_q))) || N(mu_p, diag(exp(logvar_p)))) per dimension, nats.

    The KL of a conditional VAE against its learned prior p(z|c) (Zhao et al. 2017's
    ``gaussian_kld``, not summed). Args: each ``[B, D]`` (broadcastable). Returns ``[B, D]``:
    0.5 * (exp(lq - lp) + (mu_q - mu_p)^2 / exp(lp) - (lq - lp) - 1), written with ``expm1``
    so that it never rounds below 0 when q = p. With ``mu_p = logvar_p = 0`` it equals
    :func:`gaussian_kl_per_dim`.
    """
    diff = logvar_q - logvar_p
    return 0.5 * (torch.expm1(diff) - diff + (mu_q - mu_p).pow(2) * torch.exp(-logvar_p))


def beta_vae_loss(
    rec: torch.Tensor,
    kl: torch.Tensor,
    beta: float,
    *,
    kl_per_dim: torch.Tensor | None = None,
    free_bits: float = 0.0,
    aux: Mapping[str, torch.Tensor] | None = None,
) -> torch.Tensor:
    """The training objective L_beta = mean(rec) + beta * mean(kl) (+ the mean of each named
    auxiliary loss), a scalar in nats/sentence. The only place the objective is written.

    Args:
        rec: ``[B]`` reconstruction error -log p(x|z) per sentence (summed over tokens).
        kl: ``[B]`` KL(q(z|x)||p(z)) per sentence.
        beta: weight of the KL term.
        kl_per_dim: ``[B, D]`` per-dimension KL, required when ``free_bits > 0``.
        free_bits: KL threshold lambda in nats per dimension (Kingma et al. 2016): the KL term
            becomes sum_d max(lambda, mean_batch KL_d); 0 disables it.
        aux: named per-example auxiliary losses ``[B]`` (e.g. a bag-of-words loss), each added
            with weight 1 (``ModelOutput.aux``).
    """
    if free_bits > 0.0:
        if kl_per_dim is None:
            raise ValueError("kl_per_dim is required when free_bits > 0")
        kl_term = torch.clamp(kl_per_dim.mean(dim=0), min=free_bits).sum()
    else:
        kl_term = kl.mean()
    loss = rec.mean() + beta * kl_term
    for value in (aux or {}).values():
        loss = loss + value.float().mean()
    return loss
