#!/usr/bin/env bash
# Runs every Check test program under BUILD/tests (default build/).
# test_mpi_* programs run under mpirun with 1, 2 and 4 ranks (CK_FORK=no:
# forking under MPI is not allowed); the others run as plain processes.
# Then tests/fault.sh (killed, hung, desynchronised and interrupted runs)
# and scripts/sass-check.sh's self-test.
# Every collective is checked for agreement across ranks while tests run.
# Exits non-zero if any program fails; prints a summary.
set -u
BUILD=${1:-build}
MPIRUN=${MPIRUN:-mpirun --allow-run-as-root --oversubscribe}
export RYZ_BIN="$BUILD/ryz"
export RYZ_CHECK_COLLECTIVES=1
fails=()
t0=$(date +%s)

run() { # name, command...
  local name=$1; shift
  echo "=== $name"
  if ! timeout 300 "$@"; then fails+=("$name"); echo "!!! $name FAILED"; fi
}

for t in "$BUILD"/tests/test_*; do
  [ -x "$t" ] || continue
  name=$(basename "$t")
  case "$name" in
    test_mpi_*)
      for np in 1 2 4; do
        run "$name np=$np" env CK_FORK=no $MPIRUN -np "$np" "$t"
      done ;;
    *) run "$name" "$t" ;;
  esac
done
run "fault.sh" bash tests/fault.sh "$BUILD"
# The SASS check's awk on synthetic listings (no CUDA, under a second).
run "sass-check.sh --self-test" bash scripts/sass-check.sh --self-test

echo
echo "tests: $(( $(date +%s) - t0 )) s"
if [ ${#fails[@]} -gt 0 ]; then
  echo "FAILED: ${fails[*]}"
  exit 1
fi
echo "all test programs passed"
