#!/usr/bin/env bash
# Interleaved comparison of decode speed between builds on one GPU
# machine: the way every speed claim in docs/gpu-results.md was measured.
# GPU timings are steady (spread under 2 %), but machines differ, so every
# side must run on the same one, in turn: A, B, C, A, B, C, ...
#
# usage: bash scripts/gpu-ab.sh SIDE SIDE [SIDE...]
#   SIDE   a scripts/gpu-bundle.sh archive (.tar.xz), or a bare ryz binary
#          of the same machine's build (scripts/gpu-ryz-at.sh REV writes
#          one), optionally after environment settings and '@', as in
#          RYZ_CUDA_PDL=0@new.tar.xz or RYZ_CUDA_PAIR=0,RYZ_CUDA_PDL=0@B:
#          one build with a switch off is a side of its own. At least one
#          side must be an archive: the first one's libraries (env.sh)
#          serve every side. Sides are named A, B, C, ... in order.
# env:   ROUNDS (2), MODEL (synthetic:1b), DTYPES (f32,bf16), REPEAT (3),
#        BENCH_ARGS (more `ryz bench` options, e.g. "--decode-prompt 1024"),
#        OUT (results/): where gpu-ab.txt goes (the device tool's $OUT
#        brings it back); RYZ_GPU_CHECK_DRY=1 runs the cpu backend on
#        synthetic:15m instead (a check of this script, not of a GPU)
# Prints each run's decode tok/s and share of the roofline, then per case
# the median tok/s of each side and its ratio to A. Exit 1 when a run
# fails, 2 on bad arguments.
set -uo pipefail
cd "$(dirname "$0")/.."
usage() {
  echo "usage: bash scripts/gpu-ab.sh SIDE SIDE [SIDE...] (SIDE: [VAR=VALUE[,VAR=VALUE]@]ARCHIVE.tar.xz or ryz binary)" >&2
  exit 2
}
[ $# -ge 2 ] && [ $# -le 26 ] || usage
ROUNDS=${ROUNDS:-2} MODEL=${MODEL:-synthetic:1b} DTYPES=${DTYPES:-f32,bf16} REPEAT=${REPEAT:-3}
read -r -a extra <<<"${BENCH_ARGS:-}"
backend=(--backend cuda)
if [ "${RYZ_GPU_CHECK_DRY:-0}" = 1 ]; then
  backend=(--threads 1 --probe-mib 64) MODEL=synthetic:15m
fi
work=$(mktemp -d /tmp/ryz-gpu-ab-XXXXXX)
trap 'rm -rf "$work"' EXIT

# Each side: its name, environment (comma-separated), binary and what it is.
names=() envs=() bins=() whats=() libs="" letters=ABCDEFGHIJKLMNOPQRSTUVWXYZ
i=0
for arg in "$@"; do
  name=${letters:i:1}
  env="" file=$arg
  if [[ "$arg" =~ ^([A-Za-z_][A-Za-z0-9_]*=[^@]*)@(.+)$ ]]; then
    env=${BASH_REMATCH[1]} file=${BASH_REMATCH[2]}
  fi
  [ -f "$file" ] || { echo "gpu-ab: side $name: no file '$file'" >&2; usage; }
  if [[ "$file" == *.tar.xz ]]; then
    mkdir -p "$work/$i" && tar xJf "$file" -C "$work/$i" ||
      { echo "gpu-ab: cannot unpack $file" >&2; exit 2; }
    bin=$work/$i/ryz-gpu/bin/ryz what="$file (ryz at $(cat "$work/$i/ryz-gpu/gitrev"))"
    [ -n "$libs" ] || libs=$work/$i/ryz-gpu/env.sh
  else
    [ -x "$file" ] || { echo "gpu-ab: side $name: '$file' is not executable" >&2; exit 2; }
    bin=$file what=$file
  fi
  names+=("$name") envs+=("$env") bins+=("$bin") whats+=("$what${env:+ with $env}")
  i=$((i + 1))
done
[ -n "$libs" ] || { echo "gpu-ab: no archive among the sides: one must bring the libraries" >&2; exit 2; }
# shellcheck source=/dev/null
. "$libs" || exit 2
RES=${OUT:-results}
mkdir -p "$RES"
log=$RES/gpu-ab.txt
: > "$log"
for ((i = 0; i < ${#names[@]}; i++)); do echo "${names[i]}: ${whats[i]}" | tee -a "$log"; done

# run I: one bench of side I; rows "NAME CASE TOK/S ROOF%".
run() {
  local -a envv=()
  [ -n "${envs[$1]}" ] && IFS=, read -r -a envv <<<"${envs[$1]}"
  env ${envv[@]+"${envv[@]}"} "${bins[$1]}" bench "${backend[@]}" --model "$MODEL" \
    --dtype "$DTYPES" --repeat "$REPEAT" ${extra[@]+"${extra[@]}"} 2>/dev/null |
    awk -v side="${names[$1]}" '/^[a-z0-9-]+: / {c = substr($1, 1, length($1) - 1)}
      /^  decode  / {print side, c, $2, $(NF - 5)}'
}
fail=0
for ((r = 1; r <= ROUNDS; r++)); do
  for ((i = 0; i < ${#names[@]}; i++)); do
    rows=$(run "$i")
    [ -n "$rows" ] || { echo "gpu-ab: round $r, ${names[i]}: the bench failed" | tee -a "$log"; fail=1; }
    [ -n "$rows" ] && sed "s/^/round $r  /" <<<"$rows" | tee -a "$log"
  done
done
# Median tok/s per side and case, then each side over A.
awk '$1 == "round" {v[$4 " " $3] = v[$4 " " $3] " " $5; cases[$4] = 1; sides[$3] = 1}
  function median(s,   a, n, i, j, t) {
    n = split(s, a, " ")
    for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (a[j] < a[i]) {t = a[i]; a[i] = a[j]; a[j] = t}
    return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
  }
  END {
    for (c in cases) {
      a = median(v[c " A"]); line = sprintf("%-14s A %9.2f tok/s", c, a)
      for (s = 66; s < 91; s++) {
        name = sprintf("%c", s)
        if (!(name in sides)) continue
        b = median(v[c " " name])
        line = line sprintf("   %s %9.2f tok/s %s/A %.3f", name, b, name, (a > 0 ? b / a : 0))
      }
      print line
    }
  }' "$log" | sort | tee -a "$log"
exit $fail
