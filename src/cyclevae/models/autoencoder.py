"""The deterministic autoencoder baseline (``model.kind: ae``): the sentence VAE's encoder and
decoder with z = mu and the reconstruction loss alone.

It has no posterior distribution, so KL, ELBO, the ELBO perplexity and mutual information are
not defined for it: the evaluation reports them as ``null`` (listed under ``not_defined``)
rather than as zeros. What it reports is the reconstruction loss, its perplexity
(``rec_ppl``) and the active units of its codes.
"""

from __future__ import annotations

import torch

from ..data.batching import TextBatch
from .base import Gaussian, ModelOutput
from .vae import TextVAE

__all__ = ["TextAutoencoder"]


class TextAutoencoder(TextVAE):
    """Encoder -> code mu -> decoder; no sampling, no KL term (``stochastic = False``).

    :meth:`posterior` returns ``(mu, logvar)`` with ``logvar = -inf``, a point mass at the
    code, so ``mu + exp(logvar / 2) * eps`` is exactly ``mu`` wherever generic code samples.
    """

    stochastic = False

    def posterior(self, batch: TextBatch, *, generator: torch.Generator | None = None
                  ) -> Gaussian:
        """The code as a point mass: ``(mu, -inf)``, each ``[B, D]``."""
        mu, _ = self.encoder.encode(batch)
        return mu, torch.full_like(mu, float("-inf"))

    def amortized_posterior(self, batch: TextBatch) -> Gaussian:
        """Same as :meth:`posterior` (the encoder is the whole posterior)."""
        return self.posterior(batch)

    def forward(self, batch: TextBatch, *, beta: float = 1.0, sample: bool = True
                ) -> ModelOutput:
        """Reconstruction from z = mu (``beta`` and ``sample`` change nothing); ``kl`` and
        ``kl_per_dim`` are zeros so the shared objective is the reconstruction loss."""
        mu, logvar = self.posterior(batch)
        rec = self.reconstruction_loss(batch, mu)
        zeros = torch.zeros_like(mu, dtype=torch.promote_types(mu.dtype, torch.float32))
        return ModelOutput(rec=rec, kl=zeros.sum(-1), kl_per_dim=zeros, mu=mu, logvar=logvar,
                           z=mu)
