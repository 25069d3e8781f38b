"""The one interface every model speaks: the Trainer, the evaluation and the CLI call only this.

A model maps a batch (an object of :mod:`cyclevae.data`, e.g.
:class:`~cyclevae.data.batching.TextBatch`) to unreduced per-example quantities; the
beta-weighted objective is applied elsewhere, once (:func:`cyclevae.losses.objective`).

- ``forward(batch, *, beta, sample=True) -> ModelOutput``: one training pass. ``beta`` is the
  KL weight in force (models that optimise an inner objective, such as SA-VAE's SVI steps, use
  it; others ignore it).
- ``posterior(batch, *, generator=None) -> (mu, logvar)``: the q(z|x) the model reports (for
  SA-VAE and SVI the refined one; ``generator`` draws the noise of the refinement).
  :attr:`posterior_kind` says which (``"amortized"`` or ``"refined"``).
- ``amortized_posterior(batch) -> (mu, logvar)``: the encoder's q, where the model has an
  encoder (:attr:`has_amortized_posterior`).
- ``reconstruction_loss(batch, z) -> [B]``, ``kl_to_prior(batch, mu, logvar) -> [B, D]`` and
  ``log_prior(batch, z)``: the pieces the metrics reuse; ``prior_params(batch)``: the prior of
  each example, N(0, I) unless the model has a learned conditional prior
  (:attr:`conditional_prior`).
- ``generate(z, ...)``: decoding, for models that generate text from z; ``respond(batch, n)``:
  responses to each example's context, for models that answer one (:attr:`can_respond`).

What a caller would otherwise probe for, a model declares as class attributes:
:attr:`~LatentTextModel.posterior_kind`, :attr:`~LatentTextModel.has_amortized_posterior`,
:attr:`~LatentTextModel.stochastic`, :attr:`~LatentTextModel.conditional_prior`,
:attr:`~LatentTextModel.can_respond`.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from dataclasses import dataclass, field

import torch
from torch import nn

from ..data.batching import Batch
from ..losses import gaussian_kl_per_dim
from .generation import DecodingConfig

__all__ = ["Gaussian", "LatentTextModel", "ModelOutput", "init_uniform_"]

#: A diagonal Gaussian as ``(mu, logvar)``, each ``[B, D]``.
Gaussian = tuple[torch.Tensor, torch.Tensor]

_LOG_2PI = math.log(2.0 * math.pi)


@dataclass
class ModelOutput:
    """Unreduced per-example outputs of one forward pass.

    rec: ``[B]`` -log p(x|z) (nats, summed over tokens); kl: ``[B]`` KL(q(z|x)||p(z));
    kl_per_dim: ``[B, D]``; mu, logvar, z: ``[B, D]`` (the q the decoder was trained on);
    aux: named auxiliary losses, each ``[B]`` nats, added to the objective with weight 1
    (e.g. a bag-of-words loss).
    """

    rec: torch.Tensor
    kl: torch.Tensor
    kl_per_dim: torch.Tensor
    mu: torch.Tensor
    logvar: torch.Tensor
    z: torch.Tensor
    aux: dict[str, torch.Tensor] = field(default_factory=dict)


def init_uniform_(module: nn.Module, init_range: float) -> None:
    """Every parameter of ``module`` uniform in [-init_range, init_range], in registration
    order (0: keep PyTorch's default initialisation)."""
    if init_range > 0:
        for p in module.parameters():
            nn.init.uniform_(p, -init_range, init_range)


class LatentTextModel(nn.Module, ABC):
    """Base class of every model family (module docstring)."""

    latent_dim: int
    #: what :meth:`posterior` returns: ``"amortized"`` (an encoder's q) or ``"refined"``
    posterior_kind: str = "amortized"
    #: whether :meth:`amortized_posterior` exists
    has_amortized_posterior: bool = True
    #: whether q(z|x) is a distribution; False for a deterministic autoencoder, whose KL,
    #: ELBO and mutual information are not defined (the evaluation reports them as null)
    stochastic: bool = True
    #: whether the prior is a learned p(z|c) (the dialog CVAE) rather than N(0, I): then
    #: :meth:`prior_params` varies by example, and eq. 8's MI / marginal KL against one fixed
    #: p(z) are not defined
    conditional_prior: bool = False
    #: whether :meth:`respond` answers a context (the dialog CVAE)
    can_respond: bool = False

    @abstractmethod
    def forward(self, batch: Batch, *, beta: float = 1.0, sample: bool = True) -> ModelOutput:
        """One training pass with one z per example (the posterior mean if not ``sample``)."""

    @abstractmethod
    def posterior(self, batch: Batch, *, generator: torch.Generator | None = None) -> Gaussian:
        """The reported q(z|x): ``(mu, logvar)``, each ``[B, D]``."""

    def amortized_posterior(self, batch: Batch) -> Gaussian:
        """The encoder's q(z|x); only where :attr:`has_amortized_posterior`."""
        raise NotImplementedError(f"{type(self).__name__} has no amortized posterior")

    @abstractmethod
    def reconstruction_loss(self, batch: Batch, z: torch.Tensor) -> torch.Tensor:
        """-log p(x|z) per example, ``[B]`` nats, for ``z [B, D]`` (the batch's rows in order)."""

    def kl_to_prior(self, batch: Batch, mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
        """KL(q || p(z)) per dimension, ``[B, D]`` nats; p(z) = N(0, I)."""
        return gaussian_kl_per_dim(mu, logvar)

    def log_prior(self, batch: Batch, z: torch.Tensor) -> torch.Tensor:
        """log p(z) summed over the last dimension (``z [..., D] -> [...]``); p(z) = N(0, I)."""
        return -0.5 * (z.pow(2) + _LOG_2PI).sum(-1)

    def prior_params(self, batch: Batch) -> Gaussian:
        """The prior of every example as ``(mu, logvar)``, each ``[B, D]``: N(0, I) (zeros)
        unless :attr:`conditional_prior`."""
        zeros = torch.zeros(batch.num_examples, self.latent_dim, device=batch.device)
        return zeros, torch.zeros_like(zeros)

    def generate(self, z: torch.Tensor, *, decoding: DecodingConfig | None = None,
                 max_length: int | None = None, greedy: bool | None = None,
                 temperature: float | None = None, generator: torch.Generator | None = None
                 ) -> list[list[int]]:
        """Decode one output per row of ``z [B, D]`` (token ids), for models that generate:
        with ``decoding`` (:class:`~cyclevae.models.generation.DecodingConfig`: greedy,
        sampling with temperature / top-k / top-p, or beam search), or by the older keywords
        (``greedy``, default True; ``temperature``; ``max_length``, default 50), not both
        (:func:`~cyclevae.models.generation.resolve_decoding`). ``generator``: a CPU
        generator for sampling."""
        raise NotImplementedError(f"{type(self).__name__} does not generate from z alone")

    def respond(self, batch: Batch, n: int = 5, *, max_length: int = 40,
                generator: torch.Generator | None = None,
                decoding: DecodingConfig | None = None) -> list[list[list[int]]]:
        """``n`` responses to each example's context (``out[i][k]``: word ids), for a model
        that :attr:`can_respond`."""
        raise NotImplementedError(f"{type(self).__name__} does not respond to a context")

    def output(self, batch: Batch, mu: torch.Tensor, logvar: torch.Tensor, *, sample: bool
               ) -> ModelOutput:
        """Decode one z per example from q = (mu, logvar) and assemble the
        :class:`ModelOutput` (KL in float32 at least)."""
        z = mu + (0.5 * logvar).exp() * torch.randn_like(logvar) if sample else mu
        rec = self.reconstruction_loss(batch, z)
        kl_dtype = torch.promote_types(mu.dtype, torch.float32)
        kl_per_dim = self.kl_to_prior(batch, mu.to(kl_dtype), logvar.to(kl_dtype))
        return ModelOutput(rec=rec, kl=kl_per_dim.sum(-1), kl_per_dim=kl_per_dim, mu=mu,
                           logvar=logvar, z=z)
