#!/usr/bin/env bash
# Packs what a bare GPU machine lacks to run ryz into one archive
# (docs/gpu.md, "On a machine without MPI or HDF5"): the CUDA build's ryz
# and test_cuda, Open MPI's launcher with its plugins and help files, and
# every shared library they load except glibc's, libstdc++/libgcc_s (the
# target's newer ones serve) and CUDA's own (cuBLAS, cudart and NCCL are
# hundreds of MB; the target's toolkit or its Python wheels provide them:
# env.sh finds them). The device tool carries at most 64 MiB, so the
# archive is xz-compressed.
#
# usage: bash scripts/gpu-bundle.sh            -> .gpu/ryz-gpu.tar.xz
#   on the GPU machine:  tar xJf .gpu/ryz-gpu.tar.xz -C /tmp &&
#                        RYZ_GPU_BUNDLE=/tmp/ryz-gpu bash scripts/gpu-check.sh
# env: BUILD (build-cuda), BUNDLE_OUT (.gpu)
set -euo pipefail
cd "$(dirname "$0")/.."
B=${BUILD:-build-cuda}
OUTDIR=${BUNDLE_OUT:-.gpu}
MULTI=/usr/lib/x86_64-linux-gnu
[ -x /usr/local/cuda/bin/nvcc ] || { echo "gpu-bundle: no /usr/local/cuda/bin/nvcc: CUDA=1 needs the toolkit" >&2; exit 2; }
[ -x /usr/bin/orterun ] || { echo "gpu-bundle: no /usr/bin/orterun: install openmpi-bin (scripts/install-deps.sh)" >&2; exit 2; }

make CUDA=1 BUILD="$B" "$B/ryz" "$B/tests/test_cuda"
work=$(mktemp -d /tmp/ryz-gpu-bundle-XXXXXX)
trap 'rm -rf "$work"' EXIT
S=$work/ryz-gpu
mkdir -p "$S/bin" "$S/tests" "$S/lib" "$S/usr/lib/x86_64-linux-gnu" "$S/usr/share"
cp "$B/ryz" "$S/bin/"
cp "$B/tests/test_cuda" "$S/tests/"
cp /usr/bin/orterun /usr/bin/orted "$S/bin/"
ln -s orterun "$S/bin/mpirun"
# Open MPI's tree under the relocated prefix (OPAL_PREFIX=$S/usr); headers
# and static archives are not needed to run.
cp -a "$MULTI/openmpi" "$MULTI/pmix2" "$S/usr/lib/x86_64-linux-gnu/"
rm -rf "$S/usr/lib/x86_64-linux-gnu/openmpi/include" "$S/usr/lib/x86_64-linux-gnu/pmix2/include"
find "$S/usr" -name '*.a' -delete
cp -a /usr/share/openmpi "$S/usr/share/"

# Every library the binaries and plugins load, found by ldd (which
# follows dependencies), minus the ones the target has in a newer form.
skip='^(linux-vdso|ld-linux|libc|libm|libpthread|libdl|librt|libresolv|libutil|libstdc\+\+|libgcc_s|libcuda|libcudart|libcublas|libcublasLt|libnccl|libnvidia-.*)\.so'
objs=("$S/bin/ryz" "$S/tests/test_cuda" "$S/bin/orterun" "$S/bin/orted")
while IFS= read -r -d '' so; do objs+=("$so"); done < <(find "$S/usr" -name '*.so*' -type f -print0)
missing=$(for o in "${objs[@]}"; do ldd "$o" 2>/dev/null || true; done | awk '/=>/ {print $1, $3}' | sort -u)
while read -r name path; do
  [[ "$name" =~ $skip ]] && continue
  if [ "$path" = "not" ]; then
    echo "gpu-bundle: note: $name not found here (a plugin that needs it will not load)" >&2; continue
  fi
  [ -e "$S/lib/$name" ] || cp -L "$path" "$S/lib/$name"
done <<< "$missing"
cp scripts/gpu-env.sh "$S/env.sh"
git describe --always --dirty > "$S/gitrev" 2>/dev/null || echo unknown > "$S/gitrev"
bash scripts/tree-hash.sh > "$S/srchash"

mkdir -p "$OUTDIR"
tar -C "$work" -cJf "$OUTDIR/ryz-gpu.tar.xz" ryz-gpu
size=$(stat -c %s "$OUTDIR/ryz-gpu.tar.xz")
echo "gpu-bundle: $OUTDIR/ryz-gpu.tar.xz, $((size / 1048576)) MiB ($(du -sh "$S" | cut -f1) unpacked), ryz at $(cat "$S/gitrev")"
if [ "$size" -gt $((48 * 1048576)) ]; then
  echo "gpu-bundle: warning: over 48 MiB: with the working tree it may pass the device tool's 64 MiB" >&2
fi
