"""Training throughput of the dialog CVAE (Zhao et al.'s sizes, SPEC 4.3) on real SwDA batches,
against a straightforward reference implementation timed in the same run (these machines are
shared; only ratios in one run are comparable).

    python benchmarks/dialog_speed.py [--batches 30] [--repeats 3] [--bow 1] [--run-length 5]
                                      [--threads N] [--profile]

Prints one JSON line with "mode": "train_cvae_fp32", "tokens_per_s" (predicted response tokens
per second of our training step), "reference_tokens_per_s", "ratio", "seconds_per_epoch"
(swda/train at our speed), "floor_fraction" (FLOPs of our step per second over the float32
GEMM peak measured in this run) and the details. Run from the repository root with
../shared/data. ``--profile`` adds one line per implementation (``"mode":
"profile_cvae_fp32"``, ours and the reference, profiled in the same process after the timing)
with each part's milliseconds per step and time share beside its FLOP share
(:mod:`profiling`).

Ours is the real code path: a :class:`cyclevae.training.Trainer` built for ``model.kind: cvae``
on swda/train (its :class:`cyclevae.data.dialog.DialogBatcher` batches, each distinct utterance
once) and its ``train_step``: :class:`cyclevae.models.cvae.CVAE` forward, the objective with the
bag-of-words loss, backward, global-norm clip 5 and Adam. The reference, written here, gets
the same examples and does what a competent user writes first: every context slot's utterance
encoded on its own (``B x C`` rows of a packed bi-GRU, plus the responses), plain ``nn.GRU``
modules, a padded decoder and ``F.cross_entropy`` over ``[B, L, V]`` logits.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence

sys.path.insert(0, str(Path(__file__).resolve().parent))
from floors import fp32_peaks  # the benchmarks' shared modules
from profiling import part_table, profile_parts

REPO = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("CYCLEVAE_SHARED_DATA", REPO.parent / "shared" / "data"))


# --------------------------------------------------------------------- the reference
class ReferenceCVAE(nn.Module):
    """Zhao et al.'s CVAE written plainly (same sizes and parameters as ours)."""

    def __init__(self, vocab: int, emb: int = 200, utt: int = 300, ctx: int = 600,
                 latent: int = 200, dec: int = 400, bow: bool = True) -> None:
        super().__init__()
        self.embedding = nn.Embedding(vocab, emb, padding_idx=0)
        self.utt_rnn = nn.GRU(emb, utt, batch_first=True, bidirectional=True)
        self.ctx_rnn = nn.GRU(2 * utt + 2, ctx, batch_first=True)
        self.recognition = nn.Linear(ctx + 2 * utt, 2 * latent)
        self.prior = nn.Sequential(nn.Linear(ctx, 400), nn.Tanh(), nn.Linear(400, 2 * latent))
        self.init_state = nn.Linear(ctx + latent, dec)
        self.dec_rnn = nn.GRU(emb, dec, batch_first=True)
        self.out = nn.Linear(dec, vocab)
        self.bow = bow
        self.bow_mlp = nn.Sequential(nn.Linear(ctx + latent, 400), nn.Tanh(),
                                     nn.Linear(400, vocab))
        for p in self.parameters():
            nn.init.uniform_(p, -0.08, 0.08)

    def encode(self, tokens: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        packed = pack_padded_sequence(self.embedding(tokens), lengths, batch_first=True,
                                      enforce_sorted=False)
        _, h = self.utt_rnn(packed)
        return torch.cat([h[0], h[1]], -1)

    def forward(self, ctx_tokens, ctx_utt_lengths, ctx_lengths, floors, resp, resp_lengths):
        b, c, length = ctx_tokens.shape
        utt = self.encode(ctx_tokens.view(b * c, length), ctx_utt_lengths.view(-1).clamp(min=1))
        utt = utt.view(b, c, -1)
        x = torch.cat([utt, F.one_hot(floors, 2).float()], -1)
        _, h = self.ctx_rnn(pack_padded_sequence(x, ctx_lengths, batch_first=True,
                                                 enforce_sorted=False))
        cond = h[0]
        x_resp = self.encode(resp, resp_lengths)
        mu, logvar = self.recognition(torch.cat([cond, x_resp], -1)).chunk(2, -1)
        p_mu, p_logvar = self.prior(cond).chunk(2, -1)
        z = mu + (0.5 * logvar).exp() * torch.randn_like(mu)
        gen = torch.cat([cond, z], -1)
        h0 = self.init_state(gen).unsqueeze(0)
        out, _ = self.dec_rnn(self.embedding(resp[:, :-1]), h0)
        logits = self.out(out)
        target = resp[:, 1:]
        rec = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), target.reshape(-1),
                              ignore_index=0, reduction="none").view(target.shape).sum(1)
        kl = 0.5 * (p_logvar - logvar + (logvar.exp() + (mu - p_mu) ** 2) / p_logvar.exp()
                    - 1).sum(1)
        loss = rec.mean() + 0.5 * kl.mean()
        if self.bow:
            log_p = F.log_softmax(self.bow_mlp(gen), -1)
            loss = loss - (log_p.gather(1, target) * (target != 0)).sum(1).mean()
        return loss


