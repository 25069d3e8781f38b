"""Likelihood metrics of a text VAE: Rec, KL, ELBO, PPL and the importance-weighted NLL.

A model here is anything with ``encode(tokens) -> (mu, logvar)`` (each ``[B, D]``) and
``decoder.reconstruction_loss(tokens, z) -> [B]`` (-log p(x|z), nats summed over the predicted
tokens), e.g. :class:`cyclevae.models.TextVAE`. A batch is a LongTensor ``tokens [B, L+1]`` of
equal-length rows ``<s> w_1 .. w_L`` whose L tokens (``</s>`` included) are predicted.
All quantities are in nats; "per sentence" means averaged over sentences.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from typing import Protocol

import torch
from torch import nn

from ..losses import gaussian_kl
from .latent import active_units, latent_decomposition

__all__ = ["LatentTextModel", "evaluate_model", "iw_log_likelihood"]

_LOG_2PI = math.log(2.0 * math.pi)


class _Decoder(Protocol):
    def reconstruction_loss(self, tokens: torch.Tensor, z: torch.Tensor) -> torch.Tensor: ...


class LatentTextModel(Protocol):
    """What the metrics need from a model (structural type; :class:`TextVAE` satisfies it)."""

    decoder: _Decoder
    training: bool

    def encode(self, tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]: ...

    def train(self, mode: bool = True) -> nn.Module: ...


def _randn(shape: tuple[int, ...], generator: torch.Generator | None, device: torch.device):
    """Standard normals drawn on the generator's device (so a CPU generator gives the same
    numbers whatever the model's device), then moved to ``device``."""
    gen_device = generator.device if generator is not None else device
    return torch.randn(shape, generator=generator, device=gen_device).to(device)


