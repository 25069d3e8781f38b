"""The cyclical beta schedule in a Hugging Face Transformers ``Trainer``: :class:`BetaCallback`.

Usage (``pip install 'cyclevae[transformers]'``)::

    from cyclevae.integrations.transformers import BetaCallback
    trainer = transformers.Trainer(model=model, args=args, callbacks=[BetaCallback(n_cycles=4)])

The model (any ``torch.nn.Module`` the Trainer accepts) declares ``self.beta = 0.0`` in
``__init__`` and uses it in the loss it returns, e.g. ``loss = (rec + self.beta * kl).mean()``
in ``forward``. Before every optimizer step the callback sets ``model.beta`` (a Python float,
on the model given to the Trainer) to the beta in force; all the micro-batches of a step under
gradient accumulation see the same beta. Each training log record (the ones with ``loss``)
gets ``beta``, the beta of the last step, in the ``logs`` that later callbacks (the progress
bar) see and in ``trainer.state.log_history``; reporting integrations such as TensorBoard run
before user callbacks and do not see it.

The schedule is a function of ``state.global_step``, the Trainer's optimizer-step counter,
which Trainer checkpoints save: ``trainer.train(resume_from_checkpoint=...)`` with the same
callback continues the schedule exactly. ``total=None`` takes the run's length,
``state.max_steps``. The callback is also an ``ExportableState``: its settings are written to
``trainer_state.json`` (``stateful_callbacks``), and with
``TrainingArguments(restore_callback_states_from_checkpoint=True)`` they replace the ones given
to the constructor when resuming.
"""

from __future__ import annotations

from typing import Any

try:
    from transformers import TrainerCallback, TrainerControl, TrainerState, TrainingArguments
    from transformers.trainer_callback import ExportableState
except ImportError:
    from ._common import missing_framework

    raise missing_framework("transformers", "transformers") from None

from ..schedules import BetaScheduler
from ._common import ScheduleHolder, beta_at, check_attribute, run_total

__all__ = ["BetaCallback"]


class BetaCallback(ScheduleHolder, TrainerCallback, ExportableState):
    """Sets ``model.<attribute>`` to the scheduled beta before every optimizer step.

    Args:
        total: schedule length T in optimizer steps (or in units of ``steps_per_unit``
            optimizer steps); ``None`` = the whole run, ``state.max_steps`` optimizer steps.
        n_cycles, ratio, shape, start, stop, steps_per_unit, interpolate: as in
            :class:`cyclevae.schedules.BetaScheduler` (M = 4 cycles, R = 0.5 by default).
        attribute: name of the float attribute of the model that receives beta; the model must
            define it (an ``AttributeError`` at the start of training otherwise).
        log_name: key under which beta is added to the training log records (``None``: not
            logged).
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
    ) -> None:
        self._init_schedule(total, {
            "n_cycles": n_cycles, "ratio": ratio, "shape": shape, "start": start, "stop": stop,
            "steps_per_unit": steps_per_unit, "interpolate": interpolate,
        }, attribute, log_name)

    def state(self) -> dict[str, Any]:
        """``ExportableState``: the constructor arguments (with the resolved ``total``)."""
        return {"args": {"total": self.total, **self.settings, "attribute": self.attribute,
                         "log_name": self.log_name},
                "attributes": {}}

    def on_train_begin(self, args: TrainingArguments, state: TrainerState,
                       control: TrainerControl, model: Any = None, **kwargs: Any) -> None:
        """Build the schedule from the run's length if needed; check the model's attribute."""
        check_attribute(model, self.attribute, "BetaCallback")
        if self.scheduler is None:
            self.total = run_total(state.max_steps, self.settings["steps_per_unit"])
            self.scheduler = BetaScheduler(self.total, **self.settings)

    def on_step_begin(self, args: TrainingArguments, state: TrainerState,
                      control: TrainerControl, model: Any = None, **kwargs: Any) -> None:
        """Set the model's beta for the optimizer step ``state.global_step``."""
        assert self.scheduler is not None  # built in on_train_begin
        setattr(model, self.attribute, beta_at(self.scheduler, state.global_step))

    def on_log(self, args: TrainingArguments, state: TrainerState, control: TrainerControl,
               logs: dict[str, float] | None = None, **kwargs: Any) -> None:
        """Add the last step's beta to a training log record."""
        if not self.log_name or logs is None or "loss" not in logs or self.scheduler is None:
            return
        beta = beta_at(self.scheduler, max(state.global_step - 1, 0))
        logs[self.log_name] = beta
        if state.log_history and state.log_history[-1].get("step") == state.global_step:
            state.log_history[-1].setdefault(self.log_name, beta)
