"""Models: Gaussian encoders, auto-regressive decoders, the text VAE and SA-VAE / SVI."""

from .decoders import LSTMDecoder
from .encoders import GaussianEncoder, LSTMEncoder
from .savae import SemiAmortizedVAE, SVIConfig, SVIVAE
from .vae import TextVAE, VAEConfig, VAEOutput

__all__ = ["GaussianEncoder", "LSTMDecoder", "LSTMEncoder", "SVIConfig", "SVIVAE",
           "SemiAmortizedVAE", "TextVAE", "VAEConfig", "VAEOutput"]
