#!/bin/bash
# One lane of the Yelp seed rows (issue 31): train each ROW:SEED in order, one thread, from the
# clone in code-yelp/; a row with a checkpoint is resumed, a finished one skipped; the lane
# stops at the first row that exits non-zero (SIGINT at a session's end: exit 130).
cd ~/cyclevae-runs/code-yelp || exit 1
export CYCLEVAE_DATA=/work/shared/data
for item in "$@"; do
  row=${item%:*}; seed=${item#*:}
  name=$row; [ "$seed" = 0 ] || name=$row-seed$seed
  dir=~/cyclevae-runs/yelp/$name
  [ -f "$dir/metrics.json" ] && continue
  echo "lane: $name start $(date -u +%FT%TZ)"
  if [ -f "$dir/checkpoint_last.pt" ]; then
    .venv/bin/cyclevae train --resume --out "$dir" --no-progress || exit $?
  else
    .venv/bin/cyclevae train --config "yelp/$row" --out "$dir" --set train.seed="$seed" \
      --set train.num_threads=1 --no-progress || exit $?
  fi
  echo "lane: $name done $(date -u +%FT%TZ)"
done
