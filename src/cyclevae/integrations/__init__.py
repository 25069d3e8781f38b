"""Callbacks that drive the cyclical beta schedule inside other training frameworks.

- :mod:`cyclevae.integrations.lightning`: ``BetaCallback`` for a Lightning ``Trainer``
  (``pip install 'cyclevae[lightning]'``).
- :mod:`cyclevae.integrations.transformers`: ``BetaCallback`` for a Hugging Face Transformers
  ``Trainer`` (``pip install 'cyclevae[transformers]'``).

Both set the beta in force on the model as a plain float attribute (``model.beta`` by default)
before every optimizer step, log it, and survive checkpoints. The schedule is a function of
the framework's optimizer-step counter, so resuming from a checkpoint continues it exactly.
Importing this package imports neither framework; each submodule imports its own.
"""

from __future__ import annotations

__all__: list[str] = []