def reference_inputs(batch) -> tuple[torch.Tensor, ...]:
    """The example-by-example tensors a plain implementation reads (from a DialogBatch)."""
    b, c = batch.context.shape
    length = batch.utterances.shape[1]
    mask = torch.arange(c).unsqueeze(0) < batch.context_lengths.unsqueeze(1)
    ctx_tokens = batch.utterances[batch.context] * mask.unsqueeze(-1)  # [B, C, L]
    ctx_utt_lengths = batch.lengths[batch.context] * mask
    resp = batch.response_tokens()
    assert ctx_tokens.shape == (b, c, length)
    return (ctx_tokens, ctx_utt_lengths, batch.context_lengths, batch.floors, resp,
            batch.lengths[batch.response])


# --------------------------------------------------------------------- measurement
def gru_flops(steps: float, inp: int, hidden: int) -> float:
    """Forward FLOPs of a GRU over ``steps`` row-steps (3 gates, multiply-add = 2)."""
    return steps * 2 * 3 * hidden * (inp + hidden)


def step_flop_parts(batch, vocab: int, config) -> dict[str, float]:
    """Forward FLOPs of one training step of our model on ``batch``, by part (the backward is
    twice each): the bi-GRU over the distinct utterances' real tokens, the context GRU over
    the real context slots, the prior, recognition and initial-state layers, the decoder GRU
    and output layer over the real response tokens (words and ``</s>``), the BoW head (sizes
    from ``config``, a :class:`~cyclevae.models.cvae.CVAEConfig`)."""
    emb, utt, ctx, latent = config.emb_dim, config.utt_hidden, config.ctx_hidden, config.latent_dim
    dec, hid = config.dec_hidden, config.prior_hidden
    utt_tokens = float(batch.lengths.sum())
    ctx_steps = float(batch.context_lengths.sum())
    resp_tokens = float(batch.num_tokens)
    b = batch.num_examples
    parts = {
        "utterance_encoder": 2 * gru_flops(utt_tokens, emb, utt),
        "context_encoder": gru_flops(ctx_steps, 2 * utt + 2, ctx),
        "recognition_prior": 2 * b * (ctx * hid + hid * 2 * latent + (ctx + 2 * utt) * 2 * latent
                                      + (ctx + latent) * dec),
        "decoder_gru": gru_flops(resp_tokens, emb, dec),
        "output_layer": 2 * resp_tokens * dec * vocab,
    }
    if config.bow:
        parts["bow"] = 2 * b * ((ctx + latent) * config.bow_hidden + config.bow_hidden * vocab)
    return parts


def step_flops(batch, vocab: int, config) -> float:
    """FLOPs of one training step (forward x 3 for backward): :func:`step_flop_parts`."""
    return 3 * sum(step_flop_parts(batch, vocab, config).values())


