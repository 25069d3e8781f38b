"""Codes of sentences: the posterior mean of a trained model for every sentence of a file, in
file order (``cyclevae embed``), and the labels of ``LABEL<TAB>SENTENCE`` files beside them.

The code is the mean of the q(z|x) the model reports (the encoder's for a VAE or an
autoencoder, the refined one for SA-VAE, seeded as the evaluation seeds it). Sentences are
encoded in batches of equal length (no padding, so a sentence's code does not depend on its
neighbours for the amortized models) and put back in file order.

:func:`embed_pretrained` gives the baseline a probe compares a VAE's codes with: a pretrained
encoder's own sentence embedding (pooled last layer, for all-MiniLM-L6-v2 mean-pooled and
L2-normalised as sentence-transformers' ``encode``), with no VAE.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .atomic import atomic_open
from .data.batching import SubwordRows, TextBatch
from .data.corpus import read_labelled, read_sentences
from .data.splits import is_labelled
from .data.tokenizers import Tokenizers
from .data.vocab import Vocabulary
from .errors import UserError
from .evaluation import posterior_fn, precision_context
from .models.base import LatentTextModel

__all__ = ["SentenceCodes", "embed_file", "embed_pretrained", "pretrained_codes",
           "read_sentence_file", "save_codes", "sentence_codes"]


@dataclass
class SentenceCodes:
    """The codes of one file: ``mu [N, D]`` float32 in file order (blank lines skipped),
    ``labels`` (N strings, or None for an unlabelled file), how many sentences a
    fixed-size encoder read only in part (``cut``) and whether the model's q(z|x) is a
    distribution (``stochastic``; False for an autoencoder, whose code is a point)."""

    mu: np.ndarray
    labels: list[str] | None
    cut: int = 0
    stochastic: bool = True


def read_sentence_file(path: str | Path, data_format: str = "auto"
                       ) -> tuple[list[list[str]], list[str] | None]:
    """Sentences and labels (None unless the file is ``LABEL<TAB>SENTENCE``: ``.tsv`` with
    ``data_format="auto"``, or ``"labelled"``) of a file, every non-blank line kept."""
    path = Path(path)
    if is_labelled(path, data_format):
        labels, sentences, _ = read_labelled(path)
        return sentences, labels
    sentences, _ = read_sentences(path)
    return sentences, None


@torch.no_grad()
def sentence_codes(model: LatentTextModel, vocab: Vocabulary, sentences: list[list[str]], *,
                   seed: int = 0, batch_size: int = 256, precision: str = "fp32",
                   tokenizers: Tokenizers = Tokenizers()) -> np.ndarray:
    """Posterior means ``[N, D]`` (float32) of tokenised ``sentences``, in their order.

    Args:
        model: any :class:`~cyclevae.models.base.LatentTextModel` (eval mode is set and
            restored).
        sentences: token lists; unknown words become ``<unk>``.
        seed: seeds a refined posterior's noise (SA-VAE), as the evaluation does.
        batch_size: sentences per encoder call.
        tokenizers: the model family's (:meth:`~cyclevae.families.Family.tokenizers`): a
            pretrained encoder's own subword rows (padded and masked), a causal LM's rows.
    """
    if not sentences:
        raise UserError("no sentences to encode")
    encoded = tokenizers.rows(sentences, vocab)
    encoder = tokenizers.encoder  # an encoder with a tokenizer of its own reads its rows
    encoder_rows = None if encoder is None else encoder(sentences)
    posterior = posterior_fn(model, seed)
    order = sorted(range(len(encoded)), key=lambda i: (len(encoded[i]), i))
    device = next(model.parameters()).device
    out = np.empty((len(encoded), model.latent_dim), dtype=np.float32)
    was_training = model.training
    model.eval()
    try:
        with precision_context(precision, device):
            start = 0
            while start < len(order):
                length = len(encoded[order[start]])
                stop = start
                while (stop < len(order) and stop - start < batch_size
                       and len(encoded[order[stop]]) == length):
                    stop += 1
                rows = order[start:stop]
                tokens = torch.tensor([encoded[i] for i in rows], dtype=torch.long,
                                      device=device)
                extra = (None if encoder is None or encoder_rows is None else SubwordRows.pad(
                    [encoder_rows[i] for i in rows], encoder.pad_index).to(device))
                mu, _ = posterior(TextBatch(tokens, extra))
                out[rows] = mu.float().cpu().numpy()
                start = stop
    finally:
        model.train(was_training)
    return out


def save_codes(codes: SentenceCodes, path: str | Path) -> None:
    """Write ``codes`` atomically: ``.npy`` holds ``mu`` alone; ``.npz`` holds ``mu`` and, for a
    labelled file, ``labels`` (strings)."""
    path = Path(path)
    if path.suffix not in (".npy", ".npz"):
        raise UserError(f"--out {path}: expected a .npy or .npz file name")
    with atomic_open(path, "wb", what="codes") as handle:
        if path.suffix == ".npy":
            np.save(handle, codes.mu)
        elif codes.labels is None:
            np.savez(handle, mu=codes.mu)
        else:
            np.savez(handle, mu=codes.mu, labels=np.asarray(codes.labels, dtype=str))


def embed_file(checkpoint: str | Path, data: str, *, data_dir: str | None = None,
               batch_size: int = 256) -> SentenceCodes:
    """The codes of every sentence of ``data`` (a file, or a known data set ``NAME:SPLIT``)
    under the model of ``checkpoint``, in file order, with the file's labels if it has them
    (read as the run reads its data: ``data.format``). Over-long sentences are read in part by a
    fixed-size encoder (counted in ``cut``), never dropped, so rows match the file's lines."""
    from .data.sources import data_dir as default_data_dir
    from .data.sources import resolve_data_path
    from .checkpoint import load_model

    model, vocab, config, _ = load_model(checkpoint)
    if model.conditional_prior:  # q(z | c, x) needs a context: there is no sentence code
        raise UserError(f"{checkpoint}: a dialog model (model.kind {config.model.kind}) encodes "
                        "a response given its context, not a sentence alone, so it has no "
                        "sentence codes; "
                        "embed and probe take a sentence model (vae, ae, savae, svi)")
    path = resolve_data_path(data, default_data_dir(data_dir or config.data.data_dir))
    sentences, labels = read_sentence_file(path, config.data.format)
    cut = 0
    if config.model.encoder == "cnn":
        cut = sum(len(words) + 1 > config.model.cnn.input_length for words in sentences)
    from .families import family_of

    mu = sentence_codes(model, vocab, sentences, seed=config.train.seed, batch_size=batch_size,
                        precision=config.train.precision,
                        tokenizers=family_of(config).tokenizers(config))
    return SentenceCodes(mu=mu, labels=labels, cut=cut, stochastic=model.stochastic)


