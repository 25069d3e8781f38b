"""The sentence VAE: encoder (LSTM or CNN) -> q(z|x) -> reparameterised z -> LSTM decoder,
and its config."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from ..data.batching import TextBatch
from ..data.vocab import Vocabulary
from ..errors import check_fields
from .base import Gaussian, LatentTextModel, ModelOutput, init_uniform_
from .decoders import LSTMDecoder
from .encoders import CNNConfig, CNNEncoder, GaussianEncoder, LSTMEncoder
from .generation import DecodingConfig, decode, resolve_decoding

__all__ = ["TextVAE", "VAEConfig"]


@dataclass
class VAEConfig:
    """Sizes and regularisers of the sentence models (defaults: the paper's PTB model).

    The vocabulary size is not a setting: it comes from the data (``data.max_vocab``,
    ``data.min_count``) and is passed to the model's constructor.
    """

    #: word embedding size
    emb_dim: int = 256
    #: LSTM encoder hidden size
    enc_hidden: int = 256
    #: LSTM decoder hidden size
    dec_hidden: int = 256
    #: LSTM encoder layers
    enc_layers: int = 1
    #: LSTM decoder layers
    dec_layers: int = 1
    #: dimension of z
    latent_dim: int = 32
    #: dropout in the decoder
    dropout: float = 0.5
    #: decoder input words replaced by <unk> with this probability (0: off)
    word_dropout: float = 0.0
    #: parameters initialised uniform in [-init_range, init_range] (0: PyTorch's default)
    init_range: float = 0.1
    #: ``lstm`` (the PTB encoder) or ``cnn`` (the Yelp encoder, sized by ``cnn``)
    encoder: str = "lstm"
    #: the decoder's output layer shares its weight with its input embedding (needs
    #: ``emb_dim == dec_hidden``)
    tie_embeddings: bool = False
    cnn: CNNConfig = field(default_factory=CNNConfig)

    def validate(self, prefix: str = "model") -> None:
        """Raise :class:`UserError` naming the first out-of-range field (``prefix.field``)."""
        sizes = ("emb_dim", "enc_hidden", "dec_hidden", "enc_layers", "dec_layers", "latent_dim")
        check_fields(self, prefix, [
            *[(getattr(self, key) >= 1, key, ">= 1") for key in sizes],
            (0.0 <= self.dropout < 1.0, "dropout", "in [0, 1)"),
            (0.0 <= self.word_dropout <= 1.0, "word_dropout", "in [0, 1]"),
            (self.init_range >= 0.0, "init_range", ">= 0 (0 = PyTorch default init)"),
            (self.encoder in ENCODERS, "encoder", " or ".join(map(repr, ENCODERS))),
            (not self.tie_embeddings or self.emb_dim == self.dec_hidden, "tie_embeddings",
             f"false unless emb_dim == dec_hidden (here {self.emb_dim} and {self.dec_hidden})"),
        ])
        if self.encoder == "cnn":
            self.cnn.validate(f"{prefix}.cnn")


#: ``model.encoder`` values
ENCODERS = ("lstm", "cnn")


def build_sentence_encoder(config: VAEConfig, vocab_size: int) -> GaussianEncoder:
    """The encoder ``config.encoder`` names, sized by ``config``."""
    if config.encoder == "cnn":
        return CNNEncoder(vocab_size, config.emb_dim, config.latent_dim, config.cnn,
                          pad_index=Vocabulary.PAD_INDEX)
    return LSTMEncoder(vocab_size, config.emb_dim, config.enc_hidden, config.enc_layers,
                       config.latent_dim)


def build_sentence_decoder(config: VAEConfig, vocab_size: int) -> LSTMDecoder:
    """The LSTM decoder of the sentence models, sized by ``config``."""
    decoder = LSTMDecoder(vocab_size, config.emb_dim, config.dec_hidden, config.dec_layers,
                          config.latent_dim, dropout=config.dropout,
                          word_dropout=config.word_dropout, unk_index=Vocabulary.UNK_INDEX)
    if config.tie_embeddings:
        decoder.output.weight = decoder.embedding.weight  # one tensor, [V, emb_dim]
    return decoder


class SentenceModel(LatentTextModel):
    """A model whose decoder is the LSTM sentence decoder: reconstruction and generation."""

    decoder: LSTMDecoder

    def reconstruction_loss(self, batch: TextBatch, z: torch.Tensor) -> torch.Tensor:
        """-log p(x|z) per sentence, ``[B]`` nats (``</s>`` included, ``<s>`` excluded)."""
        return self.decoder.reconstruction_loss(batch.tokens, z)

    @torch.no_grad()
    def generate(self, z: torch.Tensor, *, decoding: DecodingConfig | None = None,
                 max_length: int | None = None, greedy: bool | None = None,
                 temperature: float | None = None, generator: torch.Generator | None = None
                 ) -> list[list[int]]:
        """One sentence per row of ``z [B, D]`` (word ids without ``<s>``/``</s>``), decoded
        as ``decoding`` says (or greedily / sampled by the older keywords; see
        :func:`~cyclevae.models.generation.resolve_decoding`)."""
        config = resolve_decoding(decoding, max_length=max_length, greedy=greedy,
                                  temperature=temperature)
        return decode(self.decoder, self.decoder.start_state(z), z.shape[0],
                      bos=Vocabulary.BOS_INDEX, eos=Vocabulary.EOS_INDEX, config=config,
                      generator=generator)


class TextVAE(SentenceModel):
    """Sentence VAE with an LSTM or CNN encoder and an auto-regressive LSTM decoder.

    A batch is a :class:`~cyclevae.data.batching.TextBatch` of ``tokens [B, L+1]``,
    equal-length rows ``<s> w_1 .. w_L`` where the last word is usually ``</s>``. The encoder
    reads the whole row; the decoder predicts ``tokens[:, 1:]`` from ``tokens[:, :-1]`` and z.

    Args:
        config: sizes (:class:`VAEConfig`); vocab_size: V, from the data's vocabulary.
    """

    def __init__(self, config: VAEConfig, vocab_size: int) -> None:
        super().__init__()
        if vocab_size < 2:
            raise ValueError(f"vocab_size must be >= 2, got {vocab_size}")
        self.config = config
        self.latent_dim = config.latent_dim
        self.encoder = build_sentence_encoder(config, vocab_size)
        self.decoder = build_sentence_decoder(config, vocab_size)
        init_uniform_(self, config.init_range)

    def amortized_posterior(self, batch: TextBatch) -> Gaussian:
        """The encoder's q(z|x): ``(mu, logvar)``, each ``[B, D]``."""
        return self.encoder(batch.tokens)

    def posterior(self, batch: TextBatch, *, generator: torch.Generator | None = None
                  ) -> Gaussian:
        """The encoder's q(z|x) (deterministic; ``generator`` is unused)."""
        return self.amortized_posterior(batch)

    def forward(self, batch: TextBatch, *, beta: float = 1.0, sample: bool = True
                ) -> ModelOutput:
        """One pass with one z per sentence (the posterior mean if ``sample=False``)."""
        mu, logvar = self.amortized_posterior(batch)
        return self.output(batch, mu, logvar, sample=sample)
