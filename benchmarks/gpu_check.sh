#!/usr/bin/env bash
# The GPU check of issue 17: on a machine with one NVIDIA GPU and PyTorch already installed
# (nothing is downloaded), from the repository root:
#
#     bash benchmarks/gpu_check.sh [--data DIR] [--out DIR] [--dry-run] [--rehearse]
#
#   --data DIR   a folder holding ptb/{train,valid,test}.txt (default $CYCLEVAE_SHARED_DATA,
#                else ../shared/data)
#   --out DIR    where the results go (default $OUT, else results/benchmarks/gpu-check-DATE)
#   --dry-run    check the paths and the Python, print the plan, run nothing
#   --rehearse   run every step on the CPU at tiny sizes (tests the script, measures nothing)
#   PYTHON=...   the interpreter (default python3); GPU_CHECK_COMMIT=... the commit, recorded
#                where the copy of the repository has no .git
#
# Steps, each under its own `timeout` (a failing or timed-out step is recorded and the script
# goes on; all limits together 480 s):
#   1. env      nvidia-smi, torch, CUDA, the GPU, bf16 support                        30 s
#   2. tests    pytest -m cuda tests/test_cuda.py (the CUDA path's tests)             180 s
#   3. train    train_speed.py --device cuda: 300 PTB training steps, fp32 and bf16,  120 s
#               against the reference and the GPU's GEMM peak measured in the run
#   4. iw_nll   train_speed.py --device cuda: IW-NLL (K = 500) on 512 sentences,       90 s
#               and the ELBO pass
#   5. nccl     torchrun --nproc-per-node 1 tests/test_cuda.py nccl-smoke: one DDP      60 s
#               step on the NCCL backend
# Writes into the output folder: gpu_check.jsonl (one JSON line per measurement, each with
# "step", and one {"step": ..., "rc": ...} line per step), gpu_check.log (every command's
# output), cuda_tests.xml (pytest's report) and summary.md (seconds per epoch against the
# paper's 30 s per epoch on a 2019 GPU; printed at the end too). Exit status 0 when every
# step passed, 1 otherwise.
#
# With the device tool (the repository root is the working directory there, $OUT is set, and
# ../shared does not travel): here, once,
#     mkdir -p .gpu-data && cp -r ../shared/data/ptb .gpu-data/ &&
#       { grep -qx '/.gpu-data/' .git/info/exclude || echo /.gpu-data/ >> .git/info/exclude; }
# then run with carry [".gpu-data"] and the command
#     GPU_CHECK_COMMIT=<git rev-parse HEAD here> bash benchmarks/gpu_check.sh --data .gpu-data
# (timeout_s 540) and commit the files under results/benchmarks/<date>-<gpu>/.
set -u

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO" || exit 2
DATA="${CYCLEVAE_SHARED_DATA:-../shared/data}"
DEST="${OUT:-}"
DRY_RUN=0
REHEARSE=0
PY="${PYTHON:-python3}"
while [ $# -gt 0 ]; do
    case "$1" in
        --data) DATA="${2:?--data needs a folder}"; shift 2 ;;
        --out) DEST="${2:?--out needs a folder}"; shift 2 ;;
        --dry-run) DRY_RUN=1; shift ;;
        --rehearse) REHEARSE=1; shift ;;
        -h|--help) sed -n '2,40p' "$0"; exit 0 ;;
        *) echo "gpu_check.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
    esac
done
[ -n "$DEST" ] || DEST="results/benchmarks/gpu-check-$(date -u +%Y%m%d-%H%M%S)"

# ------------------------------------------------------------------ the plan
if [ "$REHEARSE" = 1 ]; then  # CPU, tiny sizes: the script's plumbing, no measurement
    DEVICE=cpu; TRAIN_BATCHES=3; IW_BATCHES=3; IW_SENTENCES=2
else
    DEVICE=cuda; TRAIN_BATCHES=300; IW_BATCHES=40; IW_SENTENCES=512
