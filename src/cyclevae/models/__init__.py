"""Models: Gaussian encoders, auto-regressive decoders and the text VAE."""

from .decoders import LSTMDecoder
from .encoders import GaussianEncoder, LSTMEncoder
from .vae import TextVAE, VAEConfig, VAEOutput

__all__ = ["GaussianEncoder", "LSTMDecoder", "LSTMEncoder", "TextVAE", "VAEConfig", "VAEOutput"]
