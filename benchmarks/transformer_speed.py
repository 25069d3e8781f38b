"""Training throughput of the Transformer VAE on PTB (``model.encoder: transformer``,
``model.decoder: transformer``; configs/ptb/transformer-cyclical.yaml), against a
straightforward reference written here and against our LSTM PTB row, all timed in one process,
interleaved pass by pass (these machines are shared; only ratios in one run are comparable).

    python benchmarks/transformer_speed.py [--batches 40] [--repeats 3] [--modes fp32,bf16]
        [--threads N] [--sizes D:LAYERS:FF:HEADS,...] [--injection memory|embedding|both]
        [--no-lstm] [--no-reference] [--profile] [--small]

Prints one JSON line per (size, precision): ``"mode": "train_transformer_vae_fp32"`` (or
``_bf16``; where :func:`cyclevae.runtime.native_bf16` finds no native bf16 matrix support,
i.e. neither ``avx512_bf16`` nor AMX on x86, a line with ``"skipped"`` and what was checked)
with "tokens_per_s" (predicted tokens per second of our training step),
"reference_tokens_per_s", "ratio" (ours over the reference), "seconds_per_epoch" (every
ptb:train batch of an epoch, counted from the data, at our speed), "lstm_seconds_per_epoch"
(our LSTM row, configs/ptb/vae-cyclical-cyclr.yaml, in float32, interleaved with the other two)
and "epoch_cost_vs_lstm" (ours over the LSTM row's seconds per epoch), "floor_fraction" (the
step's FLOPs per second over the GEMM peak of the precision measured in this run; the float32
peak is the faster of PyTorch's BLAS and oneDNN's product, ``floors.fp32_peaks``), the CPU-time
variants (``ratio_cpu_time``, ``floor_fraction_cpu_time``: on a busy machine they leave out the
time spent waiting for a core), "sizes", "cpu" and the details. ``--sizes`` takes several
specs to scan (the sizes of the PTB rows were chosen this way, benchmarks/NOTES.md).
``--profile`` adds, per side (ours, the reference), one line of milliseconds per step by part
against each part's share of the FLOPs (``profiling.py``), float32.

**FLOPs** (:func:`step_flops`, counted per batch from its shape; a multiply-add is 2): per
position and layer the projections ``2 d (3d)`` (q, k, v) + ``2 d d`` (output) and the
feed-forward ``2 (2 d d_ff)``; the attention core ``4 d`` per (query, key) pair actually needed,
QK^T and AV: the encoder's every pair of its ``L + 1`` positions (``<s> w_1 .. w_n </s>``), the
decoder's causal triangle, ``i + 1`` keys for position ``i`` of its ``L`` positions, plus the
memory position (z by ``memory``), not the full square a kernel may compute; the output layer
``2 d V`` per predicted token; the maps of z (``to_params``, ``z_to_memory``,
``z_to_embedding``) per sentence. LayerNorm, GELU, softmax, dropout, residual adds and the
embeddings count 0. A training step is 3x the forward (backward: two products per forward
product).

**The reference** is what a competent user writes first with PyTorch's own layers, at the same
sizes: ``nn.Embedding`` + learned positions, ``nn.TransformerEncoder`` of
``nn.TransformerEncoderLayer(norm_first=True, activation="gelu", batch_first=True)`` as the
encoder (mean-pooled) and, with a causal mask, as the decoder (a GPT-style decoder-only stack:
``nn.TransformerDecoderLayer`` would add a cross-attention block the model does not have); z
enters by ``embedding`` as ours (projected, added to every input embedding), and by ``memory``
as one extra leading position holding z projected (what ``nn`` layers allow: in ours z gives
each layer its key and value directly; the prefix position also runs its query, feed-forward
and output projections, 1 / (L + 1) more work in the decoder stacks, ~4% at PTB's mean length);
a plain ``nn.Linear`` output layer and ``F.cross_entropy``; ``clip_grad_norm_`` and
``torch.optim.Adam``. Its float32 products go through PyTorch's BLAS (on AMD CPUs MKL's AVX2
path: NOTES.md), ours through oneDNN where :mod:`cyclevae.ops` routes them.

Ours is the real code path: a :class:`cyclevae.training.Trainer` built from the config, timed
through :meth:`~cyclevae.training.Trainer.train_step` (forward, :func:`cyclevae.losses.
beta_vae_loss`, backward, clipping, fused Adam). Run from the repository root with
../shared/data.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))
from floors import fp32_peaks, gemm_peak  # the benchmarks' shared modules
from profiling import part_table, profile_parts
from train_speed import reference_step_fn, timed_with_cpu

REPO = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("CYCLEVAE_SHARED_DATA", REPO.parent / "shared" / "data"))
CONFIG = REPO / "configs" / "ptb" / "transformer-cyclical.yaml"
LSTM_CONFIG = REPO / "configs" / "ptb" / "vae-cyclical-cyclr.yaml"
BETA = 0.5


@dataclass(frozen=True)
class Sizes:
    """The Transformer sizes of one measurement (``model.transformer.*``)."""

    d_model: int
    n_layers: int
    d_ff: int
    n_heads: int

    @classmethod
    def parse(cls, spec: str) -> Sizes:
        """``"D:LAYERS:FF:HEADS"``, e.g. ``"256:2:1024:4"``."""
        d, layers, ff, heads = (int(x) for x in spec.split(":"))
        return cls(d, layers, ff, heads)

    def overrides(self) -> list[str]:
        return [f"model.transformer.d_model={self.d_model}",
                f"model.transformer.n_layers={self.n_layers}",
                f"model.transformer.d_ff={self.d_ff}",
                f"model.transformer.n_heads={self.n_heads}"]

    def __str__(self) -> str:
        return f"{self.d_model}:{self.n_layers}:{self.d_ff}:{self.n_heads}"


# --------------------------------------------------------------------- FLOPs
def step_flops(tokens: torch.Tensor, sizes: Sizes, latent: int, vocab: int, injection: str
               ) -> dict[str, float]:
    """Forward FLOPs of the Transformer VAE on one batch ``tokens [B, L+1]`` by part
    (``attention_projections``, ``attention_core``, ``feed_forward``, ``output_layer``,
    ``latent_maps``); the module docstring says what is counted. A training step is 3x."""
    rows, length = tokens.shape[0], tokens.shape[1] - 1  # L predicted tokens per sentence
    d, n, ff = sizes.d_model, sizes.n_layers, sizes.d_ff
    memory = injection in ("memory", "both")
    enc_pos, dec_pos = length + 1, length
    per_position_proj = 2 * d * 3 * d + 2 * d * d
    per_position_ff = 2 * 2 * d * ff
    enc_pairs = enc_pos * enc_pos
    dec_pairs = length * (length + 1) // 2 + (length if memory else 0)
    latent_maps = 2 * d * 2 * latent  # to_params
    latent_maps += 2 * latent * 2 * n * d if memory else 0
    latent_maps += 2 * latent * d if injection in ("embedding", "both") else 0
    return {
        "attention_projections": float(rows * n * (enc_pos + dec_pos) * per_position_proj),
        "attention_core": float(rows * n * 4 * d * (enc_pairs + dec_pairs)),
        "feed_forward": float(rows * n * (enc_pos + dec_pos) * per_position_ff),
        "output_layer": float(rows * length * 2 * d * vocab),
        "latent_maps": float(rows * latent_maps),
    }


# --------------------------------------------------------------------- the reference
class ReferenceTransformerVAE(nn.Module):
    """What a competent user writes first with ``nn`` layers (module docstring)."""

    def __init__(self, vocab: int, sizes: Sizes, latent: int, dropout: float, injection: str,
                 max_length: int = 512) -> None:
        super().__init__()
        d = sizes.d_model

        def stack() -> nn.TransformerEncoder:
            layer = nn.TransformerEncoderLayer(d, sizes.n_heads, sizes.d_ff, dropout,
                                               activation="gelu", batch_first=True,
                                               norm_first=True)
            return nn.TransformerEncoder(layer, sizes.n_layers, norm=nn.LayerNorm(d),
                                         enable_nested_tensor=False)

        self.enc_emb = nn.Embedding(vocab, d)
        self.enc_pos = nn.Parameter(torch.randn(max_length, d) * 0.01)
        self.enc = stack()
        self.to_params = nn.Linear(d, 2 * latent)
        self.dec_emb = nn.Embedding(vocab, d)
        self.dec_pos = nn.Parameter(torch.randn(max_length, d) * 0.01)
        self.z_to_prefix = nn.Linear(latent, d) if injection in ("memory", "both") else None
        self.z_to_emb = nn.Linear(latent, d) if injection in ("embedding", "both") else None
        self.dec = stack()
        self.drop = nn.Dropout(dropout)
        self.out = nn.Linear(d, vocab)

    def forward(self, tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``tokens [B, L+1]`` -> (-log p(x|z) ``[B]``, KL ``[B]``), nats per sentence."""
        x = self.drop(self.enc_emb(tokens) + self.enc_pos[: tokens.shape[1]])
        mu, logvar = self.to_params(self.enc(x).mean(1)).chunk(2, -1)
        z = mu + (0.5 * logvar).exp() * torch.randn_like(mu)
        inp, tgt = tokens[:, :-1], tokens[:, 1:]
        x = self.dec_emb(inp) + self.dec_pos[: inp.shape[1]]
        if self.z_to_emb is not None:
            x = x + self.z_to_emb(z).unsqueeze(1)
        if self.z_to_prefix is not None:
            x = torch.cat([self.z_to_prefix(z).unsqueeze(1), x], 1)
        x = self.drop(x)
        mask = nn.Transformer.generate_square_subsequent_mask(x.shape[1], device=x.device)
        h = self.dec(x, mask=mask, is_causal=True)
        if self.z_to_prefix is not None:
            h = h[:, 1:]
        logits = self.out(h)
        rec = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), tgt.reshape(-1),
                              reduction="none").view(tgt.shape).sum(1)
        kl = 0.5 * (mu.pow(2) + logvar.exp() - logvar - 1).sum(1)
        return rec, kl


