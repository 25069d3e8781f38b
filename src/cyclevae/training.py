"""The Trainer: one loop for every text VAE, read top to bottom.

    data -> model -> for each epoch: for each batch: beta from the BetaScheduler,
    loss = rec + beta * kl (losses.beta_vae_loss), backward, clip, Adam step, lr step
    -> evaluate valid/test -> log (JSONL, TensorBoard, progress bar) -> checkpoint (atomic)
    -> final evaluation with importance-weighted NLL -> OUT/metrics.json

Resuming restores model, optimizer, schedulers, RNG states and the position inside the epoch,
so an interrupted run finishes with the same numbers as an uninterrupted one.
"""

from __future__ import annotations

import json
import math
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from . import __version__
from .checkpoint import load_checkpoint, rng_state, save_checkpoint, set_rng_state
from .config import Config, config_from_dict, save_config
from .data.batching import BatchedCorpus, encode_corpus
from .data.corpus import read_sentences
from .data.sources import data_dir as default_data_dir
from .data.sources import resolve_data_path
from .data.vocab import Vocabulary
from .errors import UserError
from .losses import beta_vae_loss
from .metrics.likelihood import evaluate_model
from .models.vae import TextVAE, VAEConfig
from .report import write_json_atomic
from .runtime import keep_freed_memory, make_adam
from .schedules import BetaScheduler, CyclicalLR

LAST = "checkpoint_last.pt"
BEST = "checkpoint_best.pt"


class TrainingInterrupted(Exception):
    """Raised after SIGINT/SIGTERM once the mid-epoch checkpoint is written."""


class NonFiniteLoss(RuntimeError):
    """A NaN or Inf loss or gradient under ``train.nonfinite = stop``."""


@dataclass
class Progress:
    """Counters saved in every checkpoint."""

    epoch: int = 0  # current epoch (0-based)
    batch: int = 0  # batches of the current epoch already done
    global_step: int = 0
    skipped: int = 0
    best_valid_nll: float = math.inf
    seconds: float = 0.0  # training wall time so far (excluding evaluation)
    epoch_sums: dict[str, float] = field(default_factory=dict)  # running sums of this epoch
    history: list[dict[str, Any]] = field(default_factory=list)


