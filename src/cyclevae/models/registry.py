"""The one place that builds a model from a config: ``model.kind`` -> model class."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .autoencoder import TextAutoencoder
from .base import LatentTextModel
from .cvae import CVAE
from .savae import SemiAmortizedVAE, SVIModel
from .vae import TextVAE

if TYPE_CHECKING:
    from ..config import ModelConfig
    from ..data.vocab import Vocabulary

__all__ = ["build_model", "initialise_embeddings"]


def build_model(config: ModelConfig, vocab_size: int, num_acts: int = 0,
                num_topics: int = 0) -> LatentTextModel:
    """The model named by ``config.kind`` (``vae``, ``ae``, ``savae``, ``svi``, ``cvae``), with
    ``vocab_size`` from the data's vocabulary (and, for ``cvae``, ``num_acts`` dialog-act labels
    and ``num_topics`` topic labels, ``<unk>`` included, of the training data). The config is
    assumed validated (:func:`cyclevae.config.validate_config`)."""
    if config.kind == "cvae":
        return CVAE(config.cvae, vocab_size, num_acts, num_topics)
    if config.kind == "vae":
        return TextVAE(config, vocab_size)
    if config.kind == "ae":
        return TextAutoencoder(config, vocab_size)
    if config.kind == "savae":
        return SemiAmortizedVAE(config, vocab_size, config.svi)
    if config.kind == "svi":
        return SVIModel(config, vocab_size, config.svi)
    raise ValueError(f"unknown model kind {config.kind!r}")


def initialise_embeddings(model: LatentTextModel, config: ModelConfig, vocab: Vocabulary
                          ) -> dict[str, Any] | None:
    """Initialise a new model's word embeddings from the GloVe file its config names
    (``model.cvae.glove_init``), if any; returns ``{"file", "found", "vocab"}`` for the log (None
    without a file). An unknown or malformed file, or vectors of another dimension than the
    embeddings, is a one-line :class:`~cyclevae.errors.UserError`."""
    path = config.cvae.glove_init if config.kind == "cvae" else None
    if path is None:
        return None
    from ..metrics.text import load_glove_text

    vectors = load_glove_text(path, words=set(vocab.tokens))
    found = model.init_embeddings_(vectors, vocab, source=f"model.cvae.glove_init {path}")
    return {"file": path, "found": found, "vocab": len(vocab)}
