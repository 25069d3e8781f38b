"""The authors' classifier for the Yelp probe (Fu et al. 2019, section 6.3, Figure 6), trained
as their ``semi/`` code trains it: one linear layer on the raw code, nothing else.

What their fine-tuning scripts do (``semi/semi_yelp_cyc_ft.py``, ``semi/semi_yelp_ae_ft.py``,
``semi/semi_yelp_vae_ft.py`` with ``semi/model_new.py`` and ``semi/utils.py`` of
github.com/haofuml/cyclical_annealing, all read for this module), and what this module does:

- features: the encoder's posterior mean for the VAEs (``use_z = False``), the code z for the
  AE, not standardised; the encoder is restored and frozen (only the ``dis`` variables train);
- model: ``discriminator_linear``, one ``layers.linear`` layer with ``category = 1`` output
  (a logit, sigmoid cross-entropy averaged over the batch), Glorot-uniform weights and biases
  of 0.001; no hidden layer, no dropout, no weight decay;
- optimiser: Adam (TensorFlow's: beta1 0.9, beta2 0.999, epsilon 1e-8 added to sqrt(v)
  before the bias correction is folded into the step size), lr 1e-4, decayed continuously as
  ``lr * 0.99 ** (step / (100 * batches_per_epoch))`` (``tf.train.exponential_decay``,
  ``decay_ep = 100``, not staircase), no gradient clipping;
- batches: 32 sentences, reshuffled every epoch, the last partial batch dropped
  (``get_minibatches_idx``);
- length: ``max_epochs`` 3,000 for the VAEs, 1,000 for the AE; after every epoch the valid
  accuracy is measured and the test accuracy of the epoch with the highest valid accuracy
  (the first such epoch: ``val_accuracy > max_val_accuracy``) is the reported one.

Where this module differs, and why: more than two classes get a softmax layer with one output
per class (their data is binary; with two classes it is their single sigmoid logit exactly);
a labelled subset smaller than one batch is trained as one batch of all of it (their code
would run no step); valid and test accuracy count every sentence (theirs drop each split's
last partial batch of 32); the labelled subset is drawn by :mod:`cyclevae.probe` (stratified,
seeded) where theirs is ``np.random.choice`` of 1% or 10%; without a valid set the last
epoch is kept. The computation is NumPy float32, as theirs was TensorFlow float32.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

__all__ = ["AUTHORS_EPOCHS_AE", "AUTHORS_EPOCHS_VAE", "AuthorsClassifier", "AuthorsSettings",
           "first_best_epoch", "fit_authors_classifier"]

#: the authors' ``max_epochs`` for the classifier on a VAE's codes (semi_yelp_cyc_ft.py)
AUTHORS_EPOCHS_VAE = 3000
#: ... and on the AE's codes (semi_yelp_ae_ft.py)
AUTHORS_EPOCHS_AE = 1000


@dataclass(frozen=True)
class AuthorsSettings:
    """The optimiser settings of the authors' fine-tuning scripts (``Options`` there)."""

    epochs: int = AUTHORS_EPOCHS_VAE
    lr: float = 1e-4
    batch_size: int = 32
    decay_rate: float = 0.99
    decay_epochs: float = 100.0
    beta1: float = 0.9
    beta2: float = 0.999
    eps: float = 1e-8


@dataclass
class AuthorsClassifier:
    """A trained linear layer: ``weight [D + 1, K']`` (the last row is the bias; ``K' = 1``
    sigmoid logit for two classes, else one logit per class), the epoch it was taken at
    (0-based) and the valid accuracy after every epoch (empty without a valid set)."""

    weight: np.ndarray
    epoch: int
    valid_accuracy: list[float]

    def predict(self, x: np.ndarray) -> np.ndarray:
        """Class ids ``[N]`` of codes ``x [N, D]`` (two classes: 1 where the logit is > 0, as
        ``tf.round(sigmoid(logit))`` rounds 0.5 to 0)."""
        logits = _with_bias(x) @ self.weight
        if logits.shape[1] == 1:
            return (logits[:, 0] > 0).astype(np.int64)
        return np.argmax(logits, axis=1)

    def accuracy(self, x: np.ndarray, y: np.ndarray) -> float:
        """Share of ``y [N]`` (class ids) predicted right from ``x [N, D]``."""
        return float(np.mean(self.predict(x) == y))


def first_best_epoch(valid_accuracy: Sequence[float]) -> int:
    """The first epoch (0-based) with the highest valid accuracy: the authors' strict
    ``val_accuracy > max_val_accuracy`` update keeps the earlier of equal epochs."""
    if not valid_accuracy:
        raise ValueError("no epochs")
    best = 0
    for epoch, value in enumerate(valid_accuracy):
        if value > valid_accuracy[best]:
            best = epoch
    return best