fi
STEPS=(env tests train iw_nll nccl)
declare -A LIMIT=([env]=30 [tests]=180 [train]=120 [iw_nll]=90 [nccl]=60)
declare -A CMD
plan() {  # the steps' commands (split on spaces when run: no spaces in the paths)
    CMD[env]="$PY - (torch, CUDA, the GPU's properties, bf16, nvidia-smi: one JSON line)"
    CMD[tests]="$PY -m pytest -m cuda tests/test_cuda.py -q -rs -p no:cacheprovider --junitxml=$DEST/cuda_tests.xml"
    CMD[train]="$PY benchmarks/train_speed.py --device $DEVICE --batches $TRAIN_BATCHES --repeats 1 --modes train_fp32,train_bf16"
    CMD[iw_nll]="$PY benchmarks/train_speed.py --device $DEVICE --batches $IW_BATCHES --repeats 1 --iw-sentences $IW_SENTENCES --modes eval_iw_nll,eval_elbo"
    CMD[nccl]="$PY -m torch.distributed.run --nproc-per-node 1 --master-addr 127.0.0.1 --master-port PORT tests/test_cuda.py nccl-smoke $DEST/nccl.json"
}
plan

problems=()
for split in train valid test; do
    [ -f "$DATA/ptb/$split.txt" ] || problems+=("$DATA/ptb/$split.txt: not found (--data DIR: a folder with ptb/)")
done
command -v "$PY" >/dev/null 2>&1 || problems+=("$PY: no such interpreter (set PYTHON)")
command -v timeout >/dev/null 2>&1 || problems+=("timeout (coreutils) not found")

echo "gpu_check.sh: repository $REPO"
echo "  data     $DATA"
echo "  output   $DEST"
echo "  python   $PY ($(command -v "$PY" 2>/dev/null || echo missing))"
echo "  device   $DEVICE$([ "$REHEARSE" = 1 ] && echo ' (rehearsal: tiny sizes, nothing measured)')"
for step in "${STEPS[@]}"; do
    printf '  %-8s %4d s  %s\n' "$step" "${LIMIT[$step]}" "${CMD[$step]}"
