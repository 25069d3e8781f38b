"""Training several runs of an experiment, one after the other or as parallel processes.

Every experiment (``reproduce ptb``, ``yelp``, ``dialog``, ``synthetic``) hands its unfinished
``(config, run directory)`` pairs to :func:`train_runs`; ``--jobs N`` runs up to N at once,
each in its own process, the cores split between them.
"""

from __future__ import annotations

import copy
import multiprocessing
import os
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from ..config import Config
from ..errors import UserError
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


def _train_one(config: Config, run: Path, progress: bool | None) -> str:
    """Train (or resume) one run in this process with its config's thread count; a run of
    the same config killed before its first checkpoint is started again."""
    configure_process(config.train.num_threads)
    resume = (run / LAST).is_file()
    restart = not resume and RunDirectory(run).stopped_before_checkpoint(config)
    if restart:
        print(f"cyclevae: {run}: the run stopped before its first checkpoint; starting it "
              "again", file=sys.stderr)
    Trainer(None if resume else config, run, resume=resume, overwrite=restart,
            progress=progress).fit()
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
    """
    if jobs < 1:
        raise UserError(f"--jobs must be >= 1, got {jobs}")
    if jobs == 1 or len(todo) <= 1:
        for config, run in todo:
            _train_one(config, run, progress)
        return
    jobs_todo = assign_threads(todo, jobs, available_cores())
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=jobs, mp_context=context) as pool:
        futures = [pool.submit(_train_one, config, run, False) for config, run in jobs_todo]
        errors = [f.exception() for f in futures]
    for error in errors:
        if error is not None:
            raise error
