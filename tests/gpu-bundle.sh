#!/usr/bin/env bash
# Checks that scripts/gpu-bundle.sh's archive runs ryz on a machine without
# Open MPI, HDF5 or OpenBLAS, as the GPU machine is: it unpacks the archive,
# hides this machine's copies of those (a private mount namespace, when
# unshare is permitted; otherwise it says so and checks less), and runs
# scripts/gpu-check.sh's dry run (the cpu backend through the bundle's
# mpirun, libraries and binaries), then scripts/gpu-ab.sh's. .ci/run calls
# it after the CUDA build.
# usage: bash tests/gpu-bundle.sh
set -euo pipefail
cd "$(dirname "$0")/.."
work=$(mktemp -d /tmp/ryz-bundle-test-XXXXXX)
trap 'rm -rf "$work"' EXIT
BUNDLE_OUT="$work" bash scripts/gpu-bundle.sh | tail -n 1
tar -xJf "$work/ryz-gpu.tar.xz" -C "$work"
mkdir -p "$work/out" "$work/empty"
: > "$work/emptyfile"

# Hides the host's Open MPI, HDF5, OpenBLAS and their helpers, then runs "$@".
hide_and_run() {
  mount --make-rprivate /
  local d f
  for d in /usr/lib/x86_64-linux-gnu/openmpi /usr/lib/x86_64-linux-gnu/pmix2 /usr/share/openmpi \
           /etc/openmpi /usr/lib/x86_64-linux-gnu/openblas-pthread /usr/lib/x86_64-linux-gnu/hdf5; do
    [ -d "$d" ] && mount --bind "$work/empty" "$d"
  done
  for f in /usr/bin/orterun /usr/bin/orted $(readlink -f /usr/lib/x86_64-linux-gnu/lib{mpi,open-pal,open-rte,hdf5_serial,pmix,hwloc,event_core-2.1,curl,sz,aec,gfortran,subunit}.so.[0-9]* 2>/dev/null | sort -u); do
    [ -e "$f" ] && mount --bind "$work/emptyfile" "$f"
  done
  local host_ryz=${BUILD:-build-cuda}/ryz
  [ -x "$host_ryz" ] || { echo "tests/gpu-bundle.sh: no $host_ryz to check the hiding with"; return 1; }
  if "$host_ryz" --help >/dev/null 2>&1; then
    echo "tests/gpu-bundle.sh: the host's libraries are still visible"; return 1
  fi
  "$@"
}
export -f hide_and_run
export work BUILD
run=(env RYZ_GPU_CHECK_DRY=1 OUT="$work/out" RYZ_GPU_BUNDLE="$work/ryz-gpu" STEP_TIMEOUT=600
     bash scripts/gpu-check.sh)
# and scripts/gpu-ab.sh's dry run: the archive against its own ryz as a
# bare binary, and against itself with a switch set
ab=(env RYZ_GPU_CHECK_DRY=1 OUT="$work/out" ROUNDS=1 REPEAT=1 DTYPES=f32
    bash scripts/gpu-ab.sh "$work/ryz-gpu.tar.xz" "$work/ryz-gpu/bin/ryz"
    "RYZ_CUDA_PDL=0@$work/ryz-gpu.tar.xz")
if [ "$(id -u)" = 0 ] && unshare -m true 2>/dev/null; then
  echo "tests/gpu-bundle.sh: host Open MPI, HDF5 and OpenBLAS hidden"
  unshare -m bash -c 'hide_and_run "$@"' hide "${run[@]}" > "$work/log" 2>&1 || { cat "$work/log"; exit 1; }
  unshare -m bash -c 'hide_and_run "$@"' hide "${ab[@]}" > "$work/ab" 2>&1 || { cat "$work/ab"; exit 1; }
else
  echo "tests/gpu-bundle.sh: note: cannot hide the host's libraries (needs root and unshare -m); the bundle is checked with them present"
  "${run[@]}" > "$work/log" 2>&1 || { cat "$work/log"; exit 1; }
  "${ab[@]}" > "$work/ab" 2>&1 || { cat "$work/ab"; exit 1; }
fi
grep -q '^f32-t1 .* B/A [0-9.]* .* C/A [0-9.]*$' "$work/ab" &&
  grep -q '^C: .* with RYZ_CUDA_PDL=0$' "$work/ab" ||
  { echo "tests/gpu-bundle.sh: gpu-ab.sh printed no B/A and C/A:"; cat "$work/ab"; exit 1; }
grep -A3 '=== gpu-check: summary' "$work/log"
for f in gpu-check.log gpu-smoke.h5 gpu-bench-1b.h5 gpu-ab.txt; do
  [ -s "$work/out/$f" ] || { echo "tests/gpu-bundle.sh: $f not copied to OUT"; exit 1; }
done
echo "tests/gpu-bundle.sh: PASS"
