#!/usr/bin/env bash
# The synthetic experiment for 2,000 steps before (commit 1048102) and after this change, and
# the old loop with the Trainer's two differences (old_loop_variant.py). Usage, from the
# repository root of the new code, with its venv in .venv:
#     results/refactor/round3/synthetic/run.sh /tmp/synthetic-refactor
set -euo pipefail
WORK=${1:?usage: run.sh WORKDIR}
HERE=$(cd "$(dirname "$0")" && pwd)
PY=$(pwd)/.venv/bin/python
mkdir -p "$WORK/old-src"
git archive 1048102 | tar -x -C "$WORK/old-src"
# before: the old code (its own loop, process pool, one thread per schedule)
(cd "$WORK" && PYTHONPATH="$WORK/old-src/src" nice -n 5 "$PY" -m cyclevae reproduce synthetic \
    --steps 2000 --seed 0 --out "$WORK/before" --no-progress)
# after: this code (the Trainer, the runner, model.kind synthetic)
(cd "$WORK" && nice -n 5 "$PY" -m cyclevae reproduce synthetic --steps 2000 --seed 0 \
    --out "$WORK/after" --no-progress)
# the old loop, per-step seeds and per-step curve generators: equal to "after" bit for bit
(cd "$WORK" && PYTHONPATH="$WORK/old-src/src" nice -n 5 "$PY" "$HERE/old_loop_variant.py" \
    --steps 2000 --seed 0 --out "$WORK/variant.json" --compare "$WORK/after/metrics.json")
# both loops on seeds 1 and 2 (2,000 steps), for the verdicts' sensitivity to the noise
for seed in 1 2; do
    (cd "$WORK" && PYTHONPATH="$WORK/old-src/src" nice -n 5 "$PY" "$HERE/old_loop_variant.py" \
        --steps 2000 --seed $seed --no-reseed --no-curve-per-step --out "$WORK/old-seed$seed.json")
    (cd "$WORK" && PYTHONPATH="$WORK/old-src/src" nice -n 5 "$PY" "$HERE/old_loop_variant.py" \
        --steps 2000 --seed $seed --out "$WORK/new-seed$seed.json")
done
