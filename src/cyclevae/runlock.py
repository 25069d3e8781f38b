"""One training per run directory: an advisory lock on ``OUT/.lock`` naming its holder.

Two trainings started into the same directory would otherwise both run, leaving one's config
beside the other's metrics and every epoch logged twice. A training holds an exclusive
``flock`` on ``OUT/.lock`` from the moment it writes into the directory until it ends, and
writes its pid, host and command line into the file so that a refused one can say who holds
it. The kernel releases the lock when the process dies, however it dies (``kill -9`` too), so a
stale file never blocks a ``--resume``; the pid left in it is then only text.

The lock is taken on a read-only descriptor (the pid is written through another one, closed at
once), so a running training keeps no file open for writing between its writes: the volume
can still be remounted read-only under it. A process does not exclude itself: a lock held by
this process (several :class:`~cyclevae.training.Trainer` objects built in one Python
session) is not refused. Where ``fcntl`` does not exist (Windows) no lock is taken.
"""

from __future__ import annotations

import os
import socket
import sys
from pathlib import Path
from typing import IO

from .errors import UserError

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

__all__ = ["LOCK", "RunLock"]

LOCK = ".lock"


def _try_lock(handle: IO[str]) -> bool:
    """Take the exclusive lock on ``handle`` without waiting; False if another open file
    description (another process, or another RunLock here) has it."""
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:  # EWOULDBLOCK: held
        return False
    return True


def _holder(path: Path) -> str:
    """The description the lock's holder wrote (``pid N on HOST: COMMAND``)."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace").strip()
    except OSError:
        text = ""
    return text or "a process that has not yet written its pid"


def _held_here(path: Path) -> bool:
    """Whether the holder named in the file is this process (a lock a process holds twice)."""
    return _holder(path).startswith(f"pid {os.getpid()} on {socket.gethostname()}:")


def _busy(directory: Path, lock: Path) -> UserError:
    return UserError(f"{directory}: in use by another training ({_holder(lock)}); wait for it "
                     "to end, stop it, or choose another --out")


class RunLock:
    """The lock of one run directory, taken by :meth:`acquire` and given back by
    :meth:`release` (or by the process's end)."""

    def __init__(self, directory: str | Path) -> None:
        self.directory = Path(directory)
        self.path = self.directory / LOCK
        self._handle: IO[str] | None = None

    def check_free(self) -> None:
        """Refuse at once (:class:`UserError` naming the holder) if another process holds the
        lock; changes nothing in the directory."""
        if fcntl is None or self._handle is not None or not self.path.is_file():
            return
        try:
            handle = open(self.path, encoding="utf-8")  # noqa: SIM115 - closed below
        except OSError:
            return  # unreadable: the real acquire will say so
        try:
            free = _try_lock(handle)
        finally:
            handle.close()  # closing gives the probe's lock back
        if not free and not _held_here(self.path):
            raise _busy(self.directory, self.path)

    def acquire(self) -> None:
        """Take the lock (the directory must exist) and write who holds it; refuse with a
        :class:`UserError` naming the holder if another process has it. Idempotent."""
        if fcntl is None or self._handle is not None:
            return
        try:
            self.path.touch(exist_ok=True)
            handle = open(self.path, encoding="utf-8")  # noqa: SIM115 - kept open
        except OSError as exc:
            raise UserError(f"{self.path}: cannot create the run's lock file "
                            f"({exc.strerror or exc})") from None
        if not _try_lock(handle):
            handle.close()
            if _held_here(self.path):
                return  # this process holds it already (another RunLock of this directory)
            raise _busy(self.directory, self.path)
        try:
            self.path.write_text(f"pid {os.getpid()} on {socket.gethostname()}: "
                                 f"{' '.join(sys.argv) or 'python'}\n", encoding="utf-8")
        except OSError as exc:
            handle.close()
            raise UserError(f"{self.path}: cannot write the run's lock file "
                            f"({exc.strerror or exc})") from None
        self._handle = handle

    def release(self) -> None:
        """Give the lock back (the file stays: the next holder overwrites it)."""
        if self._handle is not None:
            self._handle.close()
            self._handle = None
