#!/usr/bin/env bash
# Interleaved A/B of decode speed between two scripts/gpu-bundle.sh
# archives on one GPU machine: the way every speed claim in
# docs/gpu-results.md was measured. GPU timings are steady (spread under
# 2 %), but machines differ, so both sides must run on the same one, in
# turn: A, B, A, B, ...
#
# usage: bash scripts/gpu-ab.sh A.tar.xz B.tar.xz
# env:   ROUNDS (2), MODEL (synthetic:1b), DTYPES (f32,bf16), REPEAT (3),
#        OUT (results/): where gpu-ab.txt goes (the device tool's $OUT
#        brings it back); RYZ_GPU_CHECK_DRY=1 runs the cpu backend on
#        synthetic:15m instead (a check of this script, not of a GPU)
# Prints each run's decode tok/s and share of the roofline, then per
# case the median tok/s of each side and B / A. Exit 1 when a run fails.
set -uo pipefail
cd "$(dirname "$0")/.."
[ $# -eq 2 ] && [ -f "$1" ] && [ -f "$2" ] ||
  { echo "usage: bash scripts/gpu-ab.sh A.tar.xz B.tar.xz (gpu-bundle archives)" >&2; exit 2; }
ROUNDS=${ROUNDS:-2} MODEL=${MODEL:-synthetic:1b} DTYPES=${DTYPES:-f32,bf16} REPEAT=${REPEAT:-3}
backend=(--backend cuda)
if [ "${RYZ_GPU_CHECK_DRY:-0}" = 1 ]; then
  backend=(--threads 1 --probe-mib 64) MODEL=synthetic:15m
fi
work=$(mktemp -d /tmp/ryz-gpu-ab-XXXXXX)
trap 'rm -rf "$work"' EXIT
for side in A B; do
  arc=$1; [ $side = B ] && arc=$2
  mkdir -p "$work/$side" && tar xJf "$arc" -C "$work/$side" ||
    { echo "gpu-ab: cannot unpack $arc" >&2; exit 2; }
done
# shellcheck source=/dev/null
. "$work/A/ryz-gpu/env.sh" || exit 2 # the libraries: the same in both
RES=${OUT:-results}
mkdir -p "$RES"
log=$RES/gpu-ab.txt
echo "A: $1 (ryz at $(cat "$work/A/ryz-gpu/gitrev")), B: $2 (ryz at $(cat "$work/B/ryz-gpu/gitrev"))" |
  tee "$log"

# run SIDE: one bench of SIDE's ryz; rows "SIDE CASE TOK/S ROOF%".
run() {
  "$work/$1/ryz-gpu/bin/ryz" bench "${backend[@]}" --model "$MODEL" --dtype "$DTYPES" \
    --repeat "$REPEAT" 2>/dev/null |
    awk -v side="$1" '/^[a-z0-9-]+: / {c = substr($1, 1, length($1) - 1)}
      /^  decode  / {print side, c, $2, $(NF - 5)}'
}
fail=0
for ((r = 1; r <= ROUNDS; r++)); do
  for side in A B; do
    rows=$(run $side)
    [ -n "$rows" ] || { echo "gpu-ab: round $r, $side: the bench failed" | tee -a "$log"; fail=1; }
    [ -n "$rows" ] && sed "s/^/round $r  /" <<<"$rows" | tee -a "$log"
  done
done
# Median tok/s per side and case, then B / A.
awk '$1 == "round" {v[$4 " " $3] = v[$4 " " $3] " " $5; cases[$4] = 1}
  function median(s,   a, n, i, j, t) {
    n = split(s, a, " ")
    for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (a[j] < a[i]) {t = a[i]; a[i] = a[j]; a[j] = t}
    return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
  }
  END {
    for (c in cases) {
      a = median(v[c " A"]); b = median(v[c " B"])
      printf "%-14s A %9.2f tok/s   B %9.2f tok/s   B/A %.3f\n", c, a, b, (a > 0 ? b / a : 0)
    }
  }' "$log" | sort | tee -a "$log"
exit $fail
