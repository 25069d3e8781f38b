"""SA-VAE training speed on PTB at the paper's settings, beside the plain VAE in the same run.

    python benchmarks/savae_speed.py [--batches 12] [--repeats 3] [--threads N]
                                     [--modes fd,fd_decoder,exact] [--accuracy]
                                     [--device cpu|cuda[:N]]

Times ``Trainer.train_step`` (the real code path: forward with 10 SVI steps, backward through
them, clipping, Adam) of an SA-VAE built from ``configs/ptb/savae-cyclical.yaml`` and of the plain
VAE of ``configs/ptb/vae-cyclical-cyclr.yaml`` on the same PTB batches, chosen evenly over the
length-sorted batches of an epoch so that the sample's mix of lengths is the epoch's. Modes are
interleaved batch by batch (these machines are shared: only ratios within one run compare), and
each time is the median over repeats. Prints one JSON line per SA-VAE gradient method: "mode"
(``train_savae_fp32`` for the default, finite differences with the decoder trained on the
refined q; ``train_savae_fd_decoder_fp32`` with the decoder trained through the steps too;
``train_savae_exact_fp32`` for exact double backward), "seconds_per_epoch" (extrapolated to
929,589 tokens), "ratio_to_vae", "floor_fraction" (the fd method's FLOPs per second over the
GEMM peak measured in the run), "floor_seconds_per_epoch" (those FLOPs at that peak), the VAE's
own seconds per epoch and the details. With ``--accuracy`` also one line comparing each
method's float32 gradient with the float64 exact gradient of the same method.

At the 2-core GEMM peak (~320 GFLOP/s) the default method's FLOPs take 853 s per epoch; one
thread on the development machine, with two PTB training jobs beside it, gave ratio_to_vae 11.75
and floor_fraction 0.615 (fd with the decoder through the steps 16.2, exact 21.4; fd's encoder
gradient within 9e-5 of float64). Run from the repository root with ../shared/data.

``--device cuda`` runs both models and the GEMM peak (8192^3, float32) on the GPU, with
``torch.cuda.synchronize()`` around every timed step; the lines then carry "device" and "gpu".
The CPU behaviour is unchanged.
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

import torch

REPO = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("CYCLEVAE_SHARED_DATA", REPO.parent / "shared" / "data"))
EPOCH_TOKENS = 929_589
BETA = 0.5


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
    args = parser.parse_args()

    from cyclevae.config import load_config
    from cyclevae.runtime import configure_process
    from cyclevae.training import Trainer

    # the process settings the Trainer made before the refactor (the cyclevae command makes
    # them now): --threads intra-op threads and the glibc allocator thresholds
    configure_process(args.threads)

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from floors import fp32_peaks, synchronize
    from train_speed import flops_per_token as vae_flops

    out = Path(tempfile.mkdtemp(prefix="cyclevae-savae-bench-"))
    common = [f"data.data_dir={DATA}", "data.valid=null", "data.test=null", "train.seed=0",
              f"train.device={args.device}"]
    if args.threads:
        common.append(f"train.num_threads={args.threads}")
    savae = Trainer(load_config(REPO / "configs" / "ptb" / "savae-cyclical.yaml", common),
                    out / "savae", progress=False)
    vae = Trainer(load_config(REPO / "configs" / "ptb" / "vae-cyclical-cyclr.yaml", common),
                  out / "vae", progress=False)
    device = savae.device
    batches = [b.to(device) for b in
               pick_batches(savae.data.train.batches(0, shuffle=False), args.batches)]
    tokens = sum(b.num_tokens for b in batches)
    modes = [m for m in args.modes.split(",") if m]

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
    peak = max(fp32_peaks(device=device)["peak"] for _ in range(3))
    median = {name: statistics.median(ts) for name, ts in totals.items()}
    details = {"batches": len(batches), "tokens": tokens, "repeats": args.repeats,
               "lengths": [b.tokens.shape[1] - 1 for b in batches],
               "svi_steps": savae.model.svi.steps, "threads": torch.get_num_threads(),
               "torch": torch.__version__, "gemm_gflops_fp32": round(peak, 1),
               "vae_seconds_per_epoch": round(median["vae"] / tokens * EPOCH_TOKENS, 1),
               "vae_floor_fraction": round(tokens / median["vae"] * vae_flops()["train"]
                                           / (peak * 1e9), 3)}
    if device.type == "cuda":  # (CPU lines keep their earlier fields)
        details.update(device=str(device), gpu=torch.cuda.get_device_name(device))
    for mode in modes:
        name = "train_savae_fp32" if mode == "fd" else f"train_savae_{mode}_fp32"
        print(json.dumps({
            "mode": name, "svi_grad": mode.split("_")[0],
            "svi_decoder_grad": mode.endswith("_decoder"),
            "seconds_per_epoch": round(median[mode] / tokens * EPOCH_TOKENS, 1),
            "ratio_to_vae": round(median[mode] / median["vae"], 2),
            # FLOPs of the fd method (the exact one does more): achieved / GEMM peak, and
            # the epoch at the GEMM peak of this run
            "floor_fraction": round(tokens / median[mode] * flops_per_token(
                savae.model.svi.steps, mode.endswith("_decoder")) / (peak * 1e9), 3),
            "floor_seconds_per_epoch": round(EPOCH_TOKENS * flops_per_token(
                savae.model.svi.steps, mode.endswith("_decoder")) / (peak * 1e9), 1),
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
