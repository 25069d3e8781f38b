"""Loading a pretrained model and its tokenizer from a local Hugging Face directory, the one
way every Hugging Face part of cyclevae loads (:mod:`.hf_encoder`, :mod:`.hf_decoder`).

Loading never runs code from the directory: ``trust_remote_code=False`` (a model or tokenizer
class defined in the directory is refused) and ``use_safetensors=True`` (a pickled
``pytorch_model.bin`` is not read); ``local_files_only=True`` (no download). ``transformers``
is imported only when a model is loaded (extra ``hf``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from torch import nn

from ..errors import UserError

__all__ = ["load_pretrained"]


#: what transformers raises for a directory it cannot load (missing or unknown files, a
#: model type it does not know, tensors of the wrong shape, a class that needs remote code)
_LOAD_ERRORS = (OSError, ValueError, KeyError, TypeError, RuntimeError, AttributeError,
                ImportError)


def load_pretrained(path: str | Path, *, causal_lm: bool, field: str,
                    need_padding: bool) -> tuple[nn.Module, Any]:
    """``(model, tokenizer)`` from the local directory ``path``, without running code from it:
    ``AutoModelForCausalLM`` if ``causal_lm`` else ``AutoModel``, and ``AutoTokenizer``.

    Raises a one-line :class:`UserError` naming ``field`` and the path for: a missing
    directory, a missing or malformed ``config.json``, no ``model.safetensors``, weights or a
    tokenizer that do not load, a tokenizer with special tokens only, one with ids beyond the
    model's embedding table (not the model's tokenizer), or, with ``need_padding``, one
    without a padding token. ``field`` names the setting in the messages.
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
        from transformers import AutoModel, AutoModelForCausalLM, AutoTokenizer
    except ImportError:
        raise UserError(f"{where}: needs the transformers package: pip install "
                        "'cyclevae[hf]'") from None
    safe = {"trust_remote_code": False, "local_files_only": True}
    try:
        auto = AutoModelForCausalLM if causal_lm else AutoModel
        model = auto.from_pretrained(str(root), use_safetensors=True, **safe)
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
    if need_padding and tokenizer.pad_token_id is None:
        raise UserError(f"{where}: the tokenizer has no padding token")
    return model, tokenizer


def _one_line(exc: BaseException) -> str:
    """An exception's message on one line, at most 200 characters."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= 200 else text[:197] + "..."
