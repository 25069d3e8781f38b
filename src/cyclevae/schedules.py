"""Beta (KL weight) and learning-rate schedules of Fu et al. (NAACL 2019), eq. (6)-(7).

For iteration t = 1..T, M cycles and a proportion R of each cycle spent increasing beta::

    tau_t  = mod(t - 1, ceil(T / M)) / (T / M)
    beta_t = start + (stop - start) * f(tau_t)   if tau_t <= R
           = stop                                otherwise

Here ``step = t - 1`` counts from 0. Three shapes f are provided (``linear``, ``sigmoid``,
``cosine``). ``ratio = 0`` is the constant schedule (beta = stop at every step) and
``n_cycles = 1`` with a small ratio is the usual monotonic schedule (Bowman et al. 2015).

Use in any training loop::

    from cyclevae.schedules import BetaScheduler
    beta = BetaScheduler(total_steps=len(loader) * epochs, n_cycles=4, ratio=0.5)
    for batch in loader:
        loss = rec + beta.value * kl      # beta in force for this step
        ...
        beta.step()

The functions accept a fractional ``step`` (e.g. ``epoch + batch / batches_per_epoch``) so that a
schedule defined in epochs can rise smoothly within an epoch. With ``continuous=True`` the
position is a real number and every cycle lasts exactly T / M (instead of eq. (7)'s integer
ceil(T / M) iterations), so a schedule counted in epochs may have cycles shorter than an epoch;
the two agree whenever T / M is a whole number.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

SHAPES = ("linear", "sigmoid", "cosine")

__all__ = [
    "SHAPES",
    "BetaScheduler",
    "CyclicalLR",
    "ExponentialDecayLR",
    "beta_schedule",
    "constant_beta",
    "cyclical_beta",
    "cyclical_lr_factor",
    "monotonic_beta",
]


def _check_finite(name: str, value: float) -> None:
    if not isinstance(value, (int, float, np.integer, np.floating)) or isinstance(value, bool):
        raise ValueError(f"{name} must be a number, got {value!r}")
    if math.isnan(value) or math.isinf(value):
        raise ValueError(f"{name} must be a finite number, got {value!r}")


def validate_schedule(
    total_steps: float,
    n_cycles: int = 4,
    ratio: float = 0.5,
    shape: str = "linear",
    start: float = 0.0,
    stop: float = 1.0,
    *,
    continuous: bool = False,
) -> None:
    """Raise ``ValueError`` naming the offending argument and its accepted range. With
    ``continuous`` a cycle may be shorter than one unit (``n_cycles`` is not bounded by
    ``total_steps``)."""
    _check_finite("total_steps", total_steps)
    if total_steps <= 0 or (total_steps < 1 and not continuous):
        raise ValueError(f"total_steps must be >= 1, got {total_steps!r}")
    if isinstance(n_cycles, bool) or not isinstance(n_cycles, (int, np.integer)):
        raise ValueError(f"n_cycles must be an integer in [1, total_steps], got {n_cycles!r}")
    if n_cycles < 1 or (n_cycles > total_steps and not continuous):
        raise ValueError(
            f"n_cycles must be in [1, total_steps={total_steps}], got {n_cycles!r}"
        )
    _check_finite("ratio", ratio)
    if not 0.0 <= ratio <= 1.0:
        raise ValueError(f"ratio must be in [0, 1], got {ratio!r}")
    if shape not in SHAPES:
        raise ValueError(f"shape must be one of {', '.join(SHAPES)}, got {shape!r}")
    _check_finite("start", start)
    _check_finite("stop", stop)
    if start > stop:
        raise ValueError(f"start must be <= stop ({stop!r}), got start={start!r}")


def _tau(step: np.ndarray, total_steps: float, n_cycles: int, continuous: bool = False
         ) -> np.ndarray:
    """Position in the current cycle, eq. (7): mod(t - 1, ceil(T/M)) / (T/M); with
    ``continuous``, mod(t, T/M) / (T/M)."""
    period = total_steps / n_cycles
    return np.mod(step, period if continuous else math.ceil(period)) / period


def _shape(tau: np.ndarray, ratio: float, shape: str) -> np.ndarray:
    """f(tau) on [0, R], increasing from (about) 0 to (about) 1."""
    x = tau / ratio
    if shape == "linear":
        return x
    if shape == "sigmoid":
        return 1.0 / (1.0 + np.exp(-(12.0 * x - 6.0)))
    return 0.5 - 0.5 * np.cos(np.pi * x)


def _beta_array(
    steps: np.ndarray,
    total_steps: float,
    n_cycles: int,
    ratio: float,
    shape: str,
    start: float,
    stop: float,
    continuous: bool = False,
    ramp: str = "span",
) -> np.ndarray:
    steps = np.asarray(steps, dtype=np.float64)
    if ratio == 0.0:
        return np.full(steps.shape, float(stop))
    tau = _tau(steps, total_steps, n_cycles, continuous)
    rising = tau <= ratio
    f = _shape(np.where(rising, tau, 0.0), ratio, shape)
    if ramp == "offset":  # the authors' scripts: the slope of 0 -> stop, started at `start`
        return np.where(rising, np.minimum(start + stop * f, stop), float(stop))
    return np.where(rising, start + (stop - start) * f, float(stop))


#: how beta rises from ``start``: ``span`` (eq. 6: from start to stop over the R part of the
#: cycle) or ``offset`` (Fu et al.'s PTB scripts: with the slope of a rise from 0 to stop,
#: started at ``start`` and capped at stop, so it reaches stop after (1 - start/stop) R)
RAMPS = ("span", "offset")


def cyclical_beta(
    step: float,
    total_steps: float,
    *,
    n_cycles: int = 4,
    ratio: float = 0.5,
    shape: str = "linear",
    start: float = 0.0,
    stop: float = 1.0,
    continuous: bool = False,
    ramp: str = "span",
) -> float:
    """Beta at ``step`` (0-based; step 0 is iteration t = 1 of eq. (7)).

    Args:
        step: iteration index >= 0 (may be fractional for sub-step interpolation; steps past
            ``total_steps`` keep cycling).
        total_steps: T, the length of the schedule in steps (>= 1).
        n_cycles: M, number of cycles, in [1, T].
        ratio: R, fraction of each cycle spent increasing beta, in [0, 1]; 0 = constant.
        shape: ``"linear"``, ``"sigmoid"`` or ``"cosine"``.
        start, stop: beta at the start of each cycle and its maximum (start <= stop).
        continuous: ``step`` is a real position (e.g. a fractional epoch) and each cycle lasts
            exactly T / M, possibly less than one unit (module docstring).
        ramp: ``"span"`` (eq. 6) or ``"offset"`` (the authors' PTB scripts; :data:`RAMPS`).

    Returns:
        beta as a Python float.
    """
    validate_schedule(total_steps, n_cycles, ratio, shape, start, stop, continuous=continuous)
    _check_ramp(ramp)
    _check_finite("step", step)
    if step < 0:
        raise ValueError(f"step must be >= 0, got {step!r}")
    return float(_beta_array(np.asarray(step), total_steps, n_cycles, ratio, shape, start, stop,
                             continuous, ramp))


def _check_ramp(ramp: str) -> None:
    if ramp not in RAMPS:
        raise ValueError(f"ramp must be one of {', '.join(map(repr, RAMPS))}, got {ramp!r}")


def beta_schedule(
    total_steps: int,
    *,
    n_cycles: int = 4,
    ratio: float = 0.5,
    shape: str = "linear",
    start: float = 0.0,
    stop: float = 1.0,
    ramp: str = "span",
    stride: int = 1,
) -> np.ndarray:
    """All betas of a schedule: float64 array of shape ``[total_steps]``, equal to
    ``[cyclical_beta(s, total_steps, ...) for s in range(total_steps)]``; with ``stride``
    those of every ``stride``-th step only (``range(0, total_steps, stride)``)."""
    validate_schedule(total_steps, n_cycles, ratio, shape, start, stop)
    _check_ramp(ramp)
    if int(total_steps) != total_steps:
        raise ValueError(f"total_steps must be an integer for beta_schedule, got {total_steps!r}")
    if isinstance(stride, bool) or not isinstance(stride, (int, np.integer)) or stride < 1:
        raise ValueError(f"stride must be an integer >= 1, got {stride!r}")
    steps = np.arange(0, int(total_steps), int(stride), dtype=np.float64)
    return _beta_array(steps, total_steps, n_cycles, ratio, shape, start, stop, ramp=ramp)


def monotonic_beta(
    step: float,
    total_steps: float,
    *,
    ratio: float = 0.25,
    shape: str = "linear",
    start: float = 0.0,
    stop: float = 1.0,
) -> float:
    """The monotonic schedule: one cycle (M = 1) rising over the first ``ratio`` of the run."""
    return cyclical_beta(
        step, total_steps, n_cycles=1, ratio=ratio, shape=shape, start=start, stop=stop
    )


def constant_beta(step: float, total_steps: float, *, stop: float = 1.0) -> float:
    """The constant schedule (R = 0): ``stop`` at every step."""
    return cyclical_beta(step, total_steps, n_cycles=1, ratio=0.0, start=min(0.0, stop), stop=stop)


class BetaScheduler:
    """Stateful beta schedule in the style of ``torch.optim.lr_scheduler``.

    ``value`` is the beta in force for the current step; ``step()`` advances by one call
    (one batch, or one epoch). The schedule is defined over ``total`` *units*; each unit is
    ``steps_per_unit`` calls of ``step()``. With the default ``steps_per_unit=1`` the schedule
    counts in calls. For a schedule defined in epochs but stepped every batch, pass
    ``steps_per_unit=batches_per_epoch``: with ``interpolate=True`` beta rises smoothly within an
    epoch, with ``interpolate=False`` it changes only at epoch boundaries.

    Interpolated with ``steps_per_unit > 1``, beta is a function of the fractional position
    (``continuous`` in :func:`cyclical_beta`): every cycle lasts T / M units, which may be less
    than one unit as long as each cycle has at least one call of ``step()``
    (``n_cycles <= total * steps_per_unit``).

    Args:
        total: schedule length T in units (iterations or epochs), >= 1.
        n_cycles, ratio, shape, start, stop: as in :func:`cyclical_beta`.
        steps_per_unit: calls of ``step()`` per unit (>= 1).
        interpolate: use fractional positions within a unit.
        ramp: ``"span"`` or ``"offset"`` (:data:`RAMPS`).
        hold: what happens once ``step()`` is called past the schedule's end (``total`` units):
            False (the default, as eq. 7's ``t mod (T/M)`` gives) starts a new cycle, so the
            schedule repeats; True holds the value of the schedule's last step (``stop`` for
            ``ratio < 1``), e.g. for training a finished run longer.
    """

    def __init__(
        self,
        total: float,
        *,
        n_cycles: int = 4,
        ratio: float = 0.5,
        shape: str = "linear",
        start: float = 0.0,
        stop: float = 1.0,
        steps_per_unit: int = 1,
        interpolate: bool = True,
        ramp: str = "span",
        hold: bool = False,
    ) -> None:
        _check_ramp(ramp)
        if isinstance(steps_per_unit, bool) or not isinstance(steps_per_unit, (int, np.integer)):
            raise ValueError(f"steps_per_unit must be an integer >= 1, got {steps_per_unit!r}")
        if steps_per_unit < 1:
            raise ValueError(f"steps_per_unit must be >= 1, got {steps_per_unit!r}")
        continuous = bool(interpolate) and steps_per_unit > 1
        validate_schedule(total, n_cycles, ratio, shape, start, stop, continuous=continuous)
        if continuous and n_cycles > total * steps_per_unit:
            raise ValueError(f"n_cycles must be in [1, total x steps_per_unit = "
                             f"{total * steps_per_unit}] (one step per cycle at least), got "
                             f"{n_cycles!r}")
        self.continuous = continuous
        self.total = total
        self.n_cycles = int(n_cycles)
        self.ratio = float(ratio)
        self.shape = shape
        self.start = float(start)
        self.stop = float(stop)
        self.steps_per_unit = int(steps_per_unit)
        self.interpolate = bool(interpolate)
        self.ramp = ramp
        self.hold = bool(hold)
        self.last_step = 0

    @property
    def position(self) -> float:
        """Current position in schedule units (fractional if ``interpolate``)."""
        if self.interpolate:
            return self.last_step / self.steps_per_unit
        return float(self.last_step // self.steps_per_unit)

    @property
    def value(self) -> float:
        """Beta in force for the current step (past the end: see ``hold``)."""
        position = self.position
        if self.hold and position >= self.total:  # the schedule's last step
            last = math.ceil(self.total * self.steps_per_unit) - 1
            position = (last / self.steps_per_unit if self.interpolate
                        else float(last // self.steps_per_unit))
        return float(
            _beta_array(
                np.asarray(position),
                self.total,
                self.n_cycles,
                self.ratio,
                self.shape,
                self.start,
                self.stop,
                self.continuous,
                self.ramp,
            )
        )

    def cycle_steps(self) -> float:
        """The length of one cycle in calls of ``step()`` (fractional if the cycles do not
        divide the run evenly)."""
        period = self.total / self.n_cycles
        return (period if self.continuous else math.ceil(period)) * self.steps_per_unit

    def step(self) -> float:
        """Advance one call; return the new beta."""
        self.last_step += 1
        return self.value

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to resume: the settings and the step counter."""
        return {
            "total": self.total,
            "n_cycles": self.n_cycles,
            "ratio": self.ratio,
            "shape": self.shape,
            "start": self.start,
            "stop": self.stop,
            "steps_per_unit": self.steps_per_unit,
            "interpolate": self.interpolate,
            "ramp": self.ramp,
            "hold": self.hold,
            "last_step": self.last_step,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore a state produced by :meth:`state_dict` (settings are validated again)."""
        continuous = bool(state["interpolate"]) and state["steps_per_unit"] > 1
        validate_schedule(
            state["total"], state["n_cycles"], state["ratio"], state["shape"], state["start"],
            state["stop"], continuous=continuous,
        )
        for key in ("total", "n_cycles", "ratio", "shape", "start", "stop", "steps_per_unit",
                    "interpolate", "last_step"):
            setattr(self, key, state[key])
        self.ramp = state.get("ramp", "span")  # states of earlier versions: eq. 6
        self.hold = bool(state.get("hold", self.hold))  # earlier versions: as constructed
        _check_ramp(self.ramp)
        self.continuous = continuous

    def __repr__(self) -> str:
        return (
            f"BetaScheduler(total={self.total}, n_cycles={self.n_cycles}, ratio={self.ratio}, "
            f"shape={self.shape!r}, start={self.start}, stop={self.stop}, "
            f"steps_per_unit={self.steps_per_unit}, last_step={self.last_step})"
        )


def cyclical_lr_factor(step: float, total_steps: float, n_cycles: int, *,
                       continuous: bool = False) -> float:
    """Multiplier of the base learning rate: a half cosine from 1 to 0 within each cycle.

    ``0.5 * (1 + cos(pi * tau))`` with tau the position in the cycle as in eq. (7), clipped to 1
    (``continuous`` as in :func:`cyclical_beta`).
    """
    validate_schedule(total_steps, n_cycles, continuous=continuous)
    tau = min(float(_tau(np.asarray(float(step)), total_steps, n_cycles, continuous)), 1.0)
    return 0.5 * (1.0 + math.cos(math.pi * tau))


class CyclicalLR(torch.optim.lr_scheduler.LRScheduler):
    """Half-cosine learning rate restarting every cycle, for any ``torch.optim`` optimizer.

    lr = base_lr * 0.5 * (1 + cos(pi * position_in_cycle / cycle_length)). Independent of the
    beta schedule: give it the same ``total``/``n_cycles`` to align the restarts, or not.

    Args:
        optimizer: the optimizer whose parameter groups' ``lr`` is driven.
        total: schedule length in units; ``n_cycles``: number of restarts + 1.
        steps_per_unit: calls of ``step()`` per unit (e.g. batches per epoch); with more than
            one, the lr is a function of the fractional position and a cycle may be shorter
            than a unit (at least one call per cycle).
        interpolate: with ``False`` the lr changes only at unit boundaries (set once per
            epoch, as Fu et al.'s PTB script does: its lowest value is 0.0245 x the base lr
            for cycles of 10 epochs); cycles are then whole numbers of units.
    """

    def __init__(
        self,
        optimizer: torch.optim.Optimizer,
        total: float,
        *,
        n_cycles: int = 4,
        steps_per_unit: int = 1,
        last_epoch: int = -1,
        interpolate: bool = True,
    ) -> None:
        if steps_per_unit < 1:
            raise ValueError(f"steps_per_unit must be >= 1, got {steps_per_unit!r}")
        self.interpolate = bool(interpolate)
        self.continuous = steps_per_unit > 1 and self.interpolate
        if not self.interpolate and n_cycles > total:
            raise ValueError(f"n_cycles must be in [1, total = {total}] when the lr changes only "
                             f"between units (interpolate=False), got {n_cycles!r}")
        validate_schedule(total, n_cycles, continuous=self.continuous)
        if n_cycles > total * steps_per_unit:
            raise ValueError(f"n_cycles must be in [1, total x steps_per_unit = "
                             f"{total * steps_per_unit}] (one step per cycle at least), got "
                             f"{n_cycles!r}")
        self.total = total
        self.n_cycles = int(n_cycles)
        self.steps_per_unit = int(steps_per_unit)
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> list[float]:  # type: ignore[override]
        position = (self.last_epoch / self.steps_per_unit if self.interpolate
                    else float(self.last_epoch // self.steps_per_unit))
        factor = cyclical_lr_factor(position, self.total, self.n_cycles,
                                    continuous=self.continuous)
        return [base * factor for base in self.base_lrs]


class ExponentialDecayLR(torch.optim.lr_scheduler.LRScheduler):
    """lr = base_lr * rate ** (step / decay_steps): TensorFlow's ``exponential_decay``, with
    which the authors' Yelp pre-training scripts decay Adam's lr by 0.99 every 2 epochs
    (``semi/semi_yelp_*_pre.py``: ``decay_rate = 0.99``, ``decay_ep = 2``, not staircase, so
    the lr shrinks a little every step). ``staircase=True`` multiplies by ``rate`` at each
    whole ``decay_steps`` instead. ``step()`` is called once per optimizer step.
    """

    def __init__(self, optimizer: torch.optim.Optimizer, decay_steps: float, *,
                 rate: float = 0.99, staircase: bool = False, last_epoch: int = -1) -> None:
        if not decay_steps > 0:
            raise ValueError(f"decay_steps must be > 0, got {decay_steps!r}")
        if not 0.0 < rate <= 1.0:
            raise ValueError(f"decay_rate must be in (0, 1], got {rate!r}")
        self.decay_steps = float(decay_steps)
        self.rate = float(rate)
        self.staircase = bool(staircase)
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> list[float]:  # type: ignore[override]
        exponent = self.last_epoch / self.decay_steps
        if self.staircase:
            exponent = math.floor(exponent)
        return [base * self.rate ** exponent for base in self.base_lrs]
