"""Training and evaluation throughput on PTB at the paper's sizes, against a straightforward
reference implementation timed in the same run (these machines are shared; only ratios in one
run are comparable).

    python benchmarks/train_speed.py [--batches 40] [--repeats 3] [--modes train_fp32,...]
                                     [--device cpu|cuda[:N]]

Prints one JSON line per measurement with "mode", "tokens_per_s", "reference_tokens_per_s",
"ratio", "seconds_per_epoch" (train modes), "floor_fraction" (achieved FLOP/s over the GEMM
peak of the mode's precision measured in this run) and the details. A mode that needs a
capability this machine lacks (``train_bf16`` without native bf16 matrix support,
:func:`cyclevae.runtime.native_bf16`) prints ``{"mode": ..., "skipped": "no native bf16
(checked: ...)"}`` instead, and the GEMM peak of a precision is measured only when a mode of
that precision runs ("gemm_gflops_bf16" is null otherwise). Run from the repository root with
../shared/data.

The reference is timed in a child process with glibc's default allocator (what a user's own
script gets: "reference_tokens_per_s", "ratio") and again in this process after
:func:`cyclevae.runtime.configure_process` has configured the allocator
("reference_same_process_tokens_per_s", "ratio_same_process"), which isolates our other changes
from the allocator's share; for the training modes that in-process reference alternates with
ours pass by pass, and "ratio_cpu_time" / "floor_fraction_cpu_time" use process CPU time (on a
busy machine it leaves out the time spent waiting for a core; the fraction divides it by the
threads). The float32 floor is the faster
of PyTorch's BLAS and oneDNN's product (``floors.fp32_peaks``; both reported). ``--profile``
adds one line per side ("profile_train_fp32", ours and the reference): milliseconds per step
by part against each part's share of the FLOPs (``profiling.py``).

``--device cuda`` times the same real path (``Trainer.train_step``, ``evaluate_model``,
``iw_log_likelihood``) and the reference on the GPU, with the GEMM peaks for the floors measured
on that GPU in the same run (8192^3 products) and ``torch.cuda.synchronize()`` around every
timing; warm-up runs one batch of every distinct sentence length first (cuDNN plans per shape).
The lines then also carry "device", "gpu" and the TF32 settings in force ("tf32_matmul",
"tf32_cudnn": PyTorch's defaults leave cuBLAS products in float32 and let cuDNN's LSTMs use
TF32). The CPU behaviour is unchanged.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))
from floors import fp32_peaks, gemm_peak, synchronize  # the benchmarks' shared modules
from profiling import part_table, profile_parts

REPO = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("CYCLEVAE_SHARED_DATA", REPO.parent / "shared" / "data"))
EPOCH_TOKENS = 929_589


# --------------------------------------------------------------------- the reference
class ReferenceVAE(nn.Module):
    """What a competent user writes first: nn.LSTM encoder/decoder, one cross-entropy."""

    def __init__(self, vocab: int, emb: int = 256, hidden: int = 256, latent: int = 32) -> None:
        super().__init__()
        self.enc_emb = nn.Embedding(vocab, emb)
        self.enc = nn.LSTM(emb, hidden, batch_first=True)
        self.to_params = nn.Linear(hidden, 2 * latent)
        self.dec_emb = nn.Embedding(vocab, emb)
        self.z_to_h = nn.Linear(latent, hidden)
        self.dec = nn.LSTM(emb + latent, hidden, batch_first=True)
        self.drop = nn.Dropout(0.5)
        self.out = nn.Linear(hidden, vocab)
        for p in self.parameters():
            nn.init.uniform_(p, -0.1, 0.1)

    def forward(self, tokens: torch.Tensor, iw: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
        _, (h, _) = self.enc(self.enc_emb(tokens))
        mu, logvar = self.to_params(h[-1]).chunk(2, -1)
        z = mu + (0.5 * logvar).exp() * torch.randn_like(mu)
        return self.rec(tokens, z), self.kl(mu, logvar)

    def rec(self, tokens: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """-log p(x|z) per sentence, ``[B]`` nats, for ``tokens [B, L+1]`` and ``z [B, D]``
        (materialised logits, ``F.cross_entropy``; dropout as the module's mode says)."""
        inp, tgt = tokens[:, :-1], tokens[:, 1:]
        emb = self.drop(self.dec_emb(inp))
        x = torch.cat([emb, z.unsqueeze(1).expand(-1, inp.shape[1], -1)], -1)
        h0 = self.z_to_h(z).unsqueeze(0)
        out, _ = self.dec(x, (h0, torch.zeros_like(h0)))
        logits = self.out(self.drop(out))
        return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), tgt.reshape(-1),
                               reduction="none").view(tgt.shape).sum(1)

    @staticmethod
    def kl(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
        """KL(N(mu, exp(logvar)) || N(0, I)) per sentence, ``[B]`` nats."""
        return 0.5 * (mu.pow(2) + logvar.exp() - logvar - 1).sum(1)

    @torch.no_grad()
    def iw_nll(self, tokens: torch.Tensor, k: int, chunk: int) -> torch.Tensor:
        """The straightforward chunked importance-weighted loop."""
        _, (h, _) = self.enc(self.enc_emb(tokens))
        mu, logvar = self.to_params(h[-1]).chunk(2, -1)
        std = (0.5 * logvar).exp()
        parts = []
        for _ in range(k // chunk):
            eps = torch.randn(tokens.shape[0], chunk, mu.shape[1], device=tokens.device)
            z = (mu.unsqueeze(1) + std.unsqueeze(1) * eps).reshape(-1, mu.shape[1])
            rep = tokens.repeat_interleave(chunk, 0)
            inp, tgt = rep[:, :-1], rep[:, 1:]
            x = torch.cat([self.dec_emb(inp), z.unsqueeze(1).expand(-1, inp.shape[1], -1)], -1)
            h0 = self.z_to_h(z).unsqueeze(0)
            out, _ = self.dec(x, (h0, torch.zeros_like(h0)))
            logits = self.out(out)
            rec = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), tgt.reshape(-1),
                                  reduction="none").view(tgt.shape).sum(1).view(-1, chunk)
            log_pz = (-0.5 * z.pow(2) - 0.5 * math.log(2 * math.pi)).sum(-1).view(-1, chunk)
            log_q = (-0.5 * eps.pow(2) - 0.5 * logvar.unsqueeze(1)
                     - 0.5 * math.log(2 * math.pi)).sum(-1)
            parts.append(-rec + log_pz - log_q)
        w = torch.cat(parts, 1)
        return -(torch.logsumexp(w, 1) - math.log(w.shape[1]))