@torch.no_grad()
def iw_log_likelihood(
    model: LatentTextModel,
    tokens: torch.Tensor,
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
        tokens: ``[B, L+1]``.
        n_samples: K >= 1.
        chunk: samples per decoder pass.
        generator: seeded generator for reproducible estimates (None: the global RNG).
        posterior: the proposal's ``(mu, logvar)`` if already computed (default
            ``model.encode(tokens)``), e.g. a refined q (:mod:`cyclevae.models.savae`).
    Returns:
        ``[B]`` float64, nats (log p(x) estimates; negate for the IW-NLL).
    """
    if n_samples < 1 or chunk < 1:
        raise ValueError(f"n_samples and chunk must be >= 1, got {n_samples} and {chunk}")
    mu, logvar = posterior if posterior is not None else model.encode(tokens)
    batch, dim = mu.shape
    eps = _randn((n_samples, batch, dim), generator, mu.device)  # [K, B, D]
    std = (0.5 * logvar).exp()
    log_w = torch.empty(n_samples, batch, dtype=torch.float64, device=mu.device)  # [K, B]
    for start in range(0, n_samples, chunk):
        e = eps[start : start + chunk]  # [C, B, D]
        z = mu + std * e.to(mu.dtype)  # [C, B, D]
        n = e.shape[0]
        rec = model.decoder.reconstruction_loss(
            tokens.repeat(n, 1), z.reshape(n * batch, dim)
        ).view(n, batch)
        z64, e64 = z.double(), e.double()
        log_prior = -0.5 * (z64.pow(2) + _LOG_2PI).sum(-1)
        log_q = -0.5 * (e64.pow(2) + logvar.double() + _LOG_2PI).sum(-1)  # (z - mu)/sigma = eps
        log_w[start : start + n] = -rec.double() + log_prior - log_q
    return torch.logsumexp(log_w, dim=0) - math.log(n_samples)


def _model_device(model: object) -> torch.device:
    params = getattr(model, "parameters", None)
    if params is not None:
        for p in params():
            return p.device
    return torch.device("cpu")


@torch.no_grad()
def evaluate_model(
    model: LatentTextModel,
    batches: Iterable[torch.Tensor],
    *,
    iw_samples: int = 0,
    iw_chunk: int = 50,
    latent_samples: int = 1,
    seed: int = 0,
    device: torch.device | str | None = None,
    encode_fn: Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]] | None = None,
) -> dict[str, float]:
    """Evaluate a VAE on a data split. Pure: eval mode (restored afterwards), no gradients, and
    all sampling from private generators seeded by ``seed``, so the global RNG is untouched and
    results repeat exactly.

    Args:
        model: see the module docstring.
        batches: iterable of ``tokens [B, L+1]`` LongTensors (rows equal-length within a batch).
        iw_samples: K for the importance-weighted NLL; 0 skips it (K = 500 is customary).
        iw_chunk: importance samples per decoder pass (memory ~ iw_chunk * B sentences).
        latent_samples: Monte Carlo samples per sentence for MI and marginal KL.
        seed: seeds the reconstruction, importance and latent samples (separate streams).
        device: where to compute; default the model's parameters' device.
        encode_fn: ``tokens -> (mu, logvar)`` giving q(z|x) (default ``model.encode``), e.g.
            the refined q of a semi-amortized VAE; every metric then uses it. It is called in
            eval mode under ``torch.no_grad()`` (enable grad inside if it needs it), and
            should draw any noise from its own generator to keep this function pure.
    Returns:
        Per-sentence averages (nats): ``rec`` (-log p(x|z), one z ~ q(z|x) per sentence),
        ``kl`` (closed form), ``nll_bound`` = rec + kl, ``elbo`` = -(rec + kl),
        ``ppl`` = exp(sum over sentences of (rec + kl) / ``tokens``); with ``iw_samples`` > 0,
        ``iw_nll`` (mean -log p(x) estimate) and ``iw_ppl`` = exp(sum iw_nll / ``tokens``);
        ``mi``, ``marginal_kl`` (:mod:`cyclevae.metrics.latent`, over all sentences),
        ``active_units`` (count), ``sentences`` and ``tokens`` (predicted tokens, one ``</s>``
        per sentence included).
    """
    device = torch.device(device) if device is not None else _model_device(model)
    rec_gen = torch.Generator().manual_seed(seed)
    iw_gen = torch.Generator().manual_seed(seed + 1)
    latent_gen = torch.Generator().manual_seed(seed + 2)
    was_training = model.training
    model.train(False)
    rec_sum = kl_sum = iw_sum = 0.0
    n_sentences = n_tokens = 0
    mus: list[torch.Tensor] = []
    logvars: list[torch.Tensor] = []
    try:
        for tokens in batches:
            tokens = tokens.to(device)
            mu, logvar = (encode_fn or model.encode)(tokens)
            z = mu + (0.5 * logvar).exp() * _randn(tuple(mu.shape), rec_gen, mu.device)
            rec_sum += model.decoder.reconstruction_loss(tokens, z).double().sum().item()
            kl_sum += gaussian_kl(mu.double(), logvar.double()).sum().item()
            if iw_samples > 0:
                log_px = iw_log_likelihood(model, tokens, iw_samples, iw_chunk, iw_gen,
                                           posterior=(mu, logvar))
                iw_sum -= log_px.sum().item()
            n_sentences += tokens.shape[0]
            n_tokens += tokens.shape[0] * (tokens.shape[1] - 1)
            mus.append(mu.double())
            logvars.append(logvar.double())
    finally:
        model.train(was_training)
    if n_sentences == 0 or n_tokens == 0:
        raise ValueError("evaluate_model needs at least one sentence with a predicted token")

    rec, kl = rec_sum / n_sentences, kl_sum / n_sentences
    mu_all, logvar_all = torch.cat(mus), torch.cat(logvars)
    parts = latent_decomposition(
        mu_all, logvar_all, n_samples=latent_samples, generator=latent_gen
    )
    metrics: dict[str, float] = {
        "rec": rec,
        "kl": kl,
        "elbo": -(rec + kl),
        "nll_bound": rec + kl,
        "ppl": math.exp((rec_sum + kl_sum) / n_tokens),
    }
    if iw_samples > 0:
        metrics["iw_nll"] = iw_sum / n_sentences
        metrics["iw_ppl"] = math.exp(iw_sum / n_tokens)
    metrics.update(
        mi=parts["mi"],
        marginal_kl=parts["marginal_kl"],
        active_units=active_units(mu_all),
        sentences=n_sentences,
        tokens=n_tokens,
    )
    return metrics
