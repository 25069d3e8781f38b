"""Latent-space diagnostics: mutual information I_q(z, n), marginal KL(q(z)||p(z)), active units.

All functions take the encoder's outputs over a data set, ``mu`` and ``logvar`` of shape ``[N, D]``
(one row per sentence n), and return plain Python numbers in nats (or a count). They never build
graphs (``torch.no_grad``) and compute in float64.

The aggregate posterior is the mixture q(z) = (1/N) sum_n q(z|n) with q(z|n) = N(mu_n,
diag(exp(logvar_n))), and the prior is p(z) = N(0, I). The mean KL splits exactly as (Fu et al.
2019, eq. 8; Hoffman & Johnson 2016)

    E_n KL(q(z|n) || p(z)) = I_q(z, n) + KL(q(z) || p(z)).

Estimator (shared by every function here). For each row n draw ``n_samples`` samples
z_{n,k} = mu_n + sigma_n * eps_{n,k}, where ``eps`` is one ``[N, K, D]`` float64 standard-normal
tensor drawn from ``generator`` (its device, or ``mu``'s device when no generator is given). Those
S = N*K samples are exact draws from q(z). For each sample evaluate

    log q(z|n)  the density of the row it came from (exact),
    log q(z)    = logsumexp_m log q(z|m) - log N (exact, summing over all N components),
    log p(z)    the prior density,

and average over samples: MI = mean[log q(z|n) - log q(z)], marginal KL = mean[log q(z) - log p(z)].
Because each difference is taken on the same sample, the noise of the two large terms cancels:
when q(z|n) = q(z) for all n each MI term is exactly 0, and since log q(z) >= log q(z|n) - log N
term by term, the MI estimate never exceeds log N. MI + marginal KL = mean[log q(z|n) - log p(z)],
the Monte Carlo estimate of the mean KL; it matches the closed form up to Monte Carlo noise.
This is the estimator of He et al. (2019, ``calc_mi``) except that their E[log q(z|n)] is the
closed-form negative entropy, which makes small MI values noisier.

Cost: O(S * N * D) time (N = 40,000 rows, D = 32, K = 1: about 12 s on two CPU cores, far less
on a GPU); memory O(N * D) plus one ``[chunk, N]`` float64 block of log-densities with
chunk * N <= ``_CHUNK_ELEMENTS`` (32 MiB), never an N^2 buffer.
"""

from __future__ import annotations

import math

import torch

from ..losses import gaussian_kl

__all__ = ["active_units", "latent_decomposition", "marginal_kl", "mutual_information"]

#: Upper bound on the elements of one ``[chunk, N]`` block of log q(z|m) (float64: 32 MiB).
_CHUNK_ELEMENTS = 1 << 22

_LOG_2PI = math.log(2.0 * math.pi)


def _check(mu: torch.Tensor, logvar: torch.Tensor) -> None:
    if mu.dim() != 2 or mu.shape != logvar.shape:
        raise ValueError(
            f"mu and logvar must both be [N, D]; got {tuple(mu.shape)} and {tuple(logvar.shape)}"
        )
    if mu.shape[0] == 0:
        raise ValueError("need at least one row (N >= 1)")


