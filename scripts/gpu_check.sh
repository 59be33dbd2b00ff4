#!/usr/bin/env bash
# The project's GPU check, for a lent GPU machine: one call, under 8 minutes.
#
#   OUT=/some/dir bash scripts/gpu_check.sh
#
# Runs from a fresh copy of the repository on a machine that has CuPy, PyTorch
# with CUDA, NCCL, mpi4py and pytest installed but reaches no package registry
# (nothing is installed here). Writes to $OUT (default ./gpu_check_out):
#   versions.txt   nvidia-smi, driver, CUDA, CuPy, NCCL, PyTorch
#   tests.txt      the whole test suite on the GPU machine (GPU tests included)
#   bench.md       the VGG-D benchmark table and profile (benchmarks/bench_gpu.py)
#   summary.txt    one line per stage with its exit status and duration
# Each stage has its own time limit, so a hang in one still leaves the others'
# results; the script's exit status is non-zero if any stage failed.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-gpu_check_out}
mkdir -p "$OUT"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
export MINIVGG_CACHE_DIR="$OUT/.cache"
status=0

stage() {  # stage NAME LIMIT_SECONDS OUTFILE COMMAND...
    local name=$1 limit=$2 file=$3
    shift 3
    local t0=$SECONDS
    timeout --signal=TERM --kill-after=10 "$limit" "$@" >"$OUT/$file" 2>&1
    local rc=$?
    echo "$name: exit $rc after $((SECONDS - t0)) s (limit $limit s) -> $file" | tee -a "$OUT/summary.txt"
    [ $rc -eq 0 ] || status=1
}

: >"$OUT/summary.txt"
stage versions 60 versions.txt bash -c '
    nvidia-smi || true
    python - <<PY
import sys
sys.path.insert(0, "benchmarks")
from bench_gpu import versions
from minivgg.backend import device
for line in versions(device("cuda")):
    print(line)
PY'
stage tests 240 tests.txt python -m pytest -q -rs -p no:cacheprovider
stage bench 200 bench.md.log python benchmarks/bench_gpu.py --batches 32,64 --steps 5 \
    --out "$OUT/bench.md"
cat "$OUT/summary.txt"
exit $status
