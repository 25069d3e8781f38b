"""The Trainer: one loop for every text VAE, read top to bottom.

    data -> model -> for each epoch: for each batch: beta from the BetaScheduler,
    loss = rec + beta * kl (losses.beta_vae_loss), backward, clip, Adam step, lr step
    -> evaluate valid/test -> log (JSONL, TensorBoard, progress bar) -> checkpoint (atomic)
    -> final evaluation with importance-weighted NLL -> OUT/metrics.json

Resuming restores model, optimizer, schedulers, RNG states and the position inside the epoch,
so an interrupted run finishes with the same numbers as an uninterrupted one.
"""

from __future__ import annotations

import contextlib
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
from .checkpoint import (check_vocabulary_file, load_checkpoint, rng_state, save_checkpoint,
                         set_rng_state)
from .config import Config, apply_resume_overrides, config_from_dict, save_config
from .data.batching import BatchedCorpus, encode_corpus
from .data.corpus import read_sentences
from .data.sources import data_dir as default_data_dir
from .data.sources import resolve_data_path
from .data.vocab import Vocabulary
from .distributed import DistContext, any_flag, barrier, init_distributed, shutdown, sum_floats
from .errors import UserError
from .losses import beta_vae_loss
from .metrics.likelihood import evaluate_model
from .models.savae import SVIVAE, SemiAmortizedVAE, SVIConfig
from .models.vae import TextVAE, VAEConfig
from .report import write_json_atomic, write_text_atomic
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
    batch: int = 0  # optimizer steps of the current epoch already done
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
    """The commit of the source tree this package runs from, if it is a git checkout, with
    ``+dirty`` if its tracked files under ``src/`` differ from that commit."""
    here = Path(__file__).resolve().parent
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=here, capture_output=True,
                             text=True, timeout=5, check=True)
        dirty = subprocess.run(["git", "diff", "--quiet", "HEAD", "--", str(here)], cwd=here,
                               capture_output=True, timeout=5).returncode == 1
        return out.stdout.strip() + ("+dirty" if dirty else "")
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
    m = config.model
    if m.kind in ("savae", "svi"):
        svi = SVIConfig(steps=m.svi_steps, lr=m.svi_lr, momentum=m.svi_momentum,
                        max_grad_norm=m.svi_max_grad_norm, grad=m.svi_grad,
                        decoder_grad=m.svi_decoder_grad)
        return (SemiAmortizedVAE if m.kind == "savae" else SVIVAE)(VAEConfig(**fields), svi)
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
        resume_overrides: ``key=value`` changes to the saved config of a resumed run, limited
            to :data:`cyclevae.config.RESUME_SETTABLE` (IW samples, IW chunk, threads).
    """

    def __init__(
        self,
        config: Config,
        out: str | Path,
        *,
        resume: bool = False,
        overwrite: bool = False,
        progress: bool | None = None,
        resume_overrides: list[str] | None = None,
    ) -> None:
        self.out = Path(out)
        self.progress = sys.stderr.isatty() if progress is None else progress
        self._stop_signal: int | None = None
        checkpoint = self._prepare_out_dir(resume, overwrite)
        if checkpoint is not None:
            config = config_from_dict(checkpoint["config"])
            if resume_overrides:
                config = apply_resume_overrides(config, resume_overrides)
        elif resume_overrides:
            raise UserError("resume_overrides are for resumed runs; put them in the config")
        self.config = config
        t = config.train
        if t.num_threads:
            torch.set_num_threads(t.num_threads)
        keep_freed_memory()
        self.device = resolve_device(t.device)
        self.dist: DistContext = init_distributed(self.device)
        if self.dist.enabled and self.device.type == "cuda":
            self.device = torch.device("cuda", self.dist.local_rank)
        seed_everything(t.seed)

        vocab = (Vocabulary(checkpoint["vocab"][len(Vocabulary.SPECIALS):])
                 if checkpoint is not None else None)
        self.data = load_corpora(config, vocab)
        self.vocab = self.data.vocab
        if len(self.data.train) == 0:
            raise UserError(f"{config.data.train}: no sentences left to train on")
        self.model = build_model(config, len(self.vocab)).to(self.device)
        self.optimizer = make_adam(self.model.parameters(), t.lr)
        self.batches_per_step = self.dist.world_size * t.accumulate
        steps_per_epoch = len(self.data.train) // self.batches_per_step
        if steps_per_epoch < 1:
            raise UserError(
                f"{config.data.train}: {len(self.data.train)} batches per epoch is fewer than "
                f"the {self.batches_per_step} needed for one step (processes x train.accumulate)"
            )
        self.steps_per_epoch = steps_per_epoch
        self.ddp: torch.nn.Module | None = None
        if self.dist.enabled:
            from torch.nn.parallel import DistributedDataParallel

            self.ddp = DistributedDataParallel(
                self.model, device_ids=[self.device.index] if self.device.type == "cuda" else None
            )
        def span(unit: str) -> tuple[int, int]:
            """(schedule length in its unit, optimizer steps per unit) for ``unit``."""
            return (t.epochs, steps_per_epoch) if unit == "epoch" else (
                t.epochs * steps_per_epoch, 1)

        s = config.schedule
        total, per_unit = span(s.unit)
        try:
            self.beta = BetaScheduler(total, n_cycles=s.n_cycles, ratio=s.ratio, shape=s.shape,
                                      start=s.start, stop=s.stop, steps_per_unit=per_unit,
                                      interpolate=s.interpolate)
        except ValueError as exc:
            raise UserError(f"config: schedule.{exc}") from None
        lr_cfg = config.lr_schedule
        lr_total, lr_per_unit = span(lr_cfg.unit)
        try:
            self.lr_schedule = (
                CyclicalLR(self.optimizer, lr_total, n_cycles=lr_cfg.n_cycles,
                           steps_per_unit=lr_per_unit)
                if lr_cfg.kind == "cyclical" else None
            )
        except ValueError as exc:
            raise UserError(f"config: lr_schedule.{exc}") from None
        self.state = Progress()
        if checkpoint is not None:
            self._restore(checkpoint)
        elif self.dist.is_main:
            self._create_out_dir(overwrite)
            save_config(config, self.out / "config.yaml")
            self.vocab.save(self.out / "vocab.txt")
        barrier(self.dist)
        self.log_path = self.out / "log.jsonl"
        # the code that trains is the code of this process's start, not of the run's end
        self.git_commit = git_commit()
        if checkpoint is not None and self.dist.is_main:
            self._trim_log()
            for stale in self.out.glob(".*.tmp"):  # left by a kill during an atomic write
                with contextlib.suppress(OSError):
                    stale.unlink()
        self.tensorboard = self._open_tensorboard()

    # ----------------------------------------------------------------- setup helpers
    def _prepare_out_dir(self, resume: bool, overwrite: bool) -> dict[str, Any] | None:
        last = self.out / LAST
        if resume:
            if not last.is_file():
                hint = ("; the run stopped before its first checkpoint: start it again with "
                        "--overwrite" if (self.out / "config.yaml").is_file() else "")
                raise UserError(f"{self.out}: nothing to resume (no {LAST}){hint}")
            checkpoint = load_checkpoint(last)
            check_vocabulary_file(self.out / "vocab.txt", checkpoint["vocab"], last)
            return checkpoint
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

    def _trim_log(self) -> None:
        """On resume, drop the log records the checkpoint does not know of: those written after
        it (they will be written again), a line cut short by a kill, and a ``final`` record."""
        if not self.log_path.is_file():
            return
        try:
            lines = self.log_path.read_text(encoding="utf-8").splitlines(keepends=True)
        except (OSError, UnicodeDecodeError) as exc:
            raise UserError(f"{self.log_path}: cannot read the training log ({exc})") from None
        keep = []
        for line in lines:
            try:
                record = json.loads(line) if line.endswith("\n") else None
            except ValueError:
                record = None
            if (isinstance(record, dict) and record.get("kind") != "final"
                    and record.get("step", 0) <= self.state.global_step):
                keep.append(line)
        if len(keep) != len(lines):
            write_text_atomic(self.log_path, "".join(keep))

    def _open_tensorboard(self) -> Any:
        if not self.dist.is_main:
            return None
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            return None
        try:
            return SummaryWriter(str(self.out / "tensorboard"))
        except OSError as exc:
            raise UserError(f"{self.out / 'tensorboard'}: cannot write TensorBoard logs "
                            f"({exc.strerror or exc})") from None

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
        """Write a checkpoint (rank 0 only; the others wait for it)."""
        if self.dist.is_main:
            save_checkpoint(self.checkpoint_state(), self.out / name)
        barrier(self.dist)

    def log(self, record: dict[str, Any]) -> None:
        if not self.dist.is_main:
            return
        try:
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
        except OSError as exc:
            raise UserError(f"{exc.filename or self.log_path}: could not write the training log "
                            f"({exc.strerror or exc}); the last complete checkpoint in "
                            f"{self.out} is kept") from None

    # ----------------------------------------------------------------- the loop
    def _on_signal(self, signum: int, _frame: Any) -> None:
        self._stop_signal = signum

    def _refines(self) -> bool:
        """Whether the model refines q(z|x) by SVI (kinds savae, svi): its refined q is then
        the one reported (``valid``, ``test``), the amortized one under ``*_amortized``."""
        return callable(getattr(self.model, "refined_encode", None))

    def evaluate(self, corpus: BatchedCorpus, iw_samples: int = 0, *,
                 amortized: bool = False) -> dict[str, float]:
        """Metrics of SPEC section 3 on one split (pure: training state untouched); with the
        refined q(z|x) if the model has one, unless ``amortized``."""
        encode_fn = None
        if self._refines() and not amortized:
            generator = torch.Generator().manual_seed(self.config.train.seed + 3)
            refine = self.model.refined_encode  # type: ignore[attr-defined]
            encode_fn = lambda tokens: refine(tokens, generator=generator)  # noqa: E731
        with torch.autocast(self.device.type, dtype=torch.bfloat16,
                            enabled=self.config.train.precision == "bf16"):
            return evaluate_model(self.model, corpus.batches(0, shuffle=False),
                                  iw_samples=iw_samples, iw_chunk=self.config.train.iw_chunk,
                                  seed=self.config.train.seed, device=self.device,
                                  encode_fn=encode_fn)

    def _amortized_too(self) -> bool:
        """Whether to also report the amortized q (SA-VAE: yes; SVI from the prior: no)."""
        return self._refines() and getattr(self.model, "has_amortized_encoder", False)

    def train_step(self, tokens: torch.Tensor | list[torch.Tensor], beta: float,
                   seeds: list[int] | None = None) -> dict[str, float] | None:
        """One optimisation step on one batch or on a list of batches (gradient accumulation:
        the step follows the mean of the batches' losses). ``seeds``, one per batch, fix the
        noise of each batch. Returns batch means, or None if the step was skipped for a
        non-finite value."""
        t = self.config.train
        micro = tokens if isinstance(tokens, list) else [tokens]
        model = self.ddp if self.ddp is not None else self.model
        self.model.train()
        self.optimizer.zero_grad(set_to_none=True)
        totals = {"loss": 0.0, "rec": 0.0, "kl": 0.0, "rec_sum": 0.0, "kl_sum": 0.0}
        # SA-VAE / SVI models also weight the KL of their SVI objective by beta
        extra = {"beta": beta} if getattr(self.model, "takes_beta", False) else {}
        bad_loss = None
        for i, batch in enumerate(micro):
            if seeds is not None:
                torch.manual_seed(seeds[i])
            sync = self.ddp is None or i == len(micro) - 1
            with contextlib.nullcontext() if sync else self.ddp.no_sync():  # type: ignore[union-attr]
                with torch.autocast(self.device.type, dtype=torch.bfloat16,
                                    enabled=t.precision == "bf16"):
                    out = model(batch, **extra)
                loss = beta_vae_loss(out.rec.float(), out.kl, beta, kl_per_dim=out.kl_per_dim,
                                     free_bits=t.free_bits)
                # backward even on a non-finite loss: under DDP every process must take part
                (loss / len(micro)).backward()
            value = loss.item()
            if not math.isfinite(value):
                bad_loss = value
            totals["loss"] += value / len(micro)
            rec_sum, kl_sum = out.rec.detach().sum().item(), out.kl.detach().sum().item()
            totals["rec_sum"] += rec_sum
            totals["kl_sum"] += kl_sum
            totals["rec"] += rec_sum / batch.shape[0] / len(micro)
            totals["kl"] += kl_sum / batch.shape[0] / len(micro)
        norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(),
                                              t.clip if t.clip > 0 else math.inf, foreach=True)
        problem = None
        if bad_loss is not None:
            problem = f"loss is {bad_loss}"
        elif not torch.isfinite(norm):
            problem = f"gradient norm is {norm.item()}"
        if any_flag(problem is not None, self.dist):
            message = (f"non-finite value at step {self.state.global_step + 1} (epoch "
                       f"{self.state.epoch + 1}, step {self.state.batch + 1} of the epoch, beta "
                       f"{beta:.4g}): {problem or 'on another process'}")
            bad_weight = next((name for name, p in self.model.named_parameters()
                               if not bool(torch.isfinite(p).all())), None)
            if bad_weight is not None:  # skipping batches cannot repair the weights
                message += f"; parameter {bad_weight} is non-finite"
            if t.nonfinite == "stop" or bad_weight is not None:
                raise NonFiniteLoss(message + f"; last good checkpoint kept in {self.out / LAST}")
            self.optimizer.zero_grad(set_to_none=True)
            self.state.skipped += 1
            self.log({"kind": "skipped", "step": self.state.global_step + 1, "message": message})
            return None
        self.optimizer.step()
        return totals

    def _epoch_batches(self, epoch: int) -> list[torch.Tensor]:
        """This process's batches of ``epoch``: the seeded global order, cut to a multiple of
        (processes x accumulate), global batch i going to process i % processes."""
        every = self.data.train.batches(epoch, shuffle=True, drop_last=False)
        usable = len(every) // self.batches_per_step * self.batches_per_step
        return every[:usable][self.dist.rank::self.dist.world_size]

    def _batch_seed(self, epoch: int, global_index: int) -> int:
        """Noise (dropout, z samples) of a batch depends only on the seed and the batch, so a
        resumed, accumulated or multi-process run draws exactly the same numbers."""
        return (self.config.train.seed * 1_000_003 + epoch) * 1_000_003 + global_index

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
            shutdown(self.dist)
            for s, h in handlers.items():
                signal.signal(s, h)
            if self.tensorboard is not None:
                try:
                    self.tensorboard.flush()
                except OSError as exc:
                    print(f"cyclevae: warning: {self.out / 'tensorboard'}: could not flush "
                          f"({exc.strerror or exc})", file=sys.stderr)

    def _train_epoch(self) -> None:
        t, st = self.config.train, self.state
        batches = self._epoch_batches(st.epoch)
        accumulate = t.accumulate
        bar = None
        if self.progress and self.dist.is_main:
            from tqdm import tqdm

            bar = tqdm(total=self.steps_per_epoch, initial=st.batch, unit="step", leave=False,
                       desc=f"epoch {st.epoch + 1}/{t.epochs}")
        sums = st.epoch_sums or {"rec": 0.0, "kl": 0.0, "sentences": 0, "tokens": 0}
        st.epoch_sums = sums
        resumed_tokens = sums["tokens"]
        started = time.perf_counter()
        for step in range(st.batch, self.steps_per_epoch):
            if any_flag(self._stop_signal is not None, self.dist):
                st.seconds += time.perf_counter() - started
                if self.dist.enabled:  # every process resumes with an equal share of the sums
                    keys = ("rec", "kl", "sentences", "tokens")
                    totals = sum_floats([sums[k] for k in keys], self.dist)
                    sums.update({k: v / self.dist.world_size for k, v in zip(keys, totals)})
                self.save()
                name = signal.Signals(self._stop_signal).name if self._stop_signal else "signal"
                raise TrainingInterrupted(
                    f"{name} received: checkpoint written to {self.out / LAST} at epoch "
                    f"{st.epoch + 1}, step {st.batch} of {self.steps_per_epoch}; continue with "
                    f"`cyclevae train --resume --out {self.out}`"
                )
            local = range(step * accumulate, (step + 1) * accumulate)
            micro = [batches[j].to(self.device, non_blocking=True) for j in local]
            seeds = [self._batch_seed(st.epoch, j * self.dist.world_size + self.dist.rank)
                     for j in local]
            beta = self.beta.value
            lr = self.optimizer.param_groups[0]["lr"]
            result = self.train_step(micro, beta, seeds)
            self.beta.step()
            if self.lr_schedule is not None:
                self.lr_schedule.step()
            st.batch = step + 1
            st.global_step += 1
            n_sent = sum(b.shape[0] for b in micro)
            n_tok = sum(b.shape[0] * (b.shape[1] - 1) for b in micro)
            if result is not None:
                sums["rec"] += result.pop("rec_sum")
                sums["kl"] += result.pop("kl_sum")
                sums["sentences"] += n_sent
            sums["tokens"] += n_tok
            if bar is not None:
                bar.update(1)
                rate = (sums["tokens"] - resumed_tokens) / max(time.perf_counter() - started, 1e-9)
                bar.set_postfix(beta=f"{beta:.3f}", tok_s=f"{rate * self.dist.world_size:.0f}")
            if result is not None and st.global_step % t.log_every == 0:
                self.log({"kind": "train", "epoch": st.epoch + 1, "step": st.global_step,
                          "beta": beta, "lr": lr, **result})
        if bar is not None:
            bar.close()
        seconds = time.perf_counter() - started
        st.seconds += seconds
        rec, kl, n, tokens = sum_floats([sums["rec"], sums["kl"], sums["sentences"],
                                         sums["tokens"] - resumed_tokens], self.dist)
        n = max(n, 1)
        record: dict[str, Any] = {
            "kind": "epoch", "epoch": st.epoch + 1, "step": st.global_step,
            "beta": self.beta.value, "lr": self.optimizer.param_groups[0]["lr"],
            "seconds": seconds, "tokens_per_s": tokens / max(seconds, 1e-9),
            "train": {"rec": rec / n, "kl": kl / n, "elbo": -(rec + kl) / n},
        }
        last_epoch = st.epoch + 1 == t.epochs
        if self.dist.is_main and ((st.epoch + 1) % t.eval_every == 0 or last_epoch):
            for split in ("valid", "test"):
                corpus = getattr(self.data, split)
                if corpus is not None:
                    record[split] = self.evaluate(corpus)
                    if self._amortized_too():
                        record[f"{split}_amortized"] = self.evaluate(corpus, amortized=True)
        st.history.append(record)
        st.epoch += 1
        st.batch = 0
        st.epoch_sums = {}
        self.log(record)
        is_best = "valid" in record and record["valid"]["nll_bound"] < st.best_valid_nll
        if is_best:
            st.best_valid_nll = record["valid"]["nll_bound"]
        self.save(LAST)
        if any_flag(is_best, self.dist):
            self.save(BEST)
        if not (self.progress and self.dist.is_main):
            return
        summary = (f"epoch {st.epoch}/{t.epochs}: train rec {record['train']['rec']:.2f} kl "
                   f"{record['train']['kl']:.3f}")
        if "valid" in record:
            summary += f" | valid elbo {record['valid']['elbo']:.2f} ppl {record['valid']['ppl']:.2f}"
        print(summary + f" | {seconds:.0f}s", file=sys.stderr)

    def _finish(self) -> dict[str, Any]:
        t, st = self.config.train, self.state
        if not self.dist.is_main:
            barrier(self.dist)
            return {}
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
            "git_commit": self.git_commit,
            "torch": torch.__version__,
            "device": str(self.device),
            "num_threads": torch.get_num_threads(),
        }
        if self._amortized_too():
            metrics["valid_amortized"] = last.get("valid_amortized")
        if self.data.test is not None:
            metrics["test"] = self.evaluate(self.data.test, iw_samples=t.iw_samples)
            if self._amortized_too():  # the same decoder; IW-NLL only with the refined q
                metrics["test_amortized"] = self.evaluate(self.data.test, amortized=True)
        best = self.out / BEST
        if best.is_file() and self.data.test is not None:
            metrics["best"] = self._best_checkpoint_metrics(best, last)
        metrics["processes"] = self.dist.world_size
        write_json_atomic(self.out / "metrics.json", metrics)
        barrier(self.dist)
        self.log({"kind": "final", "step": st.global_step, **{k: metrics[k] for k in
                                                             ("valid", "test") if k in metrics}})
        return metrics

    def _best_checkpoint_metrics(self, path: Path, last: dict[str, Any]) -> dict[str, Any]:
        """Test metrics (no IW) of the best-on-valid checkpoint. When it is the last epoch and
        that epoch was evaluated on test, its record is reused: evaluation is seeded, so a
        second pass over the same weights would only repeat the same numbers (for SA-VAE, two
        test passes with SVI)."""
        ckpt = load_checkpoint(path, map_location=self.device)
        epoch = ckpt["progress"]["epoch"]
        out: dict[str, Any] = {"epoch": epoch,
                               "valid": ckpt["progress"]["history"][-1].get("valid")}
        wanted = ["test"] + (["test_amortized"] if self._amortized_too() else [])
        if epoch == self.state.epoch and all(key in last for key in wanted):
            return {**out, **{key: last[key] for key in wanted}}
        current = {k: v.clone() for k, v in self.model.state_dict().items()}
        self.model.load_state_dict(ckpt["model"])
        out["test"] = self.evaluate(self.data.test)
        if self._amortized_too():
            out["test_amortized"] = self.evaluate(self.data.test, amortized=True)
        self.model.load_state_dict(current)
        return out


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
