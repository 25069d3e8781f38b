"""A pretrained encoder q(z|x) from a local Hugging Face model directory (BERT, MiniLM, ...).

As in Optimus (Li et al. 2020, section 3: a BERT encoder reads BERT's subword tokens while the
decoder writes its own), the encoder reads each sentence in its own tokenizer's subword tokens
and the decoder keeps the corpus vocabulary: the corpus ids of a batch are turned back into
words, joined with spaces, and tokenised by the model's tokenizer. The last hidden layer is
pooled (``mean`` over the real subword tokens, as sentence-transformers' MiniLM does, or the
``first`` token, BERT's ``[CLS]``) and one linear map gives ``(mu, logvar)``. The pretrained
weights are fine-tuned with the rest of the VAE, or ``freeze`` keeps them (and their dropout
off: a frozen encoder is a fixed feature map).

Loading never runs code from the directory: ``trust_remote_code=False`` (a model or tokenizer
class defined in the directory is refused) and ``use_safetensors=True`` (a pickled
``pytorch_model.bin`` is not read). ``transformers`` is imported only here, when an encoder is
built (extra ``hf``).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..data.vocab import Vocabulary
from ..errors import UserError, check_fields
from .encoders import GaussianEncoder

__all__ = ["POOLINGS", "HFEncoder", "HFEncoderConfig", "load_hf_encoder"]

#: ``model.hf_encoder.pooling`` values
POOLINGS = ("mean", "first")


@dataclass
class HFEncoderConfig:
    """The pretrained encoder (``model.hf_encoder.*``).

    path: a local directory in the Hugging Face layout (``config.json``, ``model.safetensors``
    and the tokenizer's files, e.g. ``tokenizer.json``); pooling: ``mean`` or ``first``;
    freeze: keep the pretrained weights fixed (only the map to mu and logvar trains);
    max_tokens: subword tokens read per sentence (longer ones are cut).
    """

    path: str | None = None
    pooling: str = "mean"
    freeze: bool = False
    max_tokens: int = 128

    def validate(self, prefix: str = "model.hf_encoder") -> None:
        """Raise :class:`UserError` naming the first bad field (``prefix.field``)."""
        check_fields(self, prefix, [
            (self.path is not None and self.path != "", "path",
             "a local Hugging Face model directory"),
            (self.pooling in POOLINGS, "pooling", " or ".join(map(repr, POOLINGS))),
            (self.max_tokens >= 2, "max_tokens", ">= 2"),
        ])


#: what transformers raises for a directory it cannot load (missing or unknown files, a
#: model type it does not know, tensors of the wrong shape, a class that needs remote code)
_LOAD_ERRORS = (OSError, ValueError, KeyError, TypeError, RuntimeError, AttributeError,
                ImportError)


def load_hf_encoder(path: str | Path, *, field: str = "model.hf_encoder.path"
                    ) -> tuple[nn.Module, Any]:
    """``(model, tokenizer)`` from the local directory ``path``, without running code from it.

    Raises a one-line :class:`UserError` naming ``field`` and the path for: a missing
    directory, a missing or malformed ``config.json``, no ``model.safetensors``, weights or a
    tokenizer that do not load, a tokenizer with special tokens only, one with ids beyond the
    model's embedding table (not the model's tokenizer), or one without a padding token.
    """
    where = f"{field} {path}"
    root = Path(path)
    if not root.is_dir():
        raise UserError(f"{where}: no such directory (expected a Hugging Face model "
                        "directory: config.json, model.safetensors, tokenizer files)")
    try:
        json.loads((root / "config.json").read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UserError(f"{where}: no config.json (not a Hugging Face model directory)"
                        ) from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise UserError(f"{where}: config.json is not valid JSON ({_one_line(exc)})") from None
    if not any(root.glob("model*.safetensors")):
        raise UserError(f"{where}: no model.safetensors (weights are read from safetensors "
                        "only; a pickled pytorch_model.bin could run code and is not loaded)")
    try:
        from transformers import AutoModel, AutoTokenizer
    except ImportError:
        raise UserError(f"{where}: needs the transformers package: pip install "
                        "'cyclevae[hf]'") from None
    safe = {"trust_remote_code": False, "local_files_only": True}
    try:
        model = AutoModel.from_pretrained(str(root), use_safetensors=True, **safe)
    except _LOAD_ERRORS as exc:
        raise UserError(f"{where}: the model does not load ({_one_line(exc)})") from None
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(root), **safe)
    except _LOAD_ERRORS as exc:
        raise UserError(f"{where}: the tokenizer does not load ({_one_line(exc)})") from None
    if len(tokenizer) <= len(set(tokenizer.all_special_ids)):
        raise UserError(f"{where}: the tokenizer has no vocabulary, only special tokens "
                        "(tokenizer.json or its vocabulary file missing?)")
    vocab = model.get_input_embeddings().num_embeddings
    if len(tokenizer) > vocab:
        raise UserError(f"{where}: the tokenizer does not match the model ({len(tokenizer)} "
                        f"tokens, the model embeds {vocab})")
    if tokenizer.pad_token_id is None:
        raise UserError(f"{where}: the tokenizer has no padding token")
    return model, tokenizer


def _one_line(exc: BaseException) -> str:
    """An exception's message on one line, at most 200 characters."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= 200 else text[:197] + "..."


