"""Transformer encoder q(z|x) and Transformer decoder p(x|z), trained from scratch.

Both are stacks of pre-LayerNorm blocks (Xiong et al. 2020, "On Layer Normalization in the
Transformer Architecture": ``x + Attn(LN(x))``, ``x + FFN(LN(x))``, one final LayerNorm), with
PyTorch's :func:`torch.nn.functional.scaled_dot_product_attention`, dropout on the attention
weights and on every residual branch, GELU feed-forward layers and GPT-2's initialisation
(weights N(0, 0.02), the residual output projections N(0, 0.02 / sqrt(2 n_layers)); Radford
et al. 2019).

- :class:`TransformerEncoder`: bidirectional self-attention over the whole row (``<pad>``
  positions masked out as keys), mean-pooled over the non-pad positions, then one linear map
  to ``(mu, logvar)``.
- :class:`TransformerDecoder`: causal self-attention. z enters as Optimus does (Li et al.
  2020, "Optimus: Organizing Sentences via Pre-trained Modeling of a Latent Space", section
  3.2 and Figure 3): ``memory``, z projected to one extra key/value position in every layer
  that every position attends to; ``embedding``, z projected and added to every input
  embedding; or ``both`` (the default of Optimus's ``run_lm_vae_training.py``:
  ``--latent_as_gpt_memory 1 --latent_as_gpt_emb 1``). Optimus feeds the same per-layer
  vector as the key and the value; here each layer's key and value are projected from z
  separately (a superset of that map).

The decoder speaks the sentence decoder's interface (:class:`~cyclevae.models.decoders.
SentenceDecoder`): ``reconstruction_loss(tokens, z)``, ``logits(inputs, z)``, and for
:func:`~cyclevae.models.generation.decode` ``start_state(z)`` / ``step`` / ``select`` with a
key/value cache, so a :class:`~cyclevae.models.vae.TextVAE` takes it in place of the LSTM
decoder and every decoding strategy works unchanged. Training, the cached step and the full
forward all run through one function (:meth:`TransformerDecoder.extend`): the memory position
is the first entry of the cache, and a training pass is the extension of the start state by
the whole row.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from ..data.vocab import Vocabulary
from ..errors import UserError, check_fields
from ..ops import linear_cross_entropy
from .encoders import GaussianEncoder

__all__ = ["INJECTIONS", "POSITIONS", "TransformerConfig", "TransformerDecoder",
           "TransformerEncoder", "TransformerStepState"]

#: ``model.transformer.z_injection`` values
INJECTIONS = ("memory", "embedding", "both")
#: ``model.transformer.positions`` values
POSITIONS = ("learned", "sinusoidal")

#: standard deviation of GPT-2's weight initialisation
_INIT_STD = 0.02


@dataclass
class TransformerConfig:
    """Sizes of the Transformer encoder and decoder (``model.transformer.*``)."""

    #: width of every position
    d_model: int = 256
    #: attention heads (``d_model`` divisible by it)
    n_heads: int = 4
    #: blocks in the encoder and in the decoder each
    n_layers: int = 2
    #: feed-forward width
    d_ff: int = 1024
    #: dropout on attention weights, residual branches and the embeddings
    dropout: float = 0.1
    #: the most positions a row may have (the encoder reads ``<s> w_1 .. </s>``, the decoder
    #: ``<s> w_1 .. w_n``)
    max_length: int = 512
    #: ``learned`` (GPT-2) or ``sinusoidal`` (Vaswani et al. 2017, section 3.5)
    positions: str = "learned"
    #: how z enters the decoder (Optimus): ``memory`` (one extra key/value position in every
    #: layer), ``embedding`` (added to every input embedding) or ``both``
    z_injection: str = "both"

    def validate(self, prefix: str = "model.transformer") -> None:
        """Raise :class:`UserError` naming the first out-of-range field (``prefix.field``)."""
        sizes = ("d_model", "n_heads", "n_layers", "d_ff", "max_length")
        check_fields(self, prefix, [
            *[(getattr(self, key) >= 1, key, ">= 1") for key in sizes],
            (self.d_model % max(self.n_heads, 1) == 0, "d_model",
             f"a multiple of n_heads ({self.n_heads})"),
            (0.0 <= self.dropout < 1.0, "dropout", "in [0, 1)"),
            (self.positions in POSITIONS, "positions", " or ".join(map(repr, POSITIONS))),
            (self.z_injection in INJECTIONS, "z_injection", " or ".join(map(repr, INJECTIONS))),
        ])


#: the key/value cache of one layer: ``(keys, values)``, each ``[N, n_heads, P, head_dim]``
KeyValue = tuple[torch.Tensor, torch.Tensor]


class SelfAttention(nn.Module):
    """Multi-head self-attention over new positions and, optionally, cached ones.

    The ``L`` new positions attend to the ``P`` cached ones (all of them) and to each other
    (all of them, or, with ``causal``, to themselves and earlier ones only); ``keep [N, 1 or
    L, P + L]`` (True: attend) masks keys further, e.g. padding.
    """

    def __init__(self, d_model: int, n_heads: int, dropout: float) -> None:
        super().__init__()
        self.n_heads = n_heads
        self.head_dim = d_model // n_heads
        self.dropout = dropout
        self.qkv = nn.Linear(d_model, 3 * d_model)
        self.proj = nn.Linear(d_model, d_model)

    def split_heads(self, x: torch.Tensor) -> torch.Tensor:
        """``[N, L, d_model]`` -> ``[N, n_heads, L, head_dim]``."""
        return x.view(x.shape[0], x.shape[1], self.n_heads, self.head_dim).transpose(1, 2)

    def forward(self, x: torch.Tensor, *, causal: bool, past: KeyValue | None = None,
                keep: torch.Tensor | None = None) -> tuple[torch.Tensor, KeyValue]:
        """``x [N, L, d_model]`` -> (``[N, L, d_model]``, the keys and values of the cached
        and new positions, each ``[N, n_heads, P + L, head_dim]``)."""
        n, length = x.shape[0], x.shape[1]
        q, k, v = (self.split_heads(t) for t in self.qkv(x).chunk(3, dim=-1))
        if past is not None:
            k = torch.cat([past[0].to(k.dtype), k], dim=2)
            v = torch.cat([past[1].to(v.dtype), v], dim=2)
        cached = k.shape[2] - length
        mask = keep
        fast_causal = causal and mask is None and cached == 0
        if causal and length > 1 and not fast_causal:
            rule = torch.ones(length, cached + length, dtype=torch.bool, device=x.device)
            rule = rule.tril(diagonal=cached)  # new position i sees cached ones and 0..i
            mask = rule if mask is None else mask & rule
        if mask is not None and mask.dim() == 3:
            mask = mask.unsqueeze(1)  # [N, 1, L or 1, P + L]: the same for every head
        out = F.scaled_dot_product_attention(
            q, k, v, attn_mask=mask, is_causal=fast_causal and length > 1,
            dropout_p=self.dropout if self.training else 0.0)
        out = out.transpose(1, 2).reshape(n, length, -1)
        return self.proj(out), (k, v)


class Block(nn.Module):
    """One pre-LayerNorm block: ``x + Attn(LN(x))``, then ``x + FFN(LN(x))``, dropout on
    each branch."""

    def __init__(self, config: TransformerConfig) -> None:
        super().__init__()
        self.ln_attn = nn.LayerNorm(config.d_model)
        self.attn = SelfAttention(config.d_model, config.n_heads, config.dropout)
        self.ln_ff = nn.LayerNorm(config.d_model)
        self.ff_in = nn.Linear(config.d_model, config.d_ff)
        self.ff_out = nn.Linear(config.d_ff, config.d_model)
        self.drop = nn.Dropout(config.dropout)

    def forward(self, x: torch.Tensor, *, causal: bool, past: KeyValue | None = None,
                keep: torch.Tensor | None = None) -> tuple[torch.Tensor, KeyValue]:
        """``x [N, L, d_model]`` -> (``[N, L, d_model]``, this layer's keys and values)."""
        attended, cache = self.attn(self.ln_attn(x), causal=causal, past=past, keep=keep)
        x = x + self.drop(attended)
        x = x + self.drop(self.ff_out(F.gelu(self.ff_in(self.ln_ff(x)))))
        return x, cache


def sinusoidal_positions(length: int, d_model: int) -> torch.Tensor:
    """Vaswani et al. (2017) section 3.5: ``[length, d_model]``, sine in the even columns and
    cosine in the odd ones, wavelengths from 2 pi to 10000 * 2 pi."""
    position = torch.arange(length, dtype=torch.float32).unsqueeze(1)
    rate = torch.exp(torch.arange(0, d_model, 2, dtype=torch.float32)
                     * (-math.log(10000.0) / d_model))
    table = torch.zeros(length, d_model)
    table[:, 0::2] = torch.sin(position * rate)
    table[:, 1::2] = torch.cos(position * rate[: d_model // 2])
    return table


class TokenEmbedding(nn.Module):
    """Word embedding plus position embedding (learned or sinusoidal), for ``max_length``
    positions."""

    def __init__(self, vocab_size: int, config: TransformerConfig) -> None:
        super().__init__()
        self.max_length = config.max_length
        self.word = nn.Embedding(vocab_size, config.d_model)
        self.learned = config.positions == "learned"
        if self.learned:
            self.position = nn.Parameter(torch.zeros(config.max_length, config.d_model))
        else:
            self.register_buffer("position",
                                 sinusoidal_positions(config.max_length, config.d_model),
                                 persistent=False)

    def forward(self, tokens: torch.Tensor, start: int = 0) -> torch.Tensor:
        """``tokens [N, L]`` at positions ``start .. start + L - 1`` -> ``[N, L, d_model]``.
        A row longer than ``max_length`` positions is a :class:`UserError`."""
        end = start + tokens.shape[1]
        if end > self.max_length:
            raise UserError(f"a row of {end} positions is longer than model.transformer."
                            f"max_length ({self.max_length}): raise it, or lower "
                            "data.max_length / the decoding max_length")
        return self.word(tokens) + self.position[start:end]


def _init_gpt2_(module: nn.Module, n_layers: int) -> None:
    """GPT-2's initialisation (Radford et al. 2019, section 2.3; the authors' ``model.py``):
    linear and embedding weights N(0, 0.02), biases 0, LayerNorm (1, 0), learned positions
    N(0, 0.01); the output projections of the residual branches N(0, 0.02 / sqrt(2 n_layers))."""
    residual_std = _INIT_STD / math.sqrt(2 * n_layers)
    for name, sub in module.named_modules():
        if isinstance(sub, nn.Linear):
            std = residual_std if name.endswith(("attn.proj", "ff_out")) else _INIT_STD
            nn.init.normal_(sub.weight, std=std)
            if sub.bias is not None:
                nn.init.zeros_(sub.bias)
        elif isinstance(sub, nn.Embedding):
            nn.init.normal_(sub.weight, std=_INIT_STD)
        elif isinstance(sub, nn.LayerNorm):
            nn.init.ones_(sub.weight)
            nn.init.zeros_(sub.bias)
        elif isinstance(sub, TokenEmbedding) and sub.learned:
            nn.init.normal_(sub.position, std=0.01)


class TransformerEncoder(GaussianEncoder):
    """Embedding -> pre-LN bidirectional blocks -> LayerNorm -> mean over the non-pad
    positions -> linear -> (mu, logvar).

    Args:
        vocab_size: V; latent_dim: D; config: sizes (:class:`TransformerConfig`);
        pad_index: the id of ``<pad>`` (masked out as a key and in the mean).
    Input ``tokens``: LongTensor ``[B, L]``, e.g. rows ``<s> w_1 .. w_n </s>``, right-padded
    with ``pad_index`` or not padded at all; every row needs one non-pad position.
    """

    def __init__(self, vocab_size: int, latent_dim: int, config: TransformerConfig,
                 pad_index: int = 0) -> None:
        super().__init__()
        self.latent_dim = latent_dim
        self.pad_index = pad_index
        self.embed = TokenEmbedding(vocab_size, config)
        self.drop = nn.Dropout(config.dropout)
        self.blocks = nn.ModuleList(Block(config) for _ in range(config.n_layers))
        self.ln_final = nn.LayerNorm(config.d_model)
        self.to_params = nn.Linear(config.d_model, 2 * latent_dim)
        _init_gpt2_(self, config.n_layers)

    def forward(self, tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        present = tokens != self.pad_index  # [B, L]
        # no mask at all for unpadded rows (every batch of the sentence models)
        keep = None if bool(present.all()) else present.unsqueeze(1)  # [B, 1, L]
        x = self.drop(self.embed(tokens))
        for block in self.blocks:
            x, _ = block(x, causal=False, keep=keep)
        x = self.ln_final(x)
        if keep is None:
            pooled = x.mean(dim=1)
        else:
            weights = present.to(x.dtype).unsqueeze(-1)  # [B, L, 1]
            pooled = (x * weights).sum(dim=1) / weights.sum(dim=1).clamp_min(1.0)
        mu, logvar = self.to_params(pooled).chunk(2, dim=-1)
        return mu, logvar


class TransformerStepState(NamedTuple):
    """The decoding state of :class:`TransformerDecoder` for N rows.

    cache: per layer ``(keys, values)``, each ``[N, n_heads, P, head_dim]``: the memory
    position (if z enters by memory) and every position read so far; z_embedding:
    ``[N, d_model]`` added to every input embedding (z by embedding), or None; position: how
    many tokens have been read (the position of the next one).
    """

    cache: tuple[tuple[torch.Tensor, torch.Tensor], ...]
    z_embedding: torch.Tensor | None
    position: int


class TransformerDecoder(nn.Module):
    """Causal pre-LN Transformer language model conditioned on z (module docstring).

    Args:
        vocab_size: V; latent_dim: D; config: sizes and ``z_injection``;
        word_dropout: input word drop rate (Bowman et al. 2015), words replaced by
        ``unk_index`` in training (``<s>`` kept); pad_index: targets equal to it are not
        scored (right-padded rows; the sentence models' batches have none);
        tie_embeddings: the output layer shares its weight with the word embedding.
    """

    bos_index = Vocabulary.BOS_INDEX
    eos_index = Vocabulary.EOS_INDEX

    def __init__(self, vocab_size: int, latent_dim: int, config: TransformerConfig, *,
                 word_dropout: float = 0.0, unk_index: int = 3, pad_index: int = 0,
                 tie_embeddings: bool = False) -> None:
        super().__init__()
        self.config = config
        self.word_dropout = word_dropout
        self.unk_index = unk_index
        self.pad_index = pad_index
        self.n_heads = config.n_heads
        self.head_dim = config.d_model // config.n_heads
        self.memory = config.z_injection in ("memory", "both")
        self.additive = config.z_injection in ("embedding", "both")
        self.embed = TokenEmbedding(vocab_size, config)
        self.drop = nn.Dropout(config.dropout)
        # z -> per layer one key and one value vector (memory), z -> d_model (embedding)
        self.z_to_memory = (nn.Linear(latent_dim, 2 * config.n_layers * config.d_model)
                            if self.memory else None)
        self.z_to_embedding = nn.Linear(latent_dim, config.d_model) if self.additive else None
        self.blocks = nn.ModuleList(Block(config) for _ in range(config.n_layers))
        self.ln_final = nn.LayerNorm(config.d_model)
        self.output = nn.Linear(config.d_model, vocab_size)
        _init_gpt2_(self, config.n_layers)
        if tie_embeddings:
            self.output.weight = self.embed.word.weight  # one tensor, [V, d_model]

    def start_state(self, z: torch.Tensor | None) -> TransformerStepState:
        """The state before ``<s>`` for ``z [N, D]``: the memory keys and values (one position
        per layer) and the embedding offset, as ``z_injection`` says. ``z = None``: no
        conditioning at all (an empty cache, no offset), the decoder as a plain language
        model, for any number of rows."""
        if z is None:
            return TransformerStepState(cache=(), z_embedding=None, position=0)
        cache: tuple[KeyValue, ...] = ()
        if self.z_to_memory is not None:
            n = z.shape[0]
            memory = self.z_to_memory(z).view(n, len(self.blocks), 2, self.n_heads, 1,
                                              self.head_dim)
            cache = tuple((memory[:, i, 0], memory[:, i, 1]) for i in range(len(self.blocks)))
        z_embedding = self.z_to_embedding(z) if self.z_to_embedding is not None else None
        return TransformerStepState(cache=cache, z_embedding=z_embedding, position=0)

    def extend(self, inputs: torch.Tensor, state: TransformerStepState
               ) -> tuple[torch.Tensor, TransformerStepState]:
        """Read ``inputs [N, L]`` after ``state``: the final-LayerNorm outputs ``[N, L,
        d_model]`` (before the output layer) and the state after them. Training, scoring and
        cached decoding all run through here (one code path)."""
        if self.training and self.word_dropout > 0.0:
            drop = torch.rand(inputs.shape, device=inputs.device) < self.word_dropout
            if state.position == 0:
                drop[:, 0] = False  # keep <s>
            inputs = inputs.masked_fill(drop, self.unk_index)
        x = self.embed(inputs, start=state.position)
        if state.z_embedding is not None:
            x = x + state.z_embedding.unsqueeze(1)
        x = self.drop(x)
        cache = []
        for i, block in enumerate(self.blocks):
            past = state.cache[i] if state.cache else None
            x, layer_cache = block(x, causal=True, past=past)
            cache.append(layer_cache)
        x = self.ln_final(x)
        return x, TransformerStepState(tuple(cache), state.z_embedding,
                                       state.position + inputs.shape[1])

    def hidden_states(self, inputs: torch.Tensor, z: torch.Tensor | None) -> torch.Tensor:
        """``inputs [B, L]`` read from the start given ``z [B, D]`` (None: no z) -> ``[B, L,
        d_model]``."""
        out, _ = self.extend(inputs, self.start_state(z))
        return out

    def logits(self, inputs: torch.Tensor, z: torch.Tensor | None) -> torch.Tensor:
        """``[B, L]`` input ids and ``z [B, D]`` (None: the decoder as a plain language model,
        no memory position and no embedding offset) -> next-token logits ``[B, L, V]``."""
        return self.output(self.hidden_states(inputs, z))

    def step(self, tokens: torch.Tensor, state: TransformerStepState
             ) -> tuple[torch.Tensor, TransformerStepState]:
        """One word per row (the :class:`~cyclevae.models.generation.StepDecoder` protocol):
        ``tokens [N]`` -> next-word logits ``[N, V]`` and the state with their keys and values
        appended to the cache."""
        tokens = tokens.to(self.output.weight.device).unsqueeze(1)
        out, state = self.extend(tokens, state)
        return self.output(out[:, -1]), state

    def select(self, state: TransformerStepState, index: torch.Tensor) -> TransformerStepState:
        """The state of rows ``index [M]`` (repeats allowed): beams expanded or reordered."""
        if state.cache:
            index = index.to(state.cache[0][0].device)
        elif state.z_embedding is not None:
            index = index.to(state.z_embedding.device)
        cache = tuple((k[index], v[index]) for k, v in state.cache)
        z_embedding = None if state.z_embedding is None else state.z_embedding[index]
        return TransformerStepState(cache, z_embedding, state.position)

    def reconstruction_loss(self, tokens: torch.Tensor, z: torch.Tensor | None) -> torch.Tensor:
        """-log p(x|z) per sentence, summed over predicted tokens (targets equal to
        ``pad_index`` not counted).

        Args:
            tokens: ``[B, L+1]``: ``<s>`` followed by the L tokens to predict.
            z: ``[B, D]`` (None: the plain language model).
        Returns:
            ``[B]`` nats (float32).
        """
        inputs, targets = tokens[:, :-1], tokens[:, 1:]
        out = self.hidden_states(inputs, z)
        nll = linear_cross_entropy(out.reshape(-1, out.shape[-1]), self.output.weight,
                                   self.output.bias, targets.reshape(-1)).view(targets.shape)
        return nll.masked_fill(targets == self.pad_index, 0.0).sum(dim=1)
