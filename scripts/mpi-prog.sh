# Sourced by the scripts/bench-*.sh benchmarks (bash, set -euo pipefail):
# BUILD from $1 (default build), NP (2) and MPIRUN from the environment, and
# mpi_prog SRC OUT: builds an MPI program against $BUILD/libryz.a, warnings
# as errors, as the library is built.
BUILD=${1:-build}
NP=${NP:-2}
MPIRUN=${MPIRUN:-mpirun --allow-run-as-root --oversubscribe}

mpi_prog() {
  # shellcheck disable=SC2046
  mpicc -O2 -std=c11 -Wall -Wextra -Werror -Iinclude "$1" "$BUILD/libryz.a" \
    $(pkg-config --cflags --libs hdf5 openblas) -lm -pthread -o "$2"
}
