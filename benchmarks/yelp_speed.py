"""Training throughput of the Yelp CNN-encoder VAE (configs/yelp/vae-cyclical.yaml, SPEC 4.4) on
real yelp:train batches, against a straightforward reference implementation timed in the same
process, interleaved (these machines are shared; only ratios in one run are comparable).

    python benchmarks/yelp_speed.py [--batches 40] [--repeats 3] [--modes fp32,bf16]
                                    [--threads N] [--no-child] [--small]

Prints one JSON line per mode: ``"mode": "train_yelp_cnn_vae_fp32"`` (and ``..._bf16`` where
:func:`cyclevae.runtime.native_bf16` says the CPU can, else a line with ``"skipped"`` and the
reason) with "tokens_per_s" (predicted tokens per second of our training step),
"reference_tokens_per_s", "ratio" (ours over the reference, same process, interleaved),
"seconds_per_epoch" (all yelp:train batches of an epoch, counted from the data, at our speed),
"floor_fraction" (FLOPs of our step, convolutions included, per second over the float32 GEMM
peak measured in this run, before and after the timed passes, the larger of the two:
"gemm_gflops_floor"; bf16 also over the bf16 peak), "cpu" and the details. With the
child run (the default) the reference is also timed in a fresh process with glibc's default
allocator, what a user's own script gets ("reference_child_tokens_per_s", "ratio_child").

Ours is the real code path: a :class:`cyclevae.training.Trainer` built from the config, timed
through :meth:`~cyclevae.training.Trainer.train_step` (model forward with the fused output
layer, :func:`cyclevae.losses.beta_vae_loss`, backward, foreach clip, fused Adam). The
reference, written here, is what a competent user writes first: ``nn.Embedding``, three
``nn.Conv1d``, an ``nn.LSTM`` decoder with a tied ``nn.Linear`` output layer,
``F.cross_entropy`` over the logits, ``clip_grad_norm_`` and ``torch.optim.Adam``: the same
model and sizes. Run from the repository root with ../shared/data.
"""

from __future__ import annotations

import argparse
import json
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
from floors import fp32_peaks, gemm_peak  # the benchmarks' shared modules
from profiling import part_table, profile_parts
from train_speed import reference_step_fn

REPO = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("CYCLEVAE_SHARED_DATA", REPO.parent / "shared" / "data"))
CONFIG = REPO / "configs" / "yelp" / "vae-cyclical.yaml"
#: ``--small``: sizes for a smoke test of the script (not a measurement)
SMALL = {"model.emb_dim": 16, "model.dec_hidden": 16, "model.latent_dim": 8,
         "model.cnn.conv1": 8, "model.cnn.conv2": 8, "model.cnn.conv3": 8}
BETA = 0.5


# --------------------------------------------------------------------- the reference
def conv_length(length: int, width: int, stride: int) -> int:
    """Positions after an unpadded 1-d convolution."""
    return (length - width) // stride + 1


