"""The importance-weighted log-likelihood estimate of a latent-variable text model.

A model here speaks :class:`cyclevae.models.base.LatentTextModel`'s interface:
``reconstruction_loss(batch, z) -> [B]`` (-log p(x|z), nats summed over the predicted tokens)
and ``log_prior(batch, z)``; a batch is e.g. a :class:`~cyclevae.data.batching.TextBatch`
(with ``repeat(n)``). All quantities are in nats. The other metrics (Rec, KL, ELBO, PPL) are
assembled by :func:`cyclevae.evaluation.evaluate`.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import torch

if TYPE_CHECKING:
    from ..models.base import LatentTextModel

__all__ = ["batch_mean_perplexity", "iw_log_likelihood", "randn_on"]

_LOG_2PI = math.log(2.0 * math.pi)


def batch_mean_perplexity(rec_sums: list[float], token_counts: list[int]) -> float:
    """The mean over batches of each batch's reconstruction perplexity, exp(batch's rec nats /
    batch's predicted tokens): the authors' reported Rec-P (``rc_ppl = exp(reduce_sum(rc_loss)
    / reduce_sum(label_mask))`` per batch in Zhao's and Fu's ``models/cvae_cyc.py``, then
    ``np.mean`` over the batches in ``print_loss``). Unlike exp of the token-averaged loss it
    depends on how the examples are batched: every batch weighs the same, whatever its
    tokens. Batches without tokens are skipped.

    Args:
        rec_sums: per batch, -log p(x|z) summed over its examples (nats).
        token_counts: per batch, its predicted tokens (one end-of-sentence each included).
    """
    if len(rec_sums) != len(token_counts):
        raise ValueError(f"{len(rec_sums)} batch losses but {len(token_counts)} token counts")
    ppls = [math.exp(r / n) for r, n in zip(rec_sums, token_counts) if n > 0]
    if not ppls:
        raise ValueError("no batch with a predicted token")
    return math.fsum(ppls) / len(ppls)


def randn_on(shape: tuple[int, ...], generator: torch.Generator | None, device: torch.device
             ) -> torch.Tensor:
    """Standard normals drawn on the generator's device (so a CPU generator gives the same
    numbers whatever the model's device), then moved to ``device``."""
    gen_device = generator.device if generator is not None else device
    return torch.randn(shape, generator=generator, device=gen_device).to(device)


@torch.no_grad()
def iw_log_likelihood(
    model: LatentTextModel,
    batch: Any,
    n_samples: int,
    chunk: int = 50,
    generator: torch.Generator | None = None,
    posterior: tuple[torch.Tensor, torch.Tensor] | None = None,
) -> torch.Tensor:
    """Importance-weighted estimate of log p(x) per sentence (Burda et al. 2016).

    log p(x) ~= logsumexp_k [log p(x|z_k) + log p(z_k) - log q(z_k|x)] - log K, z_k ~ q(z|x).
    It is a lower bound in expectation that tightens as K grows (K = 1 gives the ELBO).

    All noise ``eps [K, B, D]`` is drawn first, in one call, so the estimate does not depend on
    ``chunk``; the decoder then runs on ``chunk`` samples at a time (sentences repeated,
    ``z [chunk * B, D]``), which bounds memory. Uses the model in its current mode.

    Args:
        model: see the module docstring.
        batch: B examples (e.g. a :class:`~cyclevae.data.batching.TextBatch`).
        n_samples: K >= 1.
        chunk: samples per decoder pass.
        generator: seeded generator for reproducible estimates (None: the global RNG).
        posterior: the proposal's ``(mu, logvar)`` if already computed (default
            ``model.posterior(batch)``), e.g. a refined q (:mod:`cyclevae.models.savae`).
    Returns:
        ``[B]`` float64, nats (log p(x) estimates; negate for the IW-NLL).
    """
    if n_samples < 1 or chunk < 1:
        raise ValueError(f"n_samples and chunk must be >= 1, got {n_samples} and {chunk}")
    mu, logvar = posterior if posterior is not None else model.posterior(batch)
    size, dim = mu.shape
    eps = randn_on((n_samples, size, dim), generator, mu.device)  # [K, B, D]
    std = (0.5 * logvar).exp()
    log_w = torch.empty(n_samples, size, dtype=torch.float64, device=mu.device)  # [K, B]
    for start in range(0, n_samples, chunk):
        e = eps[start : start + chunk]  # [C, B, D]
        z = mu + std * e.to(mu.dtype)  # [C, B, D]
        n = e.shape[0]
        rec = model.reconstruction_loss(batch.repeat(n), z.reshape(n * size, dim)).view(n, size)
        z64, e64 = z.double(), e.double()
        log_prior = model.log_prior(batch, z64)
        log_q = -0.5 * (e64.pow(2) + logvar.double() + _LOG_2PI).sum(-1)  # (z - mu)/sigma = eps
        log_w[start : start + n] = -rec.double() + log_prior - log_q
    return torch.logsumexp(log_w, dim=0) - math.log(n_samples)
