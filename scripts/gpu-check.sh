#!/usr/bin/env bash
# Everything in this repository that needs a GPU, in one command
# (docs/gpu.md, "Running the GPU checks"), each step bounded in time and
# run even when an earlier one failed, with a summary at the end:
#   info     the build's backends and the visible devices;
#   test     test_cuda on one rank (and on every GPU when there are several):
#            each op against the cpu backend, nccl, the model, the runner;
#   ids      `ryz generate --backend cuda` gives the cpu's greedy ids (15m);
#   smoke    suites/gpu-smoke.ini over mpi (ranks may share a GPU): cuda at
#            TP 1 and 2 against the cpu's f32 TP=1 on 15m and 110m, bf16
#            and tf32 with their own tolerances;
#   nccl     the same suite with comm = nccl (on one GPU: the 2-rank suite
#            must be refused, then TP 1 runs);
#   bench    `ryz bench --backend cuda` on synthetic:1b, f32 and bf16:
#            decode against the HBM roofline of a copy kernel, prefill
#            against cuBLAS on its shapes; then tf32 against fp32 on 110m.
#   sanitize (only when STEPS names it: about 130 s on an H100)
#            compute-sanitizer: memcheck over test_cuda, then memcheck,
#            racecheck, synccheck and initcheck over a 110m generate
#            (prefill and recorded decode steps) in f32, memcheck and
#            racecheck in bf16; SKIP without a compute-sanitizer
# The log and results files go to OUT when it is set (the device tool's
# folder, so that they come back even if the run is cut short), else to
# results/.
#
# usage: bash scripts/gpu-check.sh
# env:   RYZ_GPU_BUNDLE  an unpacked scripts/gpu-bundle.sh archive: use its
#                        binaries and libraries, build nothing (the GPU
#                        machine has no MPI or HDF5 to build with)
#        BUILD (build-cuda), OUT, STEP_TIMEOUT (seconds, 150)
#        COMPUTE_SANITIZER  its binary (else PATH, else the toolkit's
#                       $CUDA_HOME/compute-sanitizer; scripts/get-sanitizer.sh
#                       packs one from NVIDIA's wheels for the GPU machine)
#        STEPS          the steps to run (default: "test ids smoke nccl bench"),
#                       e.g. STEPS="nccl bench" to finish a run cut short
#        DEADLINE       seconds for the whole run (0: none); a step that would
#                       pass it gets the time left, and steps after it are
#                       skipped, so the summary is always written
#        RYZ_GPU_CHECK_DRY=1  run the plumbing on the cpu backend without a
#                        GPU (every backend = cuda becomes cpu; test, nccl
#                        and the copy probe are skipped): a check of this
#                        script, not of the GPU
set -uo pipefail
# A relative path in COMPUTE_SANITIZER is the caller's, not the repository root's.
cs=${COMPUTE_SANITIZER:-}
[[ "$cs" != */* || "$cs" == /* ]] || COMPUTE_SANITIZER=$PWD/$cs
cd "$(dirname "$0")/.."
DRY=${RYZ_GPU_CHECK_DRY:-0}
STEP_TIMEOUT=${STEP_TIMEOUT:-150}
DEADLINE=${DEADLINE:-0}
START=$SECONDS
export RYZ_TIMEOUT=${RYZ_TIMEOUT:-120} # a hung collective fails its step, not the session
say() { printf '\n=== gpu-check: %s\n' "$*"; }

if [ -n "${RYZ_GPU_BUNDLE:-}" ]; then
  # shellcheck source=/dev/null
  . "$RYZ_GPU_BUNDLE/env.sh" || exit 2
  RYZ="$RYZ_GPU_BUNDLE/bin/ryz" TEST_CUDA="$RYZ_GPU_BUNDLE/tests/test_cuda"
  say "bundle $RYZ_GPU_BUNDLE (ryz built at $(cat "$RYZ_GPU_BUNDLE/gitrev"))"
  [ "$(cat "$RYZ_GPU_BUNDLE/srchash")" = "$(bash scripts/tree-hash.sh)" ] ||
    echo "gpu-check: warning: the archive was not built from these sources: make gpu-bundle again"
else
  B=${BUILD:-build-cuda}
  say "build ($B)"
  make CUDA=1 BUILD="$B" "$B/ryz" "$B/tests/test_cuda" >/dev/null || exit 2
  RYZ="$B/ryz" TEST_CUDA="$B/tests/test_cuda"
fi
RES=${OUT:-results}
mkdir -p "$RES"
LOG=$RES/gpu-check.log
: > "$LOG"
STEPS=" ${STEPS:-test ids smoke nccl bench} "
want() { [[ "$STEPS" == *" $1 "* ]]; }
failed=() passed=() skipped=()

# step NAME CMD...: runs CMD under STEP_TIMEOUT (twice that for bench,
# which builds 1b four times on the host, and sanitize), output to the terminal and the
# log, and records whether it passed.
step() {
  local name=$1 limit=$STEP_TIMEOUT left; shift
  [ "$name" = bench ] || [ "$name" = sanitize ] && limit=$((2 * STEP_TIMEOUT))
  if [ "$DEADLINE" -gt 0 ]; then
    left=$((DEADLINE - (SECONDS - START)))
    if [ "$left" -lt 20 ]; then skip "$name" "DEADLINE ($DEADLINE s) reached"; return; fi
    [ "$left" -lt "$limit" ] && limit=$left
  fi
  say "$name: $*" | tee -a "$LOG"
  timeout "$limit" bash -c '"$@"' step "$@" 2>&1 | tee -a "$LOG"
  local st=${PIPESTATUS[0]}
  if [ "$st" -eq 0 ]; then passed+=("$name"); else failed+=("$name (exit $st)"); fi
}
skip() { say "$1: SKIP: $2" | tee -a "$LOG"; skipped+=("$1"); }

# A ryz that does not start (a library missing) fails here, loudly: it
# must not look like a machine without a GPU.
info=$("$RYZ" info 2>&1) || { echo "gpu-check: FAIL: $RYZ does not run: $info" | tee -a "$LOG"; exit 2; }
echo "$info" | tee -a "$LOG"
smi=0
if command -v nvidia-smi >/dev/null; then
  nvidia-smi -L 2>&1 | tee -a "$LOG"
  smi=$(nvidia-smi -L 2>/dev/null | grep -c '^GPU' || true)
fi
gpus=$(grep -c '^ *device [0-9]*:' <<<"$info" || true)
if [ "$gpus" -eq 0 ] && [ "$DRY" != 1 ]; then
  why="no CUDA device ($(grep -o 'no device:.*' <<<"$info" || echo 'none listed'))"
  if [ "$smi" -gt 0 ]; then
    echo "gpu-check: FAIL: nvidia-smi lists $smi GPU(s) but ryz finds $why" | tee -a "$LOG"; exit 1
  fi
  echo "gpu-check: SKIP: $why" | tee -a "$LOG"
  exit 0
fi
# One rank that starts MPI by itself (a singleton, as test_cuda and the
# one-GPU nccl suite do) needs Open MPI's orted: say so here, not as a
# failed test.
if ! single=$("$RYZ" generate --model synthetic:tiny --prompt-ids "1 2" --new-tokens 1 \
    --comm shm 2>&1); then
  echo "gpu-check: FAIL: one rank starting MPI alone (singleton) failed:" | tee -a "$LOG"
  tail -n 5 <<<"$single" | tee -a "$LOG"
  exit 2
fi
BACKEND=cuda
[ "$DRY" = 1 ] && BACKEND=cpu
export RYZ BACKEND gpus # for the step functions, which run in a bounded child bash

if ! want test; then :; elif [ "$DRY" = 1 ]; then skip test "dry run"; else
  CK_FORK=no step test "$TEST_CUDA"
  if [ "$gpus" -ge 2 ]; then
    CK_FORK=no step test-np"$gpus" mpirun --allow-run-as-root --oversubscribe -np "$gpus" "$TEST_CUDA"
  fi
fi

# ids: the device's greedy ids are the cpu's.
same_ids() {
  local gen=(generate --model synthetic:15m --prompt-ids "1 2 3" --new-tokens 16) cpu dev
  cpu=$("$RYZ" "${gen[@]}" | grep '^ids:') || return 1
  dev=$("$RYZ" "${gen[@]}" --backend "$BACKEND" | grep '^ids:') || return 1
  echo "cpu  $cpu"; echo "$BACKEND $dev"
  [ "$cpu" = "$dev" ]
}
export -f same_ids
want ids && step ids same_ids

suite=$(mktemp /tmp/gpu-smoke-XXXXXX.ini)
nccl_ini=$(mktemp /tmp/gpu-smoke-nccl-XXXXXX.ini)
trap 'rm -f "$suite" "$nccl_ini"' EXIT
export nccl_ini RES
if [ "$DRY" = 1 ]; then
  sed -e 's/^backend = cuda$/backend = cpu/' -e '/^tf32 = 1$/d' suites/gpu-smoke.ini > "$suite"
else
  cp suites/gpu-smoke.ini "$suite"
fi
want smoke && step smoke "$RYZ" suite "$suite" -o "$RES/gpu-smoke.h5"

# nccl: one GPU per rank, every cuda case of the smoke suite.
nccl_suite() {
  sed -e 's/^name = gpu-smoke$/name = gpu-smoke-nccl/' -e 's/^backend = cuda$/&\ncomm = nccl/' \
    suites/gpu-smoke.ini > "$nccl_ini"
  if [ "$gpus" -lt 2 ]; then
    local st=0 err
    err=$("$RYZ" suite "$nccl_ini" 2>&1 >/dev/null) || st=$?
    echo "$err"
    if [ "$st" != 2 ] || ! grep -q "one GPU per rank" <<<"$err"; then
      echo "gpu-check: expected exit 2 'one GPU per rank' from 2 nccl ranks on 1 GPU, got $st"
      return 1
    fi
    sed -i 's/^tp = 1 2$/tp = 1/' "$nccl_ini"
  fi
  "$RYZ" suite "$nccl_ini" -o "$RES/gpu-smoke-nccl.h5"
}
export -f nccl_suite
if ! want nccl; then :; elif [ "$DRY" = 1 ]; then skip nccl "dry run"; else step nccl nccl_suite; fi

if ! want bench; then :; elif [ "$DRY" = 1 ]; then
  step bench "$RYZ" bench --model synthetic:15m --dtype f32,bf16 --repeat 2 --probe-mib 64 \
    -o "$RES/gpu-bench-1b.h5"
else
  step bench "$RYZ" bench --backend cuda --model synthetic:1b --dtype f32,bf16 --repeat 5 \
    -o "$RES/gpu-bench-1b.h5"
  step bench-tf32 "$RYZ" bench --backend cuda --tf32 --model synthetic:110m --dtype f32 \
    --repeat 3 -o "$RES/gpu-bench-tf32.h5"
fi

# sanitize: no memory, race, barrier or initialisation error in the
# kernels, the first tool that finds one ends the step with its status.
# API errors are not reported: NCCL probes for kernel images it lacks,
# and test_copy_bandwidth asks for too much memory on purpose. The ranks
# of `ryz generate` are child processes, hence --target-processes all.
sanitize() {
  local cs=("$SANITIZER" --error-exitcode 9 --target-processes all --report-api-errors no)
  local prompt="1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20" run tool dt
  echo "--- memcheck, test_cuda"
  CK_FORK=no "${cs[@]}" --tool memcheck "$TEST_CUDA" || return
  for run in memcheck:f32 racecheck:f32 synccheck:f32 initcheck:f32 memcheck:bf16 \
    racecheck:bf16; do
    tool=${run%:*} dt=${run#*:}
    echo "--- $tool, generate 110m $dt"
    "${cs[@]}" --tool "$tool" "$RYZ" generate --backend cuda --model synthetic:110m \
      --dtype "$dt" --prompt-ids "$prompt" --new-tokens 6 || return
  done
}
export -f sanitize
SANITIZER=${COMPUTE_SANITIZER:-$(command -v compute-sanitizer || true)}
[ -n "$SANITIZER" ] || SANITIZER=${CUDA_HOME:-/usr/local/cuda}/compute-sanitizer/compute-sanitizer
export SANITIZER TEST_CUDA
if ! want sanitize; then :; elif [ "$DRY" = 1 ]; then skip sanitize "dry run"
elif [ ! -x "$SANITIZER" ]; then
  skip sanitize "no compute-sanitizer (COMPUTE_SANITIZER, PATH, $SANITIZER); docs/gpu.md"
else step sanitize sanitize; fi

say "summary" | tee -a "$LOG"
{
  echo "passed:  ${passed[*]:-none}"
  echo "skipped: ${skipped[*]:-none}"
  echo "failed:  ${failed[*]:-none}"
} | tee -a "$LOG"
echo "gpu-check: log and results in $RES: $(ls "$RES" | grep '^gpu-' | tr '\n' ' ')"
[ ${#failed[@]} -eq 0 ]
