"""Training several runs of an experiment, one after the other or as parallel processes.

Every experiment (``reproduce ptb``, ``yelp``, ``dialog``, ``synthetic``) hands its unfinished
``(config, run directory)`` pairs to :func:`train_runs`; ``--jobs N`` runs up to N at once,
each in its own process, the cores split between them. SIGINT or SIGTERM stops the whole
experiment in either case: the runs in progress write their mid-epoch checkpoints and no
further run starts (:class:`cyclevae.errors.TrainingInterrupted`; rerunning the command
resumes them).
"""

from __future__ import annotations

import copy
import multiprocessing
import os
import signal
import sys
import threading
from concurrent.futures import Future, ProcessPoolExecutor, wait
from pathlib import Path
from typing import Any

from ..config import Config
from ..errors import TrainingInterrupted, UserError
from ..rundir import LAST, RunDirectory
from ..runtime import configure_process
from ..training import Trainer

__all__ = ["assign_threads", "available_cores", "run_dir_name", "train_runs"]


def run_dir_name(row: str, seed: int) -> str:
    """``row`` for seed 0 (the committed rows), ``row-seedS`` for the others, so that
    ``--seeds 0,1,2`` reuses a finished seed-0 run."""
    return row if seed == 0 else f"{row}-seed{seed}"


def available_cores() -> int:
    """CPU cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


#: in a worker process of :func:`train_runs`: the parent's event, set once a signal has
#: arrived there, and the signals the worker itself received outside a run's training loop
_STOP: Any = None
_SIGNALLED: list[int] = []


def _note_signal(signum: int, _frame: Any) -> None:
    _SIGNALLED.append(signum)


def _init_worker(stop: Any) -> None:
    """Worker start-up: keep the parent's stop event; outside a run's training loop (which
    installs its own handlers, checkpointing first) a signal is only noted, so that an idle
    or starting worker neither dies (breaking the pool) nor starts training."""
    global _STOP
    _STOP = stop
    for s in (signal.SIGINT, signal.SIGTERM):
        signal.signal(s, _note_signal)


def _stopped() -> bool:
    return bool(_SIGNALLED) or (_STOP is not None and _STOP.is_set())


def _train_one(config: Config, run: Path, progress: bool | None) -> str | None:
    """Train (or resume) one run in this process with its config's thread count; a run of
    the same config killed before its first checkpoint is started again. In a worker of a
    stopped pool (:func:`train_runs`) nothing is trained: None."""
    if _stopped():
        return None
    configure_process(config.train.num_threads)
    resume = (run / LAST).is_file()
    restart = not resume and RunDirectory(run).stopped_before_checkpoint(config)
    if restart:
        print(f"cyclevae: {run}: the run stopped before its first checkpoint; starting it "
              "again", file=sys.stderr)
    trainer = Trainer(None if resume else config, run, resume=resume, overwrite=restart,
                      progress=progress)
    if _stopped():  # a signal while the run was being built: leave it for the next call
        trainer.run.close()
        return None
    trainer.fit()
    return str(run)


def assign_threads(todo: list[tuple[Config, Path]], jobs: int, cores: int
                   ) -> list[tuple[Config, Path]]:
    """Copies of the configs with ``train.num_threads = max(1, cores // jobs)`` where it is
    unset (an explicit value is kept)."""
    threads = max(1, cores // jobs)
    assigned = []
    for config, run in todo:
        if config.train.num_threads is None:
            config = copy.deepcopy(config)
            config.train.num_threads = threads
        assigned.append((config, run))
    return assigned


def train_runs(todo: list[tuple[Config, Path]], *, jobs: int = 1,
               progress: bool | None = None) -> None:
    """Train ``(config, run directory)`` pairs, resuming those with a checkpoint.

    ``jobs == 1``: one after the other in this process. ``jobs > 1``: up to ``jobs`` at once,
    each in a fresh process (``spawn``), the cores split between them: a run whose
    ``train.num_threads`` is unset gets ``max(1, cores // jobs)`` threads (written to its
    config); one set explicitly keeps its value. The first failure is raised once the running
    jobs have ended; runs already finished stay finished (and are reused by the next call).

    SIGINT or SIGTERM (to this process or its process group) while ``jobs > 1`` runs: no
    further run starts, the signal is passed on to the workers, the runs in progress write
    their mid-epoch checkpoints, and :class:`TrainingInterrupted` is raised once they have
    (one line naming them; the same call again resumes them).
    """
    if jobs < 1:
        raise UserError(f"--jobs must be >= 1, got {jobs}")
    if jobs == 1 or len(todo) <= 1:
        for config, run in todo:
            _train_one(config, run, progress)
        return
    jobs_todo = assign_threads(todo, jobs, available_cores())
    context = multiprocessing.get_context("spawn")
    stop = context.Event()
    received: list[int] = []
    futures: list[Future[str | None]] = []

    def on_signal(signum: int, _frame: Any) -> None:
        # stop handing out runs and pass the signal on to the workers (a signal sent to the
        # parent alone, e.g. `kill -INT PID`, reaches no worker; a second one is harmless:
        # the Trainer only notes it)
        received.append(signum)
        stop.set()
        for future in futures:
            future.cancel()
        for child in multiprocessing.active_children():
            try:
                os.kill(child.pid, signum)  # type: ignore[arg-type]
            except ProcessLookupError:
                pass

    main = threading.current_thread() is threading.main_thread()
    handlers = ({s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
                if main else {})
    try:
        with ProcessPoolExecutor(max_workers=jobs, mp_context=context,
                                 initializer=_init_worker, initargs=(stop,)) as pool:
            futures += [pool.submit(_train_one, config, run, False)
                        for config, run in jobs_todo]
            if received:  # a signal before the last submission: cancel those too
                on_signal(received[0], None)
            wait(futures)
    finally:
        for s, h in handlers.items():
            signal.signal(s, h)
    errors = [f.exception() for f in futures if not f.cancelled()]
    untouched = sum(f.cancelled() or (f.exception() is None and f.result() is None)
                    for f in futures)
    if received or untouched:  # untouched alone: a worker was signalled, not this process
        checkpointed = [str(run) for (_, run), f in zip(jobs_todo, futures)
                        if not f.cancelled() and isinstance(f.exception(), TrainingInterrupted)]
        name = signal.Signals(received[0]).name if received else "a worker's signal"
        raise TrainingInterrupted(
            f"{name} received: checkpoint written by "
            f"{len(checkpointed)} run(s) in progress ({', '.join(checkpointed) or 'none'}), "
            f"{untouched} run(s) not started; run the same command again to continue")
    for error in errors:
        if error is not None:
            raise error
