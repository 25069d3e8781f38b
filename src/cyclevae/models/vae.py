"""The sentence VAE: encoder (LSTM, CNN or Transformer) -> q(z|x) -> reparameterised z ->
decoder (LSTM or Transformer), and its config."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn
from torch.nn.utils import parametrize

from ..data.batching import TextBatch
from ..data.vocab import Vocabulary
from ..errors import check_fields
from .base import Gaussian, LatentTextModel, ModelOutput, init_uniform_
from .decoders import LSTMDecoder, SentenceDecoder
from .encoders import CNNConfig, CNNEncoder, GaussianEncoder, LSTMEncoder
from .generation import DecodingConfig, decode, resolve_decoding
from .hf_decoder import HFDecoderConfig
from .hf_encoder import HFEncoderConfig
from .transformer import TransformerConfig, TransformerDecoder, TransformerEncoder

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
    #: ``lstm`` (the PTB encoder), ``cnn`` (the Yelp encoder, sized by ``cnn``),
    #: ``transformer`` (sized by ``transformer``) or ``hf`` (a pretrained Hugging Face
    #: encoder reading its own subword tokens, ``hf_encoder``)
    encoder: str = "lstm"
    #: ``lstm`` (sized by ``emb_dim``, ``dec_hidden``, ``dec_layers``, ``dropout``),
    #: ``transformer`` (sized by ``transformer``; ``word_dropout`` applies to both) or ``hf``
    #: (a Hugging Face causal LM, ``hf_decoder``: the corpus is read in its tokenizer's ids)
    decoder: str = "lstm"
    #: the decoder's output layer shares its weight with its input embedding (an LSTM
    #: decoder needs ``emb_dim == dec_hidden``)
    tie_embeddings: bool = False
    #: every embedding table (the encoder's, the decoder's and a tied output layer) is used
    #: with its rows divided by their L2 norm, as the authors' Yelp scripts do
    #: (``semi/model_new.py``: ``embedding`` returns ``normalizing(W, 1)``)
    normalize_embeddings: bool = False
    #: the decoder's targets right-padded with ``<pad>`` to this many positions, each pad a
    #: predicted token of the reconstruction loss, as the authors' Yelp scripts count them
    #: (their 25 padded positions less ``<GO>``: 24); null: a sentence ends at ``</s>``.
    #: Rec, the ELBO and PPL then include those positions. Sentence VAE and AE only.
    loss_pad_length: int | None = None
    cnn: CNNConfig = field(default_factory=CNNConfig)
    #: sizes of the Transformer encoder and decoder (their own dropout; GPT-2's
    #: initialisation, not ``init_range``)
    transformer: TransformerConfig = field(default_factory=TransformerConfig)
    #: the pretrained encoder of ``encoder: hf`` (directory, pooling, frozen or fine-tuned)
    hf_encoder: HFEncoderConfig = field(default_factory=HFEncoderConfig)
    #: the causal LM of ``decoder: hf`` (directory, how z enters)
    hf_decoder: HFDecoderConfig = field(default_factory=HFDecoderConfig)

    def validate(self, prefix: str = "model") -> None:
        """Raise :class:`UserError` naming the first out-of-range field (``prefix.field``)."""
        sizes = ("emb_dim", "enc_hidden", "dec_hidden", "enc_layers", "dec_layers", "latent_dim")
        check_fields(self, prefix, [
            *[(getattr(self, key) >= 1, key, ">= 1") for key in sizes],
            (0.0 <= self.dropout < 1.0, "dropout", "in [0, 1)"),
            (0.0 <= self.word_dropout <= 1.0, "word_dropout", "in [0, 1]"),
            (self.loss_pad_length is None or self.loss_pad_length >= 1, "loss_pad_length",
             ">= 1 or null"),
            (self.init_range >= 0.0, "init_range", ">= 0 (0 = PyTorch default init)"),
            (self.encoder in ENCODERS, "encoder", " or ".join(map(repr, ENCODERS))),
            (self.decoder in DECODERS, "decoder", " or ".join(map(repr, DECODERS))),
            (not self.normalize_embeddings or not {"transformer", "hf"} & {self.encoder,
                                                                            self.decoder},
             "normalize_embeddings", "false with a transformer or hf encoder or decoder (the "
             "authors' setting is for the LSTM/CNN tables)"),
            (self.decoder != "hf" or not self.tie_embeddings, "tie_embeddings",
             "false with an hf decoder (the pretrained model keeps its own output layer)"),
            (self.decoder != "hf" or self.word_dropout == 0.0, "word_dropout",
             "0 with an hf decoder (it reads every input token)"),
            (self.loss_pad_length is None or self.decoder == "lstm", "loss_pad_length",
             "null with a transformer decoder (it masks <pad> positions)"),
            (not self.tie_embeddings or self.decoder != "lstm" or self.emb_dim == self.dec_hidden,
             "tie_embeddings",
             f"false unless emb_dim == dec_hidden (here {self.emb_dim} and {self.dec_hidden})"),
        ])
        if self.encoder == "cnn":
            self.cnn.validate(f"{prefix}.cnn")
        if "transformer" in (self.encoder, self.decoder):
            self.transformer.validate(f"{prefix}.transformer")
        if self.encoder == "hf":
            self.hf_encoder.validate(f"{prefix}.hf_encoder")
        if self.decoder == "hf":
            self.hf_decoder.validate(f"{prefix}.hf_decoder")


#: ``model.encoder`` values
ENCODERS = ("lstm", "cnn", "transformer", "hf")
#: ``model.decoder`` values
DECODERS = ("lstm", "transformer", "hf")
#: parts a family loads from a model directory and passes to :class:`TextVAE` (``encoder=``,
#: ``decoder=``); never built from the sizes alone
PRETRAINED = "hf"


class RowNormalized(nn.Module):
    """A parametrization (:func:`torch.nn.utils.parametrize.register_parametrization`): a
    weight ``[V, E]`` with every row divided by its L2 norm (the authors' ``normalizing(W,
    1)``, without an epsilon as theirs)."""

    def forward(self, weight: torch.Tensor) -> torch.Tensor:
        return weight / weight.norm(dim=1, keepdim=True)


def build_sentence_encoder(config: VAEConfig, vocab_size: int) -> GaussianEncoder:
    """The encoder ``config.encoder`` names, sized by ``config``."""
    encoder: CNNEncoder | LSTMEncoder
    if config.encoder == "cnn":
        encoder = CNNEncoder(vocab_size, config.emb_dim, config.latent_dim, config.cnn,
                             pad_index=Vocabulary.PAD_INDEX)
    elif config.encoder == "transformer":
        return TransformerEncoder(vocab_size, config.latent_dim, config.transformer,
                                  pad_index=Vocabulary.PAD_INDEX)
    else:
        encoder = LSTMEncoder(vocab_size, config.emb_dim, config.enc_hidden, config.enc_layers,
                              config.latent_dim)
    if config.normalize_embeddings:
        parametrize.register_parametrization(encoder.embedding, "weight", RowNormalized())
    return encoder


def build_sentence_decoder(config: VAEConfig, vocab_size: int) -> SentenceDecoder:
    """The decoder ``config.decoder`` names, sized by ``config``."""
    if config.decoder == "transformer":
        return TransformerDecoder(vocab_size, config.latent_dim, config.transformer,
                                  word_dropout=config.word_dropout,
                                  unk_index=Vocabulary.UNK_INDEX,
                                  pad_index=Vocabulary.PAD_INDEX,
                                  tie_embeddings=config.tie_embeddings)
    decoder = LSTMDecoder(vocab_size, config.emb_dim, config.dec_hidden, config.dec_layers,
                          config.latent_dim, dropout=config.dropout,
                          word_dropout=config.word_dropout, unk_index=Vocabulary.UNK_INDEX)
    if config.tie_embeddings:
        decoder.output.weight = decoder.embedding.weight  # one tensor, [V, emb_dim]
    if config.normalize_embeddings:  # a tied output layer keeps the one raw parameter
        tables = (decoder.embedding, decoder.output) if config.tie_embeddings else (
            decoder.embedding,)
        for module in tables:
            parametrize.register_parametrization(module, "weight", RowNormalized())
    return decoder


class SentenceModel(LatentTextModel):
    """A model whose decoder is a sentence decoder (LSTM or Transformer): reconstruction and
    generation."""

    decoder: SentenceDecoder
    #: targets right-padded with ``<pad>`` to this many positions in the loss (None: not)
    loss_pad_length: int | None = None

    def reconstruction_loss(self, batch: TextBatch, z: torch.Tensor) -> torch.Tensor:
        """-log p(x|z) per sentence, ``[B]`` nats (``</s>`` included, ``<s>`` excluded; with
        :attr:`loss_pad_length`, the ``<pad>`` positions up to it included)."""
        tokens = batch.tokens
        if self.loss_pad_length is not None and tokens.shape[1] - 1 < self.loss_pad_length:
            tokens = nn.functional.pad(tokens, (0, self.loss_pad_length + 1 - tokens.shape[1]),
                                       value=Vocabulary.PAD_INDEX)
        return self.decoder.reconstruction_loss(tokens, z)

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
                      bos=self.decoder.bos_index, eos=self.decoder.eos_index, config=config,
                      generator=generator)


class TextVAE(SentenceModel):
    """Sentence VAE with an LSTM, CNN or Transformer encoder and an auto-regressive LSTM or
    Transformer decoder.

    A batch is a :class:`~cyclevae.data.batching.TextBatch` of ``tokens [B, L+1]``,
    equal-length rows ``<s> w_1 .. w_L`` where the last word is usually ``</s>``. The encoder
    reads the whole row; the decoder predicts ``tokens[:, 1:]`` from ``tokens[:, :-1]`` and z.

    Args:
        config: sizes (:class:`VAEConfig`); vocab_size: V, from the data's vocabulary;
        encoder, decoder: prebuilt parts instead of those ``config.encoder`` and
        ``config.decoder`` name (e.g. a pretrained
        :class:`~cyclevae.models.hf_encoder.HFEncoder`, which needs the corpus words, or a
        :class:`~cyclevae.models.hf_decoder.HFCausalDecoder`); they keep their weights (no
        ``init_range`` draws).
    """

    def __init__(self, config: VAEConfig, vocab_size: int,
                 encoder: GaussianEncoder | None = None,
                 decoder: SentenceDecoder | None = None) -> None:
        super().__init__()
        if vocab_size < 2:
            raise ValueError(f"vocab_size must be >= 2, got {vocab_size}")
        self.config = config
        self.latent_dim = config.latent_dim
        self.loss_pad_length = config.loss_pad_length
        own_encoder, own_decoder = encoder is None, decoder is None
        for part, own, kind in (("encoder", own_encoder, config.encoder),
                                ("decoder", own_decoder, config.decoder)):
            if own and kind == PRETRAINED:
                raise ValueError(f"model.{part} hf is loaded from its directory by the model "
                                 f"family (cyclevae.families): pass {part}=")
        self.encoder = build_sentence_encoder(config, vocab_size) if own_encoder else encoder
        self.decoder = build_sentence_decoder(config, vocab_size) if own_decoder else decoder
        # init_range for the LSTM / CNN parts (in registration order, so the same draws as
        # over the whole model); Transformer and prebuilt parts keep their own weights
        if own_encoder and config.encoder != "transformer":
            init_uniform_(self.encoder, config.init_range)
        if own_decoder and config.decoder != "transformer":
            init_uniform_(self.decoder, config.init_range)

    def amortized_posterior(self, batch: TextBatch) -> Gaussian:
        """The encoder's q(z|x): ``(mu, logvar)``, each ``[B, D]``."""
        return self.encoder.encode(batch)

    def posterior(self, batch: TextBatch, *, generator: torch.Generator | None = None
                  ) -> Gaussian:
        """The encoder's q(z|x) (deterministic; ``generator`` is unused)."""
        return self.amortized_posterior(batch)

    def forward(self, batch: TextBatch, *, beta: float = 1.0, sample: bool = True
                ) -> ModelOutput:
        """One pass with one z per sentence (the posterior mean if ``sample=False``)."""
        mu, logvar = self.amortized_posterior(batch)
        return self.output(batch, mu, logvar, sample=sample)
