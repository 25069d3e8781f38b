#!/bin/bash
# The fixed short PTB runs of issue 13's acceptance ("numbers unchanged by the refactor").
# Usage: run.sh CYCLEVAE_BINARY OUT_DIR [old|new]
#   old: the pre-refactor keys (model.svi_steps), for a checkout of 04e7a46
#   new: the nested keys (model.svi.steps)
# Data: the first 600 / 150 / 150 lines of ../shared/data/ptb/{train,valid,test}.txt.
set -euo pipefail
BIN=$1; OUT=$2; KEYS=${3:-new}
SHARED=${SHARED:-$(cd "$(dirname "$0")/../../.." && pwd)/shared/data}
mkdir -p "$OUT/data"
head -600 "$SHARED/ptb/train.txt" > "$OUT/data/train.txt"
head -150 "$SHARED/ptb/valid.txt" > "$OUT/data/valid.txt"
head -150 "$SHARED/ptb/test.txt" > "$OUT/data/test.txt"
STEPS=$([ "$KEYS" = old ] && echo model.svi_steps || echo model.svi.steps)
C=(--set data.train="$OUT/data/train.txt" --set data.valid="$OUT/data/valid.txt"
   --set data.test="$OUT/data/test.txt" --set train.epochs=1 --set schedule.unit=step
   --set train.iw_samples=10 --set train.num_threads=1 --set train.seed=0 --no-progress)
"$BIN" train "${C[@]}" --out "$OUT/vae" --overwrite > /dev/null
"$BIN" train "${C[@]}" --set model.kind=savae --set $STEPS=2 --out "$OUT/savae" --overwrite > /dev/null
"$BIN" train "${C[@]}" --set model.kind=svi --set $STEPS=2 --out "$OUT/svi" --overwrite > /dev/null
