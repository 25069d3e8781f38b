"""The one exception type for user errors (bad files, bad config, bad arguments).

The CLI prints a :class:`UserError` on one line and exits with status 2. Library code raises it
(or ``ValueError`` for bad function arguments, which the CLI treats the same way) with a message
that names the file or field and what was expected.
"""

from __future__ import annotations


class UserError(ValueError):
    """A problem with the user's input: the message says where and what was expected."""
