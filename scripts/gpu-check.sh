#!/usr/bin/env bash
# Everything in this repository that needs a GPU, in one command
# (docs/gpu.md, "Running the GPU tests"):
#   1. the CUDA build and `ryz info` (the devices should be listed);
#   2. test_cuda on one rank, then under mpirun on every GPU (one per rank):
#      each op against the cpu backend, nccl, the model, the suite runner;
#   3. `ryz generate --backend cuda` against the cpu's ids;
#   4. suites/gpu-smoke.ini (cuda over mpi, ranks may share a GPU), then the
#      same suite with comm = nccl on as many ranks as there are GPUs (TP 1
#      only on one GPU, where the 2-rank nccl suite must be refused).
# Without a CUDA device it says SKIP and exits 0, like test_cuda.
# usage: bash scripts/gpu-check.sh        env: BUILD (build-cuda), MPIRUN
set -euo pipefail
cd "$(dirname "$0")/.."
B=${BUILD:-build-cuda}
MPIRUN=${MPIRUN:-mpirun --allow-run-as-root --oversubscribe}
say() { printf '\n=== gpu-check: %s\n' "$*"; }

say "build ($B)"
make CUDA=1 BUILD="$B" "$B/ryz" "$B/tests/test_cuda"
"$B/ryz" info
gpus=$("$B/ryz" info | grep -c '^ *device [0-9]*:' || true)
if [ "$gpus" -eq 0 ]; then
  echo "gpu-check: SKIP: no CUDA device ($("$B/ryz" info | grep -o 'no device:.*' || echo 'none listed'))"
  exit 0
fi

say "test_cuda, 1 rank"
CK_FORK=no "$B/tests/test_cuda"
if [ "$gpus" -ge 2 ]; then
  say "test_cuda, $gpus ranks (one GPU each)"
  CK_FORK=no $MPIRUN -np "$gpus" "$B/tests/test_cuda"
fi

say "generate: cuda against cpu"
gen="generate --model synthetic:15m --prompt-ids \"1 2 3\" --new-tokens 16"
cpu=$(eval "$B/ryz $gen" | grep '^ids:')
dev=$(eval "$B/ryz $gen --backend cuda" | grep '^ids:')
[ "$cpu" = "$dev" ] || { echo "gpu-check: cuda ids differ: cpu '$cpu', cuda '$dev'"; exit 1; }
echo "same ids: $dev"

mkdir -p results
say "suites/gpu-smoke.ini (comm = mpi)"
"$B/ryz" suite suites/gpu-smoke.ini -o results/gpu-smoke.h5

nccl_ini=$(mktemp /tmp/gpu-smoke-nccl-XXXXXX.ini)
trap 'rm -f "$nccl_ini"' EXIT
sed -e 's/^name = gpu-smoke$/name = gpu-smoke-nccl/' -e 's/^backend = cuda$/&\ncomm = nccl/' \
  suites/gpu-smoke.ini > "$nccl_ini"
if [ "$gpus" -lt 2 ]; then
  say "nccl on 2 ranks and 1 GPU: must be refused"
  st=0; err=$("$B/ryz" suite "$nccl_ini" 2>&1 >/dev/null) || st=$?
  echo "$err"
  if [ "$st" != 2 ] || ! grep -q "one GPU per rank" <<<"$err"; then
    echo "gpu-check: expected exit 2 'one GPU per rank', got $st"; exit 1
  fi
  sed -i 's/^tp = 1 2$/tp = 1/' "$nccl_ini"
fi
say "gpu-smoke with comm = nccl"
"$B/ryz" suite "$nccl_ini" -o results/gpu-smoke-nccl.h5
say "PASS"
