"""The authors' probe classifier: it learns, its Adam and lr decay are TensorFlow's, the kept
epoch is the first of best valid accuracy, it is seeded, and the probe names it."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from cyclevae.errors import UserError
from cyclevae.probe import LabelledCodes, probe_fractions
from cyclevae.probe_authors import (
    AuthorsSettings,
    first_best_epoch,
    fit_authors_classifier,
)

pytestmark = pytest.mark.usefixtures("one_thread")


def separable(n: int, seed: int, classes: int = 2, dim: int = 8, flip: bool = False
              ) -> tuple[np.ndarray, np.ndarray]:
    """Points around ``classes`` centres 4 apart with a margin (noise 0.5); ``flip`` gives
    every point the next class instead of its own."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, classes, n)
    x = 4.0 * np.eye(classes, dim)[y] + 0.5 * rng.standard_normal((n, dim))
    if classes == 2:
        x[:, 0] -= 2.0  # the classes on either side of the origin
    return x.astype(np.float32), (y + 1) % classes if flip else y


@pytest.mark.parametrize("classes", [2, 3])
def test_it_learns_a_linearly_separable_set(classes: int) -> None:
    x, y = separable(300, 0, classes)
    xt, yt = separable(200, 1, classes)
    fit = fit_authors_classifier(x, y, classes, settings=AuthorsSettings(epochs=60, lr=0.02),
                                 seed=0)
    assert fit.weight.shape == (9, 1 if classes == 2 else classes)
    assert fit.accuracy(x, y) == 1.0 and fit.accuracy(xt, yt) > 0.99
    assert fit.valid_accuracy == [] and fit.epoch == 59  # no valid set: the last epoch


def test_updates_are_tensorflows_adam_with_its_exponential_decay() -> None:
    """Full-batch steps (one per epoch, so the shuffle cannot matter) against torch: the
    sigmoid cross-entropy averaged over the batch, Adam with TensorFlow's epsilon (added to
    sqrt(v) before the bias correction) and lr * rate ** (step / decay_steps)."""
    x, y = separable(64, 2)
    settings = AuthorsSettings(epochs=15, lr=0.01, batch_size=64, decay_rate=0.5,
                               decay_epochs=3.0)
    fit = fit_authors_classifier(x, y, 2, settings=settings, seed=5)
    # the documented initial weights: Glorot-uniform kernel, the first draw of the seed's
    # generator, and biases of 0.001
    limit = math.sqrt(6.0 / (8 + 1))
    w0 = np.random.default_rng(5).uniform(-limit, limit, size=(9, 1)).astype(np.float32)
    w = torch.tensor(w0, dtype=torch.float64)
    w[-1] = 0.001
    w.requires_grad_(True)
    features = torch.cat([torch.tensor(x, dtype=torch.float64),
                          torch.ones(64, 1, dtype=torch.float64)], 1)
    target = torch.tensor(y, dtype=torch.float64)[:, None]
    m = torch.zeros_like(w)
    v = torch.zeros_like(w)
    for step in range(15):
        loss = torch.nn.functional.binary_cross_entropy_with_logits(features @ w, target)
        (grad,) = torch.autograd.grad(loss, w)
        t = step + 1
        lr = 0.01 * 0.5 ** (step / 3.0) * math.sqrt(1 - 0.999 ** t) / (1 - 0.9 ** t)
        m = 0.9 * m + 0.1 * grad
        v = 0.999 * v + 0.001 * grad * grad
        w = (w - lr * m / (v.sqrt() + 1e-8)).detach().requires_grad_(True)
    assert fit.weight == pytest.approx(w.detach().numpy(), abs=2e-5)
    # and not the undecayed trajectory: the decay is applied
    plain = fit_authors_classifier(x, y, 2, seed=5, settings=AuthorsSettings(
        epochs=15, lr=0.01, batch_size=64, decay_rate=1.0))
    assert np.abs(plain.weight - fit.weight).max() > 1e-3


