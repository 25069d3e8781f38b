"""Linear probes: fractions, stratified seeded draws, regularisation chosen on valid, errors."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cyclevae.errors import UserError
from cyclevae.probe import (
    LabelledCodes,
    label_separation,
    parse_fractions,
    probe_fractions,
    stratified_subset,
)

pytestmark = pytest.mark.usefixtures("one_thread")


def test_parse_fractions() -> None:
    assert parse_fractions("0.001,0.01,0.1,1") == [0.001, 0.01, 0.1, 1.0]
    for bad in ("0", "1.5", "-0.1", "nan", "a"):
        with pytest.raises(UserError, match="--fractions"):
            parse_fractions(bad)


@settings(max_examples=60, deadline=None)
@given(counts=st.lists(st.integers(1, 40), min_size=2, max_size=5), data=st.data())
def test_stratified_subset_properties(counts: list[int], data: st.DataObject) -> None:
    y = np.repeat(np.arange(len(counts)), counts)
    np.random.default_rng(0).shuffle(y)
    size = data.draw(st.integers(len(counts), len(y)))
    idx = stratified_subset(y, size, np.random.default_rng(1))
    assert len(idx) == size == len(set(idx.tolist()))
    taken = np.bincount(y[idx], minlength=len(counts))
    assert (taken >= 1).all() and (taken <= counts).all()
    # proportional: within one label of the exact share where the one-per-class floor
    # does not bind (every class's share at least 1)
    share = np.asarray(counts) * size / len(y)
    if (share >= 1).all():
        assert (np.abs(taken - share) < 1 + 1e-9).all()


def test_stratified_subset_is_seeded_and_refuses_too_few() -> None:
    y = np.array([0] * 90 + [1] * 10)
    a = stratified_subset(y, 20, np.random.default_rng([3, 0]))
    b = stratified_subset(y, 20, np.random.default_rng([3, 0]))
    c = stratified_subset(y, 20, np.random.default_rng([3, 1]))
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    assert np.bincount(y[a]).tolist() == [18, 2]
    with pytest.raises(ValueError):
        stratified_subset(y, 1, np.random.default_rng(0))


def blobs(n: int, seed: int, labels=("neg", "pos", "mixed"), noise: float = 1.5) -> LabelledCodes:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, len(labels), n)
    centres = np.eye(len(labels), 6) * 3.0
    x = centres[y] + noise * rng.standard_normal((n, 6))
    return LabelledCodes(x.astype(np.float32), [labels[i] for i in y], name=f"set{seed}")


def test_probe_fractions_multiclass_draws_and_regularisation_choice() -> None:
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    train, valid, test = blobs(600, 0), blobs(200, 1), blobs(300, 2)
    grid = (0.001, 0.1, 10.0)
    result = probe_fractions(train, test, valid=valid, fractions=[0.05, 1.0], draws=3, seed=7,
                             c_grid=grid)
    assert result["classes"] == ["mixed", "neg", "pos"] and result["train_sentences"] == 600
    small, full = result["fractions"]
    assert small["labels"] == 30 and small["draws"] == 3 and len(small["accuracy"]) == 3
    assert len(set(small["accuracy"])) > 1  # different subsets
    assert small["mean"] == pytest.approx(np.mean(small["accuracy"]))
    assert small["sd"] == pytest.approx(np.std(small["accuracy"], ddof=1))
    assert full["labels"] == 600 and full["draws"] == 1 and full["sd"] == 0.0
    assert full["mean"] > 0.8  # separable blobs: the probe works
    # the chosen C is the best on valid (ties -> the smaller), and its test accuracy reported
    classes = result["classes"]
    ytr = np.array([classes.index(v) for v in train.labels])
    yva = np.array([classes.index(v) for v in valid.labels])
    yte = np.array([classes.index(v) for v in test.labels])
    scores = {}
    for c in grid:
        model = make_pipeline(StandardScaler(), LogisticRegression(C=c, max_iter=2000,
                                                                   random_state=7))
        model.fit(train.x, ytr)
        scores[c] = (model.score(valid.x, yva), model.score(test.x, yte))
    best = max(grid, key=lambda c: (scores[c][0], -c))
    assert full["C"] == [best] and full["accuracy"] == [pytest.approx(scores[best][1])]
    again = probe_fractions(train, test, valid=valid, fractions=[0.05], draws=3, seed=7,
                            c_grid=grid)
    assert again["fractions"][0]["accuracy"] == small["accuracy"]  # seeded


def test_probe_without_valid_uses_c_1() -> None:
    result = probe_fractions(blobs(100, 0), blobs(50, 2), fractions=[0.5], draws=2)
    assert result["regularisation"] == "C = 1 (no valid set)"
    assert result["fractions"][0]["C"] == [1.0, 1.0]


def test_probe_records_fits_that_stop_at_the_iteration_limit(monkeypatch) -> None:
    import warnings

    import cyclevae.probe as probe

    train, valid, test = blobs(200, 0), blobs(60, 1), blobs(60, 2)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the probe itself must not leak the solver's warning
        easy = probe_fractions(train, test, valid=valid, fractions=[1.0], c_grid=(0.1, 1.0))
    assert easy["fractions"][0]["not_converged"] == []
    monkeypatch.setattr(probe, "MAX_ITER", 1)
    capped = probe_fractions(train, test, valid=valid, fractions=[0.5, 1.0], draws=2,
                             c_grid=(0.1, 1.0))
    half, full = capped["fractions"]
    assert half["not_converged"] == [[0, 0.1], [0, 1.0], [1, 0.1], [1, 1.0]]
    assert full["not_converged"] == [[0, 0.1], [0, 1.0]]


def test_probe_errors() -> None:
    train, test = blobs(100, 0), blobs(50, 2)
    with pytest.raises(UserError, match="leaves 1 labels, fewer than the 3 classes"):
        probe_fractions(train, test, fractions=[0.01])
    with pytest.raises(UserError, match=r"each fraction must be in \(0, 1\]"):
        probe_fractions(train, test, fractions=[1.5])
    other = LabelledCodes(test.x, ["neg"] * 49 + ["spam"], name="other.tsv")
    with pytest.raises(UserError, match="other.tsv: label 'spam' does not occur in the training"):
        probe_fractions(train, other, fractions=[1.0])
    single = LabelledCodes(train.x, ["neg"] * 100, name="one.tsv")
    with pytest.raises(UserError, match="at least two labels"):
        probe_fractions(single, test)


def test_label_separation_against_a_direct_count() -> None:
    tight = blobs(300, 0, noise=0.2)
    sep = label_separation(tight.x, tight.labels, k=5)
    assert sep["knn_agreement"] == 1.0 and sep["silhouette"] > 0.8
    y = np.array(tight.labels)
    counts = np.array([np.sum(y == c) for c in set(tight.labels)], dtype=float)
    assert sep["chance"] == pytest.approx(np.sum(counts * (counts - 1)) / (300 * 299))
    # labels shuffled against position: agreement near chance, silhouette near 0
    shuffled = list(np.random.default_rng(1).permutation(tight.labels))
    noise = label_separation(tight.x, shuffled, k=5)
    assert abs(noise["knn_agreement"] - noise["chance"]) < 0.05 and abs(noise["silhouette"]) < 0.1
    # brute-force kNN agreement on a small set, a point never counted as its own neighbour
    small = blobs(40, 3, noise=2.0)
    d = np.linalg.norm(small.x[:, None] - small.x[None], axis=-1)
    np.fill_diagonal(d, np.inf)
    near = np.argsort(d, axis=1, kind="stable")[:, :3]
    ys = np.array(small.labels)
    assert label_separation(small.x, small.labels, k=3)["knn_agreement"] == pytest.approx(
        np.mean(ys[near] == ys[:, None]))
    with pytest.raises(UserError, match="two labels"):
        label_separation(small.x, ["a"] * 40)

