#!/usr/bin/env bash
# Open MPI's latency against the idle time before a call (docs/comm.md,
# "Idle gaps"): bare MPI_Sendrecv and in-place MPI_Allreduce of 48 KiB on 2
# ranks after 0 to 10 ms of idling (scripts/mpi_idle_gap.c), then the same
# sizes through `ryz comm --backend shm --gap`, which does not show it. A
# benchmark, not a test: it reports. Pass MCA settings through the
# environment, e.g. OMPI_MCA_btl_vader_single_copy_mechanism=none.
# usage: bash scripts/bench-mpi-idle.sh [BUILD_DIR]
# env: ITERS (300)
set -euo pipefail
# shellcheck source=scripts/mpi-prog.sh
source "$(dirname "$0")/mpi-prog.sh"
ITERS=${ITERS:-300}
PROG="$BUILD/mpi_idle_gap"
mpi_prog scripts/mpi_idle_gap.c "$PROG"
echo "Open MPI, 2 ranks on $(nproc) cores, 48 KiB, $ITERS calls per line"
$MPIRUN -np 2 "$PROG" "$ITERS"
echo
echo "ryz shm collectives, the same size: out-of-place p50 (us) per --gap"
for gap in 1 3000 10000; do
  p50=$("$BUILD/ryz" comm --np 2 --backend shm -b 48K -e 48K -n "$ITERS" -w 20 --gap "$gap" |
    awk '/^ +[0-9]/ {print $(NF-1)}')
  printf '  --gap %5s us: %s\n' "$gap" "$p50"
done