def _sample_log_densities(
    mu: torch.Tensor, logvar: torch.Tensor, n_samples: int, generator: torch.Generator | None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Draw z ~ q(z) as described in the module docstring and evaluate three log-densities.

    Args:
        mu, logvar: ``[N, D]``.
        n_samples: K samples per row.
        generator: source of ``eps [N, K, D]`` (float64), or None for the global RNG.
    Returns:
        ``(log_q_own, log_q_agg, log_p)``, each ``[N * K]`` float64 (nats), samples ordered
        row-major (row n, then sample k): log q(z|n) for the row n that produced z, log q(z)
        under the aggregate posterior, and log p(z) under N(0, I).
    """
    if n_samples < 1:
        raise ValueError(f"n_samples must be >= 1, got {n_samples}")
    n_rows, dim = mu.shape
    mu = mu.detach().to(torch.float64)
    logvar = logvar.detach().to(torch.float64)
    gen_device = generator.device if generator is not None else mu.device
    eps = torch.randn(
        (n_rows, n_samples, dim), generator=generator, dtype=torch.float64, device=gen_device
    ).to(mu.device)
    std = (0.5 * logvar).exp()
    z = (mu.unsqueeze(1) + std.unsqueeze(1) * eps).reshape(-1, dim)  # [S, D]
    owner = torch.arange(n_rows, device=mu.device).repeat_interleave(n_samples)  # [S]

    # Exact own-component density: (z - mu_n) / sigma_n = eps.
    log_q_own = -0.5 * (eps.pow(2) + logvar.unsqueeze(1) + _LOG_2PI).sum(-1).reshape(-1)
    log_p = -0.5 * (z.pow(2) + _LOG_2PI).sum(-1)

    # log q(z|m) = -0.5 * (z^2 . ivar_m - 2 z . (mu_m ivar_m) + c_m): one matmul per block of
    # samples, [C, 2D+1] @ [2D+1, N], against weights shared by all blocks.
    ivar = (-logvar).exp()  # [N, D]
    const = (mu.pow(2) * ivar).sum(-1) + logvar.sum(-1) + dim * _LOG_2PI  # [N]
    weights = torch.cat([ivar, -2.0 * mu * ivar, const.unsqueeze(1)], dim=1).T  # [2D+1, N]
    log_q_agg = torch.empty_like(log_p)
    chunk = max(1, _CHUNK_ELEMENTS // n_rows)
    for start in range(0, z.shape[0], chunk):
        zc = z[start : start + chunk]  # [C, D]
        feats = torch.cat([zc.pow(2), zc, torch.ones_like(zc[:, :1])], dim=1)  # [C, 2D+1]
        block = (feats @ weights).mul_(-0.5)  # [C, N]
        # Replace the own component by its exact value (the expansion above loses digits when
        # a posterior is very narrow); it dominates the sum whenever posteriors are separated.
        rows = torch.arange(zc.shape[0], device=mu.device)
        block[rows, owner[start : start + chunk]] = log_q_own[start : start + chunk]
        log_q_agg[start : start + chunk] = torch.logsumexp(block, dim=1) - math.log(n_rows)
    return log_q_own, log_q_agg, log_p


@torch.no_grad()
def latent_decomposition(
    mu: torch.Tensor,
    logvar: torch.Tensor,
    *,
    n_samples: int = 1,
    generator: torch.Generator | None = None,
) -> dict[str, float]:
    """Mean KL and its two parts, from one shared set of samples of q(z).

    Args:
        mu, logvar: ``[N, D]`` posterior parameters of the N rows (sentences).
        n_samples: Monte Carlo samples per row (S = N * n_samples in total).
        generator: seeded ``torch.Generator`` for reproducible estimates.
    Returns:
        ``{"kl": closed-form E_n KL(q(z|n)||p), "mi": I_q(z, n), "marginal_kl": KL(q(z)||p)}``,
        nats. ``mi + marginal_kl`` is the Monte Carlo estimate of ``kl`` (equal up to MC noise);
        ``mi`` lies in [~0, log N]. See the module docstring for the estimator.
    """
    _check(mu, logvar)
    log_q_own, log_q_agg, log_p = _sample_log_densities(mu, logvar, n_samples, generator)
    kl = gaussian_kl(mu.detach().to(torch.float64), logvar.detach().to(torch.float64)).mean()
    return {
        "kl": kl.item(),
        "mi": (log_q_own - log_q_agg).mean().item(),
        "marginal_kl": (log_q_agg - log_p).mean().item(),
    }


@torch.no_grad()
def mutual_information(
    mu: torch.Tensor,
    logvar: torch.Tensor,
    *,
    n_samples: int = 1,
    generator: torch.Generator | None = None,
) -> float:
    """I_q(z, n) = E_n E_{q(z|n)}[log q(z|n) - log q(z)] in nats; ``mu, logvar [N, D]``.

    0 when all posteriors are equal; log N when they do not overlap. Monte Carlo estimate with
    ``n_samples`` draws per row (module docstring).
    """
    _check(mu, logvar)
    log_q_own, log_q_agg, _ = _sample_log_densities(mu, logvar, n_samples, generator)
    return (log_q_own - log_q_agg).mean().item()


@torch.no_grad()
def marginal_kl(
    mu: torch.Tensor,
    logvar: torch.Tensor,
    *,
    n_samples: int = 1,
    generator: torch.Generator | None = None,
) -> float:
    """KL(q(z) || p(z)) = E_{q(z)}[log q(z) - log p(z)] in nats; ``mu, logvar [N, D]``.

    q(z) is the aggregate posterior (1/N) sum_n q(z|n); Monte Carlo estimate with ``n_samples``
    draws per row (module docstring).
    """
    _check(mu, logvar)
    _, log_q_agg, log_p = _sample_log_densities(mu, logvar, n_samples, generator)
    return (log_q_agg - log_p).mean().item()


@torch.no_grad()
def active_units(mu: torch.Tensor, threshold: float = 0.01) -> int:
    """Number of latent dimensions d with Cov_n(mu_{n,d}) > ``threshold`` (He et al. 2019).

    Args:
        mu: ``[N, D]`` posterior means E_q[z|x] over a data set.
        threshold: strict lower bound on the variance (0.01 in the literature).
    Returns:
        The count. The variance is the unbiased sample variance over the N rows (divides by
        N - 1, as in He et al.'s code); with N < 2 nothing varies and the count is 0.
    """
    if mu.dim() != 2:
        raise ValueError(f"mu must be [N, D]; got {tuple(mu.shape)}")
    if mu.shape[0] < 2:
        return 0
    variance = mu.detach().to(torch.float64).var(dim=0, unbiased=True)
    return int((variance > threshold).sum().item())