# --------------------------------------------------------------------- profile scopes
def ours_scopes(model) -> dict[nn.Module, str]:
    """Module -> part for :func:`profiling.profile_parts` of our Transformer VAE (innermost
    scope wins: a block's own code, GELU and the residual adds, is ``block_other``)."""
    scopes: dict[nn.Module, str] = {}
    enc, dec = model.encoder, model.decoder
    for side in (enc, dec):
        scopes[side.embed] = "embeddings"
        scopes[side.drop] = "dropout"
        scopes[side.ln_final] = "layernorm"
        for block in side.blocks:
            scopes[block] = "block_other"
            scopes[block.attn] = "attention_core"
            scopes[block.attn.qkv] = "attention_projections"
            scopes[block.attn.proj] = "attention_projections"
            scopes[block.ff_in] = "feed_forward"
            scopes[block.ff_out] = "feed_forward"
            scopes[block.ln_attn] = "layernorm"
            scopes[block.ln_ff] = "layernorm"
            scopes[block.drop] = "dropout"
    scopes[enc.to_params] = "latent_maps"
    for module in (dec.z_to_memory, dec.z_to_embedding):
        if module is not None:
            scopes[module] = "latent_maps"
    return scopes


def reference_scopes(ref: ReferenceTransformerVAE) -> dict[nn.Module, str]:
    """Module -> part for the reference (``attention``: its in-projection runs inside
    ``nn.MultiheadAttention``'s functional code, so projections and core are one part)."""
    scopes: dict[nn.Module, str] = {ref.enc_emb: "embeddings", ref.dec_emb: "embeddings",
                                    ref.drop: "dropout", ref.out: "output_layer",
                                    ref.to_params: "latent_maps",
                                    ref.enc.norm: "layernorm", ref.dec.norm: "layernorm"}
    for module in (ref.z_to_prefix, ref.z_to_emb):
        if module is not None:
            scopes[module] = "latent_maps"
    for layer in [*ref.enc.layers, *ref.dec.layers]:
        scopes[layer] = "block_other"
        scopes[layer.self_attn] = "attention"
        scopes[layer.linear1] = "feed_forward"
        scopes[layer.linear2] = "feed_forward"
        scopes[layer.norm1] = "layernorm"
        scopes[layer.norm2] = "layernorm"
        for drop in (layer.dropout, layer.dropout1, layer.dropout2):
            scopes[drop] = "dropout"
    return scopes


