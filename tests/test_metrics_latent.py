"""Latent diagnostics: MI, marginal KL and active units on cases with known answers."""

from __future__ import annotations

import math

import pytest
import torch

from cyclevae.losses import gaussian_kl
from cyclevae.metrics import latent
from cyclevae.metrics.latent import (
    active_units,
    latent_decomposition,
    marginal_kl,
    mutual_information,
)
from cyclevae.models import GaussianEncoder


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_identical_rows_have_zero_mi_and_marginal_kl_equal_to_kl() -> None:
    n, d, k = 40, 3, 500
    mu = torch.tensor([0.5, -1.0, 2.0]).expand(n, d)
    logvar = torch.tensor([-0.5, 0.3, 0.0]).expand(n, d)
    out = latent_decomposition(mu, logvar, n_samples=k, generator=gen())
    # q(z|n) = q(z) for every n: each MI term is exactly 0.
    assert abs(out["mi"]) < 1e-9
    kl = gaussian_kl(mu[:1].double(), logvar[:1].double()).item()
    assert out["kl"] == pytest.approx(kl, rel=1e-12)
    # marginal KL = KL exactly; its MC estimate has standard error sd(log q - log p) / sqrt(S).
    z = mu[0] + (0.5 * logvar[0]).exp() * torch.randn(n * k, d, generator=gen(1))
    log_ratio = GaussianEncoder.log_density(z, mu[0], logvar[0]) - GaussianEncoder.log_density(
        z, torch.zeros(d), torch.zeros(d)
    )
    se = log_ratio.std().item() / math.sqrt(n * k)
    assert abs(out["marginal_kl"] - kl) < 5 * se


def test_separated_narrow_posteriors_have_mi_log_n() -> None:
    n = 8
    mu = torch.zeros(n, 2)
    mu[:, 0] = torch.arange(n) * 10.0 - 35.0
    logvar = torch.full((n, 2), -12.0)
    out = latent_decomposition(mu, logvar, n_samples=2000, generator=gen())
    assert out["mi"] == pytest.approx(math.log(n), abs=1e-9)
    # q(z) is a mixture of non-overlapping spikes: log q(z) = log q(z|n) - log N exactly, and
    # E log q(z|n) = -H(q(z|n)), E log p(z) = -(|mu|^2 + log 2 pi * D) / 2 up to O(sigma^2).
    # MC noise comes from log q(z|n) = const - |eps|^2 / 2: sd sqrt(D / 2) = 1 per sample.
    neg_entropy = -0.5 * (1 + math.log(2 * math.pi) - 12.0) * 2
    cross = -0.5 * (mu.pow(2).sum(1).mean().item() + 2 * math.log(2 * math.pi))
    tol = 5 / math.sqrt(n * 2000)
    assert out["marginal_kl"] == pytest.approx(neg_entropy - math.log(n) - cross, abs=tol)
    assert out["mi"] + out["marginal_kl"] == pytest.approx(out["kl"], abs=tol)


@pytest.mark.parametrize("seed", range(4))
def test_mi_bounded_by_log_n_and_decomposition_matches_closed_form_kl(seed: int) -> None:
    g = gen(seed)
    n, d = 30, 4
    mu = torch.randn(n, d, generator=g) * (seed + 1)
    logvar = torch.randn(n, d, generator=g) - 1.0
    k = 300
    out = latent_decomposition(mu, logvar, n_samples=k, generator=g)
    assert -0.05 < out["mi"] <= math.log(n) + 1e-9
    # MC error of mean(log q(z|n) - log p(z)) against the closed form: estimate the sd of one
    # sampled log-ratio empirically from independent draws.
    std = (0.5 * logvar).exp()
    z = mu.unsqueeze(1) + std.unsqueeze(1) * torch.randn(n, k, d, generator=gen(100 + seed))
    ratio = GaussianEncoder.log_density(z, mu.unsqueeze(1), logvar.unsqueeze(1))
    ratio = ratio - GaussianEncoder.log_density(z, torch.zeros(d), torch.zeros(d))
    se = ratio.std().item() / math.sqrt(n * k)
    assert abs(out["mi"] + out["marginal_kl"] - out["kl"]) < 5 * se
    assert out["marginal_kl"] > -5 * se


def test_prior_matched_aggregate_posterior() -> None:
    """mu ~ N(0, 1 - s^2), sigma = s: q(z) ~= N(0, I), and I = -D log s (Gaussian channel)."""
    g = gen(3)
    n, d, s = 4000, 2, 0.5
    mu = torch.randn(n, d, generator=g, dtype=torch.float64) * math.sqrt(1 - s**2)
    logvar = torch.full((n, d), 2 * math.log(s), dtype=torch.float64)
    out = latent_decomposition(mu, logvar, n_samples=2, generator=g)
    assert abs(out["marginal_kl"]) < 0.02
    assert out["mi"] == pytest.approx(-d * math.log(s), abs=0.05)


