#!/usr/bin/env bash
# Every CPU speed benchmark in one go, for a new CPU kind (issue 17), from the repository root:
#
#     bash benchmarks/cpu_check.sh OUT_DIR [--threads N]
#
# Run it on an otherwise idle machine (pause long runs first: kill -STOP PID, then kill -CONT
# PID). Writes OUT_DIR/machine.txt (CPU model, family, flags that matter, torch, commit) and
# one JSON-lines file per benchmark:
#   train_speed.jsonl   PTB VAE: train fp32/bf16, ELBO pass, IW-NLL K = 500, --profile
#   savae_speed.jsonl   SA-VAE, 10 SVI steps, the default fd gradient, against its reference
#   yelp_speed.jsonl    Yelp CNN-encoder VAE step, fp32/bf16, --profile
#   dialog_speed.jsonl  dialog CVAE + BoW step
# and OUT_DIR/cpu_check.log (stderr of every step). A failing step is recorded and the script
# goes on; exit status 1 if any failed. Threads: N (default: PyTorch's, all cores).
set -u
OUT="${1:?usage: bash benchmarks/cpu_check.sh OUT_DIR [--threads N]}"
shift
THREADS=""
if [ "${1:-}" = "--threads" ]; then THREADS="${2:?--threads needs a number}"; shift 2; fi
PYTHON="${PYTHON:-python3}"
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO" || exit 2
mkdir -p "$OUT" || exit 2
LOG="$OUT/cpu_check.log"
: > "$LOG"
if [ -n "$THREADS" ]; then export OMP_NUM_THREADS="$THREADS"; fi
{
  echo "date: $(date -u +%Y-%m-%dT%H:%MZ)"
  echo "commit: $(git rev-parse HEAD 2>/dev/null || echo unknown)"
  "$PYTHON" -c "import torch; from cyclevae import runtime as r; print('cpu:', r.cpu_name()); \
print('threads:', torch.get_num_threads()); print('torch:', torch.__version__); \
print('flags:', ' '.join(sorted(f for f in r.cpu_flags() if f.startswith(('avx', 'amx', 'fma')))))"
  nproc | sed 's/^/cores: /'
  free -g | awk '/Mem:/ {print "memory_gb: " $2}'
} > "$OUT/machine.txt"
cat "$OUT/machine.txt"
failed=0
step() {  # step NAME COMMAND...
  local name="$1"; shift
  local start=$SECONDS
  echo "== $name: $*" | tee -a "$LOG"
  if "$@" > "$OUT/$name.jsonl" 2>> "$LOG"; then
    echo "   done in $((SECONDS - start)) s" | tee -a "$LOG"
  else
    echo "   FAILED (rc $?) after $((SECONDS - start)) s" | tee -a "$LOG"
    failed=1
  fi
}
T=()
if [ -n "$THREADS" ]; then T=(--threads "$THREADS"); fi
step train_speed "$PYTHON" benchmarks/train_speed.py --profile
step savae_speed "$PYTHON" benchmarks/savae_speed.py --modes fd "${T[@]}"
step yelp_speed "$PYTHON" benchmarks/yelp_speed.py --profile "${T[@]}"
step dialog_speed "$PYTHON" benchmarks/dialog_speed.py
exit $failed
