"""Models: one interface (:mod:`.base`), Gaussian encoders, auto-regressive decoders, the
sentence VAE, SA-VAE / SVI, the dialog CVAE. Which model a config builds is its family's
choice (:mod:`cyclevae.families`, the one place a config becomes a model)."""

from .base import LatentTextModel, ModelOutput
from .decoders import LSTMDecoder
from .encoders import GaussianEncoder, LSTMEncoder
from .savae import SemiAmortizedVAE, SVIConfig, SVIModel, SVIRefiner
from .vae import TextVAE, VAEConfig

__all__ = ["GaussianEncoder", "LSTMDecoder", "LSTMEncoder", "LatentTextModel", "ModelOutput",
           "SVIConfig", "SVIModel", "SVIRefiner", "SemiAmortizedVAE", "TextVAE", "VAEConfig"]
