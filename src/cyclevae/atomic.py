"""The one atomic writer: every file cyclevae writes (checkpoints, configs, vocabularies, logs
rewritten on resume, metrics, reports, figures) goes through :func:`atomic_open`.

The content is written to a temporary file in the destination directory, flushed and fsynced,
then renamed into place with ``os.replace``, so an interrupted run never leaves half a file and
a failed write leaves the previous version untouched.

Example::

    from cyclevae.atomic import atomic_open, write_json_atomic
    write_json_atomic(out / "metrics.json", metrics)
    with atomic_open(out / "checkpoint.pt", "wb", what="checkpoint") as handle:
        torch.save(state, handle)
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from .errors import UserError

__all__ = ["atomic_open", "remove_stale_temporaries", "write_json_atomic", "write_text_atomic"]


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _write_error(path: Path, exc: OSError, what: str | None) -> UserError:
    if what:
        return UserError(f"{path}: could not write {what} ({exc.strerror or exc}); the previous "
                         f"{what}, if any, is unchanged")
    return UserError(f"{path}: could not write ({exc.strerror or exc}); any previous version "
                     "is unchanged")


def _os_error_of(exc: BaseException) -> OSError | None:
    """The ``OSError`` behind ``exc``: itself, or the one a library re-raised as another
    exception (``torch.save`` reports a full disk as a ``RuntimeError`` raised while handling
    the ``OSError``)."""
    if isinstance(exc, OSError):
        return exc
    if isinstance(exc, RuntimeError) and isinstance(exc.__context__, OSError):
        return exc.__context__
    return None


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike[str], mode: str = "w", *, what: str | None = None,
                **kwargs: Any) -> Iterator[IO]:
    """Open a temporary file next to ``path``; on success it is fsynced and renamed to ``path``.

    The parent directory is created if missing. On an exception the temporary file is removed
    and ``path`` is left untouched. ``mode`` is ``"w"`` (text, UTF-8 and ``\\n`` newlines by
    default) or ``"wb"``. An ``OSError`` (disk full, read-only volume, permissions) becomes a
    one-line :class:`~cyclevae.errors.UserError` naming ``path`` (and ``what`` it was, e.g.
    ``"checkpoint"``).
    """
    if mode not in ("w", "wb"):
        raise ValueError(f"mode must be 'w' or 'wb', got {mode!r}")
    path = Path(path)
    if mode == "w":
        kwargs.setdefault("encoding", "utf-8")
        kwargs.setdefault("newline", "\n")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as exc:
        raise _write_error(path, exc, what) from None
    try:
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; give the usual permissions
        with os.fdopen(fd, mode, **kwargs) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        cause = _os_error_of(exc)
        if cause is not None:
            raise _write_error(path, cause, what) from None
        raise


def write_text_atomic(path: str | os.PathLike[str], text: str, *, what: str | None = None
                      ) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    with atomic_open(path, "w", what=what) as handle:
        handle.write(text)


def write_json_atomic(path: str | os.PathLike[str], obj: Any, *, indent: int = 2) -> None:
    """Write ``obj`` as JSON to ``path`` atomically (NaN/inf are refused: they are not JSON)."""
    text = json.dumps(obj, indent=indent, allow_nan=False) + "\n"
    write_text_atomic(path, text)


def remove_stale_temporaries(directory: str | os.PathLike[str]) -> None:
    """Delete the ``.*.tmp`` files a kill during an atomic write left in ``directory``."""
    for stale in Path(directory).glob(".*.tmp"):
        with contextlib.suppress(OSError):
            stale.unlink()