def test_functions_agree_with_decomposition_and_are_reproducible() -> None:
    g = gen(5)
    mu, logvar = torch.randn(50, 3, generator=g), torch.randn(50, 3, generator=g) - 1
    out = latent_decomposition(mu, logvar, n_samples=3, generator=gen(7))
    assert mutual_information(mu, logvar, n_samples=3, generator=gen(7)) == out["mi"]
    assert marginal_kl(mu, logvar, n_samples=3, generator=gen(7)) == out["marginal_kl"]
    assert mutual_information(mu, logvar, n_samples=3, generator=gen(8)) != out["mi"]


def naive_terms(mu: torch.Tensor, logvar: torch.Tensor, k: int, seed: int):
    """Reference: the full [S, N, D] broadcast, same samples (eps [N, K, D] float64)."""
    mu, logvar = mu.double(), logvar.double()
    eps = torch.randn(mu.shape[0], k, mu.shape[1], generator=gen(seed), dtype=torch.float64)
    z = (mu.unsqueeze(1) + (0.5 * logvar).exp().unsqueeze(1) * eps).reshape(-1, mu.shape[1])
    all_q = GaussianEncoder.log_density(z.unsqueeze(1), mu, logvar)  # [S, N]
    own = all_q[torch.arange(z.shape[0]), torch.arange(mu.shape[0]).repeat_interleave(k)]
    agg = torch.logsumexp(all_q, dim=1) - math.log(mu.shape[0])
    prior = GaussianEncoder.log_density(z, torch.zeros_like(z), torch.zeros_like(z))
    return (own - agg).mean().item(), (agg - prior).mean().item()


@pytest.mark.parametrize("chunk_elements", [1, 37, 1 << 22])
def test_chunked_computation_matches_naive(
    monkeypatch: pytest.MonkeyPatch, chunk_elements: int
) -> None:
    g = gen(11)
    mu, logvar = torch.randn(60, 5, generator=g) * 2, torch.randn(60, 5, generator=g) - 0.5
    monkeypatch.setattr(latent, "_CHUNK_ELEMENTS", chunk_elements)
    out = latent_decomposition(mu, logvar, n_samples=3, generator=gen(12))
    mi, mkl = naive_terms(mu, logvar, 3, 12)
    assert out["mi"] == pytest.approx(mi, abs=1e-10)
    assert out["marginal_kl"] == pytest.approx(mkl, abs=1e-10)


def test_float32_inputs_and_no_grad() -> None:
    mu = torch.randn(20, 2, requires_grad=True)
    logvar = torch.zeros(20, 2, requires_grad=True)
    value = mutual_information(mu, logvar, generator=gen())
    assert isinstance(value, float) and math.isfinite(value)


def test_bad_shapes_raise() -> None:
    with pytest.raises(ValueError):
        mutual_information(torch.zeros(3, 2), torch.zeros(3, 3))
    with pytest.raises(ValueError):
        marginal_kl(torch.zeros(0, 2), torch.zeros(0, 2))
    with pytest.raises(ValueError):
        latent_decomposition(torch.zeros(3, 2), torch.zeros(3, 2), n_samples=0)


def test_active_units_counts_varying_dimensions() -> None:
    g = gen(2)
    n = 2000
    mu = torch.empty(n, 6)
    mu[:, :3] = torch.randn(n, 3, generator=g)  # var ~ 1: active
    mu[:, 3] = 0.7  # constant
    mu[:, 4] = 0.05 * torch.randn(n, generator=g)  # var ~ 0.0025
    mu[:, 5] = 0.08 * torch.randn(n, generator=g) + 3.0  # var ~ 0.0064
    assert active_units(mu) == 3
    assert active_units(mu, threshold=0.004) == 4
    assert active_units(mu, threshold=2.0) == 0


def test_active_units_threshold_is_strict_on_unbiased_variance() -> None:
    # Column [0, 0.25]: unbiased variance 0.03125, biased 0.015625 (both exact in binary).
    mu = torch.tensor([[0.0, 1.0], [0.25, 1.0]], dtype=torch.float64)
    assert active_units(mu, threshold=0.02) == 1  # a biased variance would give 0
    assert active_units(mu, threshold=0.03125) == 0  # strict ">"
    assert active_units(mu, threshold=0.03124) == 1
    assert active_units(mu[:1]) == 0
