"""Evaluation metrics: latent diagnostics (MI, marginal KL, active units) and the
importance-weighted NLL. The whole evaluation of a model (Rec, KL, ELBO, PPL, IW-NLL, MI,
AU) is :func:`cyclevae.evaluation.evaluate`."""

from .latent import active_units, latent_decomposition, marginal_kl, mutual_information
from .likelihood import iw_log_likelihood

__all__ = [
    "active_units",
    "iw_log_likelihood",
    "latent_decomposition",
    "marginal_kl",
    "mutual_information",
]