# --------------------------------------------------------------------- main
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, default=40, help="ptb:train batches per pass")
    parser.add_argument("--repeats", type=int, default=3, help="interleaved passes of each")
    parser.add_argument("--modes", default="fp32,bf16", help="precisions of our step")
    parser.add_argument("--threads", type=int, default=None, help="default: PyTorch's")
    parser.add_argument("--sizes", default=None,
                        help="comma-separated D:LAYERS:FF:HEADS specs to measure (default: "
                             "the config's)")
    parser.add_argument("--injection", default=None, choices=("memory", "embedding", "both"),
                        help="model.transformer.z_injection (default: the config's)")
    parser.add_argument("--config", default=str(CONFIG))
    parser.add_argument("--data-dir", default=str(DATA))
    parser.add_argument("--no-lstm", action="store_true",
                        help="skip timing our LSTM row beside it")
    parser.add_argument("--no-reference", action="store_true",
                        help="skip the reference (a scan of sizes against the LSTM row only)")
    parser.add_argument("--profile", action="store_true",
                        help="also print where the time of a float32 step goes, by part")
    parser.add_argument("--small", action="store_true",
                        help="tiny sizes and few batches, a smoke test (not a measurement)")
    args = parser.parse_args()
    if args.small:
        args.batches, args.repeats = min(args.batches, 3), 1

    from cyclevae import runtime
    from cyclevae.config import load_config
    from cyclevae.training import Trainer

    def emit(record: dict) -> None:
        print(json.dumps(record), flush=True)

    runtime.configure_process(args.threads)  # as the cyclevae command does
    threads = torch.get_num_threads()
    base = [f"data.data_dir={args.data_dir}", "data.valid=null", "data.test=null",
            "train.seed=0"]
    if args.injection:
        base.append(f"model.transformer.z_injection={args.injection}")
    tmp = tempfile.TemporaryDirectory(prefix="cyclevae-tf-bench-")

    def trainer_for(config: Path, overrides: list[str], name: str) -> Trainer:
        torch.manual_seed(0)
        return Trainer(load_config(config, base + overrides), Path(tmp.name) / name,
                       progress=False)

    if args.sizes:
        size_list = [Sizes.parse(s) for s in args.sizes.split(",") if s]
    elif args.small:
        size_list = [Sizes(16, 1, 32, 2)]
    else:
        t = load_config(Path(args.config), base).model.transformer
        size_list = [Sizes(t.d_model, t.n_layers, t.d_ff, t.n_heads)]

    # the batches: the same ptb:train batches (equal-length sentences) for every model
    first = trainer_for(Path(args.config), size_list[0].overrides(), "probe")
    every = first.data.train.batches(0, shuffle=True)
    epoch_tokens = sum(b.num_tokens for b in every)
    gen = torch.Generator().manual_seed(0)
    pick = torch.randperm(len(every), generator=gen)[: args.batches].tolist()
    batches = [every[i] for i in pick]
    tokens = sum(b.num_tokens for b in batches)
    ref_batches = [b.tokens for b in batches]
    vocab = len(first.vocab)
    del first

    lstm = None if args.no_lstm else trainer_for(
        LSTM_CONFIG, ["model.emb_dim=16", "model.enc_hidden=16", "model.dec_hidden=16",
                      "model.latent_dim=8"] if args.small else [], "lstm")

    n = 512 if args.small else 2048
    fp32 = fp32_peaks(n)
    peak = {"fp32": fp32["peak"]}
    has_bf16, checked = runtime.native_bf16(torch.device("cpu"))
    modes = [m for m in args.modes.split(",") if m]
    if "bf16" in modes and has_bf16:
        peak["bf16"] = gemm_peak(torch.bfloat16, n)

    common = {"cpu": runtime.cpu_name(), "threads": threads, "torch": torch.__version__,
              "batches": len(batches), "tokens": tokens, "epoch_batches": len(every),
              "epoch_tokens": epoch_tokens,
              "tokens_per_sentence": round(tokens / sum(b.num_examples for b in batches), 2),
              "gemm_gflops_fp32": round(peak["fp32"], 1),
              "gemm_gflops_fp32_blas": round(fp32["blas"], 1),
              "gemm_gflops_fp32_linear_product": round(fp32["linear_product"], 1),
              "gemm_gflops_bf16": round(peak["bf16"], 1) if "bf16" in peak else None,
              "small": args.small}

    def lstm_step(batch) -> None:
        lstm.train_step([batch], BETA)  # type: ignore[union-attr]

    for sizes in size_list:
        trainer = trainer_for(Path(args.config), sizes.overrides(), f"tf-{sizes}")
        cfg = trainer.config
        tc = cfg.model.transformer
        injection = tc.z_injection
        latent = cfg.model.latent_dim
        flops_parts: dict[str, float] = {}
        for b in batches:
            for k, v in step_flops(b.tokens, sizes, latent, vocab, injection).items():
                flops_parts[k] = flops_parts.get(k, 0.0) + v
        forward = sum(flops_parts.values())
        flops = 3 * forward  # training step
        torch.manual_seed(0)
        ref_step = reference_step_fn(
            ReferenceTransformerVAE(vocab, sizes, latent, tc.dropout, injection, tc.max_length),
            beta=BETA, lr=cfg.train.lr, clip=cfg.train.clip)
        size_fields = {"sizes": {"d_model": sizes.d_model, "n_layers": sizes.n_layers,
                                 "d_ff": sizes.d_ff, "n_heads": sizes.n_heads,
                                 "z_injection": injection, "dropout": tc.dropout,
                                 "latent_dim": latent},
                       "parameters": sum(p.numel() for p in trainer.model.parameters()),
                       "reference_parameters": sum(p.numel()
                                                   for p in ref_step.model.parameters()),
                       "step_gflop": round(flops / len(batches) / 1e9, 3),
                       "train_flop_per_token": round(flops / tokens),
                       "flop_shares": {k: round(v / forward, 3) for k, v in flops_parts.items()}}

        def ours_step(batch) -> None:
            """The real Trainer step (forward, objective, backward, clip, fused Adam)."""
            trainer.train_step([batch], BETA)

        for mode in modes:
            name = f"train_transformer_vae_{mode}"
            if mode == "bf16" and not has_bf16:
                emit({"mode": name, "skipped": f"no native bf16 (checked: {checked})",
                      "cpu": runtime.cpu_name()})
                continue
            cfg.train.precision = mode
            timed_lstm = lstm is not None and mode == "fp32"
            for b, r in zip(batches[:3], ref_batches[:3]):  # warm-up
                ours_step(b)
                if not args.no_reference:
                    ref_step(r)
                if timed_lstm:
                    lstm_step(b)
            runs: dict[str, list[tuple[float, float]]] = {"ours": [], "ref": [], "lstm": []}
            for _ in range(args.repeats):  # interleaved: all see the same machine load
                runs["ours"].append(timed_with_cpu(ours_step, batches))
                if not args.no_reference:
                    runs["ref"].append(timed_with_cpu(ref_step, ref_batches))
                if timed_lstm:
                    runs["lstm"].append(timed_with_cpu(lstm_step, batches))
            wall = {k: statistics.median(r[0] for r in v) for k, v in runs.items() if v}
            cpu = {k: statistics.median(r[1] for r in v) for k, v in runs.items() if v}
            ours_tps = tokens / wall["ours"]
            record = {
                "mode": name, "tokens_per_s": round(ours_tps),
                "seconds_per_epoch": round(epoch_tokens / ours_tps, 1),
                "floor_fraction": round(flops / wall["ours"] / (peak[mode] * 1e9), 3),
                "floor_fraction_fp32": round(flops / wall["ours"] / (peak["fp32"] * 1e9), 3),
                # CPU seconds over the threads (the peak is measured with the same threads)
                "floor_fraction_cpu_time": round(flops / (cpu["ours"] / threads)
                                                 / (peak[mode] * 1e9), 3),
            }
            if "ref" in wall:
                ref_tps = tokens / wall["ref"]
                record.update({
                    "reference_tokens_per_s": round(ref_tps),
                    "ratio": round(ours_tps / ref_tps, 3),
                    "reference_seconds_per_epoch": round(epoch_tokens / ref_tps, 1),
                    "reference_floor_fraction": round(flops / wall["ref"]
                                                      / (peak["fp32"] * 1e9), 3),
                    "ratio_cpu_time": round(cpu["ref"] / cpu["ours"], 3)})
            if timed_lstm:
                lstm_tps = tokens / wall["lstm"]
                record.update({
                    "lstm_tokens_per_s": round(lstm_tps),
                    "lstm_seconds_per_epoch": round(epoch_tokens / lstm_tps, 1),
                    "epoch_cost_vs_lstm": round(wall["ours"] / wall["lstm"], 3),
                    "epoch_cost_vs_lstm_cpu_time": round(cpu["ours"] / cpu["lstm"], 3)})
            emit({**record, **size_fields, **common})
        cfg.train.precision = "fp32"
        if args.profile:
            ref_flops = dict(flops_parts)
            ref_flops["attention"] = (ref_flops.pop("attention_projections")
                                      + ref_flops.pop("attention_core"))
            for which, fn, items, scopes, named, parts_flops in (
                    ("ours", ours_step, batches, ours_scopes(trainer.model),
                     {"_LinearCrossEntropy": "output_layer"}, flops_parts),
                    ("reference", ref_step, ref_batches, reference_scopes(ref_step.model),
                     {"aten::cross_entropy_loss": "output_layer"}, ref_flops)):
                seconds = profile_parts(fn, items, scopes, named)
                emit({"mode": "profile_transformer_vae_fp32", "which": which,
                      "profiled_ms_per_step": round(1e3 * sum(seconds.values()) / len(items),
                                                    2),
                      "parts": part_table(seconds, parts_flops, len(items)),
                      **size_fields, **common})
    tmp.cleanup()


if __name__ == "__main__":
    sys.exit(main())
