"""The sentence families: models of one sentence at a time, on sentence corpora.

``vae`` (:class:`~cyclevae.models.vae.TextVAE`, LSTM or CNN encoder) and ``ae`` (the
deterministic autoencoder baseline, :class:`~cyclevae.models.autoencoder.TextAutoencoder`);
SA-VAE and SVI build on this family (:mod:`cyclevae.families.savae`). Config: the
sentence-model sizes of ``model`` (:class:`~cyclevae.models.vae.VAEConfig`, with
``model.cnn`` for the CNN encoder, ``model.transformer`` for the Transformer parts,
``model.hf_encoder``/``model.hf_decoder`` for the Hugging Face parts,
:mod:`cyclevae.families.pretrained`) and ``data``. Data: one sentence per line (or
``LABEL<TAB>SENTENCE``), :func:`cyclevae.data.splits.load_corpora`, in the tokenizers the
model's Hugging Face parts read (:func:`~cyclevae.families.pretrained.tokenizers_for`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..config import Config, ModelConfig
from ..data.batching import BatchedCorpus
from ..data.splits import EncoderLimit, load_corpora, load_split
from ..data.tokenizers import Tokenizers
from ..data.vocab import Vocabulary
from ..evaluation import EvalSettings, evaluate_blocks, posterior_labels
from ..models.base import LatentTextModel
from ..models.vae import TextVAE
from .base import CheckpointEvalOptions, Family, Labels, RunData, SplitData, require
from .pretrained import pretrained_parts, tokenizers_for

__all__ = ["SentenceFamily", "encoder_limit"]


def encoder_limit(model: ModelConfig) -> EncoderLimit | None:
    """The input limit of a sentence model's encoder (the CNN's ``input_length``), or None."""
    if model.encoder != "cnn":
        return None
    return EncoderLimit(model.cnn.input_length, model.cnn.long_inputs)


class SentenceFamily(Family[BatchedCorpus]):
    """The sentence VAE (``vae``) and the autoencoder (``ae``)."""

    def __init__(self, kind: str, model_class: type[TextVAE]) -> None:
        self.kind, self.model_class = kind, model_class

    def validate(self, config: Config) -> None:
        m, d = config.model, config.data
        require(not (m.encoder == "cnn" and m.decoder == "hf"), "model.encoder",
                "not 'cnn' with an hf decoder (its input length counts words, the rows are "
                "subword tokens)", m.encoder)
        if "transformer" in (m.encoder, m.decoder) and d.max_length is not None:
            require(d.max_length + 2 <= m.transformer.max_length, "model.transformer.max_length",
                    f">= data.max_length + 2 = {d.max_length + 2} (<s> and </s> around the "
                    "longest sentence)", m.transformer.max_length)

    def build_model(self, config: ModelConfig, vocab_size: int, labels: Labels
                    ) -> LatentTextModel:
        """The model; Hugging Face parts loaded from their directories (with an hf decoder,
        sized by its token ids instead of ``vocab_size``)."""
        encoder, decoder, size = pretrained_parts(config)
        return self.model_class(config, vocab_size if size is None else size, encoder=encoder,
                                decoder=decoder)

    def tokenizers(self, config: Config) -> Tokenizers:
        return tokenizers_for(config.model)

    def load_data(self, config: Config, *, vocab: Vocabulary | None = None,
                  labels: Labels | None = None) -> RunData[BatchedCorpus]:
        c = load_corpora(config.data, seed=config.train.seed, vocab=vocab,
                         limit=encoder_limit(config.model), tokenizers=self.tokenizers(config))
        return RunData(c.vocab, c.train, c.valid, c.test, c.stats)

    def load_split(self, config: Config, spec: str, vocab: Vocabulary, labels: Labels, *,
                   data_dir: str | None = None) -> SplitData[BatchedCorpus]:
        corpus, stats = load_split(config.data, spec, vocab, seed=config.train.seed,
                                   data_dir=data_dir, limit=encoder_limit(config.model),
                                   tokenizers=self.tokenizers(config))
        return SplitData(corpus, stats)

    def evaluate_checkpoint(self, path: str | Path, model: LatentTextModel, config: Config,
                            vocab: Vocabulary, labels: Labels, *, split: str, spec: str,
                            options: CheckpointEvalOptions) -> dict[str, Any]:
        """The reported q's block (IW-NLL with ``options.iw_samples``, default 500) and, for
        SA-VAE, the amortized q's; ``dropped_too_long``: sentences over ``data.max_length``."""
        iw_samples = 500 if options.iw_samples is None else options.iw_samples
        data = self.load_split(config, spec, vocab, Labels(), data_dir=options.data_dir)
        blocks = evaluate_blocks(model, data.batches.batches(0, shuffle=False), split,
                                 iw_samples=iw_samples,
                                 settings=EvalSettings.from_train_config(config.train))
        return {"dropped_too_long": data.stats["too_long"],
                "posteriors": posterior_labels(model, [split]), **blocks}
