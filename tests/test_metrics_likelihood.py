"""Likelihood metrics: IW-NLL against an exact marginal likelihood, bounds, PPL, purity."""

from __future__ import annotations

import math

import pytest
import torch
from scipy.special import roots_hermitenorm
from torch import nn

from cyclevae.data.batching import TextBatch as B
from cyclevae.evaluation import evaluate_model
from cyclevae.losses import gaussian_kl
from cyclevae.metrics import iw_log_likelihood
from cyclevae.metrics.likelihood import batch_mean_perplexity, randn_on
from cyclevae.models import LatentTextModel, TextVAE, VAEConfig

TOKENS = torch.tensor([[0, 1, 2, 3, 4], [0, 2, 2, 1, 4], [0, 3, 1, 1, 4], [0, 4, 4, 4, 4]])


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def tiny_vae(dropout: float = 0.0) -> TextVAE:
    """A 1-D latent VAE whose decoder depends strongly on z and whose q(z|x) is off the true
    posterior (shifted mean, wider), so that the ELBO, IW bounds and log p(x) differ visibly."""
    torch.manual_seed(0)
    model = TextVAE(
        VAEConfig(emb_dim=4, enc_hidden=4, dec_hidden=4, latent_dim=1,
                  dropout=dropout, init_range=0.5), 5
    )
    with torch.no_grad():
        model.decoder.latent_to_hidden.weight.mul_(6.0)
        model.decoder.lstm.weight_ih_l0[:, -1:].mul_(6.0)
        model.encoder.to_params.bias.add_(torch.tensor([0.4, 0.3]))
    return model.eval()


@pytest.fixture(scope="module")
def model() -> TextVAE:
    return tiny_vae()


