"""Do bf16 runs give the float32 runs' test metrics, within seed-to-seed noise?

    python benchmarks/precision_compare.py --fp32 runs/precision/fp32 --bf16 runs/precision/bf16

Each directory holds finished runs of the same row and schedule, one per seed (any
subdirectory with a ``metrics.json``, e.g. what ``cyclevae reproduce ptb --seeds 0,1 --set
train.precision=...`` writes). Runs are paired by seed. Prints one JSON line per test metric:
the per-seed values of each precision, their means, the difference of the means (bf16 minus
float32), the same difference seed by seed (``paired``: a shift with the same sign in every
seed is systematic even when within noise), the seed-to-seed noise (the largest difference
between two seeds of one precision) and ``within_noise`` (|difference of means| <= noise).
A last line with ``"metric": "all"`` says whether every metric is within noise. Exits with status 2 and a one-line message if the
two sides do not hold runs of the same seeds, if a side has fewer than two seeds (no noise
estimate without them), or if a directory holds two runs of one seed (two rows mixed).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path
from typing import Any

METRICS = ("rec", "kl", "elbo", "ppl", "iw_nll", "mi", "active_units")


def load_runs(root: Path) -> dict[int, dict[str, Any]]:
    """seed -> metrics.json of every finished run directly under ``root``."""
    runs: dict[int, dict[str, Any]] = {}
    where: dict[int, Path] = {}
    for path in sorted(root.glob("*/metrics.json")):
        metrics = json.loads(path.read_text())
        seed = int(metrics["config"]["train"]["seed"])
        if seed in runs:
            raise ValueError(f"{root}: {where[seed].parent.name} and {path.parent.name} are both "
                             f"seed {seed}; expected one run per seed (one row per directory)")
        runs[seed], where[seed] = metrics, path
    return runs


def compare(fp32: dict[int, dict[str, Any]], bf16: dict[int, dict[str, Any]]
            ) -> list[dict[str, Any]]:
    """One record per metric present in every run's ``test`` block (see the module doc)."""
    seeds = sorted(fp32)
    records = []
    for metric in METRICS:
        if not all(metric in run.get("test", {}) for run in (*fp32.values(), *bf16.values())):
            continue
        a = [float(fp32[s]["test"][metric]) for s in seeds]
        b = [float(bf16[s]["test"][metric]) for s in seeds]
        noise = max(max(a) - min(a), max(b) - min(b))
        diff = statistics.fmean(b) - statistics.fmean(a)
        records.append({"metric": metric, "seeds": seeds, "fp32": a, "bf16": b,
                        "fp32_mean": statistics.fmean(a), "bf16_mean": statistics.fmean(b),
                        "difference": diff, "paired": [y - x for x, y in zip(a, b)],
                        "seed_noise": noise,
                        "within_noise": abs(diff) <= noise})
    return records


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fp32", type=Path, required=True, help="directory of float32 runs")
    parser.add_argument("--bf16", type=Path, required=True, help="directory of bf16 runs")
    args = parser.parse_args(argv)
    try:
        fp32, bf16 = load_runs(args.fp32), load_runs(args.bf16)
    except ValueError as exc:
        print(f"precision_compare: {exc}", file=sys.stderr)
        return 2
    if sorted(fp32) != sorted(bf16) or len(fp32) < 2:
        print(f"precision_compare: --fp32 {args.fp32} has seeds {sorted(fp32)} and --bf16 "
              f"{args.bf16} has seeds {sorted(bf16)}; expected the same two or more seeds",
              file=sys.stderr)
        return 2
    records = compare(fp32, bf16)
    for record in records:
        print(json.dumps(record))
    print(json.dumps({"metric": "all", "within_noise": all(r["within_noise"] for r in records),
                      "epochs": sorted({m["epochs"] for m in (*fp32.values(), *bf16.values())})}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