# --------------------------------------------------------------------- measurement
def flops_per_token(emb: int = 256, hidden: int = 256, latent: int = 32, vocab: int = 10002
                    ) -> dict[str, float]:
    """Multiply-add FLOPs per predicted token of the PTB VAE (x2 for a multiply-add)."""
    enc = 2 * 4 * hidden * (emb + hidden)
    dec = 2 * 4 * hidden * (emb + latent + hidden)
    out = 2 * hidden * vocab
    forward = enc + dec + out
    return {"train": 3 * forward, "eval": forward, "iw_sample": dec + out}


def timed(fn, batches, repeats: int, device: torch.device | str = "cpu") -> float:
    """Median over repeats of the time of one pass of ``fn`` over all ``batches`` (the
    device's queue drained before and after each pass)."""
    times = []
    for _ in range(repeats):
        synchronize(device)
        t = time.perf_counter()
        for b in batches:
            fn(b)
        synchronize(device)
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def timed_with_cpu(fn, batches, device: torch.device | str = "cpu") -> tuple[float, float]:
    """Wall-clock and process CPU seconds of one pass of ``fn`` over ``batches`` (on a busy
    machine the CPU time leaves out the time this process waited for a core)."""
    synchronize(device)
    t, c = time.perf_counter(), time.process_time()
    for b in batches:
        fn(b)
    synchronize(device)
    return time.perf_counter() - t, time.process_time() - c