def seed_everything(seed: int) -> None:
    """One seed drives Python, NumPy and PyTorch."""
    import random

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def resolve_device(name: str) -> torch.device:
    """``auto`` -> CUDA if available, else CPU."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise UserError(f"config: train.device must be auto, cpu or cuda[:N], got {name!r}") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise UserError(f"config: train.device={name!r} but no CUDA device is available")
    return device


def git_commit() -> str | None:
    """The commit of the source tree this package runs from, if it is a git checkout."""
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=Path(__file__).resolve().parent,
            capture_output=True, text=True, timeout=5, check=True,
        )
        return out.stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None


@dataclass
class Corpora:
    """Vocabulary and batched splits of one run."""

    vocab: Vocabulary
    train: BatchedCorpus
    valid: BatchedCorpus | None
    test: BatchedCorpus | None
    stats: dict[str, Any]


def load_corpora(config: Config, vocab: Vocabulary | None = None) -> Corpora:
    """Read the splits named in ``config.data``; build the vocabulary from train unless given."""
    d = config.data
    if not d.train:
        raise UserError("config: data.train must name a corpus file or a data set (e.g. ptb:train)")
    root = default_data_dir(d.data_dir)
    stats: dict[str, Any] = {}
    splits: dict[str, list[list[str]] | None] = {}
    for split in ("train", "valid", "test"):
        spec = getattr(d, split)
        if not spec:
            splits[split] = None
            continue
        sentences, st = read_sentences(resolve_data_path(spec, root), max_length=d.max_length)
        splits[split] = sentences
        stats[split] = {"lines": st.lines, "sentences": st.sentences, "blank": st.blank,
                        "too_long": st.too_long, "tokens": st.tokens}
    if vocab is None:
        vocab = Vocabulary.build(splits["train"] or [], max_size=d.max_vocab,
                                 min_count=d.min_count)
    seed = config.train.seed

    def batched(split: str) -> BatchedCorpus | None:
        sentences = splits[split]
        if sentences is None:
            return None
        return BatchedCorpus(encode_corpus(sentences, vocab), batch_size=d.batch_size, seed=seed)

    return Corpora(vocab, batched("train"), batched("valid"), batched("test"), stats)  # type: ignore[arg-type]


def build_model(config: Config, vocab_size: int) -> TextVAE:
    """The model named by ``config.model.kind`` with ``vocab_size`` from the data."""
    fields = {k: v for k, v in vars(config.model).items() if k in VAEConfig.__dataclass_fields__}
    fields["vocab_size"] = vocab_size
    fields["unk_index"] = Vocabulary.UNK_INDEX
    return TextVAE(VAEConfig(**fields))


class Trainer:
    """Trains one model on one corpus as its config says, writing everything into ``out``.

    Args:
        config: the resolved run config.
        out: output directory (created; refused if it holds another run unless ``resume`` or
            ``overwrite``).
        resume: continue from ``out/checkpoint_last.pt``.
        overwrite: discard a previous run in ``out``.
        progress: show a progress bar (default: only when stderr is a terminal).
    """

    def __init__(
        self,
        config: Config,
        out: str | Path,
        *,
        resume: bool = False,
        overwrite: bool = False,
        progress: bool | None = None,
    ) -> None:
        self.out = Path(out)
        self.progress = sys.stderr.isatty() if progress is None else progress
        self._stop_signal: int | None = None
        checkpoint = self._prepare_out_dir(resume, overwrite)
        if checkpoint is not None:
            config = config_from_dict(checkpoint["config"])
        self.config = config
        t = config.train
        if t.num_threads:
            torch.set_num_threads(t.num_threads)
        keep_freed_memory()
        self.device = resolve_device(t.device)
        seed_everything(t.seed)

        vocab = (Vocabulary(checkpoint["vocab"][len(Vocabulary.SPECIALS):])
                 if checkpoint is not None else None)
        self.data = load_corpora(config, vocab)
        self.vocab = self.data.vocab
        if len(self.data.train) == 0:
            raise UserError(f"{config.data.train}: no sentences left to train on")
        self.model = build_model(config, len(self.vocab)).to(self.device)
        self.optimizer = make_adam(self.model.parameters(), t.lr)
        steps_per_epoch = len(self.data.train)
        s = config.schedule
        total, per_unit = (t.epochs, steps_per_epoch) if s.unit == "epoch" else (
            t.epochs * steps_per_epoch, 1)
        try:
            self.beta = BetaScheduler(total, n_cycles=s.n_cycles, ratio=s.ratio, shape=s.shape,
                                      start=s.start, stop=s.stop, steps_per_unit=per_unit,
                                      interpolate=s.interpolate)
        except ValueError as exc:
            raise UserError(f"config: schedule.{exc}") from None
        self.lr_schedule = (
            CyclicalLR(self.optimizer, t.epochs, n_cycles=config.lr_schedule.n_cycles,
                       steps_per_unit=steps_per_epoch)
            if config.lr_schedule.kind == "cyclical" else None
        )
        self.state = Progress()
        if checkpoint is not None:
            self._restore(checkpoint)
        else:
            self._create_out_dir(overwrite)
            save_config(config, self.out / "config.yaml")
            self.vocab.save(self.out / "vocab.txt")
        self.log_path = self.out / "log.jsonl"
        self.tensorboard = self._open_tensorboard()

    # ----------------------------------------------------------------- setup helpers
    def _prepare_out_dir(self, resume: bool, overwrite: bool) -> dict[str, Any] | None:
        last = self.out / LAST
        if resume:
            if not last.is_file():
                raise UserError(f"{self.out}: nothing to resume (no {LAST})")
            return load_checkpoint(last)
        if self.out.exists() and not self.out.is_dir():
            raise UserError(f"{self.out}: output path exists and is not a directory")
        holds_run = any((self.out / name).exists() for name in (LAST, "config.yaml", "log.jsonl"))
        if holds_run and not overwrite:
            raise UserError(
                f"{self.out}: output directory holds another run; pass --resume to continue it "
                "or --overwrite to replace it"
            )
        return None

    def _create_out_dir(self, overwrite: bool) -> None:
        """Create the output directory once the inputs are known to be good."""
        try:
            self.out.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise UserError(f"{self.out}: cannot create output directory ({exc.strerror})") from None
        if overwrite:
            for name in (LAST, BEST, "log.jsonl", "metrics.json"):
                (self.out / name).unlink(missing_ok=True)

    def _restore(self, ckpt: dict[str, Any]) -> None:
        self.model.load_state_dict(ckpt["model"])
        self.optimizer.load_state_dict(ckpt["optimizer"])
        self.beta.load_state_dict(ckpt["beta_scheduler"])
        if self.lr_schedule is not None and ckpt.get("lr_scheduler") is not None:
            self.lr_schedule.load_state_dict(ckpt["lr_scheduler"])
        self.state = Progress(**ckpt["progress"])
        set_rng_state(ckpt["rng"])

    def _open_tensorboard(self) -> Any:
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            return None
        return SummaryWriter(str(self.out / "tensorboard"))

    # ----------------------------------------------------------------- checkpoints, logs
    def checkpoint_state(self) -> dict[str, Any]:
        return {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "beta_scheduler": self.beta.state_dict(),
            "lr_scheduler": self.lr_schedule.state_dict() if self.lr_schedule else None,
            "rng": rng_state(),
            "progress": vars(self.state).copy(),
            "config": self.config.to_dict(),
            "vocab": self.vocab.tokens,
            "version": __version__,
        }

    def save(self, name: str = LAST) -> None:
        save_checkpoint(self.checkpoint_state(), self.out / name)

    def log(self, record: dict[str, Any]) -> None:
        with open(self.log_path, "a", encoding="utf-8") as handle:
            handle.write(json.dumps(record) + "\n")
        if self.tensorboard is not None:
            kind = record.get("kind", "train")
            step = record.get("step", self.state.global_step)
            for key, value in record.items():
                if isinstance(value, (int, float)) and key not in ("step", "epoch"):
                    self.tensorboard.add_scalar(f"{kind}/{key}", value, step)
                elif isinstance(value, dict):
                    for sub, v in value.items():
                        if isinstance(v, (int, float)):
                            self.tensorboard.add_scalar(f"{key}/{sub}", v, step)

    # ----------------------------------------------------------------- the loop
    def _on_signal(self, signum: int, _frame: Any) -> None:
        self._stop_signal = signum

    def evaluate(self, corpus: BatchedCorpus, iw_samples: int = 0) -> dict[str, float]:
        """Metrics of SPEC section 3 on one split (pure: training state untouched)."""
        with torch.autocast(self.device.type, dtype=torch.bfloat16,
                            enabled=self.config.train.precision == "bf16"):
            return evaluate_model(self.model, corpus.batches(0, shuffle=False),
                                  iw_samples=iw_samples, iw_chunk=self.config.train.iw_chunk,
                                  seed=self.config.train.seed, device=self.device)

    def train_step(self, tokens: torch.Tensor, beta: float) -> dict[str, float] | None:
        """One optimisation step; returns batch means, or None if the batch was skipped."""
        t = self.config.train
        self.model.train()
        with torch.autocast(self.device.type, dtype=torch.bfloat16,
                            enabled=t.precision == "bf16"):
            out = self.model(tokens)
        loss = beta_vae_loss(out.rec.float(), out.kl, beta, kl_per_dim=out.kl_per_dim,
                             free_bits=t.free_bits)
        self.optimizer.zero_grad(set_to_none=True)
        problem = None
        if not torch.isfinite(loss):
            problem = f"loss is {loss.item()}"
        else:
            loss.backward()
            norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(),
                                                  t.clip if t.clip > 0 else math.inf,
                                                  foreach=True)
            if not torch.isfinite(norm):
                problem = f"gradient norm is {norm.item()}"
        if problem is not None:
            message = (f"non-finite value at step {self.state.global_step} (epoch "
                       f"{self.state.epoch + 1}, batch {self.state.batch + 1}, beta {beta:.4f}): "
                       f"{problem}")
            if t.nonfinite == "stop":
                raise NonFiniteLoss(message + f"; last good checkpoint kept in {self.out / LAST}")
            self.optimizer.zero_grad(set_to_none=True)
            self.state.skipped += 1
            self.log({"kind": "skipped", "step": self.state.global_step, "message": message})
            return None
        self.optimizer.step()
        return {"loss": loss.item(), "rec": out.rec.mean().item(), "kl": out.kl.mean().item()}

    def fit(self) -> dict[str, Any]:
        """Train to ``train.epochs``, evaluating and checkpointing every epoch; return and write
        ``metrics.json``. Raises :class:`TrainingInterrupted` after a signal (checkpoint saved)."""
        t = self.config.train
        handlers = {s: signal.signal(s, self._on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
        try:
            while self.state.epoch < t.epochs:
                self._train_epoch()
            return self._finish()
        finally:
            for s, h in handlers.items():
                signal.signal(s, h)
            if self.tensorboard is not None:
                self.tensorboard.flush()

    def _train_epoch(self) -> None:
        t, st = self.config.train, self.state
        batches = self.data.train.batches(st.epoch, shuffle=True)
        bar = None
        if self.progress:
            from tqdm import tqdm

            bar = tqdm(total=len(batches), initial=st.batch, desc=f"epoch {st.epoch + 1}/{t.epochs}",
                       unit="batch", leave=False)
        sums = st.epoch_sums or {"rec": 0.0, "kl": 0.0, "sentences": 0, "tokens": 0}
        st.epoch_sums = sums
        resumed_tokens = sums["tokens"]
        started = time.perf_counter()
        for index in range(st.batch, len(batches)):
            if self._stop_signal is not None:
                self.state.seconds += time.perf_counter() - started
                self.save()
                name = signal.Signals(self._stop_signal).name
                raise TrainingInterrupted(
                    f"{name} received: checkpoint written to {self.out / LAST} at epoch "
                    f"{st.epoch + 1}, batch {st.batch}; continue with --resume"
                )
            tokens = batches[index].to(self.device, non_blocking=True)
            beta = self.beta.value
            lr = self.optimizer.param_groups[0]["lr"]
            result = self.train_step(tokens, beta)
            self.beta.step()
            if self.lr_schedule is not None:
                self.lr_schedule.step()
            st.batch = index + 1
            st.global_step += 1
            n_tok = tokens.shape[0] * (tokens.shape[1] - 1)
            if result is not None:
                sums["rec"] += result["rec"] * tokens.shape[0]
                sums["kl"] += result["kl"] * tokens.shape[0]
                sums["sentences"] += tokens.shape[0]
            sums["tokens"] += n_tok
            if bar is not None:
                bar.update(1)
                elapsed = time.perf_counter() - started
                rate = (sums["tokens"] - resumed_tokens) / max(elapsed, 1e-9)
                bar.set_postfix(beta=f"{beta:.3f}", tok_s=f"{rate:.0f}")
            if result is not None and st.global_step % t.log_every == 0:
                self.log({"kind": "train", "epoch": st.epoch + 1, "step": st.global_step,
                          "beta": beta, "lr": lr, **result})
        if bar is not None:
            bar.close()
        seconds = time.perf_counter() - started
        st.seconds += seconds
        n = max(sums["sentences"], 1)
        record: dict[str, Any] = {
            "kind": "epoch", "epoch": st.epoch + 1, "step": st.global_step,
            "beta": self.beta.value, "lr": self.optimizer.param_groups[0]["lr"],
            "seconds": seconds,
            "tokens_per_s": (sums["tokens"] - resumed_tokens) / max(seconds, 1e-9),
            "train": {"rec": sums["rec"] / n, "kl": sums["kl"] / n,
                      "elbo": -(sums["rec"] + sums["kl"]) / n},
        }
        last_epoch = st.epoch + 1 == t.epochs
        if (st.epoch + 1) % t.eval_every == 0 or last_epoch:
            for split in ("valid", "test"):
                corpus = getattr(self.data, split)
                if corpus is not None:
                    record[split] = self.evaluate(corpus)
        st.history.append(record)
        st.epoch += 1
        st.batch = 0
        st.epoch_sums = {}
        self.log(record)
        is_best = "valid" in record and record["valid"]["nll_bound"] < st.best_valid_nll
        if is_best:
            st.best_valid_nll = record["valid"]["nll_bound"]
        self.save(LAST)
        if is_best:
            self.save(BEST)
        if not self.progress:
            return
        summary = f"epoch {st.epoch}/{t.epochs}: train rec {record['train']['rec']:.2f} kl " \
                  f"{record['train']['kl']:.3f}"
        if "valid" in record:
            summary += f" | valid elbo {record['valid']['elbo']:.2f} ppl {record['valid']['ppl']:.2f}"
        print(summary + f" | {seconds:.0f}s", file=sys.stderr)

    def _finish(self) -> dict[str, Any]:
        t, st = self.config.train, self.state
        last = st.history[-1] if st.history else {}
        metrics: dict[str, Any] = {
            "config": self.config.to_dict(),
            "epochs": st.epoch,
            "steps": st.global_step,
            "skipped_batches": st.skipped,
            "seconds_per_epoch": st.seconds / max(st.epoch, 1),
            "tokens_per_s": last.get("tokens_per_s"),
            "train": last.get("train"),
            "valid": last.get("valid"),
            "data": self.data.stats,
            "vocab_size": len(self.vocab),
            "version": __version__,
            "git_commit": git_commit(),
            "torch": torch.__version__,
            "device": str(self.device),
            "num_threads": torch.get_num_threads(),
        }
        if self.data.test is not None:
            metrics["test"] = self.evaluate(self.data.test, iw_samples=t.iw_samples)
        best = self.out / BEST
        if best.is_file() and self.data.test is not None:
            ckpt = load_checkpoint(best, map_location=self.device)
            current = {k: v.clone() for k, v in self.model.state_dict().items()}
            self.model.load_state_dict(ckpt["model"])
            metrics["best"] = {
                "epoch": ckpt["progress"]["epoch"],
                "valid": ckpt["progress"]["history"][-1].get("valid"),
                "test": self.evaluate(self.data.test),
            }
            self.model.load_state_dict(current)
        write_json_atomic(self.out / "metrics.json", metrics)
        self.log({"kind": "final", "step": st.global_step, **{k: metrics[k] for k in
                                                             ("valid", "test") if k in metrics}})
        return metrics


def run_training(config: Config, out: str | Path, *, resume: bool = False,
                 overwrite: bool = False, progress: bool | None = None) -> dict[str, Any]:
    """Convenience wrapper: build a :class:`Trainer` and ``fit`` it."""
    return Trainer(config, out, resume=resume, overwrite=overwrite, progress=progress).fit()


__all__ = [
    "NonFiniteLoss",
    "Trainer",
    "TrainingInterrupted",
    "build_model",
    "load_corpora",
    "run_training",
]
