"""The cyclical beta schedule in a Lightning ``Trainer``: :class:`BetaCallback`.

Usage (``pip install 'cyclevae[lightning]'``)::

    from cyclevae.integrations.lightning import BetaCallback
    trainer = lightning.Trainer(callbacks=[BetaCallback(n_cycles=4, ratio=0.5)], ...)

The LightningModule declares ``self.beta = 0.0`` in ``__init__`` and uses it in its loss, e.g.
``loss = (rec + self.beta * kl).mean()`` in ``training_step``. Before every training batch the
callback sets ``module.beta`` (a Python float) to the beta in force and logs it as ``beta``.

The schedule counts optimizer steps, ``trainer.global_step`` (with gradient accumulation all the
micro-batches of one step see the same beta); ``total=None`` takes the run's length in
optimizer steps, ``trainer.estimated_stepping_batches``. The schedule's settings and position
are saved in Lightning checkpoints (the callback's ``state_dict``) and restored from them, so
``trainer.fit(model, ckpt_path=...)`` continues the schedule exactly where it stopped.
Validation and test steps see the beta of the last training step.

It subclasses ``lightning.pytorch.Callback`` if the ``lightning`` package is installed, else
``pytorch_lightning.Callback``; the Trainers of both packages run it (tested).
"""

from __future__ import annotations

from typing import Any

try:
    from lightning.pytorch import Callback, LightningModule, Trainer
except ImportError:  # the standalone package
    try:
        from pytorch_lightning import Callback, LightningModule, Trainer
    except ImportError:
        from ._common import missing_framework

        raise missing_framework("lightning", "lightning") from None

from ..schedules import BetaScheduler
from ._common import (
    SCHEDULE_KEYS,
    ScheduleHolder,
    beta_at,
    check_attribute,
    run_total,
    scheduler_from_state,
)

__all__ = ["BetaCallback"]


class BetaCallback(ScheduleHolder, Callback):
    """Sets ``module.<attribute>`` to the scheduled beta before every training batch.

    Args:
        total: schedule length T in optimizer steps (or in units of ``steps_per_unit``
            optimizer steps); ``None`` = the whole run, ``trainer.estimated_stepping_batches``
            optimizer steps.
        n_cycles, ratio, shape, start, stop, steps_per_unit, interpolate: as in
            :class:`cyclevae.schedules.BetaScheduler` (M = 4 cycles, R = 0.5 by default).
        attribute: name of the float attribute of the LightningModule that receives beta; the
            module must define it (an ``AttributeError`` at the start of training otherwise).
        log_name: name under which beta is logged every step (``None``: not logged).
        prog_bar: also show beta in the progress bar.
    """

    def __init__(
        self,
        total: float | None = None,
        *,
        n_cycles: int = 4,
        ratio: float = 0.5,
        shape: str = "linear",
        start: float = 0.0,
        stop: float = 1.0,
        steps_per_unit: int = 1,
        interpolate: bool = True,
        attribute: str = "beta",
        log_name: str | None = "beta",
        prog_bar: bool = False,
    ) -> None:
        super().__init__()
        self._init_schedule(total, {
            "n_cycles": n_cycles, "ratio": ratio, "shape": shape, "start": start, "stop": stop,
            "steps_per_unit": steps_per_unit, "interpolate": interpolate,
        }, attribute, log_name)
        self.prog_bar = prog_bar

    def on_train_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        """Build the schedule from the run's length if needed; check the module's attribute."""
        check_attribute(pl_module, self.attribute, "BetaCallback")
        if self.scheduler is None:
            total = trainer.estimated_stepping_batches
            if total == float("inf"):
                raise ValueError("BetaCallback: the run's length is unknown (no max_steps and "
                                 "a data loader without a length); pass total=")
            self.total = run_total(total, self.settings["steps_per_unit"])
            self.scheduler = BetaScheduler(self.total, **self.settings)

    def on_train_batch_start(self, trainer: Trainer, pl_module: LightningModule, batch: Any,
                             batch_idx: int) -> None:
        """Set the module's beta for this batch's optimizer step and log it."""
        assert self.scheduler is not None  # built in on_train_start
        beta = beta_at(self.scheduler, trainer.global_step)
        setattr(pl_module, self.attribute, beta)
        if self.log_name:
            pl_module.log(self.log_name, beta, on_step=True, on_epoch=False,
                          prog_bar=self.prog_bar, batch_size=1)

    def on_train_batch_end(self, trainer: Trainer, pl_module: LightningModule, outputs: Any,
                           batch: Any, batch_idx: int) -> None:
        """Keep the saved position equal to the next step (checkpoints are written here)."""
        if self.scheduler is not None:
            self.scheduler.last_step = trainer.global_step

    def state_dict(self) -> dict[str, Any]:
        """The schedule's ``BetaScheduler.state_dict()`` (settings and position; empty before
        the schedule is built)."""
        return {} if self.scheduler is None else self.scheduler.state_dict()

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore the schedule saved by :meth:`state_dict` (its settings replace the ones given
        to the constructor, as ``torch.optim`` schedulers do)."""
        if state_dict:
            self.scheduler = scheduler_from_state(state_dict)
            self.total = self.scheduler.total
            self.settings = {key: state_dict[key] for key in SCHEDULE_KEYS}
