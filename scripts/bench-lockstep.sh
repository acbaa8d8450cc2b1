#!/usr/bin/env bash
# The host's lock-step floor (docs/performance.md, "the host's lock-step
# floor"): two threads, one per core, doing identical work in steps that
# start together, as two TP ranks do between collectives, and the share of
# the time they kept busy. Reads of 1-16 MiB per step (a 110m decode
# segment at TP=2 reads 4-9 MB), then an integer chain of ~0.1-1.6 ms per
# step that touches no memory. A benchmark, not a test: it reports.
# usage: bash scripts/bench-lockstep.sh [BUILD_DIR]   (after `make`: it
# links BUILD_DIR/libryz.a)
set -euo pipefail
BUILD=${1:-build}
if [ ! -f "$BUILD/libryz.a" ]; then
  echo "bench-lockstep: no $BUILD/libryz.a; run make first" >&2
  exit 2
fi
PROG="$BUILD/lockstep_floor"
gcc -O2 -std=c11 -Wall -Wextra -Werror -Iinclude scripts/lockstep_floor.c "$BUILD/libryz.a" \
  -lm -pthread -o "$PROG"
echo "2 threads on $(nproc) cores, 1800 steps each (after 200 of warm-up)"
for kib in 1024 4096 16384; do "$PROG" mem "$kib"; done
for iters in 75000 300000 1200000; do "$PROG" alu "$iters"; done