def test_first_best_epoch_keeps_the_earlier_of_equal_epochs() -> None:
    assert first_best_epoch([0.5, 0.7, 0.6, 0.7, 0.65]) == 1
    assert first_best_epoch([0.4, 0.4, 0.4]) == 0
    assert first_best_epoch([0.1, 0.2, 0.3]) == 2
    with pytest.raises(ValueError):
        first_best_epoch([])


def test_the_kept_weights_are_those_of_the_best_valid_epoch() -> None:
    """A valid set labelled against the training set: its accuracy falls as the classifier
    learns, so the best epoch is early; the kept weights are exactly those a run stopped
    after that epoch ends with (valid evaluation draws no random numbers)."""
    x, y = separable(160, 3)
    vx, vy = separable(100, 4, flip=True)
    settings = AuthorsSettings(epochs=30, lr=0.01)
    fit = fit_authors_classifier(x, y, 2, valid=(vx, vy), settings=settings, seed=1)
    assert len(fit.valid_accuracy) == 30
    assert fit.epoch == first_best_epoch(fit.valid_accuracy) < 29
    assert fit.valid_accuracy[-1] < max(fit.valid_accuracy)
    assert fit.accuracy(vx, vy) == max(fit.valid_accuracy)
    stopped = fit_authors_classifier(x, y, 2, seed=1, settings=AuthorsSettings(
        epochs=fit.epoch + 1, lr=0.01))
    assert np.array_equal(stopped.weight, fit.weight)
    last = fit_authors_classifier(x, y, 2, seed=1, settings=settings)
    assert not np.array_equal(last.weight, fit.weight)


def test_seeded() -> None:
    x, y = separable(100, 5, classes=3)
    vx, vy = separable(50, 6, classes=3)
    settings = AuthorsSettings(epochs=5, lr=0.01)
    a = fit_authors_classifier(x, y, 3, valid=(vx, vy), settings=settings, seed=[2, 0])
    b = fit_authors_classifier(x, y, 3, valid=(vx, vy), settings=settings, seed=[2, 0])
    c = fit_authors_classifier(x, y, 3, valid=(vx, vy), settings=settings, seed=[2, 1])
    assert np.array_equal(a.weight, b.weight) and a.valid_accuracy == b.valid_accuracy
    assert not np.array_equal(a.weight, c.weight)


def test_a_subset_smaller_than_a_batch_still_trains() -> None:
    """The authors' code drops the last partial batch, which would leave a subset of fewer
    than 32 labels untrained; it is then one batch of all of it."""
    x, y = separable(20, 7)
    fit = fit_authors_classifier(x, y, 2, settings=AuthorsSettings(epochs=100, lr=0.05), seed=0)
    assert fit.accuracy(x, y) == 1.0


def _codes(n: int, seed: int) -> LabelledCodes:
    x, y = separable(n, seed)
    return LabelledCodes(x, [("neg", "pos")[i] for i in y], name=f"set{seed}")


def test_probe_fractions_with_the_authors_classifier() -> None:
    train, valid, test = _codes(400, 0), _codes(100, 1), _codes(100, 2)
    result = probe_fractions(train, test, valid=valid, fractions=[0.1, 1.0], draws=2, seed=3,
                             classifier="authors", authors_epochs=3)
    assert result["classifier"] == "authors" and "authors" in result["classifier_description"]
    assert result["regularisation"] == "none; the epoch of best valid accuracy of 3"
    small, full = result["fractions"]
    assert small["draws"] == 2 and full["draws"] == 1 and "C" not in small
    assert small["epochs"] == 3 and all(1 <= e <= 3 for e in small["epoch"] + full["epoch"])
    again = probe_fractions(train, test, valid=valid, fractions=[0.1, 1.0], draws=2, seed=3,
                            classifier="authors", authors_epochs=3)
    assert again["fractions"] == result["fractions"]
    ours = probe_fractions(train, test, valid=valid, fractions=[1.0])
    assert ours["classifier"] == "ours" and "C" in ours["fractions"][0]
    with pytest.raises(UserError, match="--classifier: expected one of ours, authors"):
        probe_fractions(train, test, classifier="theirs")
    with pytest.raises(UserError, match="--classifier-epochs must be >= 1"):
        probe_fractions(train, test, classifier="authors", authors_epochs=0)
