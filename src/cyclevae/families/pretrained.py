"""The Hugging Face parts of the sentence families: ``model.encoder: hf`` (a pretrained encoder,
``model.hf_encoder``) and ``model.decoder: hf`` (a causal LM, ``model.hf_decoder``), loaded
from local model directories (:mod:`cyclevae.models.hf_files`: no code run from them).

What the family decides here and nowhere else: which tokenizers the data layer uses for a
model (:func:`tokenizers_for`: the encoder's own stream, the decoder's rows in the causal LM's
ids) and the prebuilt parts the model takes (:func:`pretrained_parts`). With an hf decoder the
model's token ids are the tokenizer's: an LSTM or Transformer encoder reads the same rows and
is sized by the LM's embedding table, and the run's word vocabulary (``vocab.txt``) is only a
record of the training corpus's words.
"""

from __future__ import annotations

import json
from typing import Any

from ..config import ModelConfig
from ..data.tokenizers import Tokenizers
from ..errors import UserError
from ..models.decoders import SentenceDecoder
from ..models.encoders import GaussianEncoder
from ..models.hf_decoder import HFCausalDecoder, decoder_tokenizer, load_hf_decoder
from ..models.hf_encoder import HFEncoder, encoder_tokenizer, load_hf_encoder
from ..models.hf_files import SourceDigest, directory_digest, load_tokenizer, model_directory
from ..models.vae import PRETRAINED

__all__ = ["ENCODER_FIELD", "DECODER_FIELD", "pretrained_parts", "tokenizers_for"]

ENCODER_FIELD = "model.hf_encoder.path"
DECODER_FIELD = "model.hf_decoder.path"


def _positions(path: str) -> int | None:
    """The positions of a causal LM (``n_positions`` or ``max_position_embeddings`` of its
    ``config.json``), or None where it names none."""
    config = json.loads((model_directory(path, DECODER_FIELD) / "config.json"
                         ).read_text(encoding="utf-8"))
    for key in ("n_positions", "max_position_embeddings"):
        if isinstance(config.get(key), int):
            return int(config[key])
    return None


def _decoder_tokenizer(tokenizer: Any, path: str) -> Any:
    try:
        return decoder_tokenizer(tokenizer, _positions(path), where=f"{DECODER_FIELD} {path}")
    except ValueError as exc:  # no end-of-sequence token
        raise UserError(f"{DECODER_FIELD} {path}: {exc} (a causal LM's tokenizer needs one "
                        "to end a sentence)") from None


def tokenizers_for(model: ModelConfig) -> Tokenizers:
    """The tokenizers the data layer reads a sentence model's corpus with: the pretrained
    encoder's (``encoder: hf``) and the causal LM's (``decoder: hf``); none for the other
    parts. One-line :class:`UserError` for a directory whose tokenizer does not load."""
    encoder = decoder = None
    if model.encoder == PRETRAINED:
        tokenizer = load_tokenizer(model.hf_encoder.path or "", field=ENCODER_FIELD,
                                   need_padding=True)
        encoder = encoder_tokenizer(tokenizer, model.hf_encoder)
    if model.decoder == PRETRAINED:
        path = model.hf_decoder.path or ""
        decoder = _decoder_tokenizer(load_tokenizer(path, field=DECODER_FIELD,
                                                    need_padding=False), path)
    return Tokenizers(decoder=decoder, encoder=encoder)


def pretrained_parts(model: ModelConfig
                     ) -> tuple[GaussianEncoder | None, SentenceDecoder | None, int | None]:
    """``(encoder, decoder, vocab_size)``: the parts a sentence model takes prebuilt (None
    where ``model`` names no hf part) and, with an hf decoder, the size of its token ids (its
    embedding table), which replaces the corpus vocabulary's for the whole model."""
    encoder: GaussianEncoder | None = None
    decoder: SentenceDecoder | None = None
    size = None
    if model.encoder == PRETRAINED:
        path = model.hf_encoder.path or ""
        pretrained, _ = load_hf_encoder(path, field=ENCODER_FIELD)
        encoder = HFEncoder(pretrained, model.latent_dim, model.hf_encoder,
                            source=SourceDigest(directory_digest(path), field=ENCODER_FIELD,
                                                path=path))
    if model.decoder == PRETRAINED:
        path = model.hf_decoder.path or ""
        pretrained, tokenizer = load_hf_decoder(path, field=DECODER_FIELD)
        _decoder_tokenizer(tokenizer, path)  # the same checks as the data's
        decoder = HFCausalDecoder(pretrained, tokenizer, model.latent_dim, model.hf_decoder,
                                  source=SourceDigest(directory_digest(path),
                                                      field=DECODER_FIELD, path=path))
        size = int(pretrained.get_input_embeddings().num_embeddings)
    return encoder, decoder, size
