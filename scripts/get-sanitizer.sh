#!/usr/bin/env bash
# Packs NVIDIA's compute-sanitizer for a GPU machine without one (this
# machine's toolkit has none; gpu-check's sanitize step looks for the
# GPU machine's own first): one archive to carry beside the gpu-bundle.
# Run it here: it needs the network.
# It comes from NVIDIA's PyPI wheels (pip download, x86-64 Linux):
# nvidia-cuda-sanitizer-api at the toolkit's version (13.0.85 for this
# repository's nvcc 13.0, which drivers from 580 run), flattened as the
# toolkit lays it out (the tool and its libraries in one folder). That
# wheel lacks the two launchers the tool execs first (TreeLauncherSubreaper,
# TreeLauncherTargetLdPreloadHelper): without them every run ends with
# "Target application terminated before first instrumented API call".
# They are taken from a later wheel (13.5.25) that ships them; the pair ran
# on an H100 with driver 580 (docs/gpu-results.md, session 30).
#
# usage: bash scripts/get-sanitizer.sh [ARCHIVE]  (.gpu/compute-sanitizer.tar.xz)
# then, on the GPU machine: mkdir -p /tmp/cs && tar xJf ARCHIVE -C /tmp/cs &&
#   STEPS=sanitize COMPUTE_SANITIZER=/tmp/cs/compute-sanitizer bash scripts/gpu-check.sh
# env: SANITIZER_VERSION (13.0.85), LAUNCHER_VERSION (13.5.25)
set -euo pipefail
out=${1:-}
[ -z "$out" ] || [[ "$out" == /* ]] || out=$PWD/$out # the caller's, before the cd
cd "$(dirname "$0")/.."
out=${out:-$PWD/.gpu/compute-sanitizer.tar.xz}
tool_v=${SANITIZER_VERSION:-13.0.85} launcher_v=${LAUNCHER_VERSION:-13.5.25}
die() { echo "get-sanitizer: $*" >&2; exit 1; }
command -v unzip >/dev/null || die "needs unzip (apt-get install unzip)"
pip=(pip)
command -v pip >/dev/null || pip=(python3 -m pip)
"${pip[@]}" --version >/dev/null 2>&1 || die "needs pip (apt-get install python3-pip)"
work=$(mktemp -d /tmp/ryz-sanitizer-XXXXXX)
trap 'rm -rf "$work"' EXIT
for v in "$tool_v" "$launcher_v"; do
  "${pip[@]}" download --quiet --no-deps --retries 0 --timeout 30 --only-binary :all: \
    --platform manylinux_2_25_x86_64 "nvidia-cuda-sanitizer-api==$v" -d "$work/$v" ||
    die "pip download of nvidia-cuda-sanitizer-api==$v failed (network? version?)"
  (cd "$work/$v" && unzip -q -o ./*.whl)
done
mkdir "$work/cs"
# The tool's wheel: bin/ (the tool, a library) and lib/ (the injected
# libraries); a name in both must be the same file.
while IFS= read -r f; do
  dst=$work/cs/$(basename "$f")
  if [ -e "$dst" ]; then cmp -s "$f" "$dst" || die "two different $(basename "$f") in $tool_v"
  else cp "$f" "$dst"; fi
done < <(find "$work/$tool_v/nvidia" -type f \( -path '*/bin/*' -o -path '*/lib/*' \))
for f in TreeLauncherSubreaper TreeLauncherTargetLdPreloadHelper; do
  [ -e "$work/cs/$f" ] && continue
  src=$(find "$work/$launcher_v/nvidia" -type f -name "$f" -not -path '*/x86/*' | head -n 1)
  [ -n "$src" ] || die "$launcher_v's wheel has no $f"
  cp "$src" "$work/cs/"
done
chmod +x "$work/cs/compute-sanitizer" "$work/cs/TreeLauncher"*
"$work/cs/compute-sanitizer" --version | tail -n 1
mkdir -p "$(dirname "$out")"
tar cJf "$out" -C "$work/cs" .
echo "get-sanitizer: $out ($(du -h "$out" | cut -f1)): compute-sanitizer $tool_v" \
  "with the launchers of $launcher_v"
