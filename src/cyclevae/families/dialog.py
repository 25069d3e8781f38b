"""The dialog family (``cvae``): Zhao et al.'s (2017) conditional VAE for a response given its
context (:class:`~cyclevae.models.cvae.CVAE`), on conversation files.

Config: ``model.cvae`` (:class:`~cyclevae.models.cvae.CVAEConfig`, the sentence-model sizes of
``model`` unused) and ``data.dialog`` (:class:`~cyclevae.data.dialog.DialogDataConfig`).
Data: the files a run's ``data`` section names (paths or ``swda:SPLIT``, ``swda-zhao:SPLIT``)
read, leakage-filtered and encoded by :func:`cyclevae.data.dialog.prepare_dialog_data`, batched
with the run's seed (:class:`~cyclevae.data.dialog.DialogBatcher`); the model is also sized by
the training data's dialog acts and topics (:class:`Labels`). Its own evaluation: responses
sampled from p(z|c) for each test context, scored by BLEU, A/E-bow and distinct-n
(:func:`cyclevae.metrics.text.evaluate_responses`).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..config import Config, DataConfig, ModelConfig
from ..data.dialog import (
    DialogBatcher,
    DialogCorpus,
    ReadStats,
    check_features,
    drop_leaked,
    encode_dialogs,
    find_leaked,
    prepare_dialog_data,
    read_conversations,
)
from ..data.sources import data_dir as default_data_dir
from ..data.sources import resolve_data_path
from ..data.vectors import WordVectors, load_glove_text
from ..data.vocab import Vocabulary
from ..errors import UserError
from ..evaluation import EvalSettings, evaluate_blocks, posterior_labels, precision_context
from ..metrics.text import evaluate_responses, resolve_word_vectors
from ..models.base import LatentTextModel
from ..models.cvae import CVAE
from .base import CheckpointEvalOptions, Family, Labels, RunData, RunEvaluator, SplitData, require

__all__ = ["DialogFamily", "ResponseEvaluator", "split_stats", "training_overlap"]


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
        """The run's conversation files read, leakage-filtered (``data.dialog``), encoded and
        batched (``data.batch_size``, ``train.seed``); ``vocab``/``labels``: a resumed run's
        (else built from the training conversations that remain). ``stats``: per split
        (:func:`split_stats`) and ``leakage`` (``dropped``, ``threshold``, ``against``,
        ``by_file``)."""
        data, d, cvae = config.data, config.data.dialog, config.model.cvae
        if not data.train:
            raise UserError("config: data.train must name a conversations file or a data set "
                            "(e.g. swda:train)")
        root = default_data_dir(data.data_dir)
        train_path = resolve_data_path(data.train, root)
        specs = {split: spec for split, spec in (("valid", data.valid), ("test", data.test))
                 if spec}
        paths = {split: resolve_data_path(spec, root) for split, spec in specs.items()}
        against = [s for s, p in paths.items() if p.resolve() != train_path.resolve()]
        prepared = prepare_dialog_data(
            train_path, paths, max_vocab=data.max_vocab, max_context=d.max_context,
            max_utterance_length=d.utterance_length, drop_leakage=d.drop_leakage,
            leakage_threshold=d.leakage_threshold, vocab=vocab,
            act_labels=None if labels is None else labels.acts, leakage_against=against,
            min_count=data.min_count, use_topic=cvae.use_topic, use_caller=cvae.use_caller,
            topic_labels=None if labels is None else labels.topics, preparation=d.preparation)
        corpora = {"train": prepared.train, **prepared.evaluations}
        stats: dict[str, Any] = {
            split: split_stats(prepared.stats[split], corpus,
                               data.train if split == "train" else specs[split])
            for split, corpus in corpora.items()}
        stats["leakage"] = {
            "dropped": prepared.leaked, "threshold": d.leakage_threshold,
            "enabled": d.drop_leakage,
            "against": {s: specs[s] for s in against} if d.drop_leakage else {},
            "by_file": prepared.leaked_by,
            "training_conversations_read": prepared.stats["train"].conversations}
        evals = {s: _batched(config, c) for s, c in prepared.evaluations.items()}
        return RunData(prepared.vocab, _batched(config, prepared.train), evals.get("valid"),
                       evals.get("test"), stats,
                       Labels(tuple(prepared.act_labels), tuple(prepared.topic_labels)))

    def load_split(self, config: Config, spec: str, vocab: Vocabulary, labels: Labels, *,
                   data_dir: str | None = None) -> SplitData[DialogBatcher]:
        """A conversations file (or ``NAME:SPLIT``) read as the checkpoint's model needs it:
        its vocabulary, act labels, topic labels (topics it lacks are ``<unk>``) and caller
        switch (the file must then have caller metadata), batched with the run's seed."""
        d, use_caller = config.data.dialog, config.model.cvae.use_caller
        path = resolve_data_path(spec, default_data_dir(data_dir or config.data.data_dir))
        conversations, read = read_conversations(path, d.preparation)
        check_features(conversations, path, use_caller=use_caller, training=False)
        corpus = encode_dialogs(conversations, vocab, max_context=d.max_context,
                                max_utterance_length=d.utterance_length,
                                act_labels=labels.acts, topic_labels=labels.topics,
                                callers=use_caller)
        return SplitData(_batched(config, corpus), split_stats(read, corpus, spec))

    def run_evaluator(self, config: Config, vocab: Vocabulary) -> ResponseEvaluator | None:
        return ResponseEvaluator(config, vocab) if config.train.response_samples > 0 else None

    def evaluate_checkpoint(self, path: str | Path, model: LatentTextModel, config: Config,
                            vocab: Vocabulary, labels: Labels, *, split: str, spec: str,
                            options: CheckpointEvalOptions) -> dict[str, Any]:
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
        data = self.load_split(config, spec, vocab, labels,
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
        result: dict[str, Any] = {"data_stats": data.stats}
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


def _batched(config: Config, corpus: DialogCorpus) -> DialogBatcher:
    """``corpus`` in the run's batches (``data.batch_size``, ``train.seed``,
    ``data.dialog.run_length``)."""
    return DialogBatcher(corpus, config.data.batch_size, config.train.seed,
                         run_length=config.data.dialog.run_length)


def split_stats(stats: ReadStats, corpus: DialogCorpus, spec: str) -> dict[str, Any]:
    """The JSON statistics of one split (metrics.json ``data``): ``conversations`` and
    ``utterances`` kept (after the leakage filter), ``conversations_read`` from the file;
    with the topic feature, ``unknown_topic_conversations`` (topic id 0)."""
    extra: dict[str, Any] = {}
    if corpus.topics is not None:
        unknown = np.unique(corpus.conversation_of[corpus.topics == 0])
        extra["unknown_topic_conversations"] = len(unknown)
    return {"file": spec, "layout": stats.layout,
            "conversations": len(np.unique(corpus.conversation_of)),
            "conversations_read": stats.conversations,
            "utterances": len(corpus), "examples": len(corpus),
            "tokens": corpus.num_tokens,
            "skipped_conversations": stats.skipped_conversations,
            "empty_utterances": stats.empty_utterances, "blank_lines": stats.blank_lines,
            "joined_utterances": stats.joined, "collapsed_utterances": stats.collapsed,
            **extra}


def training_overlap(data: DataConfig, spec: str, *, data_dir: str | None = None
                     ) -> dict[str, Any]:
    """How many conversations of the evaluation file ``spec`` also occur in a run's training
    data as the run filtered it (``data``: the run's ``data`` section; its training file read
    again, minus the conversations it dropped for its own valid/test files). Returns
    ``{"file", "conversations", "conversations_in_training", "threshold"}``, or ``{"file",
    "checked": False, "reason"}`` when the training file cannot be read here. The run's own
    valid/test files have none by construction (when its leakage filter was on)."""
    d = data.dialog
    root = default_data_dir(data_dir or data.data_dir)
    try:
        train_path = resolve_data_path(data.train, root)
        train, _ = read_conversations(train_path, d.preparation)
        own = {s: resolve_data_path(p, root) for s, p in (("valid", data.valid),
                                                          ("test", data.test)) if p}
    except UserError as exc:
        return {"file": spec, "checked": False, "reason": str(exc)}
    target = resolve_data_path(spec, root)
    if d.drop_leakage:
        others = [read_conversations(p, d.preparation)[0] for p in own.values()
                  if p.resolve() != train_path.resolve()]
        train, _ = drop_leaked(train, others, d.leakage_threshold)
    evaluation, _ = read_conversations(target, d.preparation)
    matched = {j for _, j, _ in find_leaked(train, evaluation, d.leakage_threshold)}
    return {"file": spec, "conversations": len(evaluation),
            "conversations_in_training": len(matched), "threshold": d.leakage_threshold}
