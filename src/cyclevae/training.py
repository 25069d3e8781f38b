"""The Trainer: one loop for every model kind, read top to bottom.

    data -> model -> for each epoch: for each batch: beta from the BetaScheduler,
    loss = rec + beta * kl (+ auxiliary losses; losses.beta_vae_loss), backward, clip, Adam
    step, lr step -> evaluate valid/test (cyclevae.evaluation) -> log and checkpoint
    (cyclevae.rundir) -> final evaluation with importance-weighted NLL -> OUT/metrics.json

Resuming restores model, optimizer, schedulers, RNG states and the position inside the epoch,
so an interrupted run finishes with the same numbers as an uninterrupted one. The Trainer
changes no process-wide setting (threads, allocator): see
:func:`cyclevae.runtime.configure_process`.
"""

from __future__ import annotations

import contextlib
import math
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.optim.lr_scheduler import LRScheduler

from .checkpoint import (
    load_checkpoint,
    restore_training_state,
    saved_config,
    saved_epoch,
    saved_labels,
    saved_valid,
    saved_vocabulary,
    swapped_weights,
    training_state,
)
from .config import Config, apply_resume_overrides
from .data.batching import Batch, BatchSource
from .distributed import DistContext, any_flag, barrier, init_distributed, shutdown, sum_floats
from .errors import TrainingInterrupted, UserError
from .evaluation import (
    EvalSettings,
    evaluate_blocks,
    posterior_labels,
    precision_context,
    reports_amortized_block,
    selection_loss,
)
from .families import Family, RunData, RunEvaluator, family_of
from .losses import beta_vae_loss
from .memory import check_parameter_memory
from .models.base import LatentTextModel
from .ops import clip_to_norm_, parameters_grad_norm
from .provenance import git_commit, provenance
from .reporter import Reporter
from .rundir import BEST, LAST, RunDirectory
from .runtime import check_precision, make_adam
from .schedules import BetaScheduler, CyclicalLR, ExponentialDecayLR
from .stopping import EarlyStopping, round_ends, round_steps

__all__ = ["BEST", "LAST", "NonFiniteLoss", "Run", "StepTotals", "Trainer", "TrainingInterrupted",
           "build_run", "make_schedules", "resolve_device", "run_training", "seed_everything"]


class NonFiniteLoss(RuntimeError):
    """A NaN or Inf loss or gradient under ``train.nonfinite = stop``."""


@dataclass
class Progress:
    """Counters saved in every checkpoint."""

    epoch: int = 0  # current epoch (0-based)
    batch: int = 0  # optimizer steps of the current epoch already done
    global_step: int = 0
    skipped: int = 0
    best_valid_nll: float = math.inf
    seconds: float = 0.0  # training wall time so far (excluding evaluation)
    epoch_sums: dict[str, float] = field(default_factory=dict)  # running sums of this epoch
    history: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class StepTotals:
    """One optimizer step's sums, float64 tensors on the device until :meth:`read`: ``loss``,
    ``rec``, ``kl`` (and auxiliary losses) as means per example over the step's batches,
    ``rec_sum``/``kl_sum`` summed over its examples; ``tokens``, its predicted tokens."""

    sums: dict[str, torch.Tensor]
    tokens: int

    def read(self) -> dict[str, float]:
        """The values on the host (one transfer), with ``rec_ppl``, the step's Rec-P:
        exp(reconstruction nats per predicted token)."""
        values = dict(zip(self.sums, torch.stack(list(self.sums.values())).tolist()))
        values["rec_ppl"] = math.exp(min(values["rec_sum"] / max(self.tokens, 1), 700.0))
        return values