class HFEncoder(GaussianEncoder):
    """A pretrained Hugging Face encoder -> pooled last layer -> linear -> (mu, logvar).

    Args:
        model, tokenizer: from :func:`load_hf_encoder`; words: the corpus vocabulary, word
        of each id (e.g. ``Vocabulary.tokens``); latent_dim: D; config: pooling, freeze,
        max_tokens; skip: corpus ids that are not words (``<pad>``, ``<s>``, ``</s>``);
        unk_index: the corpus ``<unk>`` id, given to the tokenizer as its own unknown token.
    Input ``tokens``: LongTensor ``[B, L]`` of corpus ids (rows ``<s> w_1 .. </s>``).
    """

    def __init__(self, model: nn.Module, tokenizer: Any, words: Sequence[str],
                 latent_dim: int, config: HFEncoderConfig, *,
                 skip: Sequence[int] = (Vocabulary.PAD_INDEX, Vocabulary.BOS_INDEX,
                                        Vocabulary.EOS_INDEX),
                 unk_index: int = Vocabulary.UNK_INDEX) -> None:
        super().__init__()
        self.latent_dim = latent_dim
        self.model = model
        self.tokenizer = tokenizer
        self.pooling = config.pooling
        self.freeze = config.freeze
        self.max_tokens = config.max_tokens
        unk = tokenizer.unk_token if tokenizer.unk_token is not None else words[unk_index]
        skipped = set(skip)
        self.words = ["" if i in skipped else unk if i == unk_index else w
                      for i, w in enumerate(words)]
        hidden = model.get_input_embeddings().embedding_dim
        self.to_params = nn.Linear(hidden, 2 * latent_dim)
        if self.freeze:
            self.model.requires_grad_(False)
            self.model.eval()

    def train(self, mode: bool = True) -> HFEncoder:
        """Train/eval mode as usual; a frozen pretrained model stays in eval mode."""
        super().train(mode)
        if self.freeze:
            self.model.eval()
        return self

    def texts(self, tokens: torch.Tensor) -> list[str]:
        """``tokens [B, L]`` corpus ids -> one space-joined sentence per row."""
        return [" ".join(w for w in map(self.words.__getitem__, row) if w)
                for row in tokens.tolist()]

    def features(self, texts: list[str]) -> torch.Tensor:
        """The pooled last hidden layer of each text, ``[B, hidden]``: the pretrained
        model's sentence embedding with no VAE (the baseline a probe compares with)."""
        device = self.to_params.weight.device
        batch = self.tokenizer(texts, padding=True, truncation=True,
                               max_length=self.max_tokens, return_tensors="pt")
        ids, mask = batch["input_ids"].to(device), batch["attention_mask"].to(device)
        with torch.set_grad_enabled(torch.is_grad_enabled() and not self.freeze):
            hidden = self.model(input_ids=ids, attention_mask=mask).last_hidden_state
        if self.pooling == "first":
            return hidden[:, 0]
        weights = mask.to(hidden.dtype).unsqueeze(-1)  # [B, T, 1]
        return (hidden * weights).sum(dim=1) / weights.sum(dim=1).clamp_min(1.0)

    def forward(self, tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mu, logvar = self.to_params(self.features(self.texts(tokens))).chunk(2, dim=-1)
        return mu, logvar
