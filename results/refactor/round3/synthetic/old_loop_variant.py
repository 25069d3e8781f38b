"""The old synthetic loop (commit 1048102) with the two changes the shared Trainer makes, to show
that they are the whole difference between the before and after numbers.

Run it with the OLD code on the path (a checkout of 1048102):

    PYTHONPATH=/path/to/1048102/src python old_loop_variant.py --steps 2000 --out variant.json

It trains the three schedules one after another in this process, one thread, exactly as the
old ``experiments/synthetic.py::_train`` did, except:

1. ``--reseed``: before every optimizer step, ``torch.manual_seed`` with the Trainer's
   per-batch seed (``Trainer._batch_seed``: ``((seed * 1_000_003 + epoch) * 1_000_003 +
   index) % 2**64``, ``epoch = step // L``, ``index = step % L``, ``L`` the run's steps per
   epoch) instead of one ``torch.manual_seed(seed)`` before the whole run;
2. ``--curve-per-step``: each curve point draws its z from a generator seeded by the step
   (the monitor's ``_generator(seed, 1, step)``) instead of one generator running on from
   point to point (the same seed at step 0).

With both, its ``final``, ``curve`` and ``snapshots`` equal the new code's metrics.json
(``compare`` below); with neither, the old code's.
"""

from __future__ import annotations

import argparse
import json
import random
import sys

import numpy as np
import torch

from cyclevae.data.batching import TextBatch
from cyclevae.data.synthetic import VOCAB_SIZE, one_hot_sequences
from cyclevae.experiments import synthetic as old
from cyclevae.losses import beta_vae_loss
from cyclevae.models import TextVAE
from cyclevae.runtime import make_adam
from cyclevae.schedules import BetaScheduler


def train(name: str, steps: int, seed: int, per_epoch: int, reseed: bool,
          curve_per_step: bool) -> dict:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    batch = TextBatch(one_hot_sequences(old.N_SEQUENCES))
    model = TextVAE(old.model_config(), VOCAB_SIZE)
    model.train()
    optimizer = make_adam(model.parameters(), old.LR)
    scheduler = BetaScheduler(steps, **old.SCHEDULES[name])
    curve_gen = old._generator(seed, old._CURVE_STREAM)
    record, snap = set(old.curve_steps(steps)), set(old.snapshot_steps(steps))
    curve, snaps = [], []
    last_beta = scheduler.value

    def measure(step: int) -> None:
        if step in record:
            gen = old._generator(seed, old._CURVE_STREAM, step) if curve_per_step else curve_gen
            metrics, _, _ = old._evaluate(model, batch, old.CURVE_SAMPLES, gen)
            curve.append({"step": step, "beta": last_beta, **metrics})
        if step in snap:
            metrics, _, _ = old._full_metrics(model, batch,
                                              old._generator(seed, old._SNAPSHOT_STREAM, step))
            snaps.append({"step": step, "beta": last_beta, **metrics})

    for step in range(steps):
        measure(step)
        if reseed:
            epoch, index = divmod(step, per_epoch)
            torch.manual_seed(((seed * 1_000_003 + epoch) * 1_000_003 + index) % 2**64)
        beta = scheduler.value
        out = model(batch, beta=beta)
        loss = beta_vae_loss(out.rec, out.kl, beta)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        scheduler.step()
        last_beta = beta
    measure(steps)
    final, _, _ = old._full_metrics(model, batch, old._generator(seed, old._SNAPSHOT_STREAM, steps))
    final["beta"] = last_beta
    return {"final": final, "curve": curve, "snapshots": snaps}


def compare(a: dict, b: dict) -> list[str]:
    """Lines naming every schedule/part whose numbers differ (empty: bit-identical)."""
    diffs = []
    for name in old.SCHEDULES:
        for part in ("final", "curve", "snapshots"):
            if a[name][part] != b[name][part]:
                diffs.append(f"{name} {part} differ")
    return diffs


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--steps", type=int, default=2000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--steps-per-epoch", type=int, help="default: the new code's, steps / 400")
    p.add_argument("--no-reseed", dest="reseed", action="store_false")
    p.add_argument("--no-curve-per-step", dest="curve_per_step", action="store_false")
    p.add_argument("--out", required=True)
    p.add_argument("--compare", help="a metrics.json to compare with")
    args = p.parse_args()
    torch.set_num_threads(1)  # as each old worker and each new run
    per_epoch = args.steps_per_epoch or max(1, round(args.steps / old.CURVE_POINTS))
    result = {name: train(name, args.steps, args.seed, per_epoch, args.reseed,
                          args.curve_per_step) for name in old.SCHEDULES}
    result["claims"] = old.check_claims({**result, "settings": {"steps": args.steps}})
    with open(args.out, "w", encoding="utf-8") as handle:
        json.dump(result, handle, indent=1)
    for claim in result["claims"]:
        print(f"{'PASS' if claim['pass'] else 'FAIL'}: {claim['claim']}")
    if args.compare:
        with open(args.compare, encoding="utf-8") as handle:
            other = json.load(handle)
        diffs = compare(json.loads(json.dumps(result)), other)
        print("\n".join(diffs) if diffs else f"bit-identical to {args.compare}: final, curve "
              "and snapshots of all three schedules")
        return 1 if diffs else 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