def seed_everything(seed: int) -> None:
    """One seed drives Python, NumPy and PyTorch."""
    import random

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def resolve_device(name: str) -> torch.device:
    """``auto`` -> CUDA if available, else CPU."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise UserError(f"config: train.device must be auto, cpu or cuda[:N], got {name!r}") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise UserError(f"config: train.device={name!r} but no CUDA device is available")
    return device


def make_schedules(config: Config, optimizer: torch.optim.Optimizer, steps_per_epoch: int
                   ) -> tuple[BetaScheduler, LRScheduler | None, dict[str, Any]]:
    """The beta scheduler, the lr scheduler (None for a constant lr) and a log record of their
    cycle lengths in optimizer steps. Refuses only what is impossible: fewer optimizer steps
    than cycles (or, without interpolation, than the epochs the cycles need)."""
    epochs, total_steps = config.train.epochs, config.train.epochs * steps_per_epoch

    def span(unit: str) -> tuple[int, int]:
        """(schedule length in its unit, optimizer steps per unit) for ``unit``."""
        return (epochs, steps_per_epoch) if unit == "epoch" else (total_steps, 1)

    s, lr = config.schedule, config.lr_schedule
    if s.cycle_epochs is not None:  # n_cycles unused: cycles of cycle_epochs epochs each
        s = replace(s, n_cycles=1, interpolate=True)
    if lr.cycle_epochs is not None:
        lr = replace(lr, n_cycles=1)
    for key, n_cycles, active in (("schedule", s.n_cycles, True),
                                  ("lr_schedule", lr.n_cycles, lr.kind == "cyclical")):
        if active and n_cycles > total_steps:
            raise UserError(f"config: {key}.n_cycles={n_cycles} is more cycles than the run has "
                            f"optimizer steps ({total_steps} = train.epochs={epochs} x "
                            f"{steps_per_epoch} steps per epoch); each cycle needs at least one")
    total, per_unit = span(s.unit)
    if s.ramp_steps is not None:  # one rise over ramp_steps optimizer steps, whatever T is
        total, per_unit = max(total_steps, s.ramp_steps), 1
        s = replace(s, ratio=s.ramp_steps / total, interpolate=True)
    elif s.cycle_epochs is not None:  # repeating past `total`: cycles of cycle_epochs epochs
        total, per_unit = s.cycle_epochs, steps_per_epoch
    try:
        beta = BetaScheduler(total, n_cycles=s.n_cycles, ratio=s.ratio, shape=s.shape,
                             start=s.start, stop=s.stop, steps_per_unit=per_unit,
                             interpolate=s.interpolate, ramp=s.ramp,
                             # a run trained longer (--resume, larger train.epochs) holds the
                             # last beta; cycles of cycle_epochs repeat by design
                             hold=s.cycle_epochs is None)
    except ValueError as exc:
        raise UserError(f"config: schedule.{exc}") from None
    info: dict[str, Any] = {"kind": "schedule", "step": 0, "steps_per_epoch": steps_per_epoch,
                            "total_steps": total_steps, "beta_cycle_steps": beta.cycle_steps()}
    if s.ramp_steps is not None:
        info.update(beta_cycle_steps=None, beta_ramp_steps=s.ramp_steps)
    lr_schedule = None
    if lr.kind == "cyclical":
        lr_total, lr_per_unit = span(lr.unit)
        if lr.cycle_epochs is not None:  # cycles of cycle_epochs epochs, repeating
            lr_total, lr_per_unit = lr.cycle_epochs, steps_per_epoch
        try:
            lr_schedule = CyclicalLR(optimizer, lr_total, n_cycles=lr.n_cycles,
                                     steps_per_unit=lr_per_unit, interpolate=lr.interpolate)
        except ValueError as exc:
            raise UserError(f"config: lr_schedule.{exc}") from None
        info["lr_cycle_steps"] = lr_total * lr_per_unit / lr.n_cycles
        info["lr_changes"] = "every step" if lr.interpolate else f"every {lr_per_unit} steps"
    elif lr.kind == "exponential":
        lr_schedule = ExponentialDecayLR(optimizer, lr.decay_epochs * steps_per_epoch,
                                         rate=lr.decay_rate, staircase=not lr.interpolate)
        info["lr_decay_steps"] = lr.decay_epochs * steps_per_epoch
    return beta, lr_schedule, info


def _run_config(run: RunDirectory, config: Config | None, resume: bool, overwrite: bool,
                overrides: list[str] | None) -> tuple[Config, dict[str, Any] | None, bool]:
    """The config a run trains with, its resume checkpoint (None for a new run) and whether
    resume overrides changed the saved config."""
    if resume:
        checkpoint = run.resume_checkpoint()
        saved = saved_config(checkpoint)
        updated = apply_resume_overrides(saved, overrides or [])
        run.check_unfinished(checkpoint, updated.train.epochs)
        return updated, checkpoint, updated.to_dict() != saved.to_dict()
    if overrides:
        raise UserError("resume_overrides are for resumed runs; put them in the config")
    if config is None:
        raise UserError("a new run needs a config")
    run.check_new(overwrite)
    return config, None, False


@dataclass
class Run:
    """Everything one training run works with (:func:`build_run`)."""

    config: Config
    directory: RunDirectory
    family: Family
    data: RunData
    model: LatentTextModel
    optimizer: torch.optim.Optimizer
    beta: BetaScheduler
    lr_schedule: CyclicalLR | None
    device: torch.device
    dist: DistContext
    ddp: torch.nn.Module | None
    batches_per_step: int
    steps_per_epoch: int
    state: Progress
    #: the family's own evaluation of the test split at the end (the dialog responses)
    evaluator: RunEvaluator | None
    #: records for a new run's log: schedules, embeddings, leakage ([] when resumed)
    records: list[dict[str, Any]]
    #: the authors' stopping rule (``train.early_stopping``), None when off or without valid
    stopping: EarlyStopping | None
    #: optimizer steps per evaluation round of the stopping rule
    round_steps: int


def build_run(config: Config | None, out: str | Path, *, resume: bool = False,
              overwrite: bool = False, resume_overrides: list[str] | None = None) -> Run:
    """A run from its config (or, on ``resume``, from the checkpoint in ``out``): device and
    processes, seeds, the family's data and model, optimizer, schedules, the output directory
    created (or reopened, the checkpoint's state restored). Arguments as :class:`Trainer`."""
    directory = RunDirectory(out)
    t, checkpoint, config_changed = _run_config(directory, config, resume, overwrite,
                                                resume_overrides)
    family = family_of(t)
    device = resolve_device(t.train.device)
    check_precision(t.train.precision, device)
    dist: DistContext = init_distributed(device)
    if dist.enabled and device.type == "cuda":
        device = torch.device("cuda", dist.local_rank)
    directory.is_main = dist.is_main
    seed_everything(t.train.seed)
    vocab = saved_vocabulary(checkpoint) if checkpoint is not None else None
    data = family.load_data(t, vocab=vocab, labels=None if checkpoint is None
                            else saved_labels(checkpoint))
    if len(data.train) == 0:
        raise UserError(f"{t.data.train}: no sentences left to train on")
    if t.train.response_glove is not None and not Path(t.train.response_glove).is_file():
        raise UserError(f"config: train.response_glove {t.train.response_glove}: GloVe file "
                        "not found (expected 'word v1 .. vd' per line)")

    def make_model() -> LatentTextModel:
        return family.build_model(t.model, len(data.vocab), data.labels)

    check_parameter_memory(make_model, device)  # refuse before allocating
    model = make_model().to(device)
    embeddings = family.initialise(model, t.model, data.vocab) if checkpoint is None else None
    optimizer = make_adam(model.parameters(), t.train.lr)
    batches_per_step = dist.world_size * t.train.accumulate
    steps_per_epoch = len(data.train) // batches_per_step
    if steps_per_epoch < 1:
        raise UserError(
            f"{t.data.train}: {len(data.train)} batches per epoch is fewer than "
            f"the {batches_per_step} needed for one step (processes x train.accumulate)")
    ddp: torch.nn.Module | None = None
    if dist.enabled:
        from torch.nn.parallel import DistributedDataParallel

        ddp = DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None)
    beta, lr_schedule, schedule_info = make_schedules(t, optimizer, steps_per_epoch)
    es = t.train.early_stopping  # the authors' rule: rounds of a fraction of a pass
    stopping = EarlyStopping.from_config(es) if es.enabled else None
    rounds = round_steps(steps_per_epoch, es.round_epochs)
    if stopping is not None and data.valid is None:  # nothing to stop on
        stopping = None
        if dist.is_main and checkpoint is None:
            print("cyclevae: train.early_stopping is off: the run has no valid set "
                  f"(data.valid); it trains for train.epochs={t.train.epochs}", file=sys.stderr)
    if stopping is not None:
        schedule_info["early_stopping_round_steps"] = rounds
    state = Progress()
    records: list[dict[str, Any]] = []
    if checkpoint is not None:
        state = Progress(**restore_training_state(checkpoint, model=model, optimizer=optimizer,
                                                  beta=beta, lr_schedule=lr_schedule,
                                                  stopping=stopping))
        if config_changed:
            directory.write_config(t)  # the changed evaluation settings are what will run
        directory.reopen(state.global_step)
    else:
        directory.create(t, data.vocab, overwrite=overwrite)
        records.append(schedule_info)
        if embeddings is not None:
            records.append({"kind": "embeddings", "step": 0, **embeddings})
        leakage = data.stats.get("leakage")
        if leakage is not None:
            records.append({"kind": "leakage", "step": 0, **leakage})
    barrier(dist)
    return Run(t, directory, family, data, model, optimizer, beta, lr_schedule, device, dist,
               ddp, batches_per_step, steps_per_epoch, state, family.run_evaluator(t, data.vocab),
               records, stopping, rounds)


