#!/usr/bin/env bash
# Line coverage of src/ from a COVERAGE=1 build whose tests have run.
# Usage: scripts/coverage.sh BUILD_DIR   (prints per-file and total line %)
set -euo pipefail
BUILD=${1:-build-cov}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
total=0; hit=0
printf "%-28s %8s %8s %7s\n" file lines covered pct
for src in src/*/*.c; do
  obj="$BUILD/obj/${src#src/}"; obj="${obj%.c}.o"
  [ -f "${obj%.o}.gcda" ] || { n=$(grep -c . "$src"); printf "%-28s %8s %8s %7s\n" "$src" "-" 0 "0.0%"; continue; }
  out=$( (cd "$tmp" && gcov -n -o "$OLDPWD/$(dirname "$obj")" "$OLDPWD/$src") 2>/dev/null | \
         awk -v f="$src" '$0 ~ "^File .*"f"'"'"'" {getline; print; exit}')
  pct=$(sed -E 's/Lines executed:([0-9.]+)% of ([0-9]+)/\1/' <<<"$out")
  n=$(sed -E 's/Lines executed:([0-9.]+)% of ([0-9]+)/\2/' <<<"$out")
  [ -n "$n" ] || continue
  c=$(awk -v p="$pct" -v n="$n" 'BEGIN{printf "%d", p*n/100+0.5}')
  total=$((total + n)); hit=$((hit + c))
  printf "%-28s %8d %8d %6.1f%%\n" "$src" "$n" "$c" "$pct"
done
awk -v h="$hit" -v t="$total" 'BEGIN{printf "%-28s %8d %8d %6.1f%%\n", "TOTAL", t, h, t ? 100*h/t : 0}'
