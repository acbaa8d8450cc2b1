#!/usr/bin/env bash
# Overhead of ryz's comm layer (vtable + profiling wrapper + the `ryz comm`
# harness) against a bare MPI_Allreduce loop timed the same way, in one MPI
# job so both see the same machine: scripts/comm_overhead.c alternates the
# two REPS times per size and compares medians. Target: ryz / bare p50
# latency <= 1.10 (the mean ratio is printed too; it carries every
# preemption of a busy machine, so it is not the verdict).
# Then one end-to-end `ryz comm` run for reference. A benchmark, not a test:
# it reports, and fails on a ratio over target only with BENCH_STRICT=1.
# usage: bash scripts/bench-comm.sh [BUILD_DIR]   (make bench calls it)
# env: NP (2) REPS (9) ITERS (2000) WARMUP (200) SIZES ("8 4096 262144")
set -euo pipefail
# shellcheck source=scripts/mpi-prog.sh
source "$(dirname "$0")/mpi-prog.sh"
REPS=${REPS:-9}
ITERS=${ITERS:-2000}
WARMUP=${WARMUP:-200}
SIZES=${SIZES:-"8 4096 262144"}
PROG="$BUILD/comm_overhead"
mpi_prog scripts/comm_overhead.c "$PROG"

echo "comm wrapper overhead: ryz comm all_reduce (out of place) vs bare MPI_Allreduce,"
echo "$NP ranks on $(nproc) cores, $ITERS calls after $WARMUP warm-up, medians of $REPS"
echo "interleaved repetitions in one job"
printf '%10s  %12s %12s  %12s %12s  %9s %10s  %s\n' "bytes" "bare p50 us" "ryz p50 us" \
  "bare mean us" "ryz mean us" "p50 ratio" "mean ratio" "p50 <= 1.10"
# shellcheck disable=SC2086
out=$($MPIRUN -np "$NP" "$PROG" "$ITERS" "$WARMUP" "$REPS" $SIZES)
echo "$out"
echo
echo "end to end, for reference: $BUILD/ryz comm --np $NP --op allreduce -b 8 -e 256K -f 8 -n 200 -w 20"
"$BUILD/ryz" comm --np "$NP" --op allreduce -b 8 -e 256K -f 8 -n 200 -w 20
if [[ $out == *OVER* ]]; then
  echo "a p50 ratio is above 1.10 (a busy machine? rerun with more REPS)"
  [[ ${BENCH_STRICT:-0} == 1 ]] && exit 1
fi
exit 0
