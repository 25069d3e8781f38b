#!/bin/bash
# Fixed short runs of every model family (issue 27's acceptance: numbers unchanged by the
# registry / checkpoint / Trainer refactor). Usage: run.sh CYCLEVAE_BINARY OUT_DIR
# Data: slices of ../shared/data (ptb: 600/150/150 lines; yelp: 600/150/150 lines;
# swda: 30 training conversations, 3 valid, 3 test). Each run: 1 epoch, seed 0, one thread.
# Each checkpoint is then evaluated again with `cyclevae evaluate` (the inference load path).
set -euo pipefail
BIN=$1; OUT=$2
SHARED=${SHARED:-$(cd "$(dirname "$0")/../../../.." && pwd)/shared/data}
mkdir -p "$OUT/data"
for s in train:600 valid:150 test:150; do
  head -${s#*:} "$SHARED/ptb/${s%:*}.txt" > "$OUT/data/ptb-${s%:*}.txt"
  head -${s#*:} "$SHARED/yelp/${s%:*}.tsv" > "$OUT/data/yelp-${s%:*}.tsv"
done
head -30 "$SHARED/swda/train.jsonl" > "$OUT/data/swda-train.jsonl"
head -3 "$SHARED/swda/valid.jsonl" > "$OUT/data/swda-valid.jsonl"
head -3 "$SHARED/swda/test.jsonl" > "$OUT/data/swda-test.jsonl"
COMMON=(--set train.epochs=1 --set train.num_threads=1 --set train.seed=0 --no-progress)
PTB=(--set data.train="$OUT/data/ptb-train.txt" --set data.valid="$OUT/data/ptb-valid.txt"
     --set data.test="$OUT/data/ptb-test.txt" --set schedule.unit=step --set train.iw_samples=10)
"$BIN" train "${COMMON[@]}" "${PTB[@]}" --out "$OUT/vae" --overwrite > /dev/null
"$BIN" train "${COMMON[@]}" "${PTB[@]}" --set model.kind=savae --set model.svi.steps=2 \
  --out "$OUT/savae" --overwrite > /dev/null
"$BIN" train "${COMMON[@]}" "${PTB[@]}" --set model.kind=svi --set model.svi.steps=2 \
  --out "$OUT/svi" --overwrite > /dev/null
YELP=(--set data.train="$OUT/data/yelp-train.tsv" --set data.valid="$OUT/data/yelp-valid.tsv"
      --set data.test="$OUT/data/yelp-test.tsv" --set train.iw_samples=10)
"$BIN" train --config yelp/vae-cyclical "${COMMON[@]}" "${YELP[@]}" --out "$OUT/yelp-vae" \
  --overwrite > /dev/null
"$BIN" train --config yelp/ae "${COMMON[@]}" "${YELP[@]}" --out "$OUT/yelp-ae" \
  --overwrite > /dev/null
DIALOG=(--set data.train="$OUT/data/swda-train.jsonl" --set data.valid="$OUT/data/swda-valid.jsonl"
        --set data.test="$OUT/data/swda-test.jsonl" --set train.iw_samples=5
        --set train.response_samples=2 --set train.response_contexts=10)
# DIALOG_EXTRA: more --set options for the dialog row (the merged main needs its old
# preparation and no stopping rule: see README)
"$BIN" train --config dialog/cvae-bow-cyclical "${COMMON[@]}" "${DIALOG[@]}" ${DIALOG_EXTRA:-} \
  --out "$OUT/cvae" --overwrite > /dev/null
for run in vae savae svi yelp-vae yelp-ae cvae; do
  "$BIN" evaluate "$OUT/$run/checkpoint_last.pt" --iw-samples 10 --num-threads 1 \
    > "$OUT/$run/evaluate.json"
done
for run in vae savae yelp-vae; do
  "$BIN" generate "$OUT/$run/checkpoint_last.pt" --prior 3 --seed 0 > "$OUT/$run/generate.txt"
done
"$BIN" reproduce synthetic --steps 2000 --out "$OUT/synthetic" --no-progress > /dev/null 2>&1