def _with_bias(x: np.ndarray) -> np.ndarray:
    """``x [N, D]`` -> ``[N, D + 1]`` float32 with a column of ones (the bias input)."""
    return np.concatenate([np.asarray(x, dtype=np.float32),
                           np.ones((len(x), 1), dtype=np.float32)], axis=1)


def fit_authors_classifier(x: np.ndarray, y: np.ndarray, n_classes: int, *,
                           valid: tuple[np.ndarray, np.ndarray] | None = None,
                           settings: AuthorsSettings = AuthorsSettings(),
                           seed: int | Sequence[int] = 0) -> AuthorsClassifier:
    """Train the authors' linear classifier on codes ``x [N, D]`` with class ids ``y [N]``
    (in ``0..n_classes-1``) and keep the weights of the epoch of best accuracy on ``valid``
    (codes, class ids), or of the last epoch without it.

    ``seed`` (an int or a sequence, as :func:`numpy.random.default_rng` takes) draws the
    initial weights and every epoch's shuffle, so a call is reproducible bit for bit.
    """
    if n_classes < 2:
        raise ValueError(f"n_classes must be >= 2, got {n_classes}")
    if settings.epochs < 1:
        raise ValueError(f"epochs must be >= 1, got {settings.epochs}")
    rng = np.random.default_rng(seed)
    features = _with_bias(x)
    n, width = features.shape
    outputs = 1 if n_classes == 2 else n_classes
    targets = (np.asarray(y, dtype=np.float32)[:, None] if outputs == 1
               else np.eye(n_classes, dtype=np.float32)[np.asarray(y)])
    limit = math.sqrt(6.0 / (width - 1 + outputs))  # Glorot uniform on the [D, K'] kernel
    weight = rng.uniform(-limit, limit, size=(width, outputs)).astype(np.float32)
    weight[-1] = 0.001
    kernel = np.ascontiguousarray(weight.T)  # [K', D + 1]: the gradient comes out that way
    m, v, scratch = np.zeros_like(kernel), np.zeros_like(kernel), np.empty_like(kernel)
    batch = min(settings.batch_size, n)
    per_epoch = n // batch
    decay_steps = settings.decay_epochs * per_epoch
    b1, b2 = settings.beta1, settings.beta2
    scale = np.float32(1.0 / batch)
    valid_x = None if valid is None else _with_bias(valid[0])
    valid_y = None if valid is None else np.asarray(valid[1])
    history: list[float] = []
    best_kernel, best_epoch = kernel.copy(), settings.epochs - 1
    step = 0
    for epoch in range(settings.epochs):
        order = rng.permutation(n)
        for start in range(0, per_epoch * batch, batch):
            rows = order[start:start + batch]
            xb = features[rows]
            p = xb @ kernel.T  # logits [B, K']
            if outputs == 1:  # sigmoid
                np.negative(p, out=p)
                np.exp(p, out=p)
                p += 1.0
                np.reciprocal(p, out=p)
            else:  # softmax
                p -= p.max(axis=1, keepdims=True)
                np.exp(p, out=p)
                p /= p.sum(axis=1, keepdims=True)
            p -= targets[rows]
            p *= scale
            grad = p.T @ xb  # [K', D + 1]: d(mean cross-entropy) / d kernel
            lr = settings.lr * settings.decay_rate ** (step / decay_steps)
            step += 1
            lr_t = lr * math.sqrt(1.0 - b2 ** step) / (1.0 - b1 ** step)
            m *= b1
            np.multiply(grad, 1.0 - b1, out=scratch)
            m += scratch
            v *= b2
            np.multiply(grad, grad, out=grad)
            grad *= 1.0 - b2
            v += grad
            np.sqrt(v, out=scratch)
            scratch += settings.eps
            np.divide(m, scratch, out=scratch)
            scratch *= lr_t
            kernel -= scratch
        if valid_x is not None:
            logits = valid_x @ kernel.T
            predicted = ((logits[:, 0] > 0).astype(np.int64) if outputs == 1
                         else np.argmax(logits, axis=1))
            history.append(float(np.mean(predicted == valid_y)))
            if epoch == 0 or history[-1] > history[best_epoch]:
                best_kernel, best_epoch = kernel.copy(), epoch
    best_weight = np.ascontiguousarray((kernel if valid_x is None else best_kernel).T)
    return AuthorsClassifier(weight=best_weight, epoch=best_epoch, valid_accuracy=history)
