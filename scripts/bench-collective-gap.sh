#!/usr/bin/env bash
# Why the suite's last-arriver collective time exceeds `ryz comm`'s figure
# (docs/performance.md, "Collectives: in situ against ryz comm"): the 110m
# decode's all-reduce and all-gather with nothing, a barrier, arithmetic or
# memory streaming between the calls, each held to the isolated reference
# by ryz_suite_collectives (scripts/collective_gap.c). A benchmark, not a
# test: it reports. Pass MCA settings through the environment, e.g.
# OMPI_MCA_btl_vader_single_copy_mechanism=none; RYZ_TIMEOUT=0 runs without
# the collective watchdog.
# usage: bash scripts/bench-collective-gap.sh [BUILD_DIR]
# env: NP (2) ITERS (300) RUNS (3: separate launches)
set -euo pipefail
# shellcheck source=scripts/mpi-prog.sh
source "$(dirname "$0")/mpi-prog.sh"
ITERS=${ITERS:-300}
RUNS=${RUNS:-3}
PROG="$BUILD/collective_gap"
mpi_prog scripts/collective_gap.c "$PROG"

echo "last arriver (per call, the fastest rank) against the isolated reference, $NP ranks on"
echo "$(nproc) cores, $ITERS all-reduces of 3 KiB and every tenth an all-gather of 125 KiB"
for run in $(seq "$RUNS"); do
  echo "--- launch $run"
  $MPIRUN -np "$NP" "$PROG" "$ITERS"
done
