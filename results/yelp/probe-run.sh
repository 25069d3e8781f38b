#!/bin/bash
# Probe one finished Yelp seed run with both classifiers (ours, then the authors'), from the clone.
# Usage: probe-run.sh ROW SEED   (seed 0 -> the run directory without suffix)
cd ~/cyclevae-runs/code-yelp || exit 1
export CYCLEVAE_DATA=/work/shared/data
row=$1; seed=$2
.venv/bin/cyclevae reproduce yelp --rows "$row" --seeds "$seed" --tsne-points 0 --out ~/cyclevae-runs/yelp --no-progress || exit $?
.venv/bin/cyclevae reproduce yelp --rows "$row" --seeds "$seed" --classifier authors --tsne-points 0 --out ~/cyclevae-runs/yelp --no-progress