def warmup_batches(batches: list, device: torch.device | str = "cpu") -> list:
    """The batches a timing warms up on: the first 3 on CPU; on CUDA also the first batch of
    every other sentence length (cuDNN builds its LSTM plan per shape on first use)."""
    warm = list(batches[:3])
    if torch.device(device).type == "cuda":
        seen = {_shape(b) for b in warm}
        for b in batches:
            if _shape(b) not in seen:
                seen.add(_shape(b))
                warm.append(b)
    return warm


def _shape(batch) -> tuple[int, ...]:
    tokens = batch if isinstance(batch, torch.Tensor) else batch.tokens
    return tuple(tokens.shape)


def reference_step_fn(reference: nn.Module, beta: float = 0.5, lr: float = 1e-3,
                      clip: float = 5.0):
    """A reference's plain training step on a ``[B, L+1]`` batch: mean ELBO loss
    (``reference(b)`` returns per-sentence Rec and KL), backward, ``clip_grad_norm_``,
    ``torch.optim.Adam``. The model is ``step.model``. Shared by the benchmarks' references."""
    opt = torch.optim.Adam(reference.parameters(), lr=lr)

    def step(b: torch.Tensor) -> None:
        reference.train()
        rec, kl = reference(b)
        loss = rec.mean() + beta * kl.mean()
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(reference.parameters(), clip)
        opt.step()

    step.model = reference  # type: ignore[attr-defined]
    return step


def part_flops(batches: list, emb: int = 256, hidden: int = 256, latent: int = 32,
               vocab: int = 10002) -> dict[str, float]:
    """Forward FLOPs of ``batches`` (``[B, L+1]`` token tensors or TextBatches) by part of the
    PTB VAE (``encoder_lstm``, ``decoder_lstm``, ``output_layer``), per predicted token as
    :func:`flops_per_token` counts them (L per sentence)."""
    parts = {"encoder_lstm": 0.0, "decoder_lstm": 0.0, "output_layer": 0.0}
    for b in batches:
        tokens = b if isinstance(b, torch.Tensor) else b.tokens
        rows, length = tokens.shape
        parts["encoder_lstm"] += rows * (length - 1) * 2 * 4 * hidden * (emb + hidden)
        parts["decoder_lstm"] += rows * (length - 1) * 2 * 4 * hidden * (emb + latent + hidden)
        parts["output_layer"] += rows * (length - 1) * 2 * hidden * vocab
    return parts


def reference_times(vocab: int, batches: list[torch.Tensor], sample: list[torch.Tensor],
                    modes: list[str], repeats: int, k: int = 500, chunk: int = 50,
                    device: torch.device | str = "cpu") -> dict[str, float]:
    """Seconds of the reference per pass: ``train`` (one step per batch, fp32), ``eval_elbo``
    (forward over ``batches``), ``eval_iw_nll`` (K samples per sentence of ``sample``), all
    on ``device`` (the batches are moved there first)."""
    torch.manual_seed(0)
    batches = [b.to(device) for b in batches]
    sample = [b.to(device) for b in sample]
    reference = ReferenceVAE(vocab).to(device)
    step = reference_step_fn(reference)

    def elbo(_b: None) -> None:
        reference.eval()
        with torch.no_grad():
            for b in batches:
                reference(b)

    times: dict[str, float] = {}
    if any(m.startswith("train_") for m in modes):
        for b in warmup_batches(batches, device):
            step(b)
        times["train"] = timed(step, batches, repeats, device)
    if "eval_elbo" in modes:
        elbo(None)
        times["eval_elbo"] = timed(elbo, [None], repeats, device)
    if "eval_iw_nll" in modes:
        reference.eval()
        synchronize(device)
        t = time.perf_counter()
        for b in sample:
            reference.iw_nll(b, k, chunk)
        synchronize(device)
        times["eval_iw_nll"] = time.perf_counter() - t
    return times


