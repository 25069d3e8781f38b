"""The one exception type for user errors (bad files, bad config, bad arguments).

The CLI prints a :class:`UserError` on one line and exits with status 2. Library code raises it
(or ``ValueError`` for bad function arguments, which the CLI treats the same way) with a message
that names the file or field and what was expected.
"""

from __future__ import annotations


class UserError(ValueError):
    """A problem with the user's input: the message says where and what was expected."""


class TrainingInterrupted(Exception):
    """Raised after SIGINT/SIGTERM once the mid-epoch checkpoint is written; the CLI prints
    its message (where the checkpoint is, how to go on) on one line and exits with 130."""


def check_fields(obj: object, prefix: str, checks: list[tuple[bool, str, str]]) -> None:
    """Raise a :class:`UserError` for the first ``(ok, field, expected)`` of ``checks`` that is
    not ok: ``config: PREFIX.FIELD must be EXPECTED, got VALUE`` (``obj`` holds the values)."""
    for ok, key, expected in checks:
        if not ok:
            raise UserError(f"config: {prefix}.{key} must be {expected}, got "
                            f"{getattr(obj, key)!r}")
