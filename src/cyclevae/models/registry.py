"""The one place that builds a model from a config: ``model.kind`` -> model class."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .autoencoder import TextAutoencoder
from .base import LatentTextModel
from .savae import SemiAmortizedVAE, SVIModel
from .vae import TextVAE

if TYPE_CHECKING:
    from ..config import ModelConfig

__all__ = ["build_model"]


def build_model(config: ModelConfig, vocab_size: int) -> LatentTextModel:
    """The model named by ``config.kind`` (``vae``, ``ae``, ``savae``, ``svi``), with ``vocab_size``
    from the data's vocabulary. The config is assumed validated
    (:func:`cyclevae.config.validate_config`)."""
    if config.kind == "vae":
        return TextVAE(config, vocab_size)
    if config.kind == "ae":
        return TextAutoencoder(config, vocab_size)
    if config.kind == "savae":
        return SemiAmortizedVAE(config, vocab_size, config.svi)
    if config.kind == "svi":
        return SVIModel(config, vocab_size, config.svi)
    raise ValueError(f"unknown model kind {config.kind!r}")
