"""The registry of model families: ``model.kind`` -> :class:`~cyclevae.families.base.Family`.

A family declares in one place what the rest of the code would otherwise decide by the kind:
its model (:meth:`~Family.build_model`), its data (:meth:`~Family.load_data` for a run,
:meth:`~Family.load_split` for ``cyclevae evaluate``/``diagnose``), checks of its config
sections (:meth:`~Family.validate`), initialisation from files (:meth:`~Family.initialise`)
and any evaluation of its own (:meth:`~Family.run_evaluator`,
:meth:`~Family.evaluate_checkpoint`, and measurements during training,
:meth:`~Family.run_monitor`). The Trainer, the checkpoint loader, ``evaluate``,
``generate`` and ``diagnose`` ask :func:`family_of`; what a model can do (its prior, whether it
is stochastic, has an amortized posterior, can respond to a context) they ask the model
(:class:`~cyclevae.models.base.LatentTextModel`).

Adding a family (e.g. a Transformer VAE):

1. the model: a :class:`~cyclevae.models.base.LatentTextModel` subclass in ``models/``, with
   its config dataclass beside it; where it has settings of its own, nest that dataclass in
   :class:`~cyclevae.config.ModelConfig` (one field, ``model.NAME``), validated by its
   ``validate(prefix)``;
2. the family: a module here with a :class:`Family` subclass (for a model of sentences,
   subclass :class:`~cyclevae.families.sentence.SentenceFamily` and override
   ``build_model`` only);
3. one entry in :data:`FAMILIES` below.

Nothing else changes: training, checkpoints, evaluation, generation and diagnosis go through
the family and the model interface.
"""

from __future__ import annotations

from ..config import Config, ModelConfig
from ..errors import UserError
from ..models.autoencoder import TextAutoencoder
from ..models.base import LatentTextModel
from ..models.savae import SemiAmortizedVAE, SVIModel
from ..models.vae import TextVAE
from .base import (
    CheckpointEvalOptions,
    Family,
    Labels,
    RunData,
    RunEvaluator,
    RunMonitor,
    SplitData,
)
from .dialog import DialogFamily
from .savae import SVIFamily
from .sentence import SentenceFamily
from .synthetic import SyntheticFamily

__all__ = ["FAMILIES", "MODEL_KINDS", "CheckpointEvalOptions", "Family", "Labels", "RunData",
           "RunEvaluator", "RunMonitor", "SplitData", "build_model", "family_for", "family_of"]

#: every model family by its ``model.kind``
FAMILIES: dict[str, Family] = {
    "vae": SentenceFamily("vae", TextVAE),
    "ae": SentenceFamily("ae", TextAutoencoder),
    "savae": SVIFamily("savae", SemiAmortizedVAE),
    "svi": SVIFamily("svi", SVIModel, min_steps=1),
    "cvae": DialogFamily(),
    "synthetic": SyntheticFamily(),
}

#: the values of ``model.kind``
MODEL_KINDS = tuple(FAMILIES)


def family_for(kind: str) -> Family:
    """The family of the ``model.kind`` ``kind``; an unknown kind is a one-line
    :class:`UserError` listing the known ones."""
    if kind not in FAMILIES:
        raise UserError(f"config: model.kind must be {' or '.join(map(repr, MODEL_KINDS))}, "
                        f"got {kind!r}")
    return FAMILIES[kind]


def family_of(config: Config) -> Family:
    """The family of ``config.model.kind``, after its own checks of the config
    (:meth:`Family.validate`; one-line :class:`UserError`)."""
    family = family_for(config.model.kind)
    family.validate(config)
    return family


def build_model(config: ModelConfig, vocab_size: int, labels: Labels = Labels()
                ) -> LatentTextModel:
    """A new model of the family ``config.kind`` (``vocab_size`` from the data's vocabulary,
    ``labels`` the dialog CVAE's act and topic labels)."""
    return family_for(config.kind).build_model(config, vocab_size, labels)
