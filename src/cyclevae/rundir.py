"""A run's output directory: what may be written where, the JSONL log and TensorBoard.

Layout of ``OUT/``: ``config.yaml`` (the resolved config, rewritten when ``--resume`` changes an
evaluation setting), ``vocab.txt``, ``log.jsonl`` (one JSON record per line: ``schedule`` at
the start, ``train`` every ``train.log_every`` steps, ``epoch``, ``skipped``, ``final``),
``checkpoint_last.pt``, ``checkpoint_best.pt``, ``metrics.json``, ``.lock`` (who trains here:
:mod:`cyclevae.runlock`) and, if the ``tensorboard`` package is installed, ``tensorboard/``.

Policy: a new run refuses a directory holding another run unless told to ``overwrite`` it (then
the previous run's files are removed once the new run's inputs are known to be good); a resumed
run needs ``checkpoint_last.pt``, drops the log records its checkpoint does not know of, and
removes temporaries left by a kill during an atomic write. A run killed before its first
checkpoint leaves only its start (config, vocabulary, a partial log); an experiment that starts
the same config there again may replace it (:meth:`RunDirectory.stopped_before_checkpoint`).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from .atomic import remove_stale_temporaries, write_json_atomic, write_text_atomic
from .checkpoint import (
    check_vocabulary_file,
    load_checkpoint,
    save_checkpoint,
    saved_epoch,
    saved_tokens,
)
from .config import RESUME_SETTABLE, Config, load_config, save_config
from .data.vocab import Vocabulary
from .errors import UserError
from .runlock import RunLock

__all__ = ["BEST", "LAST", "RunDirectory"]

LAST = "checkpoint_last.pt"
BEST = "checkpoint_best.pt"
CONFIG = "config.yaml"
VOCAB = "vocab.txt"
LOG = "log.jsonl"
METRICS = "metrics.json"


class RunDirectory:
    """The output directory ``path`` of one run. Only the main process (``is_main``) writes."""

    def __init__(self, path: str | Path, *, is_main: bool = True) -> None:
        self.path = Path(path)
        self.is_main = is_main
        self.log_path = self.path / LOG
        self._tensorboard: Any = None
        self.lock = RunLock(self.path)  # one training at a time (taken before any write)

    # ----------------------------------------------------------------- policy
    def resume_checkpoint(self) -> dict[str, Any]:
        """The checkpoint a resumed run continues from (its vocabulary file checked)."""
        last = self.path / LAST
        self.lock.check_free()
        if not last.is_file():
            hint = ("; the run stopped before its first checkpoint: start it again with "
                    "--overwrite" if (self.path / CONFIG).is_file() else "")
            raise UserError(f"{self.path}: nothing to resume (no {LAST}){hint}")
        checkpoint = load_checkpoint(last)
        check_vocabulary_file(self.path / VOCAB, saved_tokens(checkpoint), last)
        return checkpoint

    def check_unfinished(self, checkpoint: dict[str, Any], epochs: int) -> None:
        """Refuse to resume a finished run (its checkpoint at ``epochs`` and ``metrics.json``
        written): there is nothing left to do but to train it longer, which a larger
        ``train.epochs`` asks for."""
        done = saved_epoch(checkpoint)
        if done >= epochs and (self.path / METRICS).is_file():
            raise UserError(f"{self.path}: the run is finished ({done} of {epochs} epochs, "
                            f"{METRICS} written); to train it longer: cyclevae train --resume "
                            f"--out {self.path} --set train.epochs=N with N > {done}")

    def check_new(self, overwrite: bool) -> None:
        """Refuse a path that is a file, or a directory holding another run (unless
        ``overwrite``)."""
        if self.path.exists() and not self.path.is_dir():
            raise UserError(f"{self.path}: output path exists and is not a directory")
        self.lock.check_free()
        holds_run = any((self.path / name).exists() for name in (LAST, CONFIG, LOG))
        if holds_run and not overwrite:
            raise UserError(
                f"{self.path}: output directory holds another run; pass --resume to continue "
                "it or --overwrite to replace it"
            )

    def last_checkpoint_note(self) -> str:
        """Where a stopped run can continue from: the last checkpoint if one was written, else
        a note that there is none and that replacing the directory loses nothing."""
        if (self.path / LAST).is_file():
            return (f"last good checkpoint kept in {self.path / LAST} (continue with "
                    f"`cyclevae train --resume --out {self.path}`)")
        return (f"no checkpoint was written yet (the first is written at the end of epoch 1), "
                f"so {self.path} holds only this run's start: fix the cause and start again "
                f"with --overwrite, which loses nothing")

    def stopped_before_checkpoint(self, config: Config) -> bool:
        """True when the directory holds only the start of a run of ``config`` (its
        ``config.yaml`` equal to ``config`` but for :data:`RESUME_SETTABLE` keys, and no
        checkpoint or metrics): a fresh start of the same run loses nothing by replacing it.
        False for anything else, including an unreadable or different config."""
        if any((self.path / name).exists() for name in (LAST, BEST, METRICS)):
            return False
        try:
            saved = load_config(self.path / CONFIG).to_dict()
        except UserError:  # missing, unreadable or not a config of today's keys
            return False
        wanted = config.to_dict()
        for key in RESUME_SETTABLE:
            section, name = key.split(".")
            saved.get(section, {}).pop(name, None)
            wanted.get(section, {}).pop(name, None)
        return saved == wanted

    def create(self, config: Config, vocab: Vocabulary, *, overwrite: bool) -> None:
        """Create the directory (once the inputs are known to be good), remove a replaced
        run's files, write ``config.yaml`` and ``vocab.txt``."""
        if not self.is_main:
            return
        try:
            self.path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise UserError(f"{self.path}: cannot create output directory ({exc.strerror})"
                            ) from None
        self.lock.acquire()
        self.check_new(overwrite)  # again under the lock: another run may have started here
        if overwrite:
            for name in (LAST, BEST, LOG, METRICS):
                (self.path / name).unlink(missing_ok=True)
        self.write_config(config)
        vocab.save(self.path / VOCAB)

    def write_config(self, config: Config) -> None:
        """(Re)write ``config.yaml``, e.g. with a resumed run's changed evaluation settings."""
        if self.is_main:
            self.lock.acquire()
            save_config(config, self.path / CONFIG)

    def reopen(self, step: int) -> None:
        """On resume: drop the log records written after the checkpoint of ``step`` (they will
        be written again), a line cut short by a kill and a ``final`` record; remove stale
        temporaries."""
        if not self.is_main:
            return
        self.lock.acquire()
        remove_stale_temporaries(self.path)
        if not self.log_path.is_file():
            return
        try:
            lines = self.log_path.read_text(encoding="utf-8").splitlines(keepends=True)
        except (OSError, UnicodeDecodeError) as exc:
            raise UserError(f"{self.log_path}: cannot read the training log ({exc})") from None
        keep = []
        for line in lines:
            try:
                record = json.loads(line) if line.endswith("\n") else None
            except ValueError:
                record = None
            if (isinstance(record, dict) and record.get("kind") != "final"
                    and record.get("step", 0) <= step):
                keep.append(line)
        if len(keep) != len(lines):
            write_text_atomic(self.log_path, "".join(keep))

    # ----------------------------------------------------------------- writing
    def open_tensorboard(self) -> None:
        """Start TensorBoard scalars in ``tensorboard/`` if the package is installed."""
        if not self.is_main:
            return
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            return
        try:
            self._tensorboard = SummaryWriter(str(self.path / "tensorboard"))
        except OSError as exc:
            raise UserError(f"{self.path / 'tensorboard'}: cannot write TensorBoard logs "
                            f"({exc.strerror or exc})") from None

    def log(self, record: dict[str, Any], step: int) -> None:
        """Append ``record`` to ``log.jsonl`` and its numbers to TensorBoard (at ``step``)."""
        if not self.is_main:
            return
        try:
            with open(self.log_path, "a", encoding="utf-8") as handle:
                handle.write(json.dumps(record) + "\n")
            if self._tensorboard is not None:
                self._scalars(record, record.get("step", step))
        except OSError as exc:
            raise UserError(f"{exc.filename or self.log_path}: could not write the training log "
                            f"({exc.strerror or exc}); the last complete checkpoint in "
                            f"{self.path} is kept") from None

    def _scalars(self, record: dict[str, Any], step: int) -> None:
        kind = record.get("kind", "train")
        for key, value in record.items():
            if isinstance(value, (int, float)) and key not in ("step", "epoch"):
                self._tensorboard.add_scalar(f"{kind}/{key}", value, step)
            elif isinstance(value, dict):
                for sub, v in value.items():
                    if isinstance(v, (int, float)):
                        self._tensorboard.add_scalar(f"{key}/{sub}", v, step)

    def save_checkpoint(self, state: dict[str, Any], name: str = LAST) -> None:
        if self.is_main:
            save_checkpoint(state, self.path / name)

    def write_metrics(self, metrics: dict[str, Any]) -> None:
        if self.is_main:
            write_json_atomic(self.path / METRICS, metrics)

    def close(self) -> None:
        """Flush TensorBoard (a failure is a warning: the run's results are written) and give
        the directory's lock back."""
        self.lock.release()
        if self._tensorboard is None:
            return
        try:
            self._tensorboard.flush()
        except OSError as exc:
            print(f"cyclevae: warning: {self.path / 'tensorboard'}: could not flush "
                  f"({exc.strerror or exc})", file=sys.stderr)
