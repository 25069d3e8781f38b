"""Evaluation metrics: latent diagnostics (MI, marginal KL, active units) and likelihoods
(Rec, KL, ELBO, PPL, importance-weighted NLL)."""

from .latent import active_units, latent_decomposition, marginal_kl, mutual_information
from .likelihood import evaluate_model, iw_log_likelihood

__all__ = [
    "active_units",
    "evaluate_model",
    "iw_log_likelihood",
    "latent_decomposition",
    "marginal_kl",
    "mutual_information",
]
