"""Using a trained model: load a checkpoint, evaluate it, generate sentences from z.

Evaluation goes through :mod:`cyclevae.evaluation` with the run's own settings (seed, IW chunk,
precision, batching), so ``cyclevae evaluate`` on a run's test split repeats its metrics.json
``test`` block. Generation encodes with the model's reported posterior (the refined q for
SA-VAE and SVI).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from .checkpoint import check_vocabulary_file, load_checkpoint
from .config import Config, config_from_dict
from .data.batching import TextBatch, encode_corpus
from .data.corpus import read_sentences
from .data.splits import encoder_limit, load_split, split_spec
from .data.vocab import Vocabulary
from .errors import UserError
from .evaluation import (EvalSettings, evaluate_blocks, posterior_fn, posterior_labels,
                         precision_context)
from .models.base import LatentTextModel
from .models.generation import DecodingConfig, resolve_decoding
from .models.registry import build_model
from .runtime import check_precision

__all__ = ["decoding_from_options", "evaluate_checkpoint", "generate_from_checkpoint",
           "load_model"]


def load_model(path: str | Path, device: str | torch.device = "cpu"
               ) -> tuple[LatentTextModel, Vocabulary, Config, dict[str, Any]]:
    """Model (in eval mode), vocabulary, config and raw checkpoint from a checkpoint file."""
    ckpt = load_checkpoint(path, map_location=device)
    config = config_from_dict(ckpt["config"])
    vocab = Vocabulary(ckpt["vocab"][len(Vocabulary.SPECIALS):])
    check_vocabulary_file(Path(path).parent / "vocab.txt", vocab.tokens, path)
    model = build_model(config.model, len(vocab)).to(device)
    try:
        model.load_state_dict(ckpt["model"])
    except RuntimeError as exc:
        first = str(exc).splitlines()[0]
        raise UserError(f"{path}: weights do not match the saved config/vocabulary ({first})") from None
    model.eval()
    return model, vocab, config, ckpt


def evaluate_checkpoint(path: str | Path, *, split: str = "test", data: str | None = None,
                        data_dir: str | None = None, iw_samples: int = 500
                        ) -> dict[str, Any]:
    """Metrics of SPEC section 3 for a checkpoint on a split of its run (or on ``data``), with
    the run's evaluation settings: the reported q's block under ``split`` and, for SA-VAE, the
    amortized q's under ``split + "_amortized"``; ``posteriors`` names the q of each."""
    if iw_samples < 0:
        raise UserError(f"--iw-samples must be >= 0, got {iw_samples}")
    model, vocab, config, ckpt = load_model(path)
    spec = data or split_spec(config.data, split)
    if not spec:
        raise UserError(f"{path}: the run has no data.{split}; pass --data FILE")
    check_precision(config.train.precision, torch.device("cpu"))
    corpus, stats = load_split(config.data, spec, vocab, seed=config.train.seed,
                               data_dir=data_dir, limit=encoder_limit(config.model))
    blocks = evaluate_blocks(model, corpus.batches(0, shuffle=False), split,
                             iw_samples=iw_samples,
                             settings=EvalSettings.from_train_config(config.train))
    return {"checkpoint": str(path), "data": spec, "epoch": ckpt["progress"]["epoch"],
            "dropped_too_long": stats["too_long"],
            "posteriors": posterior_labels(model, [split]), **blocks}


def _posterior_means(model: LatentTextModel, vocab: Vocabulary, sentences: list[list[str]],
                     seed: int) -> torch.Tensor:
    """Means ``[N, D]`` of the reported q(z|x) of tokenised sentences (any lengths), seeded as
    the evaluation seeds it."""
    posterior = posterior_fn(model, seed)
    means = []
    for ids in encode_corpus(sentences, vocab):
        mu, _ = posterior(TextBatch(torch.tensor([ids], dtype=torch.long)))
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
                             max_length: int | None = None, seed: int = 0) -> list[str]:
    """Lines of generated text for ``cyclevae generate`` (one mode at a time): ``prior``
    sentences from z ~ p(z); each line of ``reconstruct`` encoded (posterior mean) and decoded
    (``SOURCE<TAB>OUTPUT``); ``steps`` points between the codes of two sentences
    (``WEIGHT<TAB>OUTPUT``). Decoded as ``decoding`` says (:class:`DecodingConfig`), or by the
    older keywords ``greedy`` / ``temperature`` / ``max_length`` (default greedy, 50 words).
    Seeded by ``seed``: the same call gives the same lines."""
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

    def text(z: torch.Tensor) -> list[str]:
        ids = model.generate(z, decoding=decoding, generator=generator)
        return [" ".join(vocab.decode(row)) for row in ids]

    with torch.no_grad(), precision_context(config.train.precision, torch.device("cpu")):
        if prior is not None:
            return text(torch.randn(prior, model.latent_dim, generator=generator))
        if reconstruct is not None:
            sentences, _ = read_sentences(reconstruct)
            outputs = text(_posterior_means(model, vocab, sentences, seed))
            return [f"{' '.join(src)}\t{out}" for src, out in zip(sentences, outputs)]
        assert interpolate is not None
        sentences = [s.split() for s in interpolate]
        if any(not s for s in sentences):
            raise UserError("--interpolate: both sentences must contain at least one word")
        ends = _posterior_means(model, vocab, sentences, seed)
        weights = torch.linspace(0, 1, steps).unsqueeze(1)
        outputs = text((1 - weights) * ends[0] + weights * ends[1])
        return [f"{w:.2f}\t{o}" for w, o in zip(weights.squeeze(1).tolist(), outputs)]