class Trainer:
    """Trains one model on one corpus as its config says, writing everything into ``out``:
    the loop over a :class:`Run` (:func:`build_run`).

    Args:
        config: the resolved run config (ignored on ``resume``: the saved one is used).
        out: output directory (:class:`~cyclevae.rundir.RunDirectory`).
        resume: continue from ``out/checkpoint_last.pt``.
        overwrite: discard a previous run in ``out``.
        progress: show a progress bar (default: only when stderr is a terminal).
        resume_overrides: ``key=value`` strings for a resumed run: keys of
            :data:`cyclevae.config.RESUME_SETTABLE` may change (and are written back to
            ``config.yaml``), any other key may only repeat its saved value.
    """

    def __init__(self, config: Config | None, out: str | Path, *, resume: bool = False,
                 overwrite: bool = False, progress: bool | None = None,
                 resume_overrides: list[str] | None = None) -> None:
        self.progress = sys.stderr.isatty() if progress is None else progress
        self.reporter = Reporter.for_progress(progress)  # plain lines when not a terminal
        self._stop_signal: int | None = None
        r = build_run(config, out, resume=resume, overwrite=overwrite,
                      resume_overrides=resume_overrides)
        self.config, self.run, self.out = r.config, r.directory, r.directory.path
        self.family, self.data, self.vocab = r.family, r.data, r.data.vocab
        self.model, self.optimizer, self.beta, self.lr_schedule = (r.model, r.optimizer, r.beta,
                                                                   r.lr_schedule)
        self.device, self.dist, self.ddp = r.device, r.dist, r.ddp
        self.batches_per_step, self.steps_per_epoch = r.batches_per_step, r.steps_per_epoch
        self.state, self.evaluator = r.state, r.evaluator
        self.stopping, self.round_steps = r.stopping, r.round_steps
        self.monitor = r.family.run_monitor(self.config)  # the family's own measurements
        self.eval_settings = EvalSettings.from_train_config(self.config.train)
        self.git_commit = git_commit()  # the code of this process's start, not of the run's end
        self.run.open_tensorboard()
        for record in r.records:
            self.run.log(record, 0)
            if not self.dist.is_main:
                continue
            if record["kind"] == "embeddings":
                print(f"cyclevae: {record['found']} of {record['vocab']} vocabulary words "
                      f"initialised from {record['file']} (the others keep their random init)",
                      file=sys.stderr)
            if record["kind"] == "leakage" and record["dropped"]:
                print(f"cyclevae: {record['dropped']} of "
                      f"{record['training_conversations_read']} training conversations "
                      f"also occur in {', '.join(record['against'].values())} (word-set "
                      f"Jaccard > {record['threshold']}): dropped from training",
                      file=sys.stderr)

    def save(self, name: str = LAST) -> None:
        """Write a checkpoint (rank 0 only; the others wait for it)."""
        if self.dist.is_main:
            self.run.save_checkpoint(training_state(
                model=self.model, optimizer=self.optimizer, beta=self.beta,
                lr_schedule=self.lr_schedule, progress=vars(self.state), config=self.config,
                vocab=self.vocab, labels=self.data.labels, stopping=self.stopping), name)
        barrier(self.dist)

    def log(self, record: dict[str, Any]) -> None:
        self.run.log(record, self.state.global_step)

    def evaluate(self, corpus: BatchSource, name: str, iw_samples: int = 0
                 ) -> dict[str, dict[str, Any]]:
        """The metric blocks of one split (:func:`cyclevae.evaluation.evaluate_blocks`)."""
        return evaluate_blocks(self.model, corpus.batches(0, shuffle=False), name,
                               iw_samples=iw_samples, settings=self.eval_settings,
                               device=self.device, progress=self.reporter)

    def _family_metrics(self) -> dict[str, Any]:
        """The family's own metrics of the test split (the dialog CVAE's sampled responses:
        BLEU, A/E-bow, distinct-n); ``{}`` where it has none."""
        if self.evaluator is None or self.data.test is None:
            return {}
        return self.evaluator(self.model, self.data.test, self.device)

    # ----------------------------------------------------------------- the loop
    def train_step(self, batches: list[Batch], beta: float, seeds: list[int] | None = None
                   ) -> StepTotals | None:
        """One optimisation step on a list of batches (gradient accumulation: the step follows
        the mean of the batches' losses). ``seeds``, one per batch, fix the noise of each
        batch. Returns the step's sums, left on the device (:meth:`StepTotals.read` brings
        them to the host), or None if the step was skipped for a non-finite value; the one
        host read of every step is the finiteness check of the loss and gradient norm."""
        t = self.config.train
        model = self.ddp if self.ddp is not None else self.model
        self.model.train()
        self.optimizer.zero_grad(set_to_none=True)
        n = len(batches)
        zero = torch.zeros((), dtype=torch.float64, device=self.device)
        # float64 sums in the order of the batches (as Python floats would add them)
        totals = {"loss": zero, "rec": zero, "kl": zero, "rec_sum": zero, "kl_sum": zero}
        losses = []
        tokens = 0
        for i, batch in enumerate(batches):
            if seeds is not None:
                torch.manual_seed(seeds[i])
            sync = self.ddp is None or i == n - 1
            with contextlib.nullcontext() if sync else self.ddp.no_sync():  # type: ignore[union-attr]
                with precision_context(t.precision, self.device):
                    out = model(batch, beta=beta)
                loss = beta_vae_loss(out.rec.float(), out.kl, beta, kl_per_dim=out.kl_per_dim,
                                     free_bits=t.free_bits, aux=out.aux)
                # backward even on a non-finite loss: under DDP every process must take part
                (loss / n).backward()
            losses.append(loss.detach())
            rec_sum = out.rec.detach().sum().double()
            kl_sum = out.kl.detach().sum().double()
            totals["loss"] = totals["loss"] + loss.detach().double() / n
            totals["rec_sum"] = totals["rec_sum"] + rec_sum
            totals["kl_sum"] = totals["kl_sum"] + kl_sum
            totals["rec"] = totals["rec"] + rec_sum / batch.num_examples / n
            totals["kl"] = totals["kl"] + kl_sum / batch.num_examples / n
            tokens += batch.num_tokens
            for name, value in out.aux.items():  # e.g. the dialog CVAE's bag-of-words loss
                totals[name] = (totals.get(name, zero)
                                + value.detach().sum().double() / batch.num_examples / n)
        params = list(self.model.parameters())
        norm = parameters_grad_norm(params)
        # the step's one read to the host: the gradient norm and whether every loss is finite
        norm_value, losses_finite = torch.stack(
            [norm.double(), torch.isfinite(torch.stack(losses)).all().double()]).tolist()
        problem = None
        if losses_finite != 1.0:
            bad = [v for v in torch.stack(losses).tolist() if not math.isfinite(v)]
            problem = f"loss is {bad[-1]}"
        elif not math.isfinite(norm_value):
            problem = f"gradient norm is {norm_value}"
        else:
            clip_to_norm_(params, t.clip if t.clip > 0 else math.inf, norm, norm_value)
        if any_flag(problem is not None, self.dist):
            _stop_or_skip(self, problem, beta)
            return None
        self.optimizer.step()
        return StepTotals(totals, tokens)

    def _epoch_batches(self, epoch: int) -> list[Batch]:
        """This process's batches of ``epoch``: the seeded global order, cut to a multiple of
        (processes x accumulate), global batch i going to process i % processes."""
        every = self.data.train.batches(epoch, shuffle=True, drop_last=False)
        usable = len(every) // self.batches_per_step * self.batches_per_step
        return every[:usable][self.dist.rank::self.dist.world_size]

    def _batch_seed(self, epoch: int, global_index: int) -> int:
        """Noise (dropout, z samples) of a batch depends only on the seed and the batch, so a
        resumed, accumulated or multi-process run draws exactly the same numbers."""
        # modulo torch's seed range (the value itself for every seed below ~1.8e7)
        return ((self.config.train.seed * 1_000_003 + epoch) * 1_000_003 + global_index) % 2**64

    def fit(self) -> dict[str, Any]:
        """Train to ``train.epochs``, evaluating and checkpointing every epoch; return and write
        ``metrics.json``. Raises :class:`TrainingInterrupted` after a signal (checkpoint saved)."""
        handlers = {s: signal.signal(s, self._on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
        try:
            if self.state.global_step == 0:
                self._observe(self.beta.value)
            while self.state.epoch < self.config.train.epochs and not (
                    self.stopping is not None and self.stopping.stopped):
                self._train_epoch()
            return self._finish()
        finally:
            self.ddp = None  # free DDP's reducer (and its hold on the process group) now
            shutdown(self.dist)
            for s, h in handlers.items():
                signal.signal(s, h)
            self.run.close()

    def _on_signal(self, signum: int, _frame: Any) -> None:
        self._stop_signal = signum
        if self.state.epoch >= self.config.train.epochs:  # no training step left to see it
            self.reporter.final_evaluation_signal(signum, self.out)

    def _train_epoch(self) -> None:
        t, st = self.config.train, self.state
        batches = self._epoch_batches(st.epoch)
        bar = None
        if self.progress and self.dist.is_main:
            from tqdm import tqdm

            bar = tqdm(total=self.steps_per_epoch, initial=st.batch, unit="step", leave=False,
                       desc=f"epoch {st.epoch + 1}/{t.epochs}")
        sums = st.epoch_sums = st.epoch_sums or {"rec": 0.0, "kl": 0.0, "sentences": 0,
                                                 "tokens": 0}
        resumed_tokens = sums["tokens"]
        # the epoch's running sums of Rec and KL stay on the device (float64, added step by
        # step) and are read back when a checkpoint or the epoch record needs them
        running = torch.tensor([sums["rec"], sums["kl"]], dtype=torch.float64, device=self.device)
        started = time.perf_counter()
        # the epoch record carries the beta and lr in force during the epoch's last step (the
        # schedulers have already moved on to the next epoch's first step when it is written)
        beta, lr = self.beta.value, self.optimizer.param_groups[0]["lr"]
        for step in range(st.batch, self.steps_per_epoch):
            if any_flag(self._stop_signal is not None, self.dist):
                st.seconds += time.perf_counter() - started
                sums["rec"], sums["kl"] = running.tolist()
                _checkpoint_and_raise(self, sums)
            local = range(step * t.accumulate, (step + 1) * t.accumulate)
            micro = [batches[j].to(self.device, non_blocking=True) for j in local]
            seeds = [self._batch_seed(st.epoch, j * self.dist.world_size + self.dist.rank)
                     for j in local]
            beta, lr = self.beta.value, self.optimizer.param_groups[0]["lr"]
            result = self.train_step(micro, beta, seeds)
            self.beta.step()
            if self.lr_schedule is not None:
                self.lr_schedule.step()
            st.batch, st.global_step = step + 1, st.global_step + 1
            if result is not None:
                running = running + torch.stack([result.sums["rec_sum"], result.sums["kl_sum"]])
                sums["sentences"] += sum(b.num_examples for b in micro)
            sums["tokens"] += sum(b.num_tokens for b in micro)
            if bar is not None:
                bar.update(1)
                rate = (sums["tokens"] - resumed_tokens) / max(time.perf_counter() - started, 1e-9)
                bar.set_postfix(beta=f"{beta:.3f}", tok_s=f"{rate * self.dist.world_size:.0f}")
            if result is not None and st.global_step % t.log_every == 0:
                values = result.read()  # the step's numbers come to the host only here
                del values["rec_sum"], values["kl_sum"]
                self.log({"kind": "train", "epoch": st.epoch + 1, "step": st.global_step,
                          "beta": beta, "lr": lr, **values})
            if (self.stopping is not None and st.batch < self.steps_per_epoch
                    and round_ends(st.batch, self.steps_per_epoch, self.round_steps)
                    and self._evaluation_round()):
                break  # the rule stopped mid-pass: this pass's record ends the run
        if bar is not None:
            bar.close()
        sums["rec"], sums["kl"] = running.tolist()
        seconds = time.perf_counter() - started
        st.seconds += seconds
        rec, kl, n, tokens = sum_floats([sums["rec"], sums["kl"], sums["sentences"],
                                         sums["tokens"] - resumed_tokens], self.dist)
        n = max(n, 1)
        record: dict[str, Any] = {
            "kind": "epoch", "epoch": st.epoch + 1, "step": st.global_step,
            "beta": beta, "lr": lr, "seconds": seconds, "tokens_per_s": tokens / max(seconds, 1e-9),
            "train": ({"rec": rec / n, "kl": kl / n, "elbo": -(rec + kl) / n}
                      if self.model.stochastic
                      else {"rec": rec / n, "kl": None, "elbo": None}),
        }
        if self.dist.is_main and ((st.epoch + 1) % t.eval_every == 0 or st.epoch + 1 == t.epochs
                                  or self.stopping is not None):
            for split, corpus in (("valid", self.data.valid), ("test", self.data.test)):
                if corpus is not None:
                    record.update(self.evaluate(corpus, split))
        if self.stopping is not None and not self.stopping.stopped:  # a round ends the pass
            self._stopping_round(record)
        st.history.append(record)
        st.epoch, st.batch, st.epoch_sums = st.epoch + 1, 0, {}
        self.log(record)
        self._observe(beta)
        is_best = "valid" in record and selection_loss(record["valid"]) < st.best_valid_nll
        if is_best:
            st.best_valid_nll = selection_loss(record["valid"])
        self.save(LAST)
        if any_flag(is_best, self.dist):
            self.save(BEST)
        if self.dist.is_main:
            self.reporter.line(_summary(record, t.epochs, seconds))

    def _observe(self, beta: float) -> None:
        """Log the family's measurements of the model as it is now (rank 0;
        :meth:`cyclevae.families.Family.run_monitor`), ``beta`` that of the last update."""
        if self.monitor is not None and self.dist.is_main:
            for record in self.monitor(self.model, self.state.global_step, beta):
                self.log(record)

    def _stopping_round(self, record: dict[str, Any]) -> bool:
        """Count one round of the stopping rule on ``record``'s valid loss (rank 0 evaluates
        and decides, the others follow); its state goes into ``record``. Returns whether the
        round is the best so far."""
        assert self.stopping is not None
        improved = False
        if self.dist.is_main:
            improved = self.stopping.update(selection_loss(record["valid"]))
            record["early_stopping"] = {**self.stopping.state_dict(), "improved": improved}
        self.stopping.stopped = any_flag(self.stopping.stopped, self.dist)
        return any_flag(improved, self.dist)

    def _evaluation_round(self) -> bool:
        """A round of ``train.early_stopping`` that ends inside a pass: valid evaluation, the
        rule, a ``round`` record (also kept in the history, so a best checkpoint saved here
        knows its valid numbers), the best checkpoint if it improved, the last one unless the
        rule stopped (the pass's record and checkpoint follow then). Returns whether it stopped."""
        st = self.state
        record: dict[str, Any] = {"kind": "round", "epoch": st.epoch + 1, "step": st.global_step}
        if self.dist.is_main:
            record.update(self.evaluate(self.data.valid, "valid"))
        improved = self._stopping_round(record)
        if improved and "valid" in record:
            st.best_valid_nll = selection_loss(record["valid"])
        st.history.append(record)
        self.log(record)
        if improved:
            self.save(BEST)
        if not self.stopping.stopped:  # type: ignore[union-attr]
            self.save(LAST)
        return self.stopping.stopped  # type: ignore[union-attr]

    def _finish(self) -> dict[str, Any]:
        t, st = self.config.train, self.state
        if not self.dist.is_main:
            barrier(self.dist)
            return {}
        last = st.history[-1] if st.history else {}
        metrics = _run_summary(self, last)
        if self.data.test is not None:  # IW-NLL only with the reported q
            metrics.update(self.evaluate(self.data.test, "test", iw_samples=t.iw_samples))
            responses = self._family_metrics()  # dialog: BLEU, A/E-bow, distinct
            metrics["test"].update(responses)
            best = self.out / BEST
            if best.is_file():
                metrics["best"] = _best_checkpoint_metrics(self, best, last)
                if responses and "test" in metrics["best"]:
                    if metrics["best"]["epoch"] != st.epoch:  # other weights than the last
                        responses = _with_weights(self, best, self._family_metrics)
                    metrics["best"]["test"] = {**metrics["best"]["test"], **responses}
        metrics["processes"] = self.dist.world_size
        self.run.write_metrics(metrics)
        barrier(self.dist)
        self.log({"kind": "final", "step": st.global_step,
                  **{k: metrics[k] for k in ("valid", "test") if k in metrics}})
        return metrics


def _stop_or_skip(trainer: Trainer, problem: str | None, beta: float) -> None:
    """After a non-finite loss or gradient: stop (``train.nonfinite: stop``, or weights
    already broken) or skip the step (counted and logged)."""
    st = trainer.state
    message = (f"non-finite value at step {st.global_step + 1} (epoch {st.epoch + 1}, step "
               f"{st.batch + 1} of the epoch, beta {beta:.4g}): "
               f"{problem or 'on another process'}")
    bad_weight = next((name for name, p in trainer.model.named_parameters()
                       if not bool(torch.isfinite(p).all())), None)
    if bad_weight is not None:  # skipping batches cannot repair the weights
        message += f"; parameter {bad_weight} is non-finite"
    if trainer.config.train.nonfinite == "stop" or bad_weight is not None:
        raise NonFiniteLoss(f"{message}; {trainer.run.last_checkpoint_note()}")
    trainer.optimizer.zero_grad(set_to_none=True)
    st.skipped += 1
    trainer.log({"kind": "skipped", "step": st.global_step + 1, "message": message})


def _checkpoint_and_raise(trainer: Trainer, sums: dict[str, float]) -> None:
    """Checkpoint mid-epoch after a signal and raise :class:`TrainingInterrupted`."""
    st = trainer.state
    if trainer.dist.enabled:  # every process resumes with an equal share of the sums
        keys = ("rec", "kl", "sentences", "tokens")
        totals = sum_floats([sums[k] for k in keys], trainer.dist)
        sums.update({k: v / trainer.dist.world_size for k, v in zip(keys, totals)})
    trainer.save()
    name = signal.Signals(trainer._stop_signal).name if trainer._stop_signal else "signal"
    raise TrainingInterrupted(
        f"{name} received: checkpoint written to {trainer.out / LAST} at epoch {st.epoch + 1}, "
        f"step {st.batch} of {trainer.steps_per_epoch}; continue with "
        f"`cyclevae train --resume --out {trainer.out}`")


def _run_summary(trainer: Trainer, last: dict[str, Any]) -> dict[str, Any]:
    """The metrics.json fields other than the final test evaluation."""
    st = trainer.state
    metrics: dict[str, Any] = {
        "config": trainer.config.to_dict(), "epochs": st.epoch, "steps": st.global_step,
        "skipped_batches": st.skipped, "seconds_per_epoch": st.seconds / max(st.epoch, 1),
        "tokens_per_s": last.get("tokens_per_s"), "train": last.get("train"),
        "valid": last.get("valid"), "data": trainer.data.stats,
        "vocab_size": len(trainer.vocab),
        "posteriors": posterior_labels(trainer.model, ("valid", "test")),
        **provenance(trainer.git_commit, trainer.device),
    }
    if reports_amortized_block(trainer.model):
        metrics["valid_amortized"] = last.get("valid_amortized")
    if trainer.stopping is not None:
        metrics["early_stopping"] = {**trainer.stopping.state_dict(),
                                     "round_steps": trainer.round_steps}
    return metrics


def _summary(record: dict[str, Any], epochs: int, seconds: float) -> str:
    """One line per epoch for the terminal."""
    train = record["train"]
    line = f"epoch {record['epoch']}/{epochs}: train rec {train['rec']:.2f}"
    if train.get("kl") is not None:
        line += f" kl {train['kl']:.3f}"
    valid = record.get("valid")
    if valid and valid.get("elbo") is not None:
        line += f" | valid elbo {valid['elbo']:.2f} ppl {valid['ppl']:.2f}"
    elif valid:
        line += f" | valid rec {valid['rec']:.2f} rec ppl {valid['rec_ppl']:.2f}"
    return line + f" | {seconds:.0f}s"


def _best_checkpoint_metrics(trainer: Trainer, path: Path, last: dict[str, Any]
                             ) -> dict[str, Any]:
    """Test metrics (no IW) of the best-on-valid checkpoint. When it is the last epoch and
    that epoch was evaluated on test, its record is reused: evaluation is seeded, so a second
    pass over the same weights would only repeat the same numbers."""
    ckpt = load_checkpoint(path, map_location=trainer.device)
    epoch = saved_epoch(ckpt)
    out: dict[str, Any] = {"epoch": epoch, "valid": saved_valid(ckpt)}
    wanted = ["test"] + (["test_amortized"] if reports_amortized_block(trainer.model) else [])
    if epoch == trainer.state.epoch and all(key in last for key in wanted):
        return {**out, **{key: last[key] for key in wanted}}
    with swapped_weights(trainer.model, ckpt):
        out.update(trainer.evaluate(trainer.data.test, "test"))
    return out


def _with_weights(trainer: Trainer, path: Path, fn: Callable[[], dict[str, Any]]
                  ) -> dict[str, Any]:
    """``fn()`` with the weights of the checkpoint ``path`` loaded, the current ones restored
    afterwards."""
    with swapped_weights(trainer.model, load_checkpoint(path, map_location=trainer.device)):
        return fn()


def run_training(config: Config, out: str | Path, *, resume: bool = False,
                 overwrite: bool = False, progress: bool | None = None) -> dict[str, Any]:
    """Convenience wrapper: build a :class:`Trainer` and ``fit`` it."""
    return Trainer(config, out, resume=resume, overwrite=overwrite, progress=progress).fit()
