"""Gaussian encoders q(z|x) = N(mu(x), diag(exp(logvar(x)))): LSTM and CNN."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from ..data.batching import TextBatch
from ..errors import check_fields
from ..ops import linear


class GaussianEncoder(nn.Module):
    """Base class: subclasses implement ``forward(tokens) -> (mu, logvar)``, each ``[B, D]``.

    Owns sampling (reparameterisation) and the log-density of q, reused by the metrics.
    """

    latent_dim: int

    def encode(self, batch: TextBatch) -> tuple[torch.Tensor, torch.Tensor]:
        """q(z|x) of a batch: ``(mu, logvar)``, each ``[B, D]``, from the part of the batch
        this encoder reads (the rows ``batch.tokens``; an encoder with a tokenizer of its own
        reads ``batch.encoder_input``)."""
        return self(batch.tokens)

    @staticmethod
    def reparameterize(mu: torch.Tensor, logvar: torch.Tensor, n_samples: int = 1) -> torch.Tensor:
        """z = mu + sigma * eps, differentiable in mu and logvar.

        Args:
            mu, logvar: ``[B, D]``.
            n_samples: K samples per row.
        Returns:
            ``[B, D]`` if ``n_samples == 1`` else ``[B, K, D]``.
        """
        std = (0.5 * logvar).exp()
        if n_samples == 1:
            return mu + std * torch.randn_like(std)
        eps = torch.randn(mu.shape[0], n_samples, mu.shape[1], dtype=mu.dtype, device=mu.device)
        return mu.unsqueeze(1) + std.unsqueeze(1) * eps

    @staticmethod
    def log_density(z: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
        """log N(z; mu, diag(exp(logvar))), summed over the last dimension.

        ``z``, ``mu`` and ``logvar`` broadcast against each other (``[..., D]``); returns ``[...]``.
        """
        return -0.5 * (
            ((z - mu) ** 2) * torch.exp(-logvar) + logvar + math.log(2 * math.pi)
        ).sum(dim=-1)


class LSTMEncoder(GaussianEncoder):
    """Embedding -> LSTM -> last hidden state of the top layer -> linear -> (mu, logvar).

    Args:
        vocab_size: V; emb_dim: word embedding size; hidden: LSTM units; num_layers: LSTM depth;
        latent_dim: D.
    Input ``tokens``: LongTensor ``[B, L]`` (all rows the same length, no padding).
    """

    def __init__(
        self, vocab_size: int, emb_dim: int, hidden: int, num_layers: int, latent_dim: int
    ) -> None:
        super().__init__()
        self.latent_dim = latent_dim
        self.embedding = nn.Embedding(vocab_size, emb_dim)
        self.lstm = nn.LSTM(emb_dim, hidden, num_layers=num_layers, batch_first=True)
        self.to_params = nn.Linear(hidden, 2 * latent_dim)

    def forward(self, tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        _, (h, _) = self.lstm(self.embedding(tokens))
        mu, logvar = self.to_params(h[-1]).chunk(2, dim=-1)
        return mu, logvar


@dataclass
class CNNConfig:
    """The convolutional encoder of the Yelp experiment (``model.cnn.*``; defaults: the
    authors' 300 -> 600 -> 900 filters of width 5, stride 2).

    ``input_length``: the fixed number of input positions (words and ``</s>``, right-padded
    with ``<pad>``); ``long_inputs``: what happens to sentences with more: ``cut`` (the
    encoder reads the first ``input_length`` positions; the decoder still reconstructs the
    whole sentence) or ``drop`` (removed when the data is read, and counted).
    """

    #: filters of the first convolution
    conv1: int = 300
    #: filters of the second convolution
    conv2: int = 600
    #: filters of the third convolution
    conv3: int = 900
    #: width of the convolution filters
    width: int = 5
    #: stride of the convolutions
    stride: int = 2
    input_length: int = 20
    long_inputs: str = "cut"

    def validate(self, prefix: str = "model.cnn") -> None:
        """Raise :class:`UserError` naming the first out-of-range field."""
        checks = [(getattr(self, key) >= 1, key, ">= 1")
                  for key in ("conv1", "conv2", "conv3", "width", "stride")]
        checks.append((self.long_inputs in ("cut", "drop"), "long_inputs", "'cut' or 'drop'"))
        minimum = cnn_min_input_length(self.width, self.stride)
        checks.append((self.input_length >= minimum, "input_length",
                       (f">= {minimum} (two convolutions of width {self.width}, stride "
                        f"{self.stride}, must leave at least one position)")))
        check_fields(self, prefix, checks)


def _conv_length(length: int, width: int, stride: int) -> int:
    """Positions after an unpadded 1-d convolution."""
    return (length - width) // stride + 1


def cnn_min_input_length(width: int, stride: int) -> int:
    """The shortest input the CNN encoder accepts (the first two layers leave >= 1 position)."""
    return width + (width - 1) * stride


class CNNEncoder(GaussianEncoder):
    """Embedding -> three 1-d convolutions -> linear -> (mu, logvar) (Fu et al.'s Yelp encoder,
    after Zhang et al. 2017's deconvolutional paragraph model).

    Layers: ``conv1`` filters of ``width``, stride ``stride``, ReLU; ``conv2`` filters, same
    width and stride, ReLU; ``conv3`` filters spanning all remaining positions, tanh, giving
    one ``conv3``-vector per sentence; then linear maps to mu and logvar.

    Input ``tokens``: LongTensor ``[B, L+1]`` rows ``<s> w_1 .. w_n </s>`` as every sentence
    model gets them. The encoder reads ``w_1 .. </s>`` (``<s>`` carries nothing), right-padded
    with ``<pad>`` to ``input_length`` positions, or cut to the first ``input_length``.
    """

    def __init__(self, vocab_size: int, emb_dim: int, latent_dim: int, config: CNNConfig,
                 pad_index: int = 0) -> None:
        super().__init__()
        self.latent_dim = latent_dim
        self.input_length = config.input_length
        self.pad_index = pad_index
        self.embedding = nn.Embedding(vocab_size, emb_dim)
        remaining = _conv_length(_conv_length(config.input_length, config.width, config.stride),
                                 config.width, config.stride)
        self.convs = nn.Sequential(
            nn.Conv1d(emb_dim, config.conv1, config.width, stride=config.stride), nn.ReLU(),
            nn.Conv1d(config.conv1, config.conv2, config.width, stride=config.stride), nn.ReLU(),
            nn.Conv1d(config.conv2, config.conv3, remaining), nn.Tanh(),
        )
        self.to_params = nn.Linear(config.conv3, 2 * latent_dim)

    def fixed_input(self, tokens: torch.Tensor) -> torch.Tensor:
        """``tokens [B, L+1]`` -> the encoder's ``[B, input_length]`` ids (``<s>`` removed,
        right-padded with ``pad_index`` or cut)."""
        words = tokens[:, 1:self.input_length + 1]
        short = self.input_length - words.shape[1]
        if short > 0:
            words = torch.nn.functional.pad(words, (0, short), value=self.pad_index)
        return words

    def features(self, emb: torch.Tensor) -> torch.Tensor:
        """The three layers on channels-last embeddings ``[B, input_length, E]`` -> ``[B,
        conv3]``: the ``convs`` modules' parameters and activations, each convolution as one
        matrix product (:func:`conv1d_channels_last`; equal to ``self.convs`` on
        ``emb.transpose(1, 2)`` up to float rounding, and faster on CPU)."""
        x = emb
        for i in range(0, len(self.convs), 2):
            conv, activation = self.convs[i], self.convs[i + 1]
            x = activation(conv1d_channels_last(x, conv))
        return x.squeeze(1)

    def forward(self, tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        emb = self.embedding(self.fixed_input(tokens))  # [B, input_length, E]
        mu, logvar = self.to_params(self.features(emb)).chunk(2, dim=-1)
        return mu, logvar


def conv1d_channels_last(x: torch.Tensor, conv: nn.Conv1d) -> torch.Tensor:
    """``conv`` (no padding or dilation, one group) on channels-last ``x [B, L, C_in]`` as one
    matrix product over its windows: ``[B * P, C_in * width] @ [C_in * width, C_out]``.

    Returns ``[B, P, C_out]``, ``P = (L - width) // stride + 1``: ``conv(x.transpose(1, 2))
    .transpose(1, 2)`` up to float rounding (another summation order). The im2col copy is
    small (``B P C_in width`` floats) and the product (:func:`cyclevae.ops.linear`) runs near
    GEMM speed, where oneDNN's direct convolution of these few, short, strided windows did not
    (``benchmarks/NOTES.md``).
    """
    width, stride = conv.kernel_size[0], conv.stride[0]
    windows = x.unfold(1, width, stride)  # [B, P, C_in, width], a view
    b, p = windows.shape[0], windows.shape[1]
    weight = conv.weight.reshape(conv.out_channels, -1)  # [C_out, C_in * width], a view
    out = linear(windows.reshape(b * p, -1), weight, conv.bias)
    return out.view(b, p, conv.out_channels)
