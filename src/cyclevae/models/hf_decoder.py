"""A pretrained Hugging Face causal language model (GPT-2, ...) as the decoder p(x|z).

z enters as Optimus does (Li et al. 2020, section 3.2; the authors' ``GPT2ForLatentConnector``),
``model.hf_decoder.z_injection`` as for the Transformer decoder
(:mod:`~cyclevae.models.transformer`):

- ``memory``: z projected to one key and one value vector per layer and head group, handed to
  the model as a one-position key/value cache (its ``cache`` argument, a ``DynamicCache``)
  that every position attends to. The shapes of that cache are read from one forward pass of
  the model at construction, so any architecture with a standard key/value cache fits.
- ``embedding``: z projected to the model's embedding width and added to every input
  embedding (the model is called with ``inputs_embeds``).
- ``both`` (Optimus's default).

Positions count the tokens only (the memory position has none), so the pretrained model sees
its usual position ids. The sentences are the model's own subword tokens, rows
``bos t_1 .. t_n eos`` (for GPT-2 both are ``<|endoftext|>``); decoding starts from the
tokenizer's ``bos`` (``eos`` if it has none) and stops at its ``eos``. The decoder speaks
:class:`~cyclevae.models.decoders.SentenceDecoder`, so a
:class:`~cyclevae.models.vae.TextVAE` takes it (``decoder=``) and every decoding strategy of
:func:`~cyclevae.models.generation.decode` runs on its key/value cache.

The decoding state is immutable (tuples of tensors): each call builds a fresh
``DynamicCache`` from it (the model extends that one in place, never the state's tensors).
Needs ``transformers >= 5.25`` (the ``cache`` argument; extra ``hf``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import check_fields
from .hf_files import HFSentenceTokenizer, SourceDigest, load_pretrained
from .transformer import INJECTIONS

__all__ = ["HFCausalDecoder", "HFDecoderConfig", "HFStepState", "decoder_tokenizer",
           "load_hf_decoder", "special_ids"]


@dataclass
class HFDecoderConfig:
    """The pretrained decoder (``model.hf_decoder.*``): path, a local directory in the Hugging
    Face layout; z_injection: ``memory``, ``embedding`` or ``both`` (module docstring)."""

    #: a local Hugging Face directory of a causal LM (config.json, model.safetensors,
    #: tokenizer files; e.g. GPT-2's); the corpus is read in its tokenizer's ids
    path: str | None = None
    #: how z enters: memory (one extra key/value position in every layer), embedding (added
    #: to every input embedding) or both (Optimus's default)
    z_injection: str = "both"

    def validate(self, prefix: str = "model.hf_decoder") -> None:
        """Raise :class:`UserError` naming the first bad field (``prefix.field``)."""
        check_fields(self, prefix, [
            (self.path is not None and self.path != "", "path",
             "a local Hugging Face model directory"),
            (self.z_injection in INJECTIONS, "z_injection", " or ".join(map(repr, INJECTIONS))),
        ])


def load_hf_decoder(path: str | Path, *, field: str = "model.hf_decoder.path"
                    ) -> tuple[nn.Module, Any]:
    """``(model, tokenizer)`` of a causal language model from the local directory ``path``
    (:func:`~cyclevae.models.hf_files.load_pretrained`: no code run, safetensors only; a
    one-line :class:`UserError` naming ``field`` for a directory that does not load)."""
    return load_pretrained(path, causal_lm=True, field=field, need_padding=False)


def special_ids(tokenizer: Any) -> tuple[int, int, int | None]:
    """``(bos, eos, pad)`` of a causal LM's tokenizer: decoding starts at ``bos`` (``eos`` if
    it has none) and stops at ``eos``; ``pad`` is None unless it is a token of its own (a pad
    equal to bos/eos, as GPT-2 users often set it, marks no padding). ``ValueError`` without
    an end-of-sequence token."""
    eos = tokenizer.eos_token_id
    if eos is None:
        raise ValueError("the tokenizer has no end-of-sequence token")
    bos = int(tokenizer.bos_token_id if tokenizer.bos_token_id is not None else eos)
    pad = tokenizer.pad_token_id
    return bos, int(eos), None if pad is None or pad in (bos, eos) else int(pad)


def decoder_tokenizer(tokenizer: Any, positions: int | None = None, *,
                      where: str = "model.hf_decoder.path") -> HFSentenceTokenizer:
    """What the data layer tokenises the decoder's rows with: ``bos t_1 .. t_n eos`` in the
    causal LM's ids (:func:`special_ids`); ``positions``: the model's positions (a longer
    sentence is a one-line error starting with ``where``)."""
    bos, eos, _ = special_ids(tokenizer)
    return HFSentenceTokenizer(tokenizer, rows="bos_eos", max_tokens=positions, bos=bos, eos=eos,
                               where=where)


class HFStepState(NamedTuple):
    """The decoding state of :class:`HFCausalDecoder` for N rows: cache, per layer
    ``(keys, values)`` each ``[N, kv_heads, P, head_dim]`` (the memory position, if any, then
    every token read); z_embedding ``[N, hidden]`` or None; position: tokens read so far."""

    cache: tuple[tuple[torch.Tensor, torch.Tensor], ...]
    z_embedding: torch.Tensor | None
    position: int


class HFCausalDecoder(nn.Module):
    """A Hugging Face causal LM conditioned on z (module docstring).

    Args:
        model: an ``AutoModelForCausalLM`` model (from :func:`load_hf_decoder`); tokenizer:
        its tokenizer (for the bos, eos and pad ids, :func:`special_ids`); latent_dim: D;
        config: ``z_injection``; source: the model directory's
        :class:`~cyclevae.models.hf_files.SourceDigest` (default: none recorded).
    """

    def __init__(self, model: nn.Module, tokenizer: Any, latent_dim: int,
                 config: HFDecoderConfig, *, source: SourceDigest | None = None) -> None:
        super().__init__()
        self.model = model
        self.bos_index, self.eos_index, self.pad_index = special_ids(tokenizer)
        self.source = source if source is not None else SourceDigest()
        with torch.no_grad():  # the cache's geometry, from one token
            probe = model(input_ids=torch.tensor([[self.bos_index]]), use_cache=True).cache
        self.kv_shapes = [(int(layer.keys.shape[1]), int(layer.keys.shape[3]))
                          for layer in probe.layers]
        self.z_to_memory = (nn.Linear(latent_dim, sum(2 * h * d for h, d in self.kv_shapes))
                            if config.z_injection in ("memory", "both") else None)
        width = model.get_input_embeddings().embedding_dim
        self.z_to_embedding = (nn.Linear(latent_dim, width)
                               if config.z_injection in ("embedding", "both") else None)

    def start_state(self, z: torch.Tensor | None) -> HFStepState:
        """The state before the first token for ``z [N, D]`` (None: the plain language
        model)."""
        if z is None:
            return HFStepState((), None, 0)
        cache: tuple[tuple[torch.Tensor, torch.Tensor], ...] = ()
        if self.z_to_memory is not None:
            flat = self.z_to_memory(z)  # [N, sum of 2 h d]
            sizes = [h * d for h, d in self.kv_shapes for _ in range(2)]
            parts = flat.split(sizes, dim=-1)
            cache = tuple(
                (parts[2 * i].view(-1, h, 1, d), parts[2 * i + 1].view(-1, h, 1, d))
                for i, (h, d) in enumerate(self.kv_shapes))
        z_embedding = self.z_to_embedding(z) if self.z_to_embedding is not None else None
        return HFStepState(cache, z_embedding, 0)

    def extend(self, inputs: torch.Tensor, state: HFStepState
               ) -> tuple[torch.Tensor, HFStepState]:
        """Read ``inputs [N, L]`` after ``state``: next-token logits ``[N, L, V]`` and the state
        after them (training, scoring and cached decoding all run through here)."""
        from transformers import DynamicCache

        n, length = inputs.shape
        embeds = self.model.get_input_embeddings()(inputs)
        if state.z_embedding is not None:
            embeds = embeds + state.z_embedding.unsqueeze(1).to(embeds.dtype)
        cache = DynamicCache(ddp_cache_data=state.cache) if state.cache else None
        cached = state.cache[0][0].shape[2] if state.cache else 0
        mask = torch.ones(n, cached + length, dtype=torch.long, device=inputs.device)
        positions = torch.arange(state.position, state.position + length,
                                 device=inputs.device).expand(n, -1)
        out = self.model(inputs_embeds=embeds, cache=cache, attention_mask=mask,
                         position_ids=positions, use_cache=True)
        new_cache = tuple((layer.keys, layer.values) for layer in out.cache.layers)
        return out.logits, HFStepState(new_cache, state.z_embedding, state.position + length)

    def logits(self, inputs: torch.Tensor, z: torch.Tensor | None) -> torch.Tensor:
        """``[B, L]`` token ids and ``z [B, D]`` (None: the plain language model) ->
        next-token logits ``[B, L, V]``."""
        out, _ = self.extend(inputs, self.start_state(z))
        return out

    def step(self, tokens: torch.Tensor, state: HFStepState
             ) -> tuple[torch.Tensor, HFStepState]:
        """One token per row: ``tokens [N]`` -> next-token logits ``[N, V]`` and the state
        with their keys and values appended (the StepDecoder protocol)."""
        device = self.model.get_input_embeddings().weight.device
        out, state = self.extend(tokens.to(device).unsqueeze(1), state)
        return out[:, -1], state

    def select(self, state: HFStepState, index: torch.Tensor) -> HFStepState:
        """The state of rows ``index [M]`` (repeats allowed)."""
        device = self.model.get_input_embeddings().weight.device
        index = index.to(device)
        cache = tuple((k[index], v[index]) for k, v in state.cache)
        z_embedding = None if state.z_embedding is None else state.z_embedding[index]
        return HFStepState(cache, z_embedding, state.position)

    def reconstruction_loss(self, tokens: torch.Tensor, z: torch.Tensor | None) -> torch.Tensor:
        """-log p(x|z) per sentence, ``[B]`` nats (float32): ``tokens [B, L+1]`` rows ``bos
        t_1 .. eos``, every token after the first predicted (targets equal to a pad id distinct
        from bos/eos not counted)."""
        inputs, targets = tokens[:, :-1], tokens[:, 1:]
        logits = self.logits(inputs, z)
        nll = F.cross_entropy(logits.float().transpose(1, 2), targets, reduction="none")
        if self.pad_index is not None:
            nll = nll.masked_fill(targets == self.pad_index, 0.0)
        return nll.sum(dim=1)
