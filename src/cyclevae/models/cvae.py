"""Zhao et al. (2017)'s conditional VAE for dialog response generation, and its config.

    context utterances --bi-GRU--> utterance vectors (+ floor one-hot) --GRU--> c
    response --same bi-GRU--> x
    prior p(z|c) = N(MLP(c));  recognition q(z|c, x) = N(Linear([c, x]))
    decoder GRU, initial state Linear([c, z]), teacher-forced over the response
    bag-of-words (optional): softmax(MLP([c, z])) scored against every response token

The KL is between q and the learned prior (two diagonal Gaussians,
:func:`cyclevae.losses.gaussian_kl_between`). A batch is a
:class:`~cyclevae.data.dialog.DialogBatch`, which stores each distinct utterance once: the
utterance encoder runs once over those rows (one packed bi-GRU), and the context slots and the
responses index its outputs. The decoder runs packed too, and the output layer
(:func:`cyclevae.ops.linear_cross_entropy`) sees only the real response tokens, never padding.

The kgCVAE path of Zhao's code (``use_act``: the response's dialog act embedded, fed to the
recognition network, the decoder's initial state and every decoder input, and predicted from
[c, z] with its own cross-entropy in ``aux["act"]``) is optional and off by default, as in the
paper's runs. So are its conversation features: with ``use_topic`` the conversation's topic id
is embedded (``topic_dim``, Zhao's ``topic_embed_size`` 30; the ``<unk>`` topic, id 0, is the
zero vector and not trained), with ``use_caller`` the responding speaker's and the other
caller's 4-d vectors (:func:`cyclevae.data.dialog.parse_caller`) are appended, and c is the
context encoding concatenated with them, ``[ctx, topic, my, other]``: the prior, the
recognition network, the decoder's initial state, the BoW and act heads all see that c.
The swda/ training data has neither feature (swda-zhao/ has both); ``generate --respond``
refuses a model with either, since a typed context carries no topic or callers.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence

from ..data.dialog import CALLER_DIM, DialogBatch
from ..data.vectors import WordVectors
from ..data.vocab import Vocabulary
from ..errors import UserError, check_fields
from ..losses import gaussian_kl_between
from ..ops import linear_cross_entropy
from .base import Gaussian, LatentTextModel, ModelOutput, init_uniform_
from .packed_gru import PackedGRU

__all__ = ["CVAE", "CVAEConfig", "DecoderState", "GRUStepDecoder"]

_LOG_2PI = math.log(2.0 * math.pi)


@dataclass
class CVAEConfig:
    """Sizes of Zhao et al.'s CVAE (defaults: SPEC 4.3, the authors' settings).

    ``prior_hidden``: the prior network's tanh layer (Zhao: max(2 * latent, 100) = 400).
    ``bow``: add the bag-of-words loss (``bow_hidden`` tanh units). ``use_act``: kgCVAE
    dialog-act conditioning (``act_dim``-d act embedding). ``use_topic``: the conversation's
    topic embedded (``topic_dim``) into c; ``use_caller``: the two callers' metadata vectors
    (2 x 4) into c (kgCVAE's conversation features; every training conversation must have
    them). ``word_dropout``: decoder input
    words replaced by ``<unk>`` (Zhao's ``dec_keep_prob``; 0 in the paper). ``glove_init``: a
    GloVe text file whose vectors initialise the word embeddings, as the authors start from
    GloVe Twitter 200d (their ``word2vec_path``); its dimension must be ``emb_dim``; words
    it lacks keep their random init (applied by whoever builds a new model,
    :meth:`CVAE.init_embeddings_`).
    """

    #: word embedding size
    emb_dim: int = 200
    #: utterance encoder (bidirectional GRU) hidden size
    utt_hidden: int = 300
    #: context encoder (GRU) hidden size
    ctx_hidden: int = 600
    #: dimension of z
    latent_dim: int = 200
    #: response decoder (GRU) hidden size
    dec_hidden: int = 400
    prior_hidden: int = 400
    bow: bool = False
    bow_hidden: int = 400
    use_act: bool = False
    act_dim: int = 30
    use_topic: bool = False
    use_caller: bool = False
    topic_dim: int = 30
    word_dropout: float = 0.0
    #: parameters initialised uniform in [-init_range, init_range] (0: PyTorch's default)
    init_range: float = 0.08
    glove_init: str | None = None

    def validate(self, prefix: str = "model") -> None:
        """Raise :class:`UserError` naming the first out-of-range field (``prefix.field``)."""
        sizes = ("emb_dim", "utt_hidden", "ctx_hidden", "latent_dim", "dec_hidden",
                 "prior_hidden", "bow_hidden", "act_dim", "topic_dim")
        check_fields(self, prefix, [
            *[(isinstance(getattr(self, key), int) and getattr(self, key) >= 1, key, ">= 1")
              for key in sizes],
            (isinstance(self.bow, bool), "bow", "true or false"),
            (isinstance(self.use_act, bool), "use_act", "true or false"),
            (isinstance(self.use_topic, bool), "use_topic", "true or false"),
            (isinstance(self.use_caller, bool), "use_caller", "true or false"),
            (0.0 <= self.word_dropout <= 1.0, "word_dropout", "in [0, 1]"),
            (self.init_range >= 0.0, "init_range", ">= 0 (0 = PyTorch default init)"),
            (self.glove_init is None or (isinstance(self.glove_init, str)
                                         and bool(self.glove_init)), "glove_init",
             "null or the path of a GloVe text file"),
        ])


@dataclass
class DecoderState:
    """State of :class:`GRUStepDecoder`: ``hidden [1, N, H]`` and, with dialog acts, the act
    vector ``act [N, A]`` fed with every input word (else None)."""

    hidden: torch.Tensor
    act: torch.Tensor | None = None


class GRUStepDecoder:
    """The CVAE's response decoder one token at a time (the ``StepDecoder`` protocol of the
    decoding loop): ``step(tokens [N], state) -> (logits [N, V] float32, state)`` and
    ``select(state, index [M]) -> state``. Build the initial state with
    :meth:`CVAE.decoder_state`."""

    def __init__(self, model: CVAE) -> None:
        self.model = model

    def step(self, tokens: torch.Tensor, state: DecoderState) -> tuple[torch.Tensor, DecoderState]:
        m = self.model
        x = m.embedding(tokens.to(state.hidden.device)).unsqueeze(1)  # [N, 1, E]
        if state.act is not None:
            x = torch.cat([x, state.act.unsqueeze(1)], dim=-1)
        out, hidden = m.dec_rnn(x, state.hidden)
        logits = F.linear(out[:, 0], m.out.weight, m.out.bias).float()
        return logits, DecoderState(hidden, state.act)

    def select(self, state: DecoderState, index: torch.Tensor) -> DecoderState:
        return DecoderState(state.hidden[:, index],
                            None if state.act is None else state.act[index])


@dataclass
class _Encoded:
    """What one pass computes once per batch: condition c, response vector x, prior."""

    condition: torch.Tensor  # [B, C_dim]: [ctx, topic, my caller, other caller]
    response: torch.Tensor  # [B, 2 * utt_hidden]
    prior_mu: torch.Tensor
    prior_logvar: torch.Tensor


class CVAE(LatentTextModel):
    """Zhao et al.'s CVAE (module docstring) on :class:`~cyclevae.data.dialog.DialogBatch`.

    Args:
        config: :class:`CVAEConfig`; vocab_size: V (from the training vocabulary);
        num_acts: dialog-act labels (needed with ``config.use_act``); num_topics: topic labels
        including ``<unk>`` (needed with ``config.use_topic``, at least 2).

    ``forward`` returns ``rec`` (-log p(response | c, z), summed over the response's words and
    ``</s>``), ``kl`` = KL(q(z|c,x) || p(z|c)), and in ``aux`` the bag-of-words loss
    (``"bow"``, summed over the same tokens, unweighted) and with acts the act loss
    (``"act"``).
    """

    #: the prior is p(z|c), learned: the evaluation reports no MI / marginal KL (eq. 8's
    #: decomposition is for one fixed prior p(z))
    conditional_prior = True
    #: responses to a context: :meth:`respond`
    can_respond = True

    def __init__(self, config: CVAEConfig, vocab_size: int, num_acts: int = 0,
                 num_topics: int = 0) -> None:
        super().__init__()
        if vocab_size < 4:
            raise ValueError(f"vocab_size must be >= 4, got {vocab_size}")
        if config.use_act and num_acts < 1:
            raise UserError("model.use_act needs dialog-act labels in the training data")
        if config.use_topic and num_topics < 2:
            raise UserError("model.cvae.use_topic needs topic labels from the training data "
                            f"(<unk> and at least one topic), got {num_topics}")
        self.config = config
        self.latent_dim = config.latent_dim
        self.vocab_size = vocab_size
        self.num_acts = num_acts if config.use_act else 0
        self.num_topics = num_topics if config.use_topic else 0
        utt_dim = 2 * config.utt_hidden
        cond_dim = self.condition_dim
        act_dim = config.act_dim if config.use_act else 0
        self.embedding = nn.Embedding(vocab_size, config.emb_dim, padding_idx=0)
        # PackedGRU: nn.GRU with a faster packed float32 CPU path (same parameters)
        self.utt_rnn = PackedGRU(config.emb_dim, config.utt_hidden, batch_first=True,
                                 bidirectional=True)
        self.ctx_rnn = PackedGRU(utt_dim + 2, config.ctx_hidden, batch_first=True)
        if config.use_topic:
            self.topic_embedding = nn.Embedding(num_topics, config.topic_dim, padding_idx=0)
        if config.use_act:
            self.act_embedding = nn.Embedding(num_acts, config.act_dim)
            self.act_fc = nn.Linear(config.act_dim, config.act_dim)
            self.act_head = nn.Sequential(
                nn.Linear(cond_dim + config.latent_dim, config.bow_hidden), nn.Tanh(),
                nn.Linear(config.bow_hidden, num_acts))
        self.recognition = nn.Linear(cond_dim + utt_dim + act_dim, 2 * config.latent_dim)
        self.prior = nn.Sequential(nn.Linear(cond_dim, config.prior_hidden), nn.Tanh(),
                                   nn.Linear(config.prior_hidden, 2 * config.latent_dim))
        self.init_state = nn.Linear(cond_dim + config.latent_dim + act_dim, config.dec_hidden)
        self.dec_rnn = PackedGRU(config.emb_dim + act_dim, config.dec_hidden, batch_first=True)
        self.out = nn.Linear(config.dec_hidden, vocab_size)
        if config.bow:
            self.bow_hidden = nn.Linear(cond_dim + config.latent_dim, config.bow_hidden)
            self.bow_out = nn.Linear(config.bow_hidden, vocab_size)
        init_uniform_(self, config.init_range)
        with torch.no_grad():
            self.embedding.weight[0].zero_()  # <pad> (Zhao masks its embedding to 0)
            if config.use_topic:
                self.topic_embedding.weight[0].zero_()  # <unk>: no topic information

    @property
    def condition_dim(self) -> int:
        """Width of c: ``ctx_hidden`` (+ ``topic_dim`` with topics, + 2 x 4 with callers)."""
        c = self.config
        return (c.ctx_hidden + (c.topic_dim if c.use_topic else 0)
                + (2 * CALLER_DIM if c.use_caller else 0))

    # ------------------------------------------------------------------ embeddings
    def init_embeddings_(self, vectors: Mapping[str, Any], vocab: Vocabulary,
                         source: str = "GloVe file") -> int:
        """Copy the vectors of the vocabulary's words found in ``vectors`` (word -> array of
        ``emb_dim`` floats) into the embeddings; returns how many were found. A vector of
        another dimension is a one-line :class:`UserError` naming ``source``."""
        if len(vocab) != self.vocab_size:
            raise ValueError(f"vocabulary of {len(vocab)} tokens for a model of "
                             f"{self.vocab_size}")
        dim = vectors.dim if isinstance(vectors, WordVectors) else None
        if dim is not None and dim != self.config.emb_dim:
            raise UserError(f"{source}: vectors have {dim} dimensions, the model's embeddings "
                            f"{self.config.emb_dim} (model.cvae.emb_dim)")
        found = 0
        with torch.no_grad():
            for i, word in enumerate(vocab.tokens):
                if i < len(Vocabulary.SPECIALS) or word not in vectors:
                    continue
                vec = np.asarray(vectors[word], dtype=np.float32)
                if vec.shape != (self.config.emb_dim,):
                    raise UserError(f"{source}: vectors have {vec.size} dimensions, the model's "
                                    f"embeddings {self.config.emb_dim} (model.cvae.emb_dim)")
                self.embedding.weight[i] = torch.from_numpy(vec)
                found += 1
        return found

    # ------------------------------------------------------------------ encoders
    def encode_utterances(self, batch: DialogBatch) -> torch.Tensor:
        """Every distinct utterance of the batch through the bi-GRU once: ``[U, 2 H_utt]``
        (final forward state, final backward state)."""
        emb = self.embedding(batch.utterances)
        packed = pack_padded_sequence(emb, batch.lengths.cpu(), batch_first=True,
                                      enforce_sorted=False)
        _, h = self.utt_rnn(packed)  # [2, U, H], in the input's row order
        return torch.cat([h[0], h[1]], dim=-1)

    def _encode(self, batch: DialogBatch) -> _Encoded:
        utt = self.encode_utterances(batch)
        ctx = utt[batch.context]  # [B, C, 2H]
        floors = F.one_hot(batch.floors.clamp(0, 1), 2).to(ctx.dtype)
        packed = pack_padded_sequence(torch.cat([ctx, floors], dim=-1),
                                      batch.context_lengths.cpu(), batch_first=True,
                                      enforce_sorted=False)
        _, h = self.ctx_rnn(packed)
        condition = self._with_features(batch, h[0])
        prior_mu, prior_logvar = self.prior(condition).chunk(2, dim=-1)
        return _Encoded(condition, utt[batch.response], prior_mu, prior_logvar)

    def _with_features(self, batch: DialogBatch, context: torch.Tensor) -> torch.Tensor:
        """c = ``[context [B, H_ctx], topic [B, topic_dim], my [B, 4], other [B, 4]]``, the
        features as the config turns them on (without any: ``context`` itself)."""
        if not (self.config.use_topic or self.config.use_caller):
            return context
        parts = [context]
        if self.config.use_topic:
            if batch.topics is None:
                raise UserError("model.cvae.use_topic: the batch carries no topic ids (load "
                                "the conversations with the model's topic labels)")
            parts.append(self.topic_embedding(batch.topics).to(context.dtype))
        if self.config.use_caller:
            if batch.callers is None:
                raise UserError("model.cvae.use_caller: the batch carries no caller metadata "
                                "(load the conversations with use_caller)")
            parts.append(batch.callers.flatten(1).to(context.dtype))
        return torch.cat(parts, dim=-1)

    def _act_vector(self, batch: DialogBatch) -> torch.Tensor:
        return self.act_embedding(batch.acts.clamp(min=0))

    def _posterior(self, batch: DialogBatch, enc: _Encoded) -> Gaussian:
        parts = [enc.condition, enc.response]
        if self.config.use_act:
            parts.append(torch.tanh(self.act_fc(self._act_vector(batch))))
        mu, logvar = self.recognition(torch.cat(parts, dim=-1)).chunk(2, dim=-1)
        return mu, logvar

    def prior_params(self, batch: DialogBatch) -> Gaussian:
        """The learned prior p(z|c): ``(mu, logvar)``, each ``[B, D]``."""
        enc = self._encode(batch)
        return enc.prior_mu, enc.prior_logvar

    def amortized_posterior(self, batch: DialogBatch) -> Gaussian:
        """The recognition network's q(z|c, x): ``(mu, logvar)``, each ``[B, D]``."""
        return self._posterior(batch, self._encode(batch))

    def posterior(self, batch: DialogBatch, *, generator: torch.Generator | None = None
                  ) -> Gaussian:
        """q(z|c, x) (deterministic; ``generator`` is unused)."""
        return self.amortized_posterior(batch)

    def kl_to_prior(self, batch: DialogBatch, mu: torch.Tensor, logvar: torch.Tensor
                    ) -> torch.Tensor:
        """KL(q || p(z|c)) per dimension, ``[B, D]`` nats (float32 at least)."""
        p_mu, p_logvar = self.prior_params(batch)
        dtype = torch.promote_types(mu.dtype, torch.float32)
        return gaussian_kl_between(mu.to(dtype), logvar.to(dtype), p_mu.to(dtype),
                                   p_logvar.to(dtype))

    def log_prior(self, batch: DialogBatch, z: torch.Tensor) -> torch.Tensor:
        """log p(z|c) summed over the last dimension: ``z [..., B, D] -> [..., B]`` (leading
        sample dimensions broadcast, e.g. the ``[K, B, D]`` of the IW estimate)."""
        mu, logvar = self.prior_params(batch)
        return -0.5 * (((z - mu) ** 2) * torch.exp(-logvar) + logvar + _LOG_2PI).sum(-1)

    # ------------------------------------------------------------------ decoder
    def _decoder_input(self, enc: _Encoded, z: torch.Tensor, act: torch.Tensor | None
                       ) -> torch.Tensor:
        parts = [enc.condition, z] + ([act] if act is not None else [])
        return torch.cat(parts, dim=-1)

    def _reconstruction(self, batch: DialogBatch, enc: _Encoded, z: torch.Tensor,
                        act: torch.Tensor | None) -> torch.Tensor:
        tokens = batch.response_tokens()  # [B, Lr]
        lengths = batch.lengths[batch.response] - 1  # predicted tokens per response
        inputs, targets = tokens[:, :-1], tokens[:, 1:]
        if self.training and self.config.word_dropout > 0.0:
            drop = torch.rand(inputs.shape, device=inputs.device) < self.config.word_dropout
            drop[:, 0] = False  # keep <s>
            inputs = inputs.masked_fill(drop, Vocabulary.UNK_INDEX)
        x = self.embedding(inputs)
        if act is not None:
            x = torch.cat([x, act.unsqueeze(1).expand(-1, x.shape[1], -1)], dim=-1)
        h0 = self.init_state(self._decoder_input(enc, z, act))
        # sort once by length so the packed outputs, targets and rows share one order
        order = torch.argsort(lengths, descending=True, stable=True)
        sorted_lengths = lengths[order].cpu()
        packed = pack_padded_sequence(x[order], sorted_lengths, batch_first=True)
        out, _ = self.dec_rnn(packed, h0[order].unsqueeze(0))
        rows = torch.arange(tokens.shape[0], device=tokens.device).unsqueeze(1).expand_as(
            targets)
        meta = pack_padded_sequence(torch.stack([targets[order], rows[order]], dim=-1),
                                    sorted_lengths, batch_first=True).data
        nll = linear_cross_entropy(out.data, self.out.weight, self.out.bias, meta[:, 0])
        return torch.zeros(tokens.shape[0], dtype=nll.dtype, device=nll.device
                           ).index_add_(0, meta[:, 1], nll)

    def _bow_loss(self, batch: DialogBatch, enc: _Encoded, z: torch.Tensor) -> torch.Tensor:
        hidden = torch.tanh(self.bow_hidden(torch.cat([enc.condition, z], dim=-1)))
        log_probs = F.log_softmax(self.bow_out(hidden).float(), dim=-1)  # [B, V]
        targets = batch.response_tokens()[:, 1:]  # words and </s>; <pad> masked below
        picked = log_probs.gather(1, targets)
        return -(picked * (targets != Vocabulary.PAD_INDEX)).sum(dim=1)

    def reconstruction_loss(self, batch: DialogBatch, z: torch.Tensor) -> torch.Tensor:
        """-log p(response | c, z) per example, ``[B]`` nats (``</s>`` included)."""
        act = self._act_vector(batch) if self.config.use_act else None
        return self._reconstruction(batch, self._encode(batch), z, act)

    def forward(self, batch: DialogBatch, *, beta: float = 1.0, sample: bool = True
                ) -> ModelOutput:
        """One training pass: z from q(z|c, x) (its mean if not ``sample``); every piece
        computed from one encoding of the batch."""
        enc = self._encode(batch)
        mu, logvar = self._posterior(batch, enc)
        z = mu + (0.5 * logvar).exp() * torch.randn_like(logvar) if sample else mu
        act = self._act_vector(batch) if self.config.use_act else None
        rec = self._reconstruction(batch, enc, z, act)
        dtype = torch.promote_types(mu.dtype, torch.float32)
        kl_per_dim = gaussian_kl_between(mu.to(dtype), logvar.to(dtype),
                                         enc.prior_mu.to(dtype), enc.prior_logvar.to(dtype))
        aux: dict[str, torch.Tensor] = {}
        if self.config.bow:
            aux["bow"] = self._bow_loss(batch, enc, z)
        if self.config.use_act:
            logits = self.act_head(torch.cat([enc.condition, z], dim=-1)).float()
            known = batch.acts >= 0
            aux["act"] = F.cross_entropy(logits, batch.acts.clamp(min=0),
                                         reduction="none") * known
        return ModelOutput(rec=rec, kl=kl_per_dim.sum(-1), kl_per_dim=kl_per_dim, mu=mu,
                           logvar=logvar, z=z, aux=aux)

    # ------------------------------------------------------------------ generation
    def sample_prior(self, batch: DialogBatch, n: int = 1,
                     generator: torch.Generator | None = None) -> torch.Tensor:
        """``n`` draws of z ~ p(z|c) per example: ``[B n, D]``, rows ``n i .. n i + n - 1``
        for example ``i`` (the order of ``batch.repeat_each(n)``). ``generator``, a CPU
        generator (None: the global one), draws the noise on the CPU, whatever the device."""
        mu, logvar = self.prior_params(batch)
        mu, logvar = mu.repeat_interleave(n, dim=0), logvar.repeat_interleave(n, dim=0)
        eps = torch.randn(mu.shape, generator=generator, dtype=mu.dtype).to(mu.device)
        return mu + (0.5 * logvar).exp() * eps

    def decoder_state(self, batch: DialogBatch, z: torch.Tensor) -> DecoderState:
        """The decoder's initial state for ``z [B', D]`` where ``B'`` is a multiple ``n B``
        of the batch's examples (rows ``n i .. n i + n - 1`` belong to example ``i``, as
        :meth:`sample_prior` returns them). With dialog acts the act is the model's own
        prediction from [c, z] (the expected act embedding, as Zhao's test-time path)."""
        enc = self._encode(batch)
        n = z.shape[0] // batch.num_examples
        if n * batch.num_examples != z.shape[0]:
            raise ValueError(f"z has {z.shape[0]} rows for {batch.num_examples} examples")
        enc = _Encoded(enc.condition.repeat_interleave(n, dim=0), enc.response,
                       enc.prior_mu, enc.prior_logvar)
        act = None
        if self.config.use_act:
            probs = torch.softmax(self.act_head(torch.cat([enc.condition, z], dim=-1)), -1)
            act = probs @ self.act_embedding.weight
        return DecoderState(self.init_state(self._decoder_input(enc, z, act)).unsqueeze(0), act)

    def step_decoder(self) -> GRUStepDecoder:
        """The decoder as a ``StepDecoder`` (one token at a time)."""
        return GRUStepDecoder(self)

    @torch.no_grad()
    def respond(self, batch: DialogBatch, n: int = 5, *, max_length: int = 40,
                generator: torch.Generator | None = None, decoding: Any = None
                ) -> list[list[list[int]]]:
        """``n`` responses per example, each decoded from its own z ~ p(z|c) (greedy unless
        ``decoding``, a :class:`~cyclevae.models.generation.DecodingConfig`, says otherwise):
        ``out[i][k]`` is response ``k`` of example ``i`` as word ids without ``<s>``/``</s>``.
        Leaves the train/eval mode as it was (call ``eval()`` first)."""
        from .generation import DecodingConfig, decode  # the shared decoding loop

        config = decoding if decoding is not None else DecodingConfig(
            strategy="greedy", max_length=max_length)
        z = self.sample_prior(batch, n, generator)
        words = decode(self.step_decoder(), self.decoder_state(batch, z), z.shape[0],
                       bos=Vocabulary.BOS_INDEX, eos=Vocabulary.EOS_INDEX, config=config,
                       generator=generator)
        return [words[i * n:(i + 1) * n] for i in range(batch.num_examples)]

