"""Early stopping on the valid loss, as Zhao et al.'s and Fu et al.'s dialog code does it.

The authors' loop (``dialog/kgcvae_swda_cyc.py``, lines 102-152, with
``dialog/config_utils_cyc.py``) trains in *rounds* of ``update_limit`` batches (a quarter pass
of their data; a round also ends where the pass ends), evaluates the valid loss after each
round and keeps the best model::

    patience = 10; threshold = best = inf
    for round in 1 .. max_epoch (60):
        train a round; loss = valid loss (rec + KL per response)
        if loss < best:
            if loss <= threshold * improve_threshold (0.996):   # better by more than 0.4 %
                patience = max(patience, round * patient_increase (2.0))
                threshold = loss
            save the model; best = loss
        if patience <= round: stop

:class:`EarlyStopping` is that rule as a small object with ``state_dict`` /
``load_state_dict`` (like a PyTorch scheduler), so a resumed run continues it exactly;
:func:`round_steps` turns the round's fraction of a pass into optimizer steps from the data,
never from the authors' batch counts. The Trainer calls :meth:`EarlyStopping.update` once per
round and saves the best checkpoint when it returns True.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from .errors import check_fields

__all__ = ["EarlyStopping", "EarlyStoppingConfig", "round_ends", "round_steps"]


@dataclass
class EarlyStoppingConfig:
    """``train.early_stopping``: the authors' stopping rule (off unless ``enabled``).

    ``round_epochs``: a round's length as a fraction of a pass (authors: ``update_limit`` =
    1,716 batches, a quarter of their pass: 0.25); a pass is cut into rounds of
    ceil(round_epochs x steps per pass) steps, the last one ending with the pass.
    ``patience``: rounds before the first possible stop (10). ``improve_threshold``: a valid
    loss at most this times the last threshold counts as an improvement (0.996, i.e. better
    by more than 0.4 %). ``patience_increase``: such an improvement in round r raises the
    patience to at least r times this (2.0). ``max_rounds``: rounds at most (60; null: only
    ``train.epochs`` bounds the run, which it always does).
    """

    enabled: bool = False
    round_epochs: float = 0.25
    patience: int = 10
    improve_threshold: float = 0.996
    patience_increase: float = 2.0
    max_rounds: int | None = 60

    def validate(self, prefix: str = "train.early_stopping") -> None:
        """Raise :class:`~cyclevae.errors.UserError` naming the first out-of-range field."""
        check_fields(self, prefix, [
            (0.0 < self.round_epochs <= 1.0, "round_epochs", "in (0, 1] (a fraction of a pass)"),
            (self.patience >= 1, "patience", ">= 1 (rounds)"),
            (0.0 < self.improve_threshold <= 1.0, "improve_threshold", "in (0, 1]"),
            (self.patience_increase >= 1.0, "patience_increase", ">= 1"),
            (self.max_rounds is None or self.max_rounds >= 1, "max_rounds", ">= 1 or null"),
        ])


def round_steps(steps_per_epoch: int, round_epochs: float) -> int:
    """Optimizer steps of a round: ceil(``round_epochs`` x ``steps_per_epoch``), at least 1
    (so a pass holds ceil(1 / round_epochs) rounds or fewer, the last one possibly shorter,
    as when the authors' ``update_limit`` runs past the end of their data feed)."""
    if steps_per_epoch < 1:
        raise ValueError(f"steps_per_epoch must be >= 1, got {steps_per_epoch}")
    return max(1, math.ceil(round_epochs * steps_per_epoch - 1e-9))


def round_ends(step_in_epoch: int, steps_per_epoch: int, every: int) -> bool:
    """Whether a round ends after ``step_in_epoch`` steps of the pass (1-based count): at each
    multiple of ``every`` and at the end of the pass."""
    return step_in_epoch % every == 0 or step_in_epoch == steps_per_epoch


class EarlyStopping:
    """The authors' rule (module docstring), one :meth:`update` per evaluation round.

    Attributes: rounds (evaluated so far); patience (rounds; a float once raised, as theirs);
    threshold (the valid loss the next improvement is measured against); best (the lowest
    valid loss); best_round; stopped; reason (``"patience"`` or ``"max_rounds"``, None while
    running).
    """

    def __init__(self, patience: int = 10, improve_threshold: float = 0.996,
                 patience_increase: float = 2.0, max_rounds: int | None = 60) -> None:
        self.improve_threshold = improve_threshold
        self.patience_increase = patience_increase
        self.max_rounds = max_rounds
        self.rounds = 0
        self.patience: float = patience
        self.threshold = math.inf
        self.best = math.inf
        self.best_round = 0
        self.stopped = False
        self.reason: str | None = None

    @classmethod
    def from_config(cls, config: EarlyStoppingConfig) -> EarlyStopping:
        return cls(config.patience, config.improve_threshold, config.patience_increase,
                   config.max_rounds)

    def update(self, loss: float) -> bool:
        """Count one round whose valid loss is ``loss``; return whether it is the best so far
        (the caller then saves the best checkpoint). Sets ``stopped`` when the patience has run
        out or ``max_rounds`` rounds are done. A non-finite loss is never an improvement."""
        if self.stopped:
            raise RuntimeError("update() after the rule has stopped")
        self.rounds += 1
        improved = loss < self.best
        if improved:
            if loss <= self.threshold * self.improve_threshold:
                self.patience = max(self.patience, self.rounds * self.patience_increase)
                self.threshold = loss
            self.best, self.best_round = loss, self.rounds
        if self.patience <= self.rounds:
            self.stopped, self.reason = True, "patience"
        elif self.max_rounds is not None and self.rounds >= self.max_rounds:
            self.stopped, self.reason = True, "max_rounds"
        return improved

    def state_dict(self) -> dict[str, Any]:
        """Plain numbers (checkpoints load with ``weights_only=True``)."""
        return {"rounds": self.rounds, "patience": float(self.patience),
                "threshold": self.threshold, "best": self.best, "best_round": self.best_round,
                "stopped": self.stopped, "reason": self.reason}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.rounds = int(state["rounds"])
        self.patience = float(state["patience"])
        self.threshold = float(state["threshold"])
        self.best = float(state["best"])
        self.best_round = int(state["best_round"])
        self.stopped = bool(state["stopped"])
        self.reason = state["reason"]
