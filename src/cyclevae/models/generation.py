"""Decoding sentences from z with an auto-regressive decoder (greedy or sampled)."""

from __future__ import annotations

import torch

from ..data.vocab import Vocabulary
from .decoders import LSTMDecoder

__all__ = ["decode_tokens"]


@torch.no_grad()
def decode_tokens(decoder: LSTMDecoder, z: torch.Tensor, *, max_length: int = 50,
                  greedy: bool = True, temperature: float = 1.0,
                  generator: torch.Generator | None = None) -> list[list[int]]:
    """Decode one sentence per row of ``z [B, D]``, from ``<s>`` until ``</s>``.

    Args:
        greedy: the most probable word at each step; otherwise sample from
            softmax(logits / ``temperature``) with ``generator`` (a CPU generator).
        max_length: at most this many words per sentence.
    Returns:
        Word ids without ``<s>``/``</s>``, one list per row. The decoder's train/eval mode is
        left as it was (decode in eval mode to switch dropout off).
    """
    batch = z.shape[0]
    inputs = torch.full((batch, 1), Vocabulary.BOS_INDEX, dtype=torch.long, device=z.device)
    state = None
    done = torch.zeros(batch, dtype=torch.bool, device=z.device)
    words: list[list[int]] = [[] for _ in range(batch)]
    for _ in range(max_length):
        out, state = decoder.hidden_states(inputs, z, state)
        logits = decoder.output(out[:, -1]).float()
        if greedy:
            nxt = logits.argmax(dim=-1)
        else:
            probs = torch.softmax(logits / temperature, dim=-1).cpu()
            nxt = torch.multinomial(probs, 1, generator=generator).squeeze(1).to(z.device)
        for i, token in enumerate(nxt.tolist()):
            if not done[i] and token != Vocabulary.EOS_INDEX:
                words[i].append(token)
        done |= nxt == Vocabulary.EOS_INDEX
        if bool(done.all()):
            break
        inputs = nxt.unsqueeze(1)
    return words
