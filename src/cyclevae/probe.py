"""Linear probes on sentence codes: how much a frozen encoder's posterior means say about a
label when only a fraction of the training labels is available (the paper's Figure 6).

For each labelled fraction f and each draw, a stratified random subset of ``round(f * N)``
training sentences (every class at least once) trains scikit-learn's multinomial
``LogisticRegression`` on standardised codes; its inverse regularisation ``C`` is chosen on the
valid set (highest accuracy, the stronger regularisation on ties) and the test accuracy of that
choice is reported. Without a valid set ``C = 1``. The encoder is never updated (the authors'
"fine-tuning" trains the classifier alone).

``classifier="authors"`` trains the authors' classifier instead on the same draws
(:mod:`cyclevae.probe_authors`: one linear layer on the raw codes, Adam at lr 1e-4 in batches of
32 for up to 3,000 epochs on a VAE's codes and 1,000 on an AE's, test accuracy at the epoch of
best valid accuracy). Every result names the classifier that produced it.

scikit-learn is an optional dependency of ours (``pip install 'cyclevae[probe]'``).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .errors import UserError
from .probe_authors import (
    AUTHORS_EPOCHS_AE,
    AUTHORS_EPOCHS_VAE,
    AuthorsSettings,
    fit_authors_classifier,
)

if TYPE_CHECKING:
    from .embedding import SentenceCodes

__all__ = ["CLASSIFIERS", "DEFAULT_C_GRID", "DEFAULT_FRACTIONS", "LabelledCodes",
           "label_separation", "parse_fractions", "probe_checkpoint", "probe_fractions",
           "probe_pretrained", "stratified_subset"]

#: labelled fractions probed by default (0.1%, 1%, 10%, all)
DEFAULT_FRACTIONS = (0.001, 0.01, 0.1, 1.0)
#: values of LogisticRegression's C tried on the valid set
DEFAULT_C_GRID = (0.01, 0.1, 1.0, 10.0, 100.0)
#: the solver's iteration limit per fit (lbfgs); fits that reach it are listed in the result
MAX_ITER = 2000
#: the probe's classifiers, by ``--classifier`` name, as results name them
CLASSIFIERS = {
    "ours": "logistic regression on standardised codes (scikit-learn, L2, C chosen on valid)",
    "authors": "the authors' linear layer on the raw codes (Adam lr 1e-4, batches of 32, no "
               "regularisation, test accuracy at the epoch of best valid accuracy)",
}


@dataclass
class LabelledCodes:
    """Codes ``x [N, D]`` and their labels (N strings) from one file (``name`` for messages)."""

    x: np.ndarray
    labels: list[str]
    name: str = "data"


def parse_fractions(text: str) -> list[float]:
    """``"0.001,0.01,0.1,1"`` -> floats, each in (0, 1] (UserError naming the bad one)."""
    fractions = []
    for item in text.split(","):
        try:
            value = float(item)
        except ValueError:
            raise UserError(f"--fractions: expected numbers in (0, 1] separated by commas, "
                            f"got {item!r}") from None
        if not 0.0 < value <= 1.0 or math.isnan(value):
            raise UserError(f"--fractions: each fraction must be in (0, 1], got {value:g}")
        fractions.append(value)
    return fractions


def stratified_subset(y: np.ndarray, size: int, rng: np.random.Generator) -> np.ndarray:
    """Indices of ``size`` rows of ``y`` (class ids ``[N]``) drawn without replacement, every
    class represented in proportion to its frequency (largest remainder) and at least once.

    Raises ValueError if ``size`` is smaller than the number of classes or larger than N.
    """
    classes, counts = np.unique(y, return_counts=True)
    if not len(classes) <= size <= len(y):
        raise ValueError(f"size must be in [{len(classes)}, {len(y)}], got {size}")
    if size == len(y):
        return np.arange(len(y))
    share = counts * (size / len(y))
    take = np.maximum(np.floor(share).astype(int), 1)
    while take.sum() > size:  # the minimum of one per class overshot: trim the most over-served
        over = np.where(take > 1, take - share, -np.inf)
        take[int(np.argmax(over))] -= 1
    order = np.argsort(-(share - np.floor(share)), kind="stable")  # largest remainder first
    while take.sum() < size:
        for c in order:
            if take.sum() < size and take[c] < counts[c]:
                take[c] += 1
    picks = [rng.choice(np.flatnonzero(y == c), size=int(k), replace=False)
             for c, k in zip(classes, take)]
    return np.sort(np.concatenate(picks))


def _encode_labels(data: LabelledCodes, classes: list[str], role: str) -> np.ndarray:
    index = {label: i for i, label in enumerate(classes)}
    unknown = sorted(set(data.labels) - set(index))
    if unknown:
        raise UserError(f"{data.name}: label {unknown[0]!r} does not occur in the training file "
                        f"(its labels: {', '.join(classes[:10])}) ({role} set)")
    return np.fromiter((index[label] for label in data.labels), dtype=np.int64,
                       count=len(data.labels))


def _fit(x: np.ndarray, y: np.ndarray, c: float, seed: int) -> tuple[Any, bool]:
    """A standardised logistic regression fitted on ``x`` [N, D] and ``y`` [N], and whether
    its solver converged within ``MAX_ITER`` iterations (scikit-learn's warning is caught and
    counted in the result instead of being printed once per fit)."""
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    model = make_pipeline(StandardScaler(), LogisticRegression(C=c, max_iter=MAX_ITER,
                                                               random_state=seed))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ConvergenceWarning)
        model.fit(x, y)
    return model, not any(issubclass(w.category, ConvergenceWarning) for w in caught)


def label_separation(x: np.ndarray, labels: Sequence[str], k: int = 10) -> dict[str, float]:
    """How well points ``x`` [N, D] (codes, or their 2-D t-SNE map) group by label.

    Returns ``{"knn_agreement"``: the mean share of each point's ``k`` nearest neighbours
    (Euclidean, itself excluded) that carry its label; ``"chance"``: that share for labels
    independent of position (sum over classes of (n_c / N) (n_c - 1) / (N - 1));
    ``"silhouette"``: scikit-learn's mean silhouette coefficient by label (-1..1)}.
    Needs N > k and at least two labels.
    """
    _require_sklearn()
    from sklearn.metrics import silhouette_score
    from sklearn.neighbors import NearestNeighbors

    y = np.asarray(labels)
    n = len(y)
    if n <= k or len(set(y.tolist())) < 2:
        raise UserError(f"label separation needs more than {k} points and two labels, got "
                        f"{n} points and {len(set(y.tolist()))} labels")
    # queried without X, scikit-learn leaves each indexed point out of its own neighbours
    others = NearestNeighbors(n_neighbors=k).fit(x).kneighbors(return_distance=False)
    counts = np.unique(y, return_counts=True)[1].astype(np.float64)
    return {"knn_agreement": float(np.mean(y[others] == y[:, None])),
            "chance": float(np.sum(counts * (counts - 1)) / (n * (n - 1))),
            "silhouette": float(silhouette_score(x, y))}


def _require_sklearn() -> None:
    try:
        import sklearn  # noqa: F401
    except ImportError:
        raise UserError("cyclevae probe needs scikit-learn: pip install 'cyclevae[probe]'"
                        ) from None


def probe_fractions(train: LabelledCodes, test: LabelledCodes, *,
                    valid: LabelledCodes | None = None,
                    fractions: Sequence[float] = DEFAULT_FRACTIONS, draws: int = 5,
                    seed: int = 0, c_grid: Sequence[float] = DEFAULT_C_GRID,
                    skip_infeasible: bool = False, classifier: str = "ours",
                    authors_epochs: int = AUTHORS_EPOCHS_VAE) -> dict[str, Any]:
    """Test accuracy of linear probes trained on labelled fractions of ``train``.

    Args:
        train, test, valid: codes and labels; valid/test labels must occur in train.
        fractions: each in (0, 1]; a fraction leaving fewer labels than classes is refused.
        draws: random subsets per fraction (one for a fraction of 1, the whole set).
        seed: draw ``d`` of every fraction uses ``numpy.random.default_rng([seed, d])``.
        c_grid: the C values tried on valid (without valid: C = 1).
        skip_infeasible: leave out (and list under ``skipped``) fractions leaving fewer
            labels than classes instead of refusing them (for the default fractions on a
            small file).
        classifier: ``"ours"`` or ``"authors"`` (:data:`CLASSIFIERS`); the authors' trains
            for ``authors_epochs`` epochs, its shuffles and initial weights drawn from
            ``numpy.random.default_rng([seed, d, labels])``.
    Returns:
        ``{"classifier", "classifier_description", "classes", "train_sentences",
        "regularisation", "fractions": [{"fraction", "labels", "draws", "accuracy": [per
        draw], "mean", "sd" (sample sd, ddof 1; 0 for one draw), "valid_accuracy": [per draw
        or None], and for ours "C": [chosen per draw], "not_converged": [[draw, C] of each
        fit stopped at ``MAX_ITER`` iterations]; for the authors' "epoch": [the kept epoch,
        1-based, per draw], "epochs": ``authors_epochs``}]}``.
    """
    if classifier not in CLASSIFIERS:
        raise UserError(f"--classifier: expected one of {', '.join(CLASSIFIERS)}, got "
                        f"{classifier!r}")
    if classifier == "ours":
        _require_sklearn()
    elif authors_epochs < 1:
        raise UserError(f"--classifier-epochs must be >= 1, got {authors_epochs}")
    if draws < 1:
        raise UserError(f"--draws must be >= 1, got {draws}")
    classes = sorted(set(train.labels))
    if len(classes) < 2:
        raise UserError(f"{train.name}: a probe needs at least two labels, found "
                        f"{len(classes)} ({', '.join(classes)})")
    y_train = _encode_labels(train, classes, "training")
    y_test = _encode_labels(test, classes, "test")
    y_valid = None if valid is None else _encode_labels(valid, classes, "valid")
    n = len(y_train)
    planned, skipped = [], []
    for fraction in fractions:
        if not 0.0 < fraction <= 1.0:
            raise UserError(f"--fractions: each fraction must be in (0, 1], got {fraction:g}")
        size = n if fraction == 1.0 else max(round(fraction * n), 1)
        if size < len(classes):
            message = (f"{fraction:g} of {n} training sentences leaves {size} labels, fewer "
                       f"than the {len(classes)} classes")
            if not skip_infeasible:
                raise UserError(f"--fractions: {message}")
            skipped.append({"fraction": fraction, "reason": message})
            continue
        planned.append((fraction, size))
    if not planned:
        raise UserError(f"--fractions: none is feasible ({skipped[0]['reason']})")
    rows = []
    for fraction, size in planned:
        n_draws = 1 if size == n else draws
        accuracy, chosen, valid_acc = [], [], []
        unconverged: list[list[float]] = []
        for d in range(n_draws):
            rng = np.random.default_rng([seed, d])
            idx = stratified_subset(y_train, size, rng)
            x, y = train.x[idx], y_train[idx]
            if classifier == "authors":
                fit = fit_authors_classifier(
                    x, y, len(classes), seed=[seed, d, size],
                    valid=None if valid is None else (valid.x, y_valid),
                    settings=AuthorsSettings(epochs=authors_epochs))
                accuracy.append(fit.accuracy(test.x, y_test))
                chosen.append(fit.epoch + 1)
                valid_acc.append(max(fit.valid_accuracy) if fit.valid_accuracy else None)
                continue
            if valid is None:
                best_c, best_valid = 1.0, None
                model, converged = _fit(x, y, 1.0, seed)
                if not converged:
                    unconverged.append([d, 1.0])
            else:
                best_c, best_valid, model = None, -1.0, None
                for c in sorted(c_grid):
                    candidate, converged = _fit(x, y, c, seed)
                    if not converged:
                        unconverged.append([d, c])
                    score = float(candidate.score(valid.x, y_valid))
                    if score > best_valid:
                        best_c, best_valid, model = c, score, candidate
            accuracy.append(float(model.score(test.x, y_test)))
            chosen.append(best_c)
            valid_acc.append(best_valid)
        row = {
            "fraction": fraction, "labels": size, "draws": n_draws, "accuracy": accuracy,
            "mean": float(np.mean(accuracy)),
            "sd": float(np.std(accuracy, ddof=1)) if len(accuracy) > 1 else 0.0,
        }
        if classifier == "authors":
            row.update({"epoch": chosen, "epochs": authors_epochs, "valid_accuracy": valid_acc})
        else:
            row.update({"C": chosen, "valid_accuracy": valid_acc, "not_converged": unconverged})
        rows.append(row)
    if classifier == "authors":
        regularisation = (f"none; the epoch of best valid accuracy of {authors_epochs}"
                          if valid is not None
                          else f"none; the last of {authors_epochs} epochs (no valid set)")
    else:
        regularisation = ("C chosen on valid from " + ", ".join(f"{c:g}" for c in c_grid)
                          if valid is not None else "C = 1 (no valid set)")
    return {
        "classifier": classifier, "classifier_description": CLASSIFIERS[classifier],
        "classes": classes, "train_sentences": n, "regularisation": regularisation,
        "fractions": rows, "skipped": skipped,
    }


def _probe_files(encode: Callable[[str], SentenceCodes], train: str, test: str, *,
                 valid: str | None, fractions: Sequence[float], draws: int, seed: int,
                 skip_infeasible: bool, classifier: str, authors_epochs: int | None
                 ) -> dict[str, Any]:
    """:func:`probe_fractions` on ``encode(spec)`` of the labelled files (train, valid, test);
    the authors' classifier's epochs default to theirs for the kind of code (points: the AE's
    1,000; posterior means: a VAE's 3,000)."""
    if classifier == "ours":
        _require_sklearn()
    sets: dict[str, LabelledCodes] = {}
    stochastic = True
    for role, spec in (("train", train), ("valid", valid), ("test", test)):
        if spec is None:
            continue
        codes = encode(spec)
        if codes.labels is None:
            raise UserError(f"--{role} {spec}: expected a labelled file (LABEL<TAB>SENTENCE "
                            "lines, .tsv)")
        sets[role] = LabelledCodes(codes.mu, codes.labels, name=spec)
        stochastic = codes.stochastic
    if authors_epochs is None:
        authors_epochs = AUTHORS_EPOCHS_VAE if stochastic else AUTHORS_EPOCHS_AE
    result = probe_fractions(sets["train"], sets["test"], valid=sets.get("valid"),
                             fractions=fractions, draws=draws, seed=seed,
                             skip_infeasible=skip_infeasible, classifier=classifier,
                             authors_epochs=authors_epochs)
    return {"train": train, "valid": valid, "test": test, "seed": seed,
            "dimensions": int(sets["train"].x.shape[1]), **result}


def probe_checkpoint(checkpoint: str | Path, train: str, test: str, *,
                     valid: str | None = None, fractions: Sequence[float] = DEFAULT_FRACTIONS,
                     draws: int = 5, seed: int = 0, data_dir: str | None = None,
                     skip_infeasible: bool = False, classifier: str = "ours",
                     authors_epochs: int | None = None) -> dict[str, Any]:
    """:func:`probe_fractions` on the codes (:func:`cyclevae.embedding.embed_file`) of
    labelled files (or known data sets ``NAME:SPLIT``) under the model of ``checkpoint``;
    the result names the checkpoint, the files and the code size. The authors' classifier
    trains for ``authors_epochs`` epochs, by default theirs: 1,000 on the codes of a
    deterministic model (the AE), 3,000 on a VAE's."""
    from .embedding import embed_file

    result = _probe_files(lambda spec: embed_file(checkpoint, spec, data_dir=data_dir),
                          train, test, valid=valid, fractions=fractions, draws=draws,
                          seed=seed, skip_infeasible=skip_infeasible, classifier=classifier,
                          authors_epochs=authors_epochs)
    return {"checkpoint": str(checkpoint),
            "features": f"posterior mean ({result['dimensions']} dimensions)", **result}


def probe_pretrained(path: str | Path, train: str, test: str, *, valid: str | None = None,
                     fractions: Sequence[float] = DEFAULT_FRACTIONS, draws: int = 5,
                     seed: int = 0, data_dir: str | None = None, skip_infeasible: bool = False,
                     classifier: str = "ours", authors_epochs: int | None = None,
                     pooling: str = "mean", normalize: bool = False, max_tokens: int = 128
                     ) -> dict[str, Any]:
    """:func:`probe_checkpoint` with a pretrained encoder's own sentence embedding in place of
    a model's codes (:func:`cyclevae.embedding.embed_pretrained`: the model directory's, or an
    installed model's, pooled last layer, no VAE): the baseline a VAE's codes are compared
    with. The authors' classifier defaults to their AE's 1,000 epochs (the embedding is a
    point, as the AE's code)."""
    from .embedding import embed_pretrained
    from .models.hf_encoder import load_hf_encoder

    loaded = load_hf_encoder(path, field="--pretrained")  # once for the three files
    result = _probe_files(
        lambda spec: embed_pretrained(path, spec, data_dir=data_dir, pooling=pooling,
                                      normalize=normalize, max_tokens=max_tokens,
                                      loaded=loaded),
        train, test, valid=valid, fractions=fractions, draws=draws, seed=seed,
        skip_infeasible=skip_infeasible, classifier=classifier, authors_epochs=authors_epochs)
    norm = ", L2-normalised" if normalize else ""
    return {"pretrained": str(path),
            "features": f"the pretrained encoder's sentence embedding ({pooling}-pooled last "
                        f"layer{norm}, {result['dimensions']} dimensions; no VAE)", **result}
