"""The objective: closed-form Gaussian KL, the beta-weighted loss with free bits, and the
reparameterisation gradient."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from cyclevae.losses import beta_vae_loss, gaussian_kl, gaussian_kl_per_dim
from cyclevae.models import GaussianEncoder

floats = st.floats(min_value=-3.0, max_value=3.0, allow_nan=False)
vectors = st.integers(min_value=1, max_value=4).flatmap(
    lambda d: st.tuples(st.lists(floats, min_size=d, max_size=d),
                        st.lists(floats, min_size=d, max_size=d))
)


@settings(max_examples=40, deadline=None, derandomize=True)
@given(vectors)
def test_gaussian_kl_matches_monte_carlo(params: tuple[list[float], list[float]]) -> None:
    mu = torch.tensor(params[0], dtype=torch.float64)
    logvar = torch.tensor(params[1], dtype=torch.float64)
    n = 20000
    eps = torch.randn(n, len(mu), generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    z = mu + (0.5 * logvar).exp() * eps
    log_ratio = GaussianEncoder.log_density(z, mu, logvar) - GaussianEncoder.log_density(
        z, torch.zeros_like(mu), torch.zeros_like(mu)
    )
    se = log_ratio.std().item() / math.sqrt(n)
    closed = gaussian_kl(mu.unsqueeze(0), logvar.unsqueeze(0)).item()
    assert abs(log_ratio.mean().item() - closed) < 5 * se + 1e-9


@settings(max_examples=60, deadline=None, derandomize=True)
@given(vectors)
def test_gaussian_kl_is_zero_only_at_the_prior(params: tuple[list[float], list[float]]) -> None:
    mu = torch.tensor([params[0]], dtype=torch.float64)
    logvar = torch.tensor([params[1]], dtype=torch.float64)
    assert gaussian_kl(torch.zeros_like(mu), torch.zeros_like(logvar)).item() == 0.0
    per_dim = gaussian_kl_per_dim(mu, logvar)
    assert (per_dim >= 0).all()
    # Away from 0 (|x| > 1e-3, where float64 resolves the KL) it is strictly positive; near 0
    # it is O(mu^2 + logvar^2).
    moved = (mu.abs() > 1e-3) | (logvar.abs() > 1e-3)
    assert (per_dim[moved] > 0).all()
    assert (per_dim[~moved] <= 1e-6).all()


def test_gaussian_kl_known_value() -> None:
    # KL(N(1, e^2) || N(0, 1)) = 0.5 * (1 + e^2 - 2 - 1)
    kl = gaussian_kl(torch.tensor([[1.0]]), torch.tensor([[2.0]]))
    assert kl.item() == pytest.approx(0.5 * (math.exp(2.0) - 2.0))
    assert gaussian_kl(torch.zeros(3, 5), torch.zeros(3, 5)).shape == (3,)


def test_beta_vae_loss_weights_the_mean_kl() -> None:
    rec, kl = torch.tensor([1.0, 3.0]), torch.tensor([2.0, 4.0])
    assert beta_vae_loss(rec, kl, 0.5).item() == pytest.approx(2.0 + 0.5 * 3.0)
    assert beta_vae_loss(rec, kl, 0.0).item() == pytest.approx(2.0)
    assert beta_vae_loss(rec, kl, 1.0).item() == pytest.approx(5.0)


def test_free_bits_clamps_per_dimension_batch_mean() -> None:
    rec = torch.tensor([1.0, 3.0])
    kl_per_dim = torch.tensor([[0.1, 2.0], [0.3, 1.0]], requires_grad=True)
    kl = kl_per_dim.sum(1)
    # per-dim batch means [0.2, 1.5] -> clamped at 0.5 -> [0.5, 1.5]
    loss = beta_vae_loss(rec, kl, 0.5, kl_per_dim=kl_per_dim, free_bits=0.5)
    assert loss.item() == pytest.approx(2.0 + 0.5 * 2.0)
    loss.backward()
    # the clamped dimension gets no gradient; the other gets beta / B per element
    torch.testing.assert_close(kl_per_dim.grad, torch.tensor([[0.0, 0.25], [0.0, 0.25]]))
    # a threshold below every mean changes nothing
    low = beta_vae_loss(rec, kl, 0.5, kl_per_dim=kl_per_dim, free_bits=0.1)
    assert low.item() == pytest.approx(beta_vae_loss(rec, kl, 0.5).item())
    with pytest.raises(ValueError):
        beta_vae_loss(rec, kl, 1.0, free_bits=0.5)


def test_gradient_flows_through_reparameterisation() -> None:
    torch.manual_seed(0)
    mu = torch.tensor([[0.3, -1.2], [2.0, 0.5]], requires_grad=True)
    logvar = torch.tensor([[0.1, -0.7], [-2.0, 0.4]], requires_grad=True)
    z = GaussianEncoder.reparameterize(mu, logvar)
    z.retain_grad()
    (z**2).sum().backward()
    eps = (z - mu) / (0.5 * logvar).exp()
    # f = sum z^2: df/dz = 2z; dz/dmu = 1; dz/dlogvar = 0.5 * sigma * eps
    torch.testing.assert_close(z.grad, 2 * z.detach())
    torch.testing.assert_close(mu.grad, 2 * z.detach())
    torch.testing.assert_close(logvar.grad, (2 * z * 0.5 * (0.5 * logvar).exp() * eps).detach())


def test_reparameterised_samples_have_the_right_moments() -> None:
    torch.manual_seed(1)
    mu, logvar = torch.tensor([[1.5, -0.5]]), torch.tensor([[0.4, -1.0]])
    z = GaussianEncoder.reparameterize(mu, logvar, n_samples=40000)  # [1, K, D]
    assert z.shape == (1, 40000, 2)
    var = logvar.exp()[0]
    torch.testing.assert_close(z[0].mean(0), mu[0], atol=4 * (var / 40000).sqrt().max().item(),
                               rtol=0)
    torch.testing.assert_close(z[0].var(0), var, rtol=0.03, atol=0)
