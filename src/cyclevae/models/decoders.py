"""Auto-regressive decoders p(x|z) = prod_t p(x_t | x_<t, z)."""

from __future__ import annotations

from typing import Any, NamedTuple, Protocol

import torch
from torch import nn

from ..data.vocab import Vocabulary
from ..ops import linear_cross_entropy


class SentenceDecoder(Protocol):
    """What the sentence models ask of their decoder (:class:`LSTMDecoder` or
    :class:`~cyclevae.models.transformer.TransformerDecoder`): scoring, logits, and the
    :class:`~cyclevae.models.generation.StepDecoder` protocol from a start state, with the ids
    decoding starts from and stops at."""

    #: the id of the token before the first word (``<s>``)
    bos_index: int
    #: the id that ends a sentence (``</s>``)
    eos_index: int

    def reconstruction_loss(self, tokens: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """``tokens [B, L+1]`` (``<s>`` then the L tokens to predict), ``z [B, D]`` -> -log
        p(x|z) per sentence, ``[B]`` nats."""
        ...

    def logits(self, inputs: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """``inputs [B, L]``, ``z [B, D]`` -> next-token logits ``[B, L, V]``."""
        ...

    def start_state(self, z: torch.Tensor) -> Any:
        """The decoding state before ``<s>`` for ``z [N, D]``."""
        ...

    def step(self, tokens: torch.Tensor, state: Any) -> tuple[torch.Tensor, Any]:
        """``tokens [N]`` -> next-word logits ``[N, V]`` and the new state."""
        ...

    def select(self, state: Any, index: torch.Tensor) -> Any:
        """The state of rows ``index [M]`` (repeats allowed)."""
        ...


class LSTMStepState(NamedTuple):
    """The decoding state of :class:`LSTMDecoder` for N rows: the LSTM state ``h, c``
    (each ``[num_layers, N, hidden]``) and the ``z [N, D]`` concatenated to every input."""

    h: torch.Tensor
    c: torch.Tensor
    z: torch.Tensor


class LSTMDecoder(nn.Module):
    """LSTM language model conditioned on z.

    z sets the initial hidden state of every layer through a linear map (cell state starts at 0)
    and is concatenated to the word embedding at every step. Dropout is applied to the input
    embeddings and to the LSTM outputs; word dropout (Bowman et al. 2015) replaces input words by
    ``unk_index`` with probability ``word_dropout`` during training.

    Args:
        vocab_size: V; emb_dim, hidden, num_layers: sizes; latent_dim: D;
        dropout: embedding/output dropout; word_dropout: input word drop rate;
        unk_index: id used for dropped words.
    """

    bos_index = Vocabulary.BOS_INDEX
    eos_index = Vocabulary.EOS_INDEX

    def __init__(
        self,
        vocab_size: int,
        emb_dim: int,
        hidden: int,
        num_layers: int,
        latent_dim: int,
        dropout: float = 0.0,
        word_dropout: float = 0.0,
        unk_index: int = 0,
    ) -> None:
        super().__init__()
        self.hidden = hidden
        self.num_layers = num_layers
        self.word_dropout = word_dropout
        self.unk_index = unk_index
        self.embedding = nn.Embedding(vocab_size, emb_dim)
        self.dropout = nn.Dropout(dropout)
        self.latent_to_hidden = nn.Linear(latent_dim, hidden * num_layers)
        self.lstm = nn.LSTM(emb_dim + latent_dim, hidden, num_layers=num_layers, batch_first=True)
        self.output = nn.Linear(hidden, vocab_size)

    def initial_state(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``z [B, D]`` -> LSTM state ``(h0, c0)``, each ``[num_layers, B, hidden]``."""
        h0 = self.latent_to_hidden(z).view(z.shape[0], self.num_layers, self.hidden)
        h0 = h0.transpose(0, 1).contiguous()
        return h0, torch.zeros_like(h0)

    def hidden_states(
        self,
        inputs: torch.Tensor,
        z: torch.Tensor,
        state: tuple[torch.Tensor, torch.Tensor] | None = None,
    ) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        """Run the LSTM over ``inputs [B, L]`` given ``z [B, D]``; returns ``([B, L, H], state)``."""
        if self.training and self.word_dropout > 0.0:
            drop = torch.rand(inputs.shape, device=inputs.device) < self.word_dropout
            drop[:, 0] = False  # keep <s>
            inputs = inputs.masked_fill(drop, self.unk_index)
        emb = self.dropout(self.embedding(inputs))
        z_steps = z.unsqueeze(1).expand(-1, inputs.shape[1], -1)
        if state is None:
            state = self.initial_state(z)
        out, state = self.lstm(torch.cat([emb, z_steps], dim=-1), state)
        return self.dropout(out), state

    def start_state(self, z: torch.Tensor) -> LSTMStepState:
        """The decoding state before ``<s>`` for ``z [N, D]`` (for
        :func:`cyclevae.models.generation.decode`)."""
        h0, c0 = self.initial_state(z)
        return LSTMStepState(h0, c0, z)

    def step(self, tokens: torch.Tensor, state: LSTMStepState
             ) -> tuple[torch.Tensor, LSTMStepState]:
        """One word per row (the :class:`~cyclevae.models.generation.StepDecoder` protocol):
        ``tokens [N]`` -> next-word logits ``[N, V]`` and the new state, through the same
        :meth:`hidden_states` as training (so the same dropout in train mode)."""
        tokens = tokens.to(self.output.weight.device).unsqueeze(1)
        out, (h, c) = self.hidden_states(tokens, state.z, (state.h, state.c))
        return self.output(out[:, -1]), LSTMStepState(h, c, state.z)

    def select(self, state: LSTMStepState, index: torch.Tensor) -> LSTMStepState:
        """The state of rows ``index [M]`` (repeats allowed): beams expanded or reordered."""
        index = index.to(state.z.device)
        return LSTMStepState(state.h[:, index], state.c[:, index], state.z[index])

    def logits(self, inputs: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """``[B, L]`` input ids and ``z [B, D]`` -> next-token logits ``[B, L, V]``."""
        out, _ = self.hidden_states(inputs, z)
        return self.output(out)

    def reconstruction_loss(self, tokens: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """-log p(x|z) per sentence, summed over predicted tokens.

        Args:
            tokens: ``[B, L+1]``: ``<s>`` followed by the L tokens to predict.
            z: ``[B, D]``.
        Returns:
            ``[B]`` nats (float32).
        """
        inputs, targets = tokens[:, :-1], tokens[:, 1:]
        out, _ = self.hidden_states(inputs, z)
        nll = linear_cross_entropy(out.reshape(-1, out.shape[-1]), self.output.weight,
                                   self.output.bias, targets.reshape(-1))
        return nll.view(targets.shape).sum(dim=1)
