"""The dialog family (``cvae``): Zhao et al.'s (2017) conditional VAE for a response given its
context (:class:`~cyclevae.models.cvae.CVAE`), on conversation files.

Config: ``model.cvae`` (:class:`~cyclevae.models.cvae.CVAEConfig`, the sentence-model sizes of
``model`` unused) and ``data.dialog`` (:class:`~cyclevae.data.dialog.DialogDataConfig`).
Data: conversations read, leakage-filtered and batched by :mod:`cyclevae.data.dialog`; the
model is also sized by the training data's dialog acts and topics (:class:`Labels`). Its own
evaluation: responses sampled from p(z|c) for each test context, scored by BLEU, A/E-bow and
distinct-n (:func:`cyclevae.metrics.text.evaluate_responses`).
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from ..config import Config, ModelConfig
from ..data.dialog import (DialogBatcher, load_dialog_corpora, load_dialog_split,
                           training_overlap)
from ..data.vectors import WordVectors, load_glove_text
from ..data.vocab import Vocabulary
from ..errors import UserError
from ..evaluation import EvalSettings, evaluate_blocks, posterior_labels, precision_context
from ..metrics.text import evaluate_responses, resolve_word_vectors
from ..models.base import LatentTextModel
from ..models.cvae import CVAE
from .base import CheckpointEvalOptions, Family, Labels, RunData, RunEvaluator, SplitData, require

__all__ = ["DialogFamily", "ResponseEvaluator"]


class ResponseEvaluator(RunEvaluator[DialogBatcher]):
    """The sampled-response metrics of a run (``train.response_samples`` responses to
    ``train.response_contexts`` contexts, A-bow and E-bow with ``train.response_glove``),
    the word vectors loaded on first use and kept."""

    def __init__(self, config: Config, vocab: Vocabulary) -> None:
        self.config, self.vocab = config, vocab
        self._vectors: tuple[WordVectors | None, str] | None = None

    def __call__(self, model: LatentTextModel, split: DialogBatcher, device: torch.device
                 ) -> dict[str, Any]:
        t = self.config.train
        if self._vectors is None:
            self._vectors = resolve_word_vectors(t.response_glove, set(self.vocab.tokens))
        vectors, source = self._vectors
        with precision_context(t.precision, device):
            return evaluate_responses(model, split.corpus, self.vocab,
                                      samples=t.response_samples, contexts=t.response_contexts,
                                      vectors=vectors, vectors_source=source, seed=t.seed,
                                      batch_size=self.config.data.batch_size, device=device)


class DialogFamily(Family[DialogBatcher]):
    """``model.kind: cvae`` (module docstring)."""

    kind = "cvae"

    def validate(self, config: Config) -> None:
        require(config.model.loss_pad_length is None, "model.loss_pad_length",
                "null unless model.kind is vae or ae", config.model.loss_pad_length)

    def build_model(self, config: ModelConfig, vocab_size: int, labels: Labels
                    ) -> LatentTextModel:
        return CVAE(config.cvae, vocab_size, len(labels.acts), len(labels.topics))

    def initialise(self, model: LatentTextModel, config: ModelConfig, vocab: Vocabulary
                   ) -> dict[str, Any] | None:
        """The word embeddings from the GloVe file ``model.cvae.glove_init``, if any; returns
        ``{"file", "found", "vocab"}`` for the log. An unknown or malformed file, or vectors
        of another dimension than the embeddings, is a one-line UserError."""
        path = config.cvae.glove_init
        if path is None:
            return None
        assert isinstance(model, CVAE)
        vectors = load_glove_text(path, words=set(vocab.tokens))
        found = model.init_embeddings_(vectors, vocab, source=f"model.cvae.glove_init {path}")
        return {"file": path, "found": found, "vocab": len(vocab)}

    def load_data(self, config: Config, *, vocab: Vocabulary | None = None,
                  labels: Labels | None = None) -> RunData[DialogBatcher]:
        cvae = config.model.cvae
        d = load_dialog_corpora(config.data, seed=config.train.seed, vocab=vocab,
                                act_labels=None if labels is None else labels.acts,
                                use_topic=cvae.use_topic, use_caller=cvae.use_caller,
                                topic_labels=None if labels is None else labels.topics)
        return RunData(d.vocab, d.train, d.valid, d.test, d.stats,
                       Labels(tuple(d.act_labels), tuple(d.topic_labels)))

    def load_split(self, config: Config, spec: str, vocab: Vocabulary, labels: Labels, *,
                   data_dir: str | None = None) -> SplitData[DialogBatcher]:
        """A conversations file read as the checkpoint's model needs it: its vocabulary, act
        and topic labels and caller switch, batched with the run's seed."""
        batches, _, stats = load_dialog_split(config.data, spec, vocab, labels.acts,
                                              seed=config.train.seed, data_dir=data_dir,
                                              topic_labels=labels.topics,
                                              use_caller=config.model.cvae.use_caller)
        return SplitData(batches, stats)

    def run_evaluator(self, config: Config, vocab: Vocabulary) -> ResponseEvaluator | None:
        return ResponseEvaluator(config, vocab) if config.train.response_samples > 0 else None

    def evaluate_checkpoint(self, path: str | Path, model: LatentTextModel, config: Config,
                            vocab: Vocabulary, checkpoint: Mapping[str, Any], *, split: str,
                            spec: str, options: CheckpointEvalOptions) -> dict[str, Any]:
        """The ELBO block (IW-NLL with the run's ``train.iw_samples`` unless
        ``options.iw_samples``), the sampled-response metrics and, for a file other than the
        run's own, how many of its conversations occur in the training data (``leakage``; a
        warning on stderr if any)."""
        t = config.train
        n = t.response_samples if options.samples is None else options.samples
        if n < 0:
            raise UserError(f"--samples must be >= 0, got {n}")
        count = t.response_contexts if options.contexts == "run" else options.contexts
        if count is not None and (not isinstance(count, int) or count < 1):
            raise UserError(f"--contexts must be >= 1 or 'all', got {count!r}")
        glove = options.glove
        if glove is not None and not Path(glove).is_file():
            raise UserError(f"{glove}: GloVe file not found (expected 'word v1 .. vd' per line)")
        vectors, source = (resolve_word_vectors(glove or t.response_glove, set(vocab.tokens))
                           if n > 0 else (None, None))  # a bad --glove fails before the work
        data = self.load_split(config, spec, vocab, Labels.from_checkpoint(checkpoint),
                               data_dir=options.data_dir)
        blocks = evaluate_blocks(model, data.batches.batches(0, shuffle=False), split,
                                 iw_samples=(t.iw_samples if options.iw_samples is None
                                             else options.iw_samples),
                                 settings=EvalSettings.from_train_config(t))
        if n > 0:
            with precision_context(t.precision, torch.device("cpu")):
                blocks[split].update(evaluate_responses(
                    model, data.batches.corpus, vocab, samples=n, contexts=count,
                    vectors=vectors, vectors_source=source, seed=t.seed,
                    batch_size=config.data.batch_size))
        result: dict[str, Any] = {"checkpoint": str(path), "data": spec,
                                  "epoch": checkpoint["progress"]["epoch"],
                                  "data_stats": data.stats}
        if spec not in (config.data.valid, config.data.test):  # the run's own were filtered
            leak = training_overlap(config.data, spec, data_dir=options.data_dir)
            result["leakage"] = leak
            if leak.get("conversations_in_training"):
                print(f"cyclevae: warning: {leak['conversations_in_training']} of "
                      f"{leak['conversations']} conversations of {spec} also occur in the "
                      f"training data of {path} (word-set Jaccard > {leak['threshold']}); put "
                      "the file in the run's data.valid/data.test to drop them from training",
                      file=sys.stderr)
        result.update(posteriors=posterior_labels(model, [split]), **blocks)
        return result
