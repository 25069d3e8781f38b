"""Tiny Transformer decoders and rows shared by the Transformer tests."""

from __future__ import annotations

import torch
from torch import nn

from cyclevae.data.vocab import Vocabulary
from cyclevae.models.transformer import TransformerConfig, TransformerDecoder

V, D = 23, 5
BOS, EOS, PAD = Vocabulary.BOS_INDEX, Vocabulary.EOS_INDEX, Vocabulary.PAD_INDEX


def tiny(**changes: object) -> TransformerConfig:
    values: dict = {"d_model": 16, "n_heads": 2, "n_layers": 2, "d_ff": 32, "dropout": 0.0,
                    "max_length": 40}
    values.update(changes)
    return TransformerConfig(**values)


def decoder(injection: str = "both", positions: str = "learned", seed: int = 0,
            spread: float = 0.0, **kwargs: object) -> TransformerDecoder:
    """A tiny decoder in eval mode; ``spread > 0`` redraws every weight N(0, spread) so the
    logits are far apart (no near-ties for argmax and beam ranks to flip on rounding)."""
    torch.manual_seed(seed)
    dec = TransformerDecoder(V, D, tiny(z_injection=injection, positions=positions), **kwargs)
    if spread > 0:
        for p in dec.parameters():
            nn.init.normal_(p, std=spread)
    return dec.eval()


def random_rows(n: int, length: int, seed: int = 1) -> torch.Tensor:
    """``[n, length]`` ids of ordinary words (no <pad>, <s>, </s>) after a <s>."""
    g = torch.Generator().manual_seed(seed)
    rows = torch.randint(4, V, (n, length), generator=g)
    rows[:, 0] = BOS
    return rows


class Uncached:
    """A decoder (anything with ``logits(prefix, z)``, e.g. a Transformer or Hugging Face
    decoder) as a StepDecoder without a cache: every step reads the whole prefix again through
    the full causal forward (state: ``(z, prefix)``); the reference cached decoding must equal."""

    def __init__(self, dec: nn.Module) -> None:
        self.dec = dec

    def step(self, tokens, state):
        z, prefix = state
        prefix = torch.cat([prefix, tokens.view(-1, 1)], dim=1)
        return self.dec.logits(prefix, z)[:, -1], (z, prefix)

    def select(self, state, index):
        return state[0][index], state[1][index]
