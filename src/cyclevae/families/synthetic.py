"""The synthetic family: the sentence VAE on the one-hot sequences of the paper's section 4.

Section 4 (Figures 3 and 4) auto-encodes ten sequences (sequence n is the one-hot vector with
its 1 at position n, read as 10 binary tokens; :mod:`cyclevae.data.synthetic`) with a VAE of a
2-dimensional latent space, trained on the full batch at every iteration. Here that is an
ordinary run of the Trainer: the model is :class:`~cyclevae.models.vae.TextVAE` over the
data's three symbols, the data one batch repeated ``data.synthetic.steps_per_epoch`` times per
epoch (:class:`~cyclevae.data.synthetic.RepeatedBatch`), and the family's
:class:`SyntheticMonitor` measures the model before the first step and after every epoch (the
learning curves of Figure 3) and samples its latent space at ``data.synthetic.snapshots``
evenly spaced iterations (Figure 4). :mod:`cyclevae.experiments.synthetic` runs the three
schedules and draws the figures from the runs' logs.

Measurement (all with beta = 1, i.e. the true ELBO, in eval mode, from random generators of
its own, seeded by the run's seed and the step, so that measuring never changes the training
and a resumed run measures as an uninterrupted one):

- ``curve`` records: Rec averaged over :data:`CURVE_SAMPLES` z per sequence, closed-form KL,
  ELBO = -(Rec + KL), per sequence (:func:`cyclevae.evaluation.monte_carlo_elbo`);
- ``snapshot`` records: Rec over :data:`FINAL_SAMPLES` z per sequence, KL, ELBO, the mutual
  information I_q(z, n) and marginal KL(q(z)||p(z)) of the posteriors, active units, and
  :data:`LATENT_SAMPLES` samples z ~ q(z|n) per sequence (``latent``, ``[n, K, 2]``).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..config import Config, ModelConfig
from ..data.batching import TextBatch
from ..data.synthetic import VOCAB_SIZE, RepeatedBatch, one_hot_sequences
from ..data.vocab import Vocabulary
from ..errors import UserError
from ..evaluation import monte_carlo_elbo
from ..metrics.latent import active_units, latent_decomposition
from ..models.base import LatentTextModel
from ..models.vae import TextVAE
from .base import CheckpointEvalOptions, Family, Labels, RunData, RunMonitor, SplitData, require

__all__ = ["CURVE_SAMPLES", "FINAL_SAMPLES", "LATENT_SAMPLES", "MI_SAMPLES", "SyntheticFamily",
           "SyntheticMonitor", "full_metrics", "snapshot_steps"]

CURVE_SAMPLES = 20  # z samples per sequence for a curve point's Rec
FINAL_SAMPLES = 100  # z samples per sequence for a snapshot's Rec
LATENT_SAMPLES = 50  # z ~ q(z|n) per sequence in each latent snapshot
MI_SAMPLES = 1000  # Monte Carlo samples per sequence for MI and marginal KL

# Offsets making the measurement random streams distinct from each other.
_CURVE_STREAM, _SNAPSHOT_STREAM = 1, 2


def snapshot_steps(steps: int, snapshots: int) -> list[int]:
    """``snapshots`` evenly spaced iterations ending at ``steps`` (8 for T = 40K: 5K, 10K,
    ..., 40K, the middles and ends of the four cycles)."""
    if snapshots < 1:
        raise ValueError(f"snapshots must be >= 1, got {snapshots!r}")
    return sorted({max(1, round(steps * k / snapshots)) for k in range(1, snapshots + 1)})


def _generator(seed: int, stream: int, step: int) -> torch.Generator:
    return torch.Generator().manual_seed((seed * 1_000_003 + stream) * 1_000_033 + step)


def full_metrics(model: LatentTextModel, batch: TextBatch, generator: torch.Generator
                 ) -> tuple[dict[str, Any], torch.Tensor, torch.Tensor]:
    """Low-noise ELBO/Rec/KL (:data:`FINAL_SAMPLES` z per sequence) plus MI, marginal KL and
    active units of the posteriors; returns ``(metrics, mu, logvar)``."""
    metrics: dict[str, Any]
    metrics, (mu, logvar) = monte_carlo_elbo(model, batch, FINAL_SAMPLES, generator)
    parts = latent_decomposition(mu, logvar, n_samples=MI_SAMPLES, generator=generator)
    metrics["mi"] = parts["mi"]
    metrics["marginal_kl"] = parts["marginal_kl"]
    metrics["active_units"] = active_units(mu)
    return metrics, mu, logvar


class SyntheticMonitor(RunMonitor):
    """The measurements of one synthetic run (module docstring): a ``curve`` record at every
    call, a ``snapshot`` record at the snapshot steps. ``seconds``/``cpu_seconds`` in a
    snapshot: wall and CPU time of this process since the monitor was made (the run's start,
    or its resumption).

    Args:
        seed: the run's seed (the measurements' generators derive from it and the step).
        steps: the run's length T in optimizer steps.
        snapshots: how many evenly spaced snapshot steps, ending at T (:func:`snapshot_steps`).
        batch: the data set as one batch.
    """

    def __init__(self, seed: int, steps: int, snapshots: int, batch: TextBatch) -> None:
        self.seed, self.batch = seed, batch
        self.snapshots = frozenset(snapshot_steps(steps, snapshots))
        self._wall, self._cpu = time.perf_counter(), time.process_time()

    def __call__(self, model: LatentTextModel, step: int, beta: float
                 ) -> list[dict[str, Any]]:
        metrics, _ = monte_carlo_elbo(model, self.batch, CURVE_SAMPLES,
                                      _generator(self.seed, _CURVE_STREAM, step))
        records: list[dict[str, Any]] = [{"kind": "curve", "step": step, "beta": beta,
                                          **metrics}]
        if step in self.snapshots:
            gen = _generator(self.seed, _SNAPSHOT_STREAM, step)
            full, mu, logvar = full_metrics(model, self.batch, gen)
            eps = torch.randn(mu.shape[0], LATENT_SAMPLES, mu.shape[1], generator=gen)
            z = mu.unsqueeze(1) + (0.5 * logvar).exp().unsqueeze(1) * eps
            records.append({"kind": "snapshot", "step": step, "beta": beta, **full,
                            "latent": z.detach().numpy().astype(np.float32).tolist(),
                            "seconds": time.perf_counter() - self._wall,
                            "cpu_seconds": time.process_time() - self._cpu})
        return records


class SyntheticFamily(Family[RepeatedBatch]):
    """``synthetic``: :class:`~cyclevae.models.vae.TextVAE` on the one-hot sequences of
    ``data.synthetic``, measured by :class:`SyntheticMonitor`."""

    kind = "synthetic"

    def validate(self, config: Config) -> None:
        d = config.data
        require(d.valid is None, "data.valid", "null for model.kind synthetic (the run "
                "measures the training sequences themselves)", d.valid)
        require(d.test is None, "data.test", "null for model.kind synthetic (the run measures "
                "the training sequences themselves)", d.test)
        require(config.train.device == "cpu", "train.device", "'cpu' for model.kind synthetic "
                "(its measurements draw from CPU generators)", config.train.device)

    def build_model(self, config: ModelConfig, vocab_size: int, labels: Labels
                    ) -> LatentTextModel:
        """The VAE over the data's own alphabet {0, 1, <s>}
        (:data:`~cyclevae.data.synthetic.VOCAB_SIZE` symbols), whatever ``vocab_size``: the
        sequences are not words, and the run's :class:`Vocabulary` holds only its specials."""
        return TextVAE(config, VOCAB_SIZE)

    def load_data(self, config: Config, *, vocab: Vocabulary | None = None,
                  labels: Labels | None = None) -> RunData[RepeatedBatch]:
        d = config.data.synthetic
        batch = TextBatch(one_hot_sequences(d.sequences))
        return RunData(Vocabulary(), RepeatedBatch(batch, d.steps_per_epoch), None, None,
                       {"sequences": d.sequences, "steps_per_epoch": d.steps_per_epoch})

    def load_split(self, config: Config, spec: str, vocab: Vocabulary, labels: Labels, *,
                   data_dir: str | None = None) -> SplitData[RepeatedBatch]:
        raise UserError(f"{spec}: a synthetic run reads no files; its measurements are in its "
                        "log.jsonl (cyclevae reproduce synthetic)")

    def run_monitor(self, config: Config) -> SyntheticMonitor:
        d = config.data.synthetic
        return SyntheticMonitor(config.train.seed, config.train.epochs * d.steps_per_epoch,
                                d.snapshots, TextBatch(one_hot_sequences(d.sequences)))

    def evaluate_checkpoint(self, path: str | Path, model: LatentTextModel, config: Config,
                            vocab: Vocabulary, labels: Labels, *, split: str, spec: str,
                            options: CheckpointEvalOptions) -> dict[str, Any]:
        raise UserError(f"{path}: a synthetic run is measured while it trains (its log.jsonl); "
                        "`cyclevae evaluate` reads data files, which it has none of")
