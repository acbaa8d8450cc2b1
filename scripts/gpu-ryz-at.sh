#!/usr/bin/env bash
# The CUDA build's ryz of commit REV, for scripts/gpu-ab.sh to run beside
# a gpu-bundle archive of this tree (one archive brings the libraries; a
# bare ryz is 4 MiB where an archive is 17, and the device tool carries at
# most 64): builds REV in a temporary worktree and copies its ryz to
# OUTDIR/ryz-REV.
# usage: bash scripts/gpu-ryz-at.sh REV [OUTDIR (.gpu)]
set -euo pipefail
cd "$(dirname "$0")/.."
[ $# -ge 1 ] && [ $# -le 2 ] || { echo "usage: bash scripts/gpu-ryz-at.sh REV [OUTDIR]" >&2; exit 2; }
rev=$(git rev-parse --short "$1^{commit}") || { echo "gpu-ryz-at: no commit '$1'" >&2; exit 2; }
out=${2:-.gpu}
[ -x /usr/local/cuda/bin/nvcc ] || { echo "gpu-ryz-at: no /usr/local/cuda/bin/nvcc" >&2; exit 2; }
wt=$(mktemp -d /tmp/ryz-at-XXXXXX)
trap 'git worktree remove --force "$wt" >/dev/null 2>&1 || rm -rf "$wt"' EXIT
git worktree add -f --detach "$wt" "$rev" >/dev/null
make -C "$wt" CUDA=1 BUILD=build-cuda build-cuda/ryz >"$wt/build.log" 2>&1 ||
  { tail -n 20 "$wt/build.log" >&2; echo "gpu-ryz-at: $rev does not build" >&2; exit 1; }
mkdir -p "$out"
cp "$wt/build-cuda/ryz" "$out/ryz-$rev"
echo "gpu-ryz-at: $out/ryz-$rev ($(du -h "$out/ryz-$rev" | cut -f1))"
