"""Decoding from any auto-regressive decoder: greedy, sampling (temperature, top-k, top-p) and
beam search with a length penalty.

A model family offers its decoder to the one decoding loop, :func:`decode`, through the
:class:`StepDecoder` protocol (``step`` one word for every row, ``select`` rows of the state);
the loop knows nothing else about the model. The sentence VAE's
:class:`~cyclevae.models.decoders.LSTMDecoder` implements it with state (h, c, z).

Strategies (:class:`DecodingConfig`):

- ``greedy``: the most probable word at every step.
- ``sample``: a word drawn from softmax(logits / ``temperature``), restricted first to the
  ``top_k`` most probable words (0: all) and then to the nucleus, the smallest set of most
  probable words whose probability (renormalised after top-k) reaches ``top_p`` (Holtzman et
  al. 2020; 1: all). With ``top_k = 0`` and ``top_p = 1`` the draws are those of plain sampling
  from the same generator, word for word.
- ``beam``: beam search over ``beam_width`` prefixes per row ranked by their log-probability:
  at each step the ``2 * beam_width`` most probable extensions are ranked; those that end with
  ``</s>`` among the first ``beam_width`` ranks are finished hypotheses, and the first
  ``beam_width`` that do not are the next prefixes (so the beam stays full, as in fairseq). A
  row stops when its most probable extension ends with ``</s>`` (as in OpenNMT: no prefix can
  then reach a higher log-probability, so with ``length_penalty = 0`` the stop loses nothing),
  or after ``max_length`` words, when its prefixes count as finished too. It returns its
  finished hypothesis of highest score ``log p(y) / length ** length_penalty``, where length
  counts the words plus the ``</s>`` (a prefix cut at ``max_length`` has length
  ``max_length``): ``length_penalty = 0`` ranks by log-probability, 1 by log-probability per
  word, larger values favour longer outputs (and negative ones shorter). With
  ``beam_width = 1`` beam search is greedy decoding, whatever the length penalty.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

import torch

from ..data.vocab import Vocabulary
from ..errors import UserError
from .decoders import LSTMDecoder

__all__ = ["STRATEGIES", "DecodingConfig", "StepDecoder", "decode", "decode_tokens",
           "filter_logits", "resolve_decoding"]

#: the decoding strategies of :class:`DecodingConfig`
STRATEGIES = ("greedy", "sample", "beam")

#: the ``cyclevae generate`` option of each field, for error messages
_FLAGS = {"strategy": "--decoding", "temperature": "--temperature", "top_k": "--top-k",
          "top_p": "--top-p", "beam_width": "--beam-width",
          "length_penalty": "--length-penalty", "max_length": "--max-length"}


@dataclass(frozen=True)
class DecodingConfig:
    """How to turn a decoder's next-word distributions into one output per row.

    strategy: ``greedy``, ``sample`` or ``beam`` (module docstring);
    temperature (> 0), top_k (>= 0; 0 = off), top_p (in (0, 1]; 1 = off): ``sample`` only;
    beam_width (>= 1), length_penalty (finite; score = log p / length ** length_penalty):
    ``beam`` only; max_length (>= 1): at most this many words per output (``</s>`` excluded).
    """

    strategy: str = "greedy"
    temperature: float = 1.0
    top_k: int = 0
    top_p: float = 1.0
    beam_width: int = 4
    length_penalty: float = 1.0
    max_length: int = 50

    def validate(self, *, flags: bool = False) -> None:
        """Raise :class:`UserError` for the first out-of-range field, named
        ``decoding.FIELD`` (or by its ``cyclevae generate`` option if ``flags``)."""
        checks = [
            (self.strategy in STRATEGIES, "strategy", f"one of {', '.join(STRATEGIES)}"),
            (self.temperature > 0 and self.temperature != float("inf"), "temperature",
             "> 0 and finite"),
            (self.top_k >= 0, "top_k", ">= 0 (0 = off)"),
            (0.0 < self.top_p <= 1.0, "top_p", "in (0, 1] (1 = off)"),
            (self.beam_width >= 1, "beam_width", ">= 1"),
            (abs(self.length_penalty) < float("inf"), "length_penalty", "finite"),
            (self.max_length >= 1, "max_length", ">= 1"),
        ]
        for ok, key, expected in checks:
            if not ok:  # NaN fails every comparison, so it lands here too
                name = _FLAGS[key] if flags else f"decoding.{key}"
                raise UserError(f"{name} must be {expected}, got {getattr(self, key)!r}")


def resolve_decoding(decoding: DecodingConfig | None = None, *, max_length: int | None = None,
                     greedy: bool | None = None, temperature: float | None = None
                     ) -> DecodingConfig:
    """The :class:`DecodingConfig` of a ``generate(z, ...)`` call: ``decoding`` itself, or,
    from the older keywords, greedy (default) or sampling at ``temperature`` with
    ``max_length`` (default 50) words. Passing both ``decoding`` and an older keyword is a
    ``TypeError`` (which would win is not obvious)."""
    if decoding is not None:
        given = [k for k, v in (("max_length", max_length), ("greedy", greedy),
                                ("temperature", temperature)) if v is not None]
        if given:
            raise TypeError(f"generate: pass either decoding= or {', '.join(given)}=, not both")
        return decoding
    return DecodingConfig(strategy="greedy" if greedy is None or greedy else "sample",
                          temperature=1.0 if temperature is None else temperature,
                          max_length=50 if max_length is None else max_length)


class StepDecoder(Protocol):
    """What an auto-regressive decoder offers to the decoding loop (any model family)."""

    def step(self, tokens: torch.Tensor, state: Any) -> tuple[torch.Tensor, Any]:
        """tokens: LongTensor ``[N]`` (the previous word of each row; on the CPU or on the
        device of the previous step's logits: move them where needed); returns (logits
        ``[N, V]`` float, new state)."""
        ...

    def select(self, state: Any, index: torch.Tensor) -> Any:
        """The state of rows ``index`` (LongTensor ``[M]``; repeats allowed): used to expand
        rows into beams and reorder beams."""
        ...


def filter_logits(logits: torch.Tensor, *, top_k: int = 0, top_p: float = 1.0) -> torch.Tensor:
    """``logits [N, V]`` with the words outside the top-k and then outside the nucleus set to
    -inf.

    top_k: keep the k largest logits of each row (0, or k >= V: all). top_p: then keep the
    smallest set of most probable words whose probability under the softmax of the remaining
    logits reaches ``top_p`` (at least the most probable word; 1: all). Returns a new tensor
    (the input is unchanged), or ``logits`` itself when nothing is filtered.
    """
    vocab = logits.shape[-1]
    if 0 < top_k < vocab:
        kth = logits.topk(top_k, dim=-1).values[..., -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if top_p < 1.0:
        sorted_logits, order = logits.sort(dim=-1, descending=True)
        probs = torch.softmax(sorted_logits.float(), dim=-1)
        mass_before = probs.cumsum(dim=-1) - probs  # mass of the more probable words
        drop_sorted = mass_before >= top_p
        drop_sorted[..., 0] = False
        drop = drop_sorted.scatter(-1, order, drop_sorted)
        logits = logits.masked_fill(drop, float("-inf"))
    return logits


@torch.no_grad()
def decode(decoder: StepDecoder, state: Any, batch_size: int, *, bos: int, eos: int,
           config: DecodingConfig = DecodingConfig(), generator: torch.Generator | None = None
           ) -> list[list[int]]:
    """Decode one sequence per row, starting from ``bos``, until ``eos`` or
    ``config.max_length`` words.

    Args:
        decoder: the model's :class:`StepDecoder`; state: its initial state for
            ``batch_size`` rows. The decoder's train/eval mode is left as it is (decode in eval
            mode to switch dropout off).
        config: the strategy (:class:`DecodingConfig`, validated here).
        generator: a CPU generator for ``sample`` (``None``: the global one); unused otherwise.
    Returns:
        Word ids without ``bos``/``eos``, one list per row.
    """
    config.validate()
    if config.strategy == "beam":
        return _beam_search(decoder, state, batch_size, bos=bos, eos=eos, config=config)
    return _step_by_step(decoder, state, batch_size, bos=bos, eos=eos, config=config,
                         generator=generator)


def _step_by_step(decoder: StepDecoder, state: Any, batch_size: int, *, bos: int, eos: int,
                  config: DecodingConfig, generator: torch.Generator | None
                  ) -> list[list[int]]:
    """Greedy decoding or sampling: one word per row and step, every row stepped until all
    have ended (so a row's draws do not depend on when the others end)."""
    tokens: torch.Tensor | None = None
    done = [False] * batch_size
    words: list[list[int]] = [[] for _ in range(batch_size)]
    for _ in range(config.max_length):
        if tokens is None:
            tokens = torch.full((batch_size,), bos, dtype=torch.long)
        logits, state = decoder.step(tokens, state)
        logits = logits.float()
        if config.strategy == "greedy":
            nxt = logits.argmax(dim=-1)
        else:
            scaled = filter_logits(logits / config.temperature, top_k=config.top_k,
                                   top_p=config.top_p)
            probs = torch.softmax(scaled, dim=-1).cpu()
            nxt = torch.multinomial(probs, 1, generator=generator).squeeze(1)
        for i, token in enumerate(nxt.tolist()):
            if not done[i]:
                if token == eos:
                    done[i] = True
                else:
                    words[i].append(token)
        if all(done):
            break
        tokens = nxt.to(logits.device)
    return words


def _beam_search(decoder: StepDecoder, state: Any, batch_size: int, *, bos: int, eos: int,
                 config: DecodingConfig) -> list[list[int]]:
    """Beam search (module docstring), all rows' beams stepped together as
    ``batch_size * beam_width`` decoder rows (row b's beams at b * W .. b * W + W - 1)."""
    width, alpha = config.beam_width, config.length_penalty
    rows = torch.arange(batch_size).repeat_interleave(width)
    tokens: torch.Tensor | None = None
    scores = torch.full((batch_size, width), float("-inf"))
    scores[:, 0] = 0.0  # the beams of a row start identical: only one is live
    prefixes = torch.zeros(batch_size, width, 0, dtype=torch.long)
    finished: list[list[tuple[float, list[int]]]] = [[] for _ in range(batch_size)]
    done = [False] * batch_size
    first = torch.arange(batch_size).unsqueeze(1) * width
    state = None if state is None else decoder.select(state, rows)
    for step in range(config.max_length):
        if tokens is None:
            tokens = torch.full((batch_size * width,), bos, dtype=torch.long)
        logits, state = decoder.step(tokens, state)
        logp = torch.log_softmax(logits.float(), dim=-1).cpu()
        vocab = logp.shape[-1]
        candidates = (scores.unsqueeze(-1) + logp.view(batch_size, width, vocab))
        k = min(2 * width, width * vocab)
        top_scores, top_index = candidates.view(batch_size, -1).topk(k, dim=-1)
        parent, word = top_index // vocab, top_index % vocab
        ends = word == eos
        for b in range(batch_size):
            if done[b]:
                continue
            for r in range(width):
                if ends[b, r] and top_scores[b, r] > float("-inf"):
                    ids = prefixes[b, parent[b, r]].tolist()
                    score = float(top_scores[b, r]) / (len(ids) + 1) ** alpha
                    finished[b].append((score, ids))
            done[b] = bool(ends[b, 0])
        # the first `width` extensions that do not end (stable: ranks kept in order)
        rank = ends.long() * k + torch.arange(k)
        keep = rank.argsort(dim=-1)[:, :width]
        parent, word = parent.gather(1, keep), word.gather(1, keep)
        scores = top_scores.gather(1, keep)
        prefixes = torch.cat([prefixes.gather(1, parent.unsqueeze(-1).expand(-1, -1, step)),
                              word.unsqueeze(-1)], dim=-1)
        if all(done):
            break
        order = (first + parent).view(-1)
        state = decoder.select(state, order.to(logits.device))
        tokens = word.view(-1).to(logits.device)
    else:  # max_length words: the remaining prefixes are hypotheses too
        for b in range(batch_size):
            if not done[b]:
                for r in range(width):
                    if scores[b, r] > float("-inf"):
                        ids = prefixes[b, r].tolist()
                        finished[b].append((float(scores[b, r]) / len(ids) ** alpha, ids))
    return [max(f, key=lambda item: item[0])[1] for f in finished]


def decode_tokens(decoder: LSTMDecoder, z: torch.Tensor, *, max_length: int = 50,
                  greedy: bool = True, temperature: float = 1.0,
                  generator: torch.Generator | None = None) -> list[list[int]]:
    """Greedy decoding or sampling of one sentence per row of ``z [B, D]`` with the sentence
    decoder, from ``<s>`` until ``</s>`` (the older entry point; :func:`decode` with
    ``decoder.start_state(z)`` offers every strategy)."""
    config = DecodingConfig(strategy="greedy" if greedy else "sample", temperature=temperature,
                            max_length=max_length)
    return decode(decoder, decoder.start_state(z), z.shape[0], bos=Vocabulary.BOS_INDEX,
                  eos=Vocabulary.EOS_INDEX, config=config, generator=generator)
