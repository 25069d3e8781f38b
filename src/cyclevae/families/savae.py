"""The SA-VAE and SVI families (Kim et al. 2018): sentence models whose reported q(z|x) is
refined by SVI steps (:mod:`cyclevae.models.savae`; settings ``model.svi``), on sentence
corpora as the sentence VAE (:class:`~cyclevae.families.sentence.SentenceFamily`)."""

from __future__ import annotations

from ..config import Config, ModelConfig
from ..models.base import LatentTextModel
from ..models.savae import SemiAmortizedVAE, SVIModel
from .base import Labels, require
from .sentence import SentenceFamily

__all__ = ["SVIFamily"]


class SVIFamily(SentenceFamily):
    """SA-VAE (``savae``: the encoder's q refined by ``model.svi.steps`` SVI steps) and SVI
    (``svi``: no encoder, SVI from the prior; needs ``model.svi.steps >= 1``)."""

    def __init__(self, kind: str, model_class: type[SemiAmortizedVAE] | type[SVIModel],
                 min_steps: int = 0) -> None:
        self.kind, self.model_class_svi, self.min_steps = kind, model_class, min_steps

    def validate(self, config: Config) -> None:
        m = config.model
        m.svi.validate("model.svi", min_steps=self.min_steps)
        # the SVI steps run the LSTM decoder's own fused passes (models.savae)
        require(m.decoder == "lstm", "model.decoder", f"'lstm' with model.kind {self.kind}",
                m.decoder)
        require(m.encoder != "hf", "model.encoder", f"not 'hf' with model.kind {self.kind}",
                m.encoder)
        require(m.loss_pad_length is None, "model.loss_pad_length",
                "null unless model.kind is vae or ae", m.loss_pad_length)

    def build_model(self, config: ModelConfig, vocab_size: int, labels: Labels
                    ) -> LatentTextModel:
        return self.model_class_svi(config, vocab_size, config.svi)