def timed(fn, items, repeats: int) -> float:
    """Median over repeats of the time of one pass of ``fn`` over ``items``."""
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        for item in items:
            fn(item)
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, default=30, help="swda/train batches per pass")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--bow", type=int, default=1, help="1: the +BoW model (0: plain)")
    parser.add_argument("--run-length", type=int, default=5,
                        help="consecutive examples of a conversation per run (DialogBatcher)")
    parser.add_argument("--train-file", default=str(DATA / "swda" / "train.jsonl"))
    parser.add_argument("--threads", type=int, default=None,
                        help="torch threads (default: the runtime's choice)")
    parser.add_argument("--profile", action="store_true",
                        help="also profile both steps by part (torch.profiler)")
    parser.add_argument("--small", action="store_true",
                        help="tiny sizes, for a smoke test of the script (not a measurement)")
    args = parser.parse_args()

    import tempfile

    from cyclevae import runtime
    from cyclevae.config import load_config
    from cyclevae.training import Trainer

    runtime.configure_process(args.threads)
    small = {"emb_dim": 16, "utt_hidden": 16, "ctx_hidden": 16, "latent_dim": 8,
             "dec_hidden": 16, "prior_hidden": 16, "bow_hidden": 16}
    sizes = small if args.small else {}
    overrides = [f"data.train={args.train_file}", "data.max_vocab=10000", "data.batch_size=30",
                 f"data.dialog.run_length={args.run_length}", "model.kind=cvae",
                 f"model.cvae.bow={'true' if args.bow else 'false'}", "train.epochs=1",
                 "schedule.n_cycles=1", "schedule.ramp_steps=10000", "train.iw_samples=0",
                 *[f"model.cvae.{k}={v}" for k, v in sizes.items()]]
    scratch = tempfile.TemporaryDirectory(prefix="dialog_speed_")
    # the real Trainer: its data (DialogBatcher), its model, its step (objective, clip, Adam)
    trainer = Trainer(load_config(None, overrides), Path(scratch.name) / "run", progress=False)
    torch.manual_seed(0)
    vocab, batcher, config = trainer.vocab, trainer.data.train, trainer.config.model.cvae
    every = batcher.batches(0, shuffle=True)
    gen = torch.Generator().manual_seed(0)
    pick = torch.randperm(len(every), generator=gen)[: args.batches].tolist()
    batches = [every[i] for i in pick]
    tokens = sum(b.num_tokens for b in batches)

    def ours(batch) -> None:
        trainer.train_step([batch], 0.5)

    ref_small = {"emb": 16, "utt": 16, "ctx": 16, "latent": 8, "dec": 16}
    ref_sizes = ref_small if args.small else {}
    reference = ReferenceCVAE(len(vocab), bow=bool(args.bow), **ref_sizes)
    ref_opt = runtime.make_adam(reference.parameters(), 1e-3)
    ref_batches = [reference_inputs(b) for b in batches]

    def ref(inputs) -> None:
        reference.train()
        ref_opt.zero_grad(set_to_none=True)
        reference(*inputs).backward()
        torch.nn.utils.clip_grad_norm_(reference.parameters(), 5.0, foreach=True)
        ref_opt.step()

    fp32 = fp32_peaks(512 if args.small else 2048)  # the faster of BLAS and oneDNN
    peak = fp32["peak"]
    for b, r in zip(batches[:2], ref_batches[:2]):  # warm-up
        ours(b)
        ref(r)
    ours_times, ref_times = [], []
    for _ in range(args.repeats):  # interleaved, so both see the same machine load
        ours_times.append(timed(ours, batches, 1))
        ref_times.append(timed(ref, ref_batches, 1))
    ours_s, ref_s = statistics.median(ours_times), statistics.median(ref_times)
    flops = sum(step_flops(b, len(vocab), config) for b in batches)
    ours_tps, ref_tps = tokens / ours_s, tokens / ref_s
    print(json.dumps({
        "mode": "train_cvae_fp32", "tokens_per_s": round(ours_tps),
        "reference_tokens_per_s": round(ref_tps), "ratio": round(ours_tps / ref_tps, 3),
        "seconds_per_epoch": round(batcher.num_tokens / ours_tps, 1),
        "reference_seconds_per_epoch": round(batcher.num_tokens / ref_tps, 1),
        "seconds_per_step": round(ours_s / len(batches), 4),
        "reference_seconds_per_step": round(ref_s / len(batches), 4),
        "floor_fraction": round(flops / ours_s / (peak * 1e9), 3),
        "gemm_gflops_fp32": round(peak, 1), "gemm_gflops_fp32_blas": round(fp32["blas"], 1),
        "gemm_gflops_fp32_linear_product": round(fp32["linear_product"], 1), "batches": len(batches), "tokens": tokens,
        "epoch_batches": len(batcher), "epoch_tokens": batcher.num_tokens,
        "run_length": args.run_length, "bow": bool(args.bow), "small": args.small,
        "distinct_utterances_per_batch": round(
            sum(b.utterances.shape[0] for b in batches) / len(batches), 1),
        "context_slots_per_batch": round(
            sum(int(b.context_lengths.sum()) for b in batches) / len(batches), 1),
        "threads": torch.get_num_threads(), "torch": torch.__version__}), flush=True)
    if args.profile:
        profile(trainer.model, reference, ours, ref, batches, ref_batches, len(vocab), config)


def profile(model, reference, ours, ref, batches, ref_batches, vocab: int, config) -> None:
    """Print each step's time by part against the part's FLOP share (one JSON line each)."""
    flop_parts: dict[str, float] = {}
    for b in batches:
        for k, v in step_flop_parts(b, vocab, config).items():
            flop_parts[k] = flop_parts.get(k, 0.0) + v / len(batches)
    ours_scopes = {model.embedding: "embeddings", model.utt_rnn: "utterance_encoder",
                   model.ctx_rnn: "context_encoder", model.recognition: "recognition_prior",
                   model.prior: "recognition_prior", model.init_state: "recognition_prior",
                   model.dec_rnn: "decoder_gru"}
    ref_scopes = {reference.embedding: "embeddings", reference.utt_rnn: "utterance_encoder",
                  reference.ctx_rnn: "context_encoder",
                  reference.recognition: "recognition_prior",
                  reference.prior: "recognition_prior", reference.init_state: "recognition_prior",
                  reference.dec_rnn: "decoder_gru", reference.out: "output_layer"}
    if config.bow:
        ours_scopes.update({model.bow_hidden: "bow", model.bow_out: "bow"})
        ref_scopes.update({reference.bow_mlp: "bow"})
    named = {"_LinearCrossEntropy": "output_layer", "aten::log_softmax": "bow",
             "aten::cross_entropy_loss": "output_layer"}
    for which, fn, items, scopes in (("ours", ours, batches, ours_scopes),
                                     ("reference", ref, ref_batches, ref_scopes)):
        seconds = profile_parts(fn, items, scopes, named)
        print(json.dumps({
            "mode": "profile_cvae_fp32", "which": which,
            "profiled_ms_per_step": round(1e3 * sum(seconds.values()) / len(items), 2),
            "parts": part_table(seconds, flop_parts, len(items)),
            "threads": torch.get_num_threads()}), flush=True)


if __name__ == "__main__":
    sys.exit(main())
