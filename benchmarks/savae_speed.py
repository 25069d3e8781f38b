"""SA-VAE training speed on PTB at the paper's settings, beside the plain VAE and a
straightforward SA-VAE in the same run.

    python benchmarks/savae_speed.py [--batches 12] [--repeats 3] [--threads N]
                                     [--modes fd,fd_decoder,exact] [--accuracy]
                                     [--device cpu|cuda[:N]] [--small]

Times ``Trainer.train_step`` (the real code path: forward with 10 SVI steps, backward through
them, clipping, Adam) of an SA-VAE built from ``configs/ptb/savae-cyclical.yaml``, the plain
VAE of ``configs/ptb/vae-cyclical-cyclr.yaml`` and the reference below on the same PTB batches,
chosen evenly over the length-sorted batches of an epoch so that the sample's mix of lengths is
the epoch's. All are interleaved batch by batch (these machines are shared: only ratios within
one run compare), and each time is the median over repeats.

The reference is SA-VAE as a competent user writes it first from Kim et al. (2018), with the
modules of ``train_speed.ReferenceVAE`` at the same sizes: the SVI steps on (mu, logvar) in
plain autograd (``torch.autograd.grad(..., create_graph=True)``: exact second derivatives
through the steps, materialised logits, ``F.cross_entropy``, ``nn.Dropout``) with the update
rule and settings of the config's ``model.svi`` (batch-mean objective with the training beta,
per-tensor norm clipping of the mu and logvar gradients, momentum, lr), then the loss at the
refined lambda_K (the decoder trained on lambda_K only, the encoder through the steps, as our
default), backward, ``clip_grad_norm_`` (``train.clip``) and ``torch.optim.Adam``
(``train.lr``). It matches the modes without ``_decoder``; the ``_decoder`` mode also trains
the decoder through the steps (more work than the reference does).

Prints one JSON line per SA-VAE gradient method: "mode" (``train_savae_fp32`` for the default,
finite differences with the decoder trained on the refined q; ``train_savae_fd_decoder_fp32``
with the decoder trained through the steps too; ``train_savae_exact_fp32`` for exact double
backward), "tokens_per_s" (tokens over the median seconds), "reference_tokens_per_s",
"ratio" (ours over the reference, tokens per second), "seconds_per_epoch" and
"reference_seconds_per_epoch" (extrapolated to 929,589 tokens), "ratio_to_vae",
"floor_fraction" (the fd method's FLOPs per second over the GEMM peak measured in the run),
"floor_seconds_per_epoch" (those FLOPs at that peak), "cpu"
(:func:`cyclevae.runtime.cpu_name`), the VAE's own seconds per epoch and the details. With
``--accuracy`` also one line comparing each method's float32 gradient with the float64 exact
gradient of the same method. ``--small`` is a smoke test of the script, not a measurement
(tiny model sizes, 2 batches, 1 repeat, a 512^3 GEMM peak; the lines carry ``"small": true``).

At the 2-core GEMM peak (~320 GFLOP/s) the default method's FLOPs take 853 s per epoch; one
thread on the development machine, with two PTB training jobs beside it, gave ratio_to_vae 11.75
and floor_fraction 0.615 (fd with the decoder through the steps 16.2, exact 21.4; fd's encoder
gradient within 9e-5 of float64). Run from the repository root with ../shared/data.

``--device cuda`` runs the models, the reference and the GEMM peak (8192^3, float32) on the
GPU, with ``torch.cuda.synchronize()`` around every timed step; the lines then carry "device"
and "gpu". The CPU behaviour is unchanged.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from torch import nn

if TYPE_CHECKING:
    from cyclevae.models.savae import SVIConfig

REPO = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("CYCLEVAE_SHARED_DATA", REPO.parent / "shared" / "data"))
EPOCH_TOKENS = 929_589
BETA = 0.5
#: ``--small``: sizes for a smoke test of the script (not a measurement)
SMALL = {"model.emb_dim": 16, "model.enc_hidden": 16, "model.dec_hidden": 16,
         "model.latent_dim": 8}


def flops_per_token(steps: int, decoder_grad: bool, emb: int = 256, hidden: int = 256,
                    latent: int = 32, vocab: int = 10002) -> float:
    """FLOPs per predicted token of one SA-VAE training step with the ``fd`` method.

    A decoder pass with gradients costs its forward F (output layer 2HV, LSTM 8H(E+D+H)), the
    hidden-state gradient of the output layer (2HV) and the LSTM backward (2x its forward,
    oneDNN computes the weight gradients too); with ``decoder_grad`` the output layer's weight
    gradient (2HV) as well. Each SVI step takes one such pass forward and one at the perturbed
    point backward; then comes one ordinary VAE step (3x the encoder + decoder forward).
    """
    out = 2 * hidden * vocab
    dec = 2 * 4 * hidden * (emb + latent + hidden)
    enc = 2 * 4 * hidden * (emb + hidden)
    svi_pass = 2 * out + 3 * dec + (out if decoder_grad else 0)
    return 2 * steps * svi_pass + 3 * (out + dec + enc)


def pick_batches(batches: list, n: int) -> list:
    """``n`` batches (:class:`~cyclevae.data.batching.TextBatch`) evenly spaced over the
    batches sorted by length (full batches preferred)."""
    ordered = sorted(batches, key=lambda b: (b.tokens.shape[1], -b.num_examples))
    if n >= len(ordered):
        return ordered
    step = len(ordered) / n
    return [ordered[int((i + 0.5) * step)] for i in range(n)]


# --------------------------------------------------------------------- the reference
def reference_savae_loss(ref: nn.Module, tokens: torch.Tensor, svi: SVIConfig, beta: float,
                         create_graph: bool = True) -> torch.Tensor:
    """The straightforward SA-VAE training loss (a scalar, nats per sentence) of a
    ``train_speed.ReferenceVAE`` on ``tokens [B, L+1]``: the encoder's lambda_0 = (mu, logvar),
    ``svi.steps`` SVI steps (``svi``: the config's ``model.svi``) on the batch mean of
    rec + ``beta`` KL, each gradient clipped to norm ``svi.max_grad_norm`` per tensor, with
    momentum and lr as Kim et al.; then mean rec + ``beta`` mean KL at lambda_K. The decoder's
    weights are frozen during the steps (trained on lambda_K only); with ``create_graph`` the
    encoder is trained through the steps exactly (False: first-order steps, for the test). On
    CUDA the steps' LSTM runs without cuDNN (which has no double backward)."""
    _, (h, _) = ref.enc(ref.enc_emb(tokens))
    mu, logvar = ref.to_params(h[-1]).chunk(2, -1)
    decoder = [p for m in (ref.dec_emb, ref.z_to_h, ref.dec, ref.out) for p in m.parameters()]
    for p in decoder:
        p.requires_grad_(False)
    try:
        m_mu = m_lv = torch.zeros_like(mu)
        for _ in range(svi.steps):
            z = mu + (0.5 * logvar).exp() * torch.randn_like(mu)
            # cuDNN's LSTM has no double backward: PyTorch's error says to turn it off here
            with torch.backends.cudnn.flags(enabled=False):
                f = (ref.rec(tokens, z) + beta * ref.kl(mu, logvar)).mean()
            g_mu, g_lv = torch.autograd.grad(f, [mu, logvar], create_graph=create_graph)
            if svi.max_grad_norm > 0:
                g_mu = g_mu * (svi.max_grad_norm / (g_mu.norm() + 1e-6)).clamp(max=1.0)
                g_lv = g_lv * (svi.max_grad_norm / (g_lv.norm() + 1e-6)).clamp(max=1.0)
            m_mu = svi.momentum * m_mu + g_mu
            m_lv = svi.momentum * m_lv + g_lv
            mu, logvar = mu - svi.lr * m_mu, logvar - svi.lr * m_lv
    finally:
        for p in decoder:
            p.requires_grad_(True)
    z = mu + (0.5 * logvar).exp() * torch.randn_like(mu)
    return ref.rec(tokens, z).mean() + beta * ref.kl(mu, logvar).mean()


def reference_savae_step_fn(ref: nn.Module, svi: SVIConfig, beta: float, lr: float, clip: float):
    """The reference's training step on a ``[B, L+1]`` batch: :func:`reference_savae_loss`,
    backward, ``clip_grad_norm_(clip)``, ``torch.optim.Adam(lr)``; returns the loss (0-d)."""
    opt = torch.optim.Adam(ref.parameters(), lr=lr)

    def step(tokens: torch.Tensor) -> torch.Tensor:
        ref.train()
        loss = reference_savae_loss(ref, tokens, svi, beta)
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(ref.parameters(), clip)
        opt.step()
        return loss.detach()

    return step


def gradient(model: torch.nn.Module, batch, mode: str, dtype: torch.dtype) -> torch.Tensor:
    """The flattened gradient of the training loss with respect to all weights (dropout off,
    so that float32 and float64 runs draw the same noise)."""
    from cyclevae.losses import beta_vae_loss

    model = model.to(dtype)
    model.svi.grad = mode.split("_")[0]
    model.svi.decoder_grad = mode.endswith("_decoder")
    model.zero_grad(set_to_none=True)
    model.train()
    p = model.decoder.dropout.p
    model.decoder.dropout.p = 0.0
    torch.manual_seed(123)
    out = model(batch, beta=BETA, sample=False)  # the SVI noise is float32 in both dtypes
    beta_vae_loss(out.rec.to(dtype), out.kl, BETA).backward()
    model.decoder.dropout.p = p
    grads = torch.cat([q.grad.flatten().double() for q in model.parameters()])
    model.zero_grad(set_to_none=True)
    return grads


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, default=12)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: all)")
    parser.add_argument("--modes", default="fd,fd_decoder,exact",
                        help="SA-VAE gradient methods to time: fd, exact, each optionally with "
                             "_decoder (decoder weights also trained through the steps)")
    parser.add_argument("--accuracy", action="store_true",
                        help="also compare the methods' encoder gradients with float64")
    parser.add_argument("--device", default="cpu",
                        help="cpu (default) or cuda[:N]: where the models run")
    parser.add_argument("--small", action="store_true",
                        help="tiny sizes, 2 batches, 1 repeat: a smoke test, not a measurement")
    args = parser.parse_args()
    if args.small:
        args.batches, args.repeats = min(args.batches, 2), 1

    from cyclevae.config import load_config
    from cyclevae.runtime import configure_process, cpu_name
    from cyclevae.training import Trainer

    # the process settings the Trainer made before the refactor (the cyclevae command makes
    # them now): --threads intra-op threads and the glibc allocator thresholds
    configure_process(args.threads)

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from floors import fp32_peaks, synchronize
    from train_speed import ReferenceVAE
    from train_speed import flops_per_token as vae_flops

    out = Path(tempfile.mkdtemp(prefix="cyclevae-savae-bench-"))
    common = [f"data.data_dir={DATA}", "data.valid=null", "data.test=null", "train.seed=0",
              f"train.device={args.device}"]
    if args.threads:
        common.append(f"train.num_threads={args.threads}")
    if args.small:
        common += [f"{k}={v}" for k, v in SMALL.items()]
    savae = Trainer(load_config(REPO / "configs" / "ptb" / "savae-cyclical.yaml", common),
                    out / "savae", progress=False)
    vae = Trainer(load_config(REPO / "configs" / "ptb" / "vae-cyclical-cyclr.yaml", common),
                  out / "vae", progress=False)
    device = savae.device
    batches = [b.to(device) for b in
               pick_batches(savae.data.train.batches(0, shuffle=False), args.batches)]
    tokens = sum(b.num_tokens for b in batches)
    modes = [m for m in args.modes.split(",") if m]
    cfg = savae.config
    sizes = {"emb": cfg.model.emb_dim, "hidden": cfg.model.dec_hidden,
             "latent": cfg.model.latent_dim, "vocab": len(savae.vocab)}
    if cfg.model.enc_hidden != cfg.model.dec_hidden:
        raise SystemExit("savae_speed.py: the reference (and the FLOP count) needs "
                         "model.enc_hidden == model.dec_hidden")
    torch.manual_seed(0)
    ref_step = reference_savae_step_fn(ReferenceVAE(**sizes).to(device), cfg.model.svi, BETA,
                                       cfg.train.lr, cfg.train.clip)

    def set_method(mode: str) -> None:
        savae.model.svi.grad = mode.split("_")[0]
        savae.model.svi.decoder_grad = mode.endswith("_decoder")

    def savae_step(mode: str):
        def step(b) -> None:
            set_method(mode)
            savae.train_step([b], BETA)
        return step

    fns = {"vae": lambda b: vae.train_step([b], BETA)}
    fns.update({m: savae_step(m) for m in modes})
    fns["reference"] = lambda b: ref_step(b.tokens)
    # warm-up (on CUDA every batch once: each length needs its own cuDNN plan)
    warm = batches if device.type == "cuda" else batches[:2]
    for fn in fns.values():
        for b in warm:
            fn(b)
    totals: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(args.repeats):
        spent = dict.fromkeys(fns, 0.0)
        for b in batches:
            for name, fn in fns.items():
                synchronize(device)
                start = time.perf_counter()
                fn(b)
                synchronize(device)
                spent[name] += time.perf_counter() - start
        for name in fns:
            totals[name].append(spent[name])
    set_method("fd")
    # GFLOP/s, this run, these threads (or this GPU)
    # the faster of BLAS and oneDNN (floors.fp32_peaks), best of three
    peak = max(fp32_peaks(512 if args.small else None, device=device)["peak"]
               for _ in range(3))
    median = {name: statistics.median(ts) for name, ts in totals.items()}
    details = {"cpu": cpu_name(), "small": args.small, "batches": len(batches),
               "tokens": tokens, "repeats": args.repeats,
               "lengths": [b.tokens.shape[1] - 1 for b in batches],
               "svi_steps": savae.model.svi.steps, "threads": torch.get_num_threads(),
               "torch": torch.__version__, "gemm_gflops_fp32": round(peak, 1),
               "vae_seconds_per_epoch": round(median["vae"] / tokens * EPOCH_TOKENS, 1),
               "reference_seconds_per_epoch": round(median["reference"] / tokens * EPOCH_TOKENS,
                                                    1),
               "vae_floor_fraction": round(tokens / median["vae"] * vae_flops(**sizes)["train"]
                                           / (peak * 1e9), 3)}
    if device.type == "cuda":  # (CPU lines keep their earlier fields)
        details.update(device=str(device), gpu=torch.cuda.get_device_name(device))
    for mode in modes:
        name = "train_savae_fp32" if mode == "fd" else f"train_savae_{mode}_fp32"
        print(json.dumps({
            "mode": name, "svi_grad": mode.split("_")[0],
            "svi_decoder_grad": mode.endswith("_decoder"),
            "tokens_per_s": round(tokens / median[mode]),
            "reference_tokens_per_s": round(tokens / median["reference"]),
            "ratio": round(median["reference"] / median[mode], 3),
            "seconds_per_epoch": round(median[mode] / tokens * EPOCH_TOKENS, 1),
            "ratio_to_vae": round(median[mode] / median["vae"], 2),
            # FLOPs of the fd method (the exact one does more): achieved / GEMM peak, and
            # the epoch at the GEMM peak of this run
            "floor_fraction": round(tokens / median[mode] * flops_per_token(
                savae.model.svi.steps, mode.endswith("_decoder"), **sizes) / (peak * 1e9), 3),
            "floor_seconds_per_epoch": round(EPOCH_TOKENS * flops_per_token(
                savae.model.svi.steps, mode.endswith("_decoder"), **sizes) / (peak * 1e9), 1),
            "seconds_per_step": round(median[mode] / len(batches), 3),
            "spread": [round(t / tokens * EPOCH_TOKENS, 1) for t in totals[mode]],
            **details}), flush=True)
    if args.accuracy:
        b = batches[len(batches) // 2]
        model = savae.model
        errors = {}
        for mode in modes:
            exact = "exact_decoder" if mode.endswith("_decoder") else "exact"
            reference = gradient(model, b, exact, torch.float64)
            g = gradient(model, b, mode, torch.float32)
            n_enc = sum(q.numel() for q in model.encoder.parameters())
            errors[mode] = {
                "encoder": round(((g - reference)[:n_enc].norm()
                                  / reference[:n_enc].norm()).item(), 7),
                "all": round(((g - reference).norm() / reference.norm()).item(), 7)}
        model.float()
        set_method("fd")
        print(json.dumps({"mode": "grad_accuracy_fp32",
                          "relative_error_vs_float64_exact": errors,
                          "note": "float32 gradient vs the float64 exact gradient of the same "
                                  "method, dropout off; encoder weights and all weights",
                          "batch_length": b.tokens.shape[1] - 1,
                          "threads": torch.get_num_threads()}),
              flush=True)


if __name__ == "__main__":
    sys.exit(main())