@torch.no_grad()
def pretrained_codes(path: str | Path, sentences: list[list[str]], *, pooling: str = "mean",
                     normalize: bool = False, max_tokens: int = 128, batch_size: int = 256,
                     field: str = "--pretrained", loaded: tuple[Any, Any] | None = None
                     ) -> np.ndarray:
    """The sentence embeddings ``[N, H]`` (float32, in the sentences' order) of a pretrained
    encoder with no VAE: the model directory's (or installed model's) last hidden layer,
    pooled (:func:`~cyclevae.models.hf_encoder.pool_hidden`), L2-normalised with
    ``normalize``, each sentence read as the VAE's hf encoder reads it (its own subword rows,
    cut to ``max_tokens``). A directory that does not load is a one-line :class:`UserError`
    naming ``field``. ``loaded``: the ``(model, tokenizer)`` of
    :func:`~cyclevae.models.hf_encoder.load_hf_encoder` for ``path``, to encode several files
    with one load."""
    from .models.hf_encoder import HFEncoderConfig, encoder_tokenizer, load_hf_encoder, pool_hidden

    if not sentences:
        raise UserError("no sentences to encode")
    model, tokenizer = loaded if loaded is not None else load_hf_encoder(path, field=field)
    model.eval()
    tokenize = encoder_tokenizer(tokenizer, HFEncoderConfig(path=str(path), pooling=pooling,
                                                            max_tokens=max_tokens))
    rows = tokenize(sentences)
    order = sorted(range(len(rows)), key=lambda i: (len(rows[i]), i))
    out = np.empty((len(rows), model.get_input_embeddings().embedding_dim), dtype=np.float32)
    for start in range(0, len(order), batch_size):
        pick = order[start:start + batch_size]
        batch = SubwordRows.pad([rows[i] for i in pick], tokenize.pad_index)
        hidden = model(input_ids=batch.ids, attention_mask=batch.mask).last_hidden_state
        vectors = pool_hidden(hidden, batch.mask, pooling)
        if normalize:
            vectors = torch.nn.functional.normalize(vectors, dim=-1)
        out[pick] = vectors.float().numpy()
    return out


def embed_pretrained(path: str | Path, data: str, *, data_dir: str | None = None,
                     pooling: str = "mean", normalize: bool = False, max_tokens: int = 128,
                     batch_size: int = 256, loaded: tuple[Any, Any] | None = None
                     ) -> SentenceCodes:
    """:func:`pretrained_codes` of every sentence of ``data`` (a file, or a known data set
    ``NAME:SPLIT``; ``.tsv`` is ``LABEL<TAB>SENTENCE``) in file order, with its labels; the
    codes are points (``stochastic`` False); ``loaded`` as :func:`pretrained_codes`."""
    from .data.sources import data_dir as default_data_dir
    from .data.sources import resolve_data_path

    sentences, labels = read_sentence_file(resolve_data_path(data, default_data_dir(data_dir)))
    mu = pretrained_codes(path, sentences, pooling=pooling, normalize=normalize,
                          max_tokens=max_tokens, batch_size=batch_size, loaded=loaded)
    return SentenceCodes(mu=mu, labels=labels, stochastic=False)
