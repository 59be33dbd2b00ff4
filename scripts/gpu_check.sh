#!/usr/bin/env bash
# The project's GPU check, for a lent GPU machine: no package registry, and
# at most 10 minutes per command.
#
#   bash scripts/gpu_wheels.sh                            # here, first: wheels/
#   OUT=/some/dir bash scripts/gpu_check.sh [STAGE ...]   # there, carrying wheels/
#
# Stages, run in this order (default: all, within GPU_CHECK_BUDGET seconds,
# default 540, so that one call fits a 10-minute command):
#   preflight  what the machine has; installs what it lacks from wheels/,
#              offline, into .gpu_site/; checks that pytest collects every
#              test file (scripts/gpu_preflight.py)         -> preflight.txt
#   versions   nvidia-smi, driver, CUDA, CuPy, NCCL, PyTorch -> versions.txt
#   gpu-tests  the tests of the cuda device, from tests/cuda and
#              tests/distributed (--gpu-only): nothing else can hide them
#                                                            -> gpu_tests.txt
#   sanitizer  the kernel tests on the emulator under ASan and UBSan, with
#              the GPUs hidden from that process (CUDA and ASan clash)
#                                                            -> sanitizer.txt
#   bench      benchmarks/bench_gpu.py: the VGG-D step, minivgg against
#              PyTorch + cuDNN                               -> bench.md, bench.log
#   suite      the rest of the test suite (--no-gpu)         -> suite.txt
# The preflight's install runs before any stage, named or not (a machine may
# be fresh at each call). Each stage has its own time limit, and at most the
# budget left; its output is written as it goes, so a stage cut short keeps
# what it did. summary.txt gets a line when a stage starts and when it ends,
# and names the stages the budget left out: run those in a later call, e.g.
#   OUT=... bash scripts/gpu_check.sh bench suite
# The exit status is non-zero if any stage failed or was left out.
set -uo pipefail
cd "$(dirname "$0")/.."
# The suite stage runs tests/cuda/test_gpu_scripts.py, whose tests run this
# script: started inside itself it would start itself again, level after
# level, each left running when its parent's time limit ends.
if [ -n "${MINIVGG_IN_GPU_CHECK:-}" ]; then
    echo "gpu_check.sh is running already (MINIVGG_IN_GPU_CHECK is set): it does not start" \
         "inside itself" >&2
    exit 2
fi
export MINIVGG_IN_GPU_CHECK=1
OUT=${OUT:-gpu_check_out}
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
WHEELS=${GPU_CHECK_WHEELS:-$PWD/wheels}
SITE=${GPU_CHECK_SITE:-$PWD/.gpu_site}
BUDGET=${GPU_CHECK_BUDGET:-540}
export PYTHONPATH="$SITE:$PWD${PYTHONPATH:+:$PYTHONPATH}"
export MINIVGG_CACHE_DIR=${MINIVGG_CACHE_DIR:-/tmp/minivgg_gpu_check_cache}
export PYTHONUNBUFFERED=1
unset MINIVGG_CI  # skips are expected here (no matplotlib, say): the output lists them
ALL="preflight versions gpu-tests sanitizer bench suite"
STAGES=${*:-$ALL}
for s in $STAGES; do
    case " $ALL " in *" $s "*) ;; *) echo "unknown stage '$s'; stages: $ALL" >&2; exit 2 ;; esac
done
deadline=$((SECONDS + BUDGET))
status=0
: >"$OUT/summary.txt"

note() { echo "$*" | tee -a "$OUT/summary.txt"; }

stage() {  # stage NAME LIMIT_SECONDS OUTFILE COMMAND...
    local name=$1 limit=$2 file=$3
    shift 3
    case " $STAGES " in *" $name "*) ;; *) return ;; esac
    local left=$((deadline - SECONDS - 10))
    if [ "$left" -lt 30 ]; then
        note "$name: left out, $((deadline - SECONDS)) s of the $BUDGET s budget remain; run it in another call: bash scripts/gpu_check.sh $name"
        status=1
        return
    fi
    [ "$limit" -gt "$left" ] && limit=$left
    note "$name: started, limit $limit s -> $file"
    local t0=$SECONDS
    # SIGINT first: pytest then stops as on Ctrl-C and still prints what passed.
    timeout --signal=INT --kill-after=15 "$limit" "$@" >"$OUT/$file" 2>&1
    local rc=$?
    local why=""
    [ $rc -eq 124 ] || [ $rc -eq 137 ] && why=" (cut short by its limit; what it did is in $file)"
    note "$name: exit $rc after $((SECONDS - t0)) s$why"
    [ $rc -eq 0 ] || status=1
}

# What the machine lacks, from the wheel folder (quick when already there).
require_gpu=${GPU_CHECK_REQUIRE_GPU:-1}
flags=""
[ "$require_gpu" = 1 ] && flags="--require-gpu"
case " $STAGES " in
    *" preflight "*) stage preflight 150 preflight.txt python scripts/gpu_preflight.py \
                         --wheels "$WHEELS" --target "$SITE" --collect $flags ;;
    *) python scripts/gpu_preflight.py --wheels "$WHEELS" --target "$SITE" --quick \
           >"$OUT/preflight.txt" 2>&1 || note "preflight: the machine lacks something, see preflight.txt" ;;
esac

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
stage gpu-tests 330 gpu_tests.txt python -m pytest -v -rfEs -p no:cacheprovider --gpu-only \
    tests/cuda tests/distributed
stage sanitizer 240 sanitizer.txt python -m pytest -v -rfEs -p no:cacheprovider \
    tests/cuda/test_emu_sanitized.py
stage bench 200 bench.log python benchmarks/bench_gpu.py --batches 32,64 --steps 5 \
    --out "$OUT/bench.md"
stage suite 480 suite.txt python -m pytest -v -rfEs -p no:cacheprovider --no-gpu tests \
    --ignore=tests/cuda/test_emu_sanitized.py --ignore=tests/cuda/test_standin_suite.py
cat "$OUT/summary.txt"
exit $status
