"""Output-layer product at PTB sizes in both layouts: why float32 inference is vocabulary-major.

    python benchmarks/output_layout.py [--rows 64,256,704,1024] [--threads N] [--repeats 3]

For each row count N, times (best of ``--repeats`` means over 10 calls) the decoder's output
product with bias, ``hidden [N, 256] @ weight.T`` into ``[N, V]`` ("row_major", what the training
path computes) and ``weight [V, 256] @ hidden.T`` into ``[V, N]`` ("vocab_major", what float32
inference computes; ``cyclevae.ops``), V = 10,002, and the GEMM peak (2048^3) in the same run.
Prints one JSON line per N: GFLOP/s of each layout, their ratio and the peak. Self-contained
(random operands); these machines are shared, so only the ratio within one run compares.
"""

from __future__ import annotations

import argparse
import json
import time

import torch

HIDDEN, VOCAB = 256, 10_002


def best_seconds(fn, repeats: int, calls: int = 10) -> float:
    """Best over ``repeats`` of the mean time of ``calls`` calls, after two warm-up calls."""
    fn()
    fn()
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(calls):
            fn()
        best = min(best, (time.perf_counter() - start) / calls)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", default="64,256,704,1024")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    a, b = torch.randn(2048, 2048), torch.randn(2048, 2048)
    peak = 2 * 2048**3 / best_seconds(lambda: a @ b, args.repeats, calls=3) / 1e9
    weight, bias = 0.1 * torch.randn(VOCAB, HIDDEN), 0.1 * torch.randn(VOCAB)
    for n in [int(r) for r in args.rows.split(",")]:
        hidden = torch.randn(n, HIDDEN)
        out_rows, out_vocab = torch.empty(n, VOCAB), torch.empty(VOCAB, n)
        row = best_seconds(lambda: torch.addmm(bias, hidden, weight.t(), out=out_rows),
                           args.repeats)
        voc = best_seconds(lambda: torch.addmm(bias.unsqueeze(1), weight, hidden.t(),
                                               out=out_vocab), args.repeats)
        flop = 2 * n * HIDDEN * VOCAB
        print(json.dumps({"rows": n, "row_major_gflops": round(flop / row / 1e9, 1),
                          "vocab_major_gflops": round(flop / voc / 1e9, 1),
                          "ratio": round(row / voc, 3), "gemm_gflops_fp32": round(peak, 1),
                          "threads": torch.get_num_threads(), "torch": torch.__version__}),
              flush=True)


if __name__ == "__main__":
    main()
