"""What both framework callbacks share: the schedule settings and the beta at a step."""

from __future__ import annotations

from typing import Any

from ..schedules import BetaScheduler, validate_schedule

#: The :class:`~cyclevae.schedules.BetaScheduler` settings a callback accepts besides ``total``.
SCHEDULE_KEYS = ("n_cycles", "ratio", "shape", "start", "stop", "steps_per_unit", "interpolate")


def missing_framework(package: str, extra: str) -> ImportError:
    """The error raised when a framework's integration is imported without the framework."""
    return ImportError(f"cyclevae.integrations.{extra} needs the {package!r} package: "
                       f"pip install 'cyclevae[{extra}]'")


def check_settings(total: float | None, settings: dict[str, Any]) -> None:
    """Validate schedule settings early (``ValueError`` naming the argument). With
    ``total=None`` (taken from the run later) everything but the length is checked."""
    if total is not None:
        BetaScheduler(total, **settings)
        return
    n_cycles = settings["n_cycles"]
    validate_schedule(n_cycles if isinstance(n_cycles, int) and n_cycles >= 1 else 1, n_cycles,
                      settings["ratio"], settings["shape"], settings["start"], settings["stop"])


def check_attribute(model: object, attribute: str, owner: str) -> None:
    """Refuse a model that does not declare the beta attribute (a misspelt name would
    otherwise set a new attribute that the loss never reads)."""
    if not hasattr(model, attribute):
        raise AttributeError(
            f"{type(model).__name__} has no attribute {attribute!r}: {owner} sets "
            f"model.{attribute} to the beta in force before every training step; define "
            f"self.{attribute} = 0.0 in __init__ and use it in the loss (or pass "
            f"attribute='NAME')")


def run_total(steps: int, steps_per_unit: int) -> float:
    """A whole run of ``steps`` optimizer steps in schedule units (an int when it divides)."""
    steps = int(steps)
    return steps // steps_per_unit if steps % steps_per_unit == 0 else steps / steps_per_unit


def beta_at(scheduler: BetaScheduler, step: int) -> float:
    """Beta in force at optimizer step ``step`` (0-based): the scheduler is moved there."""
    scheduler.last_step = int(step)
    return scheduler.value


def scheduler_from_state(state: dict[str, Any]) -> BetaScheduler:
    """A :class:`BetaScheduler` equal to the one whose ``state_dict()`` is ``state``."""
    scheduler = BetaScheduler(state["total"], **{key: state[key] for key in SCHEDULE_KEYS})
    scheduler.load_state_dict(state)
    return scheduler


class ScheduleHolder:
    """The schedule state both callbacks keep: validated settings, the run length (``None``
    until training starts), the attribute set on the model, and the current beta."""

    scheduler: BetaScheduler | None

    def _init_schedule(self, total: float | None, settings: dict[str, Any], attribute: str,
                       log_name: str | None) -> None:
        check_settings(total, settings)
        self.settings = settings
        self.total = total
        self.attribute = attribute
        self.log_name = log_name
        #: The schedule, built when training starts (or restored from a checkpoint).
        self.scheduler = None if total is None else BetaScheduler(total, **settings)

    @property
    def beta(self) -> float:
        """The beta set on the model for the current (or last) training step."""
        if self.scheduler is None:
            raise RuntimeError("BetaCallback: training has not started")
        return self.scheduler.value