done
if [ ${#problems[@]} -gt 0 ]; then
    printf 'gpu_check.sh: %s\n' "${problems[@]}" >&2
    exit 2
fi
if [ "$DRY_RUN" = 1 ]; then
    "$PY" -c 'import torch; print("  torch", torch.__version__, "cuda", torch.version.cuda,
        "available", torch.cuda.is_available())' || echo "gpu_check.sh: $PY cannot import torch" >&2
    PYTHONPATH="$REPO/src${PYTHONPATH:+:$PYTHONPATH}" "$PY" -c 'import cyclevae; print("  cyclevae", cyclevae.__version__, "from", cyclevae.__file__)' \
        || echo "gpu_check.sh: cyclevae is not importable from src/" >&2
    echo "gpu_check.sh: dry run, nothing else run"
    exit 0
fi

# ------------------------------------------------------------------ running
mkdir -p "$DEST" || exit 2
DEST="$(cd "$DEST" && pwd)"
plan
RESULTS="$DEST/gpu_check.jsonl"
LOG="$DEST/gpu_check.log"
: > "$RESULTS"
: > "$LOG"
export PYTHONPATH="$REPO/src${PYTHONPATH:+:$PYTHONPATH}"
export CYCLEVAE_SHARED_DATA="$(cd "$DATA" && pwd)"
export PYTHONUNBUFFERED=1
COMMIT="$(git -C "$REPO" rev-parse HEAD 2>/dev/null || echo "${GPU_CHECK_COMMIT:-unknown}")"
STARTED=$(date +%s)
failed=0

json_string() {  # a shell string as a JSON string
    "$PY" -c 'import json, sys; print(json.dumps(sys.argv[1]))' "$1"
}

# run_step NAME COMMAND...: under `timeout`, output into the log, JSON lines of stdout
# into the results with "step" added, then one line with the step's status
run_step() {
    local name="$1"; shift
    local limit="${LIMIT[$name]}" out rc begin seconds
    out="$(mktemp)"
    begin=$(date +%s.%N)
    echo "===== $name (limit ${limit} s): $*" >> "$LOG"
    timeout -k 10 "$limit" "$@" > "$out" 2>> "$LOG"
    rc=$?
    seconds=$(awk -v a="$begin" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')
    cat "$out" >> "$LOG"
    sed -n "s/^{/{\"step\": \"$name\", /p" "$out" >> "$RESULTS"
    rm -f "$out"
    local timed_out=false
    { [ "$rc" = 124 ] || [ "$rc" = 137 ]; } && timed_out=true
    echo "{\"step\": \"$name\", \"rc\": $rc, \"seconds\": $seconds, \"timed_out\": $timed_out, \"limit_s\": $limit}" >> "$RESULTS"
    echo "===== $name: rc $rc after $seconds s" >> "$LOG"
    printf 'gpu_check.sh: %-8s rc %-3s %7s s\n' "$name" "$rc" "$seconds"
    [ "$rc" = 0 ] || failed=1
}

# 1. the machine
run_step env "$PY" - <<'EOF'
import json, platform, subprocess
import torch
info = {"torch": torch.__version__, "cuda": torch.version.cuda,
        "cuda_available": torch.cuda.is_available(), "python": platform.python_version()}
if torch.cuda.is_available():
    p = torch.cuda.get_device_properties(0)
    info.update(gpu=p.name, gpu_memory_gib=round(p.total_memory / 2**30, 1),
                capability=f"{p.major}.{p.minor}", multiprocessors=p.multi_processor_count,
                bf16=torch.cuda.is_bf16_supported(),
                nccl=torch.distributed.is_nccl_available(),
                tf32_matmul=torch.backends.cuda.matmul.allow_tf32,
                tf32_cudnn=torch.backends.cudnn.allow_tf32)
try:
    info["nvidia_smi"] = subprocess.run(
        ["nvidia-smi", "--query-gpu=name,driver_version,memory.total,clocks.max.sm",
         "--format=csv,noheader"], capture_output=True, text=True, timeout=20).stdout.strip()
except (OSError, subprocess.SubprocessError) as exc:
    info["nvidia_smi"] = f"not run: {exc}"
print(json.dumps({"mode": "env", **info}))
EOF
echo "{\"step\": \"env\", \"mode\": \"commit\", \"commit\": $(json_string "$COMMIT"), \"rehearsal\": $([ "$REHEARSE" = 1 ] && echo true || echo false), \"data\": $(json_string "$CYCLEVAE_SHARED_DATA")}" >> "$RESULTS"

# 2. the CUDA tests
# shellcheck disable=SC2086
run_step tests ${CMD[tests]}

# 3. training speed, float32 and bf16
# shellcheck disable=SC2086
run_step train ${CMD[train]}

# 4. IW-NLL (and the ELBO pass)
# shellcheck disable=SC2086
run_step iw_nll ${CMD[iw_nll]}

# 5. NCCL in one torchrun process
if [ "$DEVICE" = cuda ]; then
    PORT=$("$PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    # shellcheck disable=SC2086
    run_step nccl ${CMD[nccl]//PORT/$PORT}
    if [ -f "$DEST/nccl.json" ]; then
        sed -n 's/^{/{"step": "nccl", "mode": "nccl_smoke", /p' "$DEST/nccl.json" >> "$RESULTS"
        rm -f "$DEST/nccl.json"
    fi
else
    echo '{"step": "nccl", "skipped": "rehearsal on the CPU: NCCL needs a GPU"}' >> "$RESULTS"
    echo "gpu_check.sh: nccl     skipped (rehearsal)"
fi

# ------------------------------------------------------------------ summary
"$PY" - "$RESULTS" "$DEST/cuda_tests.xml" "$(( $(date +%s) - STARTED ))" > "$DEST/summary.md" <<'EOF'
import json, sys
import xml.etree.ElementTree as ET
from pathlib import Path

PAPER_SECONDS_PER_EPOCH = 30.0  # Fu et al. 2019, PTB VAE on their (2019) GPU
records = [json.loads(x) for x in Path(sys.argv[1]).read_text().splitlines() if x.strip()]
steps = {r["step"]: r for r in records if "rc" in r}
env = next((r for r in records if r.get("mode") == "env"), {})
commit = next((r for r in records if r.get("mode") == "commit"), {})
out = [f"# GPU check ({'rehearsal on the CPU, nothing measured' if commit.get('rehearsal') else env.get('gpu', 'no GPU seen')})",
       "", f"commit {commit.get('commit')}; torch {env.get('torch')}, CUDA {env.get('cuda')}; "
       f"TF32 matmul {env.get('tf32_matmul')}, cuDNN {env.get('tf32_cudnn')}; "
       f"{sys.argv[3]} s in all", ""]
if not commit.get("rehearsal") and not env.get("cuda_available"):
    out += ["**No CUDA device was seen (torch.cuda.is_available() was False or the env step "
            "failed): nothing below ran on a GPU.**", ""]
out += ["| step | rc | seconds |", "|---|---:|---:|"]
out += [f"| {s} | {r['rc']}{' (timed out)' if r['timed_out'] else ''} | {r['seconds']} |"
        for s, r in steps.items()]
try:
    suite = ET.parse(sys.argv[2]).getroot()
    suite = suite if suite.tag == "testsuite" else suite.find("testsuite")
    counts = {k: int(suite.get(k, 0)) for k in ("tests", "failures", "errors", "skipped")}
    out += ["", "CUDA tests: {tests} collected, {failures} failed, {errors} errors, "
            "{skipped} skipped".format(**counts)]
    for case in suite.iter("testcase"):
        for kind in ("failure", "error", "skipped"):
            el = case.find(kind)
            if el is not None:
                out.append(f"- {kind}: {case.get('name')}: {(el.get('message') or '')[:200]}")
except (OSError, ET.ParseError, AttributeError) as exc:
    out += ["", f"CUDA tests: no report ({type(exc).__name__})"]
out += ["", "| mode | tokens/s | reference tokens/s | ratio | s per epoch | s per epoch / the paper's 30 s "
        "| floor fraction | GEMM GFLOP/s (fp32, bf16) |", "|---|---:|---:|---:|---:|---:|---:|---|"]
for r in records:
    mode = r.get("mode", "")
    if mode.startswith(("train_", "eval_")):
        if "skipped" in r:
            out.append(f"| {mode} | skipped: {r['skipped']} | | | | | | |")
            continue
        spe = r.get("seconds_per_epoch")
        vs = f"{spe / PAPER_SECONDS_PER_EPOCH:.2f}x" if spe else ""
        extra = (f" (test set: {r['test_set_minutes']} min, floor {r['floor_test_set_minutes']} min)"
                 if mode == "eval_iw_nll" else "")
        out.append(f"| {mode}{extra} | {r['tokens_per_s']} | {r['reference_tokens_per_s']} | "
                   f"{r['ratio']} | {spe or ''} | {vs} | {r['floor_fraction']} | "
                   f"{r['gemm_gflops_fp32']}, {r['gemm_gflops_bf16']} |")
nccl = next((r for r in records if r.get("mode") == "nccl_smoke"), None)
out += ["", f"NCCL: {json.dumps(nccl) if nccl else 'no result'}"]
out += ["", "s per epoch: 929,589 PTB training tokens at the measured training rate (training "
        "steps only, no evaluation); the paper reports about 30 s per epoch on a 2019 GPU."]
print("\n".join(out))
EOF
cat "$DEST/summary.md"
echo "gpu_check.sh: results in $DEST ($(ls "$DEST" | tr '\n' ' '))"
exit "$failed"
