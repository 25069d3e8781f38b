"""What a run tells the person waiting for it, on stderr, in one of three modes.

- ``bar``: stderr is a terminal: tqdm bars for training epochs and evaluation phases, and one
  summary line per epoch.
- ``lines``: stderr is not a terminal (``nohup``, ``> log 2>&1``, a job scheduler: how long
  runs are started): plain lines only, no bar control characters: one per epoch, and for an
  evaluation phase a line every :attr:`Reporter.interval` seconds with its progress
  (``evaluating test IW-NLL K=300: 40% (12/30 batches, 95 s)``) and one when it ends. A phase
  known to be long (importance-weighted NLL) is also announced when it starts.
- ``off``: nothing (``--no-progress``).

The Trainer and :func:`cyclevae.evaluation.evaluate_blocks` call only :meth:`Reporter.line`
and :meth:`Reporter.phase`; the reporter decides what reaches the screen.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TextIO

__all__ = ["MODES", "Reporter"]

MODES = ("bar", "lines", "off")

#: a phase's progress callback: called once after each batch
Tick = Callable[[], None]


class Reporter:
    """Progress on ``stream`` (default stderr) in ``mode`` (module docstring).

    Args:
        mode: ``bar``, ``lines`` or ``off``.
        interval: seconds between two progress lines of one phase in ``lines`` mode.
        clock: seconds, monotonic (tests pass a fake one).
    """

    def __init__(self, mode: str, *, interval: float = 30.0, stream: TextIO | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if mode not in MODES:
            raise ValueError(f"mode must be one of {', '.join(MODES)}, got {mode!r}")
        self.mode = mode
        self.interval = interval
        self._stream = stream
        self._clock = clock
        self._signals = 0

    @classmethod
    def for_progress(cls, progress: bool | None) -> Reporter:
        """The mode a ``progress`` option asks for: None (the default) picks ``bar`` on a
        terminal and ``lines`` elsewhere; True is ``bar``, False ``off``."""
        if progress is None:
            return cls("bar" if sys.stderr.isatty() else "lines")
        return cls("bar" if progress else "off")

    @property
    def stream(self) -> TextIO:
        return self._stream if self._stream is not None else sys.stderr

    def line(self, text: str) -> None:
        """One line (an epoch's summary), unless ``off``."""
        if self.mode != "off":
            print(text, file=self.stream, flush=True)

    def phase(self, label: str, total: int, *, announce: bool = False) -> Tick:
        """Start a phase of ``total`` batches (``label`` e.g. ``test IW-NLL K=300``); returns
        the callback to call after each batch. ``announce``: print its start too (``lines``)."""
        if self.mode == "off" or total <= 0:
            return _nothing
        if self.mode == "bar":
            return self._bar(label, total)
        return _Lines(self, f"evaluating {label}", total, announce)

    def _bar(self, label: str, total: int) -> Tick:
        from tqdm import tqdm

        bar = tqdm(total=total, unit="batch", leave=False, desc=f"evaluating {label}",
                   file=self.stream)
        done = [0]

        def tick() -> None:
            bar.update(1)
            done[0] += 1
            if done[0] >= total:
                bar.close()

        return tick

    def final_evaluation_signal(self, signum: int, out: Path | str) -> None:
        """A signal during the evaluation after training, which no training step will see:
        the first says it was received and what it means; the second stops the evaluation
        (raises KeyboardInterrupt). Printed whatever the mode: the person pressed a key."""
        import signal

        name = signal.Signals(signum).name
        self._signals += 1
        if self._signals == 1:
            print(f"cyclevae: {name} received during the final evaluation: training is complete "
                  f"and saved in {Path(out) / 'checkpoint_last.pt'}; the evaluation goes on to "
                  f"write metrics.json (send {name} again to stop it; `cyclevae train --resume "
                  f"--out {out}` then runs it again)", file=sys.stderr, flush=True)
            return
        print(f"cyclevae: {name} received again: final evaluation stopped, no metrics.json; "
              f"`cyclevae train --resume --out {out}` runs it again", file=sys.stderr,
              flush=True)
        raise KeyboardInterrupt


def _nothing() -> None:
    return None


class _Lines:
    """A phase in ``lines`` mode: a line every ``interval`` seconds and one at the end (if a
    line was printed before, or the phase was announced)."""

    def __init__(self, reporter: Reporter, label: str, total: int, announce: bool) -> None:
        self.reporter, self.label, self.total = reporter, label, total
        self.done = 0
        self.started = self.last = reporter._clock()
        self.printed = False
        if announce:
            self._print()

    def _print(self) -> None:
        now = self.reporter._clock()
        percent = 100 * self.done // self.total
        print(f"{self.label}: {percent}% ({self.done}/{self.total} batches, "
              f"{now - self.started:.0f} s)", file=self.reporter.stream, flush=True)
        self.last, self.printed = now, True

    def __call__(self) -> None:
        self.done += 1
        if self.done >= self.total:
            if self.printed:
                self._print()
        elif self.reporter._clock() - self.last >= self.reporter.interval:
            self._print()