class ReferenceCNNVAE(nn.Module):
    """Fu et al.'s Yelp VAE written plainly (same sizes and parameters as ours): a 3-layer CNN
    encoder over a fixed ``input_length`` window, an LSTM decoder with z at every step and in
    its initial state, the output layer tied to the decoder's embedding."""

    def __init__(self, vocab: int, emb: int, hidden: int, latent: int, conv: tuple[int, int, int],
                 width: int, stride: int, input_length: int, pad: int, dropout: float,
                 init_range: float) -> None:
        super().__init__()
        self.input_length, self.pad = input_length, pad
        self.enc_emb = nn.Embedding(vocab, emb)
        rest = conv_length(conv_length(input_length, width, stride), width, stride)
        self.conv1 = nn.Conv1d(emb, conv[0], width, stride=stride)
        self.conv2 = nn.Conv1d(conv[0], conv[1], width, stride=stride)
        self.conv3 = nn.Conv1d(conv[1], conv[2], rest)
        self.to_params = nn.Linear(conv[2], 2 * latent)
        self.dec_emb = nn.Embedding(vocab, emb)
        self.z_to_h = nn.Linear(latent, hidden)
        self.dec = nn.LSTM(emb + latent, hidden, batch_first=True)
        self.drop = nn.Dropout(dropout)
        self.out = nn.Linear(hidden, vocab)
        self.out.weight = self.dec_emb.weight
        for p in self.parameters():
            nn.init.uniform_(p, -init_range, init_range)

    def forward(self, tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``tokens [B, L+1]`` (``<s> .. </s>``) -> per-sentence reconstruction NLL and KL."""
        words = tokens[:, 1:self.input_length + 1]
        words = F.pad(words, (0, self.input_length - words.shape[1]), value=self.pad)
        x = self.enc_emb(words).transpose(1, 2)
        x = torch.relu(self.conv1(x))
        x = torch.relu(self.conv2(x))
        x = torch.tanh(self.conv3(x)).squeeze(-1)
        mu, logvar = self.to_params(x).chunk(2, -1)
        z = mu + (0.5 * logvar).exp() * torch.randn_like(mu)
        inp, tgt = tokens[:, :-1], tokens[:, 1:]
        emb = self.drop(self.dec_emb(inp))
        x = torch.cat([emb, z.unsqueeze(1).expand(-1, inp.shape[1], -1)], -1)
        h0 = self.z_to_h(z).unsqueeze(0)
        out, _ = self.dec(x, (h0, torch.zeros_like(h0)))
        logits = self.out(self.drop(out))
        rec = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), tgt.reshape(-1),
                              reduction="none").view(tgt.shape).sum(1)
        kl = 0.5 * (mu.pow(2) + logvar.exp() - logvar - 1).sum(1)
        return rec, kl


def build_reference(spec: dict) -> ReferenceCNNVAE:
    """The reference from the plain-dict ``spec`` of :func:`reference_spec`."""
    return ReferenceCNNVAE(**spec)


def reference_spec(model_config, vocab: int, pad: int) -> dict:
    """The reference's constructor arguments from our ``model`` config (picklable)."""
    cnn = model_config.cnn
    return {"vocab": vocab, "emb": model_config.emb_dim, "hidden": model_config.dec_hidden,
            "latent": model_config.latent_dim, "conv": (cnn.conv1, cnn.conv2, cnn.conv3),
            "width": cnn.width, "stride": cnn.stride, "input_length": cnn.input_length,
            "pad": pad, "dropout": model_config.dropout, "init_range": model_config.init_range}


# --------------------------------------------------------------------- measurement
def step_flops(batch_tokens: torch.Tensor, model_config, vocab: int) -> dict[str, float]:
    """FLOPs (multiply-add = 2) of one training step on ``[B, L+1]`` tokens, by part, forward
    x 3 for forward + backward: the three convolutions and the encoder's linear layer, the
    decoder LSTM and its initial state, the output layer over the L predicted tokens per row."""
    b, n = batch_tokens.shape[0], batch_tokens.shape[0] * (batch_tokens.shape[1] - 1)
    m, cnn = model_config, model_config.cnn
    e, h, d = m.emb_dim, m.dec_hidden, m.latent_dim
    p1 = conv_length(cnn.input_length, cnn.width, cnn.stride)
    p2 = conv_length(p1, cnn.width, cnn.stride)
    parts = {
        "conv_encoder": 2 * b * (p1 * cnn.conv1 * e * cnn.width + p2 * cnn.conv2 * cnn.conv1
                                 * cnn.width + cnn.conv3 * cnn.conv2 * p2 + cnn.conv3 * 2 * d),
        "decoder_lstm": 2 * b * d * h + n * 2 * 4 * h * (e + d + h),
        "output_layer": n * 2 * h * vocab,
    }
    return {k: 3.0 * v for k, v in parts.items()}


def timed(fn, items) -> tuple[float, float]:
    """Wall-clock and process CPU seconds of one pass of ``fn`` over ``items`` (on a busy
    machine the CPU time leaves out the time this process waited for a core)."""
    t, c = time.perf_counter(), time.process_time()
    for item in items:
        fn(item)
    return time.perf_counter() - t, time.process_time() - c


def reference_seconds_in_child(spec: dict, lr: float, clip: float, batches: list[torch.Tensor],
                               repeats: int) -> float:
    """Median seconds of a reference pass over ``batches`` in a fresh process: a user's own
    script runs with glibc's default allocator, not the one
    :func:`cyclevae.runtime.configure_process` sets (as the ``cyclevae`` command does)."""
    with tempfile.TemporaryDirectory(prefix="cyclevae-yelp-ref-") as tmp:
        job = Path(tmp) / "job.pt"
        torch.save({"spec": spec, "lr": lr, "clip": clip, "batches": batches,
                    "repeats": repeats, "threads": torch.get_num_threads()}, job)
        done = subprocess.run([sys.executable, __file__, "--reference-child", str(job)],
                              check=True, capture_output=True, text=True)
    return float(json.loads(done.stdout.strip().splitlines()[-1])["seconds"])


def _reference_child(job_path: str) -> None:
    job = torch.load(job_path)
    torch.set_num_threads(job["threads"])
    torch.manual_seed(0)
    step = reference_step_fn(build_reference(job["spec"]), beta=BETA, lr=job["lr"],
                             clip=job["clip"])
    for b in job["batches"][:2]:  # warm-up
        step(b)
    seconds = statistics.median(timed(step, job["batches"])[0] for _ in range(job["repeats"]))
    print(json.dumps({"seconds": seconds}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, default=40, help="yelp:train batches per pass")
    parser.add_argument("--repeats", type=int, default=3, help="interleaved passes of each")
    parser.add_argument("--modes", default="fp32,bf16", help="precisions of our step")
    parser.add_argument("--threads", type=int, default=None, help="default: PyTorch's")
    parser.add_argument("--no-child", action="store_true",
                        help="skip the reference in a fresh process (glibc defaults)")
    parser.add_argument("--config", default=str(CONFIG))
    parser.add_argument("--data-dir", default=str(DATA))
    parser.add_argument("--small", action="store_true",
                        help="tiny sizes and few batches, for a smoke test (not a measurement)")
    parser.add_argument("--profile", action="store_true",
                        help="also print where the time of each step goes, by part")
    parser.add_argument("--reference-child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.reference_child:
        return _reference_child(args.reference_child)
    if args.small:
        args.batches, args.repeats = min(args.batches, 3), 1

    from cyclevae import runtime
    from cyclevae.config import load_config
    from cyclevae.data.vocab import Vocabulary
    from cyclevae.training import Trainer

    def emit(record: dict) -> None:
        print(json.dumps(record), flush=True)

    runtime.configure_process(args.threads)  # as the cyclevae command does
    torch.manual_seed(0)
    overrides = [f"data.data_dir={args.data_dir}", "data.valid=null", "data.test=null"]
    overrides += [f"{k}={v}" for k, v in SMALL.items()] if args.small else []
    with tempfile.TemporaryDirectory(prefix="cyclevae-yelp-bench-") as tmp:
        trainer = Trainer(load_config(Path(args.config), overrides), Path(tmp) / "run",
                          progress=False)
    cfg = trainer.config
    every = trainer.data.train.batches(0, shuffle=True)
    epoch_batches, epoch_tokens = len(every), sum(b.num_tokens for b in every)
    gen = torch.Generator().manual_seed(0)
    pick = torch.randperm(len(every), generator=gen)[: args.batches].tolist()
    batches = [every[i] for i in pick]
    tokens = sum(b.num_tokens for b in batches)
    vocab = len(trainer.vocab)

    flops_parts: dict[str, float] = {}
    for b in batches:
        for k, v in step_flops(b.tokens, cfg.model, vocab).items():
            flops_parts[k] = flops_parts.get(k, 0.0) + v
    flops = sum(flops_parts.values())

    spec = reference_spec(cfg.model, vocab, Vocabulary.PAD_INDEX)
    torch.manual_seed(0)
    ref_step = reference_step_fn(build_reference(spec), beta=BETA, lr=cfg.train.lr,
                                 clip=cfg.train.clip)
    ref_batches = [b.tokens for b in batches]
    threads = torch.get_num_threads()
    n = 512 if args.small else 2048
    # the float32 floor: the faster of PyTorch's BLAS (MKL: AVX2 on AMD CPUs) and the oneDNN
    # product of cyclevae.ops.linear_product, so that using oneDNN cannot inflate the fraction
    fp32 = fp32_peaks(n)
    blas, onednn = fp32["blas"], fp32["linear_product"]
    peak = {"fp32": fp32["peak"]}
    has_bf16, checked = runtime.native_bf16(trainer.device)
    modes = [m for m in args.modes.split(",") if m]
    if "bf16" in modes and has_bf16:
        peak["bf16"] = gemm_peak(torch.bfloat16, n)
    child_s = (None if args.no_child else
               reference_seconds_in_child(spec, cfg.train.lr, cfg.train.clip, ref_batches,
                                          args.repeats))

    common = {"cpu": runtime.cpu_name(), "threads": threads, "torch": torch.__version__,
              "batches": len(batches), "tokens": tokens, "epoch_batches": epoch_batches,
              "epoch_tokens": epoch_tokens,
              "tokens_per_sentence": round(tokens / sum(b.num_examples for b in batches), 2),
              "step_gflop": round(flops / len(batches) / 1e9, 3),
              "flop_shares": {k: round(v / flops, 3) for k, v in flops_parts.items()},
              "gemm_gflops_fp32": round(peak["fp32"], 1),
              "gemm_gflops_fp32_blas": round(blas, 1), "gemm_gflops_fp32_linear_product":
              round(onednn, 1),
              "gemm_gflops_bf16": round(peak["bf16"], 1) if "bf16" in peak else None,
              "small": args.small}

    def ours_step(batch) -> None:
        """The real Trainer step (forward, objective, backward, clip, fused Adam)."""
        trainer.train_step([batch], BETA)

    for mode in modes:
        name = f"train_yelp_cnn_vae_{mode}"
        if mode == "bf16" and not has_bf16:
            emit({"mode": name, "skipped": f"no native bf16 (checked: {checked})",
                  "cpu": runtime.cpu_name()})
            continue
        cfg.train.precision = mode
        for b, r in zip(batches[:2], ref_batches[:2]):  # warm-up
            ours_step(b)
            ref_step(r)
        ours_times, ref_times = [], []
        for _ in range(args.repeats):  # interleaved, so both see the same machine load
            ours_times.append(timed(ours_step, batches))
            ref_times.append(timed(ref_step, ref_batches))
        ours_s, ref_s = (statistics.median(t[0] for t in ours_times),
                         statistics.median(t[0] for t in ref_times))
        ours_cpu, ref_cpu = (statistics.median(t[1] for t in ours_times),
                             statistics.median(t[1] for t in ref_times))
        ours_tps, ref_tps = tokens / ours_s, tokens / ref_s
        # the peaks again after the passes: one measured while something else ran would
        # inflate every fraction, so the floor is the larger of the two measurements
        peak["fp32"] = max(peak["fp32"], fp32_peaks(n)["peak"])
        if mode == "bf16":
            peak["bf16"] = max(peak["bf16"], gemm_peak(torch.bfloat16, n))
        record = {
            "mode": name, "tokens_per_s": round(ours_tps), "reference_tokens_per_s": round(ref_tps),
            "ratio": round(ours_tps / ref_tps, 3),
            "seconds_per_epoch": round(epoch_tokens / ours_tps, 1),
            "reference_seconds_per_epoch": round(epoch_tokens / ref_tps, 1),
            "seconds_per_step": round(ours_s / len(batches), 4),
            "reference_seconds_per_step": round(ref_s / len(batches), 4),
            "floor_fraction": round(flops / ours_s / (peak[mode] * 1e9), 3),
            "floor_fraction_fp32": round(flops / ours_s / (peak["fp32"] * 1e9), 3),
            "reference_floor_fraction": round(flops / ref_s / (peak["fp32"] * 1e9), 3),
            "cpu_seconds_per_step": round(ours_cpu / len(batches), 4),
            "reference_cpu_seconds_per_step": round(ref_cpu / len(batches), 4),
            "ratio_cpu_time": round(ref_cpu / ours_cpu, 3),
            # CPU seconds over the threads (the peak is measured with the same threads)
            "floor_fraction_cpu_time": round(flops / (ours_cpu / threads) / (peak[mode] * 1e9),
                                             3),
            "gemm_gflops_floor": round(peak[mode], 1),
        }
        if child_s is not None:
            record["reference_child_tokens_per_s"] = round(tokens / child_s)
            record["ratio_child"] = round(child_s / ours_s, 3)
        emit({**record, **common})
    cfg.train.precision = "fp32"
    if args.profile:
        model, ref_model = trainer.model, ref_step.model
        enc, dec = model.encoder, model.decoder
        ours_scopes = {enc: "conv_encoder", enc.embedding: "embeddings",
                       dec.embedding: "embeddings",
                       dec.dropout: "dropout", dec.lstm: "decoder_lstm",
                       dec.latent_to_hidden: "decoder_lstm"}
        ref_scopes = {ref_model.enc_emb: "embeddings", ref_model.conv1: "conv_encoder",
                      ref_model.conv2: "conv_encoder", ref_model.conv3: "conv_encoder",
                      ref_model.to_params: "conv_encoder", ref_model.dec_emb: "embeddings",
                      ref_model.drop: "dropout", ref_model.dec: "decoder_lstm",
                      ref_model.z_to_h: "decoder_lstm", ref_model.out: "output_layer"}
        ref_named = {"aten::relu": "conv_encoder", "aten::tanh": "conv_encoder",
                     "aten::cross_entropy_loss": "output_layer"}
        for which, fn, items, scopes, named in (
                ("ours", ours_step, batches, ours_scopes, {"_LinearCrossEntropy": "output_layer"}),
                ("reference", ref_step, ref_batches, ref_scopes, ref_named)):
            seconds = profile_parts(fn, items, scopes, named)
            parts = part_table(seconds, flops_parts, len(items))
            emit({"mode": "profile_yelp_cnn_vae_fp32", "which": which,
                  "profiled_ms_per_step": round(1e3 * sum(seconds.values()) / len(items), 2),
                  "parts": parts,
                  **common})


if __name__ == "__main__":
    sys.exit(main())