def log_joint(model: TextVAE, sentence: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """log p(x|z) + log N(z; 0, 1) for one sentence ``[L+1]`` at points ``z [G]`` -> ``[G]``."""
    with torch.no_grad():
        rec = model.decoder.reconstruction_loss(sentence.expand(len(z), -1), z.unsqueeze(1))
    z = z.double()
    return -rec.double() - 0.5 * z * z - 0.5 * math.log(2 * math.pi)


def exact_log_px(model: TextVAE, tokens: torch.Tensor) -> torch.Tensor:
    """log p(x) = log int p(x|z) N(z; 0, 1) dz by a dense Riemann sum on [-10, 10] -> ``[B]``."""
    grid = torch.linspace(-10.0, 10.0, 8001)
    step = math.log(20.0 / 8000)
    return torch.stack([torch.logsumexp(log_joint(model, s, grid), 0) + step for s in tokens])


def test_quadrature_reference_agrees_with_gauss_hermite(model: TextVAE) -> None:
    # int f(z) exp(-z^2/2) dz ~= sum_i w_i f(x_i) (probabilists' Hermite, 300 nodes).
    nodes, weights = roots_hermitenorm(300)
    z = torch.tensor(nodes, dtype=torch.float32)
    log_w = torch.tensor(weights, dtype=torch.float64).log()
    for sentence, exact in zip(TOKENS, exact_log_px(model, TOKENS), strict=True):
        # log_joint + z^2/2 = log p(x|z) - log sqrt(2 pi): the normalised GH rule
        gh = torch.logsumexp(log_joint(model, sentence, z) + 0.5 * z.double() ** 2 + log_w, 0)
        assert gh.item() == pytest.approx(exact.item(), abs=1e-5)


def log_weight_samples(model: TextVAE, tokens: torch.Tensor, n: int) -> torch.Tensor:
    """``[n, B]`` independent log importance weights (K = 1 estimates)."""
    reps = tokens.repeat(n, 1)
    return iw_log_likelihood(model, B(reps), 1, 1, gen(5)).view(n, len(tokens))


def test_iw_log_likelihood_matches_exact_marginal(model: TextVAE) -> None:
    k = 20000
    exact = exact_log_px(model, TOKENS)
    estimate = iw_log_likelihood(model, B(TOKENS), k, 2000, gen(1))
    # delta method: sd(log mean w) ~= sd(w) / mean(w) / sqrt(K); bias ~ rel_sd^2 / (2K).
    lw = log_weight_samples(model, TOKENS, 4000)
    w = (lw - lw.max(0).values).exp()
    rel_sd = w.std(0) / w.mean(0)
    assert (rel_sd > 0.1).all()  # the proposal is genuinely off the posterior
    tol = 4 * rel_sd / math.sqrt(k) + rel_sd**2 / k
    assert ((estimate - exact).abs() < tol).all(), (estimate, exact, tol)
    assert (tol < 0.035).all()


def test_single_sample_weight_is_unbiased_for_elbo(model: TextVAE) -> None:
    """E_q[log w] = E_q[log p(x|z)] - KL(q||p): checks the log p(z) - log q(z|x) terms."""
    n = 4000
    lw = log_weight_samples(model, TOKENS, n)
    mu, logvar = model.posterior(B(TOKENS))
    z = mu + (0.5 * logvar).exp() * torch.randn(n, len(TOKENS), 1, generator=gen(9))
    with torch.no_grad():
        rec = model.decoder.reconstruction_loss(TOKENS.repeat(n, 1), z.reshape(-1, 1))
    elbo = -rec.view(n, -1).double().mean(0) - gaussian_kl(mu, logvar).detach().double()
    se = (lw.var(0) / n + rec.view(n, -1).double().var(0) / n).sqrt()
    assert ((lw.mean(0) - elbo).abs() < 4 * se).all()
    # ... and the bound is strict here: log p(x) exceeds the ELBO by far more than the noise.
    assert (exact_log_px(model, TOKENS) - elbo > 10 * se).all()


def test_iw_nll_tightens_with_k_and_stays_above_exact(model: TextVAE) -> None:
    exact_nll = -exact_log_px(model, TOKENS).mean().item()
    means, ses = [], []
    for k in (1, 8, 64):
        reps = 32000 // k  # independent estimates per sentence
        nll = -iw_log_likelihood(model, B(TOKENS.repeat(reps, 1)), k, 64, gen(k)).view(reps, -1)
        nll = nll.mean(1)  # average over the sentences of one replicate
        means.append(nll.mean().item())
        ses.append(nll.std().item() / math.sqrt(reps))
    for i in range(len(means) - 1):  # strictly decreasing, by more than 4 standard errors
        assert means[i] - means[i + 1] > 4 * math.hypot(ses[i], ses[i + 1]), (means, ses)
    assert means[-1] > exact_nll - 4 * ses[-1]
    assert means[-1] - exact_nll < 0.25 * (means[0] - exact_nll)


def test_iw_is_independent_of_chunk_size(model: TextVAE) -> None:
    results = [iw_log_likelihood(model, B(TOKENS), 64, c, gen(3)) for c in (1, 5, 64, 999)]
    for r in results[1:]:
        torch.testing.assert_close(r, results[0], atol=1e-5, rtol=0)
    assert not torch.allclose(results[0], iw_log_likelihood(model, B(TOKENS), 64, 5, gen(4)))


def test_iw_argument_checks(model: TextVAE) -> None:
    with pytest.raises(ValueError):
        iw_log_likelihood(model, B(TOKENS), 0, 10, gen(0))
    with pytest.raises(ValueError):
        iw_log_likelihood(model, B(TOKENS), 10, 0, gen(0))


# --- evaluate_model --------------------------------------------------------------------------


class _ConstantEncoder(nn.Module):
    def __init__(self, mean: float, dim: int) -> None:
        super().__init__()
        self.mean, self.dim = mean, dim
        self.modes: list[bool] = []

    def forward(self, tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        self.modes.append(self.training)
        mu = torch.full((tokens.shape[0], self.dim), self.mean)
        return mu, torch.zeros_like(mu)


class _UniformDecoder(nn.Module):
    """p(x|z) uniform over V words: -log p(x|z) = L log V whatever z."""

    def __init__(self, vocab: int) -> None:
        super().__init__()
        self.vocab = vocab
        self.anchor = nn.Parameter(torch.zeros(()))  # gives the model a device

    def reconstruction_loss(self, tokens: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        assert z.shape[0] == tokens.shape[0]
        return torch.full((tokens.shape[0],), (tokens.shape[1] - 1) * math.log(self.vocab))


class _FakeModel(LatentTextModel):
    def __init__(self, mean: float, dim: int = 2, vocab: int = 7) -> None:
        super().__init__()
        self.encoder = _ConstantEncoder(mean, dim)
        self.decoder = _UniformDecoder(vocab)

    def forward(self, batch, *, beta=1.0, sample=True):
        raise NotImplementedError

    def posterior(self, batch, *, generator=None):
        return self.encoder(batch.tokens)

    def reconstruction_loss(self, batch, z):
        return self.decoder.reconstruction_loss(batch.tokens, z)


BATCHES = [B(torch.zeros(2, 4, dtype=torch.long)), B(torch.zeros(3, 6, dtype=torch.long))]


def test_ppl_and_averages_on_a_hand_computed_case() -> None:
    # 2 sentences x 3 predicted tokens + 3 sentences x 5 = 21 tokens; V = 7; mu = 0.5 in D = 2
    # so KL = 0.5 * (0.25 + 0.25) = 0.25 per sentence.
    out = evaluate_model(_FakeModel(0.5), BATCHES, seed=3)
    assert out["sentences"] == 5 and out["tokens"] == 21
    assert out["rec"] == pytest.approx(21 * math.log(7) / 5)
    assert out["kl"] == pytest.approx(0.25)
    assert out["nll_bound"] == pytest.approx(21 * math.log(7) / 5 + 0.25)
    assert out["elbo"] == pytest.approx(-out["nll_bound"])
    assert out["ppl"] == pytest.approx(7 * math.exp(5 * 0.25 / 21))
    assert "iw_nll" not in out and "iw_ppl" not in out
    # identical posteriors: no information, no active unit, q(z) = q(z|n) so marginal KL = KL
    assert out["mi"] == pytest.approx(0.0, abs=1e-9) and out["active_units"] == 0


def test_iw_ppl_is_exact_when_q_equals_prior() -> None:
    # q(z|x) = p(z) and p(x|z) constant: every importance weight equals p(x) = 7^-L exactly.
    out = evaluate_model(_FakeModel(0.0), BATCHES, iw_samples=30, iw_chunk=7)
    assert out["iw_nll"] == pytest.approx(21 * math.log(7) / 5, rel=1e-6)
    assert out["iw_ppl"] == pytest.approx(7.0, rel=1e-6)
    assert out["ppl"] == pytest.approx(7.0)


def test_evaluate_model_is_pure_and_reproducible() -> None:
    model = tiny_vae(dropout=0.5).train()
    batches = [B(TOKENS), B(TOKENS[:2, :3])]
    rng_before = torch.get_rng_state()
    first = evaluate_model(model, batches, iw_samples=20, iw_chunk=6, seed=1)
    assert torch.equal(rng_before, torch.get_rng_state())  # global RNG untouched
    assert model.training  # mode restored
    again = evaluate_model(model, batches, iw_samples=20, iw_chunk=20, seed=1, device="cpu")
    assert again == pytest.approx(first, abs=1e-6)  # dropout off + seeded sampling
    other = evaluate_model(model, batches, iw_samples=20, seed=2)
    assert other["rec"] != first["rec"] and other["iw_nll"] != first["iw_nll"]
    assert other["kl"] == first["kl"]
    assert not tiny_vae().eval().training
    fake = _FakeModel(0.1).train()
    evaluate_model(fake, BATCHES)
    assert fake.encoder.modes == [False, False] and fake.training


def test_evaluate_model_on_tiny_vae_is_consistent(model: TextVAE) -> None:
    out = evaluate_model(model, [B(TOKENS)], iw_samples=2000, iw_chunk=250, latent_samples=50)
    exact_nll = -exact_log_px(model, TOKENS).mean().item()
    assert out["iw_nll"] == pytest.approx(exact_nll, abs=0.03)
    assert out["iw_ppl"] == pytest.approx(math.exp(out["iw_nll"] * 4 / 16))
    assert out["ppl"] == pytest.approx(math.exp(out["nll_bound"] * 4 / 16))
    mu, logvar = model.posterior(B(TOKENS))
    assert out["kl"] == pytest.approx(gaussian_kl(mu, logvar).mean().item(), rel=1e-6)
    assert -0.05 < out["mi"] <= math.log(4) + 1e-9
    assert out["active_units"] in (0, 1)
    with pytest.raises(ValueError):
        evaluate_model(model, [])


def test_batch_mean_perplexity_is_the_mean_of_each_batchs_perplexity() -> None:
    """The authors' Rec-P (cvae_cyc.py: rc_ppl per batch, then np.mean), by hand: batch 1 has
    3 tokens and 3 ln 2 nats (perplexity 2), batch 2 has 2 tokens and 2 ln 8 nats (8)."""
    rec, tokens = [3 * math.log(2.0), 2 * math.log(8.0)], [3, 2]
    assert batch_mean_perplexity(rec, tokens) == pytest.approx(5.0, rel=1e-12)
    # ours, exp of the token-averaged loss: exp(9 ln 2 / 5) = 2^1.8 = 3.48, below it
    assert math.exp(sum(rec) / sum(tokens)) == pytest.approx(2.0 ** 1.8)
    assert batch_mean_perplexity([3 * math.log(2.0)], [3]) == pytest.approx(2.0)
    with pytest.raises(ValueError, match="token counts"):
        batch_mean_perplexity(rec, [3])


def test_evaluation_reports_rec_p_both_ways(model: TextVAE) -> None:
    """``rec_ppl`` is exp(all rec nats / all tokens), ``rec_ppl_batch_mean`` the mean of the
    batches' perplexities, from the same z draws (one generator seeded ``seed`` in batch
    order); one batch gives the same number both ways."""
    batches = [B(TOKENS[:1]), B(TOKENS[1:])]
    metrics = evaluate_model(model, batches, seed=3)
    g = gen(3)
    recs, counts = [], []
    with torch.no_grad():
        for b in batches:
            mu, logvar = model.posterior(b)
            z = mu + (0.5 * logvar).exp() * randn_on(tuple(mu.shape), g, mu.device)
            recs.append(model.reconstruction_loss(b, z).double().sum().item())
            counts.append(b.num_tokens)
    ppls = [math.exp(r / n) for r, n in zip(recs, counts, strict=True)]
    assert metrics["rec_ppl_batch_mean"] == pytest.approx(sum(ppls) / 2, rel=1e-9)
    assert metrics["rec_ppl"] == pytest.approx(math.exp(sum(recs) / sum(counts)), rel=1e-9)
    assert abs(metrics["rec_ppl_batch_mean"] - metrics["rec_ppl"]) > 0.01  # they differ here
    single = evaluate_model(model, [B(TOKENS)], seed=3)
    assert single["rec_ppl_batch_mean"] == pytest.approx(single["rec_ppl"], rel=1e-12)
