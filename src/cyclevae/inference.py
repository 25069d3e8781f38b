"""Using a trained model: load a checkpoint, evaluate it, decode sentences from z."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from .checkpoint import check_vocabulary_file, load_checkpoint
from .config import Config, config_from_dict
from .data.batching import BatchedCorpus, encode_corpus
from .data.corpus import read_sentences
from .data.sources import data_dir as default_data_dir
from .data.sources import resolve_data_path
from .data.vocab import Vocabulary
from .errors import UserError
from .metrics.likelihood import evaluate_model
from .models.vae import TextVAE
from .training import build_model


def load_model(path: str | Path, device: str | torch.device = "cpu"
               ) -> tuple[TextVAE, Vocabulary, Config, dict[str, Any]]:
    """Model (in eval mode), vocabulary, config and raw checkpoint from a checkpoint file."""
    ckpt = load_checkpoint(path, map_location=device)
    config = config_from_dict(ckpt["config"])
    vocab = Vocabulary(ckpt["vocab"][len(Vocabulary.SPECIALS):])
    check_vocabulary_file(Path(path).parent / "vocab.txt", vocab.tokens, path)
    model = build_model(config, len(vocab)).to(device)
    try:
        model.load_state_dict(ckpt["model"])
    except RuntimeError as exc:
        first = str(exc).splitlines()[0]
        raise UserError(f"{path}: weights do not match the saved config/vocabulary ({first})") from None
    model.eval()
    return model, vocab, config, ckpt


def evaluate_checkpoint(path: str | Path, *, split: str = "test", data: str | None = None,
                        data_dir: str | None = None, iw_samples: int = 500) -> dict[str, Any]:
    """Metrics of SPEC section 3 for a checkpoint on a split of its run (or on ``data``)."""
    if iw_samples < 0:
        raise UserError(f"--iw-samples must be >= 0, got {iw_samples}")
    model, vocab, config, ckpt = load_model(path)
    spec = data or getattr(config.data, split)
    if not spec:
        raise UserError(f"{path}: the run has no data.{split}; pass --data FILE")
    root = default_data_dir(data_dir or config.data.data_dir)
    sentences, stats = read_sentences(resolve_data_path(spec, root),
                                      max_length=config.data.max_length)
    corpus = BatchedCorpus(encode_corpus(sentences, vocab), batch_size=config.data.batch_size,
                           seed=config.train.seed)
    metrics = evaluate_model(model, corpus.batches(0, shuffle=False), iw_samples=iw_samples,
                             iw_chunk=config.train.iw_chunk, seed=config.train.seed)
    return {"checkpoint": str(path), "data": spec, "epoch": ckpt["progress"]["epoch"],
            "dropped_too_long": stats.too_long, **metrics}


@torch.no_grad()
def decode(model: TextVAE, z: torch.Tensor, *, max_length: int = 50, greedy: bool = True,
           temperature: float = 1.0, generator: torch.Generator | None = None) -> list[list[int]]:
    """Decode one sentence per row of ``z [B, D]``, starting from ``<s>`` until ``</s>``.

    Returns word ids without ``<s>``/``</s>`` (at most ``max_length`` words each).
    """
    model.eval()
    decoder = model.decoder
    batch = z.shape[0]
    inputs = torch.full((batch, 1), Vocabulary.BOS_INDEX, dtype=torch.long, device=z.device)
    state = None
    done = torch.zeros(batch, dtype=torch.bool, device=z.device)
    words: list[list[int]] = [[] for _ in range(batch)]
    for _ in range(max_length):
        out, state = decoder.hidden_states(inputs, z, state)
        logits = decoder.output(out[:, -1]).float()
        if greedy:
            nxt = logits.argmax(dim=-1)
        else:
            probs = torch.softmax(logits / temperature, dim=-1)
            nxt = torch.multinomial(probs, 1, generator=generator).squeeze(1)
        for i, token in enumerate(nxt.tolist()):
            if not done[i] and token != Vocabulary.EOS_INDEX:
                words[i].append(token)
        done |= nxt == Vocabulary.EOS_INDEX
        if bool(done.all()):
            break
        inputs = nxt.unsqueeze(1)
    return words


def _encode_sentences(model: TextVAE, vocab: Vocabulary, sentences: list[list[str]]
                      ) -> torch.Tensor:
    """Posterior means ``[N, D]`` of the given tokenised sentences (any lengths)."""
    device = next(model.parameters()).device
    means = []
    for ids in encode_corpus(sentences, vocab):
        mu, _ = model.encode(torch.tensor([ids], dtype=torch.long, device=device))
        means.append(mu)
    return torch.cat(means)


def generate_from_checkpoint(path: str | Path, *, prior: int | None = None,
                             reconstruct: Path | None = None,
                             interpolate: list[str] | None = None, steps: int = 5,
                             greedy: bool = True, temperature: float = 1.0,
                             max_length: int = 50, seed: int = 0) -> list[str]:
    """Lines of generated text for ``cyclevae generate`` (one mode at a time)."""
    if temperature <= 0:
        raise UserError(f"--temperature must be > 0, got {temperature}")
    if max_length < 1:
        raise UserError(f"--max-length must be >= 1, got {max_length}")
    model, vocab, _, _ = load_model(path)
    generator = torch.Generator().manual_seed(seed)

    def text(ids_list: list[list[int]]) -> list[str]:
        return [" ".join(vocab.decode(ids)) for ids in ids_list]

    with torch.no_grad():
        if prior is not None:
            if prior < 1:
                raise UserError(f"--prior must be >= 1, got {prior}")
            z = torch.randn(prior, model.latent_dim, generator=generator)
            return text(decode(model, z, max_length=max_length, greedy=greedy,
                               temperature=temperature, generator=generator))
        if reconstruct is not None:
            sentences, _ = read_sentences(reconstruct)
            z = _encode_sentences(model, vocab, sentences)
            outputs = text(decode(model, z, max_length=max_length, greedy=greedy,
                                  temperature=temperature, generator=generator))
            return [f"{' '.join(src)}\t{out}" for src, out in zip(sentences, outputs)]
        assert interpolate is not None
        if steps < 2:
            raise UserError(f"--steps must be >= 2, got {steps}")
        sentences = [s.split() for s in interpolate]
        if any(not s for s in sentences):
            raise UserError("--interpolate: both sentences must contain at least one word")
        ends = _encode_sentences(model, vocab, sentences)
        weights = torch.linspace(0, 1, steps).unsqueeze(1)
        z = (1 - weights) * ends[0] + weights * ends[1]
        outputs = text(decode(model, z, max_length=max_length, greedy=greedy,
                              temperature=temperature, generator=generator))
        return [f"{w:.2f}\t{o}" for w, o in zip(weights.squeeze(1).tolist(), outputs)]