def reference_times_in_child(vocab: int, batches: list[torch.Tensor],
                             sample: list[torch.Tensor], modes: list[str], repeats: int,
                             device: torch.device | str = "cpu") -> dict[str, float]:
    """:func:`reference_times` in a fresh process: a user's own script runs with glibc's
    default allocator, not the one :func:`cyclevae.runtime.configure_process` sets for the
    whole process (as the ``cyclevae`` command does)."""
    with tempfile.TemporaryDirectory(prefix="cyclevae-bench-ref-") as tmp:
        job = Path(tmp) / "job.pt"
        torch.save({"vocab": vocab, "batches": batches, "sample": sample, "modes": modes,
                    "repeats": repeats, "threads": torch.get_num_threads(),
                    "device": str(device)}, job)
        done = subprocess.run([sys.executable, __file__, "--reference-child", str(job)],
                              check=True, capture_output=True, text=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def _reference_child(job_path: str) -> None:
    job = torch.load(job_path)
    torch.set_num_threads(job["threads"])
    print(json.dumps(reference_times(job["vocab"], job["batches"], job["sample"], job["modes"],
                                     job["repeats"], device=job.get("device", "cpu"))))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, default=40, help="PTB batches sampled per pass")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--iw-sentences", type=int, default=64)
    parser.add_argument("--modes", default="train_fp32,train_bf16,eval_elbo,eval_iw_nll")
    parser.add_argument("--device", default="cpu",
                        help="cpu (default) or cuda[:N]: where ours and the reference run")
    parser.add_argument("--profile", action="store_true",
                        help="also print where the time of a float32 training step goes, by "
                             "part, for ours and the reference (CPU)")
    parser.add_argument("--reference-child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.reference_child:
        return _reference_child(args.reference_child)
    requested = [m for m in args.modes.split(",") if m]

    from cyclevae import runtime
    from cyclevae.config import load_config
    from cyclevae.data.batching import TextBatch
    from cyclevae.evaluation import evaluate_model
    from cyclevae.metrics.likelihood import iw_log_likelihood
    from cyclevae.training import Trainer

    def emit(record: dict) -> None:
        print(json.dumps(record), flush=True)

    # what the Trainer did for its process before the refactor, and the cyclevae command does
    # now: threads (PyTorch's default here) and the glibc allocator thresholds
    runtime.configure_process(None)
    torch.manual_seed(0)
    out = Path(tempfile.mkdtemp(prefix="cyclevae-bench-"))
    overrides = [f"data.data_dir={DATA}", "data.valid=null", "data.test=null", "train.epochs=40",
                 "schedule.n_cycles=4", "train.seed=0", f"train.device={args.device}"]
    trainer = Trainer(load_config(REPO / "configs" / "ptb" / "vae-cyclical.yaml", overrides),
                      out / "run", progress=False)
    device = trainer.device

    # modes whose precision this machine cannot run are reported as skipped, in their place
    has_bf16, checked = runtime.native_bf16(trainer.device)
    skipped = {m: f"no native bf16 (checked: {checked})" for m in requested
               if m.startswith("train_") and m.split("_")[1] == "bf16" and not has_bf16}
    modes = [m for m in requested if m not in skipped]

    all_batches = trainer.data.train.batches(0, shuffle=True)  # TextBatch objects
    gen = torch.Generator().manual_seed(0)
    pick = torch.randperm(len(all_batches), generator=gen)[: args.batches].tolist()
    batches = [all_batches[i].to(device) for i in pick]
    tokens = sum(b.num_tokens for b in batches)
    vocab = len(trainer.vocab)
    flops = flops_per_token(vocab=vocab)
    # GEMM peaks only of the precisions timed: every mode that runs reports a float32 floor
    # (train_bf16 too, as "floor_fraction_fp32"); bf16 only for a bf16 mode
    precisions = {m.split("_")[1] for m in modes if m.startswith("train_")}
    precisions |= {"fp32"} if modes else set()
    # the float32 floor: the faster of PyTorch's BLAS and oneDNN's product (floors.fp32_peaks)
    fp32 = fp32_peaks(device=device) if "fp32" in precisions else {}
    peak = {"fp32": fp32["peak"]} if fp32 else {}
    if "bf16" in precisions:
        peak["bf16"] = gemm_peak(torch.bfloat16, device=device)
    threads = torch.get_num_threads()

    # test-set-like sample for IW-NLL: sentences from the sampled batches
    k, chunk = 500, 50
    sample, n = [], 0
    for b in batches:
        if n >= args.iw_sentences:
            break
        sample.append(TextBatch(b.tokens[: args.iw_sentences - n]))
        n += sample[-1].num_examples
    iw_tokens = sum(b.num_tokens for b in sample)

    # the reference (plain tensors) twice: in a fresh process (glibc defaults, what a user's
    # script gets) and here (after configure_process set the allocator: isolates the other
    # changes)
    ref_batches = [b.tokens.cpu() for b in batches]
    ref_sample = [b.tokens.cpu() for b in sample]
    ref_child = ref_here = {}
    if modes:  # (none when every requested mode is skipped)
        ref_child = reference_times_in_child(vocab, ref_batches, ref_sample, modes, args.repeats,
                                             device)
        # (the training step's in-process reference alternates with ours below)
        ref_here = reference_times(vocab, ref_batches, ref_sample,
                                   [m for m in modes if not m.startswith("train_")],
                                   args.repeats, k, chunk, device)

    # the in-process reference of the training step (alternated with ours; profiled), built
    # only when a training mode or the profile needs it
    ref_train_batches = [b.to(device) for b in ref_batches]
    if args.profile or any(m.startswith("train_") for m in modes):
        torch.manual_seed(0)
        ref_train_step = reference_step_fn(ReferenceVAE(vocab).to(device))
        for b in warmup_batches(ref_train_batches, device):
            ref_train_step(b)

    def ref_fields(key: str, work: int) -> dict:
        fields = {"reference_tokens_per_s": round(work / ref_child[key])}
        if key in ref_here:
            fields["reference_same_process_tokens_per_s"] = round(work / ref_here[key])
        return fields

    def gflops(precision: str) -> float | None:
        return round(peak[precision], 1) if precision in peak else None

    common = {"cpu": runtime.cpu_name(), "batches": len(batches), "tokens": tokens,
              "threads": threads, "torch": torch.__version__,
              "gemm_gflops_fp32": gflops("fp32"),
              "gemm_gflops_fp32_blas": round(fp32["blas"], 1) if fp32 else None,
              "gemm_gflops_fp32_linear_product":
              round(fp32["linear_product"], 1) if fp32 else None,
              "gemm_gflops_bf16": gflops("bf16")}
    if device.type == "cuda":  # (CPU lines keep their earlier fields)
        common.update(device=str(device), gpu=torch.cuda.get_device_name(device),
                      tf32_matmul=torch.backends.cuda.matmul.allow_tf32,
                      tf32_cudnn=torch.backends.cudnn.allow_tf32)
    def ours_fn(b) -> None:
        trainer.train_step([b], 0.5)  # the real Trainer step

    for mode in [m for m in requested if m.startswith("train_")]:
        if mode in skipped:
            emit({"mode": mode, "skipped": skipped[mode]})
            continue
        precision = mode.split("_")[1]
        trainer.config.train.precision = precision
        for b in warmup_batches(batches, device):
            ours_fn(b)
        # ours and the in-process reference alternate pass by pass, so both see the same load
        ours_runs, ref_runs = [], []
        for _ in range(args.repeats):
            ours_runs.append(timed_with_cpu(ours_fn, batches, device))
            ref_runs.append(timed_with_cpu(ref_train_step, ref_train_batches, device))
        ours = statistics.median(r[0] for r in ours_runs)
        ref_wall = statistics.median(r[0] for r in ref_runs)
        ours_cpu = statistics.median(r[1] for r in ours_runs)
        ref_cpu = statistics.median(r[1] for r in ref_runs)
        ours_tps = tokens / ours
        refs = ref_fields("train", tokens)  # the reference always in fp32
        refs["reference_same_process_tokens_per_s"] = round(tokens / ref_wall)
        emit({"mode": mode, "tokens_per_s": round(ours_tps), **refs,
              "ratio": round(ours_tps / refs["reference_tokens_per_s"], 3),
              "ratio_same_process": round(ref_wall / ours, 3),
              "ratio_cpu_time": round(ref_cpu / ours_cpu, 3),
              # CPU seconds over the threads: the wall time the step would take with every
              # thread on a core of its own (the peak is measured with the same threads)
              "floor_fraction_cpu_time": round(tokens / (ours_cpu / threads) * flops["train"]
                                               / (peak[precision] * 1e9), 3),
              "seconds_per_epoch": round(EPOCH_TOKENS / ours_tps, 1),
              "reference_seconds_per_epoch": round(EPOCH_TOKENS / refs["reference_tokens_per_s"],
                                                   1),
              "floor_fraction": round(ours_tps * flops["train"] / (peak[precision] * 1e9), 3),
              "floor_fraction_fp32": round(ours_tps * flops["train"] / (peak["fp32"] * 1e9), 3),
              **common})
    trainer.config.train.precision = "fp32"
    if args.profile:
        model, ref = trainer.model, ref_train_step.model
        enc, dec = model.encoder, model.decoder
        forward_flops = part_flops(batches, vocab=vocab)
        ours_scopes = {enc.embedding: "embeddings", dec.embedding: "embeddings",
                       enc.lstm: "encoder_lstm", enc.to_params: "encoder_lstm",
                       dec.lstm: "decoder_lstm", dec.latent_to_hidden: "decoder_lstm",
                       dec.dropout: "dropout"}
        ref_scopes = {ref.enc_emb: "embeddings", ref.dec_emb: "embeddings",
                      ref.enc: "encoder_lstm", ref.to_params: "encoder_lstm",
                      ref.dec: "decoder_lstm", ref.z_to_h: "decoder_lstm",
                      ref.drop: "dropout", ref.out: "output_layer"}
        for which, fn, items, scopes, named in (
                ("ours", ours_fn, batches, ours_scopes, {"_LinearCrossEntropy": "output_layer"}),
                ("reference", ref_train_step, ref_train_batches, ref_scopes,
                 {"aten::cross_entropy_loss": "output_layer"})):
            seconds = profile_parts(fn, items, scopes, named)
            emit({"mode": "profile_train_fp32", "which": which,
                  "profiled_ms_per_step": round(1e3 * sum(seconds.values()) / len(items), 2),
                  "parts": part_table(seconds, forward_flops, len(items)), **common})
    if "eval_elbo" in modes:
        model = trainer.model

        def ours_eval(_b: None) -> None:
            evaluate_model(model, batches, iw_samples=0, seed=0)

        ours_eval(None)
        ours = timed(ours_eval, [None], args.repeats, device)
        refs = ref_fields("eval_elbo", tokens)
        emit({"mode": "eval_elbo", "tokens_per_s": round(tokens / ours), **refs,
              "ratio": round(tokens / ours / refs["reference_tokens_per_s"], 3),
              "floor_fraction": round(tokens / ours * flops["eval"] / (peak["fp32"] * 1e9), 3),
              **common})
    if "eval_iw_nll" in modes:
        gen = torch.Generator().manual_seed(0)
        synchronize(device)
        t = time.perf_counter()
        trainer.model.eval()
        with torch.no_grad():
            for b in sample:
                iw_log_likelihood(trainer.model, b, k, chunk, gen)
        synchronize(device)
        ours = time.perf_counter() - t
        refs = ref_fields("eval_iw_nll", iw_tokens)
        test_tokens = 82_430
        emit({"mode": "eval_iw_nll", "iw_samples": k, "sentences": n,
              "tokens_per_s": round(iw_tokens / ours), **refs,
              "ratio": round(iw_tokens / ours / refs["reference_tokens_per_s"], 3),
              "test_set_minutes": round(test_tokens / (iw_tokens / ours) / 60, 1),
              "reference_test_set_minutes": round(
                  test_tokens / refs["reference_tokens_per_s"] / 60, 1),
              "floor_fraction": round(iw_tokens * k / ours * flops["iw_sample"]
                                      / (peak["fp32"] * 1e9), 3),
              "floor_test_set_minutes": round(
                  test_tokens * k * flops["iw_sample"] / (peak["fp32"] * 1e9) / 60, 1),
              **common})


if __name__ == "__main__":
    sys.exit(main())
