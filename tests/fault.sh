#!/usr/bin/env bash
# Fault tests of the whole tool (docs/reliability.md), each bounded in time:
# for 2 and 4 ranks a rank killed mid-decode (everyone exits non-zero, no
# results file), a rank hung (the watchdog names the op and rank 1, exit 3),
# a desynchronised collective (exit 3 naming both sides), a corrupted
# all-reduce (the comparison fails the case, exit 1) and SIGTERM during a
# self-launched run's TP=1 baseline (exit 143; results written and marked
# interrupted, or complete, never truncated); then SIGTERM twice and SIGINT
# on 2 ranks, one rank interrupted, ryz bench interrupted, a slow rank
# under the timeout, a full disk, bad settings, a hung and a killed rank
# inside the shm backend's collectives, and the two acceptance commands of
# issue 9 on suites/quick.ini.
# usage: bash tests/fault.sh [BUILD_DIR]   (tests/run.sh calls it)
set -u
BUILD=${1:-build}
RYZ=${RYZ_BIN:-$BUILD/ryz}
MPIRUN=${MPIRUN:-mpirun --allow-run-as-root --oversubscribe}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
export RYZ_TIMEOUT=5
failed=0

# suite NAME TP_LIST NEW_TOKENS REPEAT [MODEL [COMM]]: writes $tmp/NAME.ini
suite() {
  cat >"$tmp/$1.ini" <<EOF
[suite]
name = $1
repeat = $4
warmup = 0

[case c]
model = ${5:-synthetic:tiny}
tp = $2
prompt = 1 2 3 4 5 6 7 8
new_tokens = $3
comm = ${6:-mpi}
EOF
}
suite np2 "1 2" 16 1
suite np4 "1 2 4" 16 1
suite np1 "1" 16 1
long="synthetic:tiny,dim=256,layers=4,seq_len=512" # ~20 s on 2 cores
suite long1 "1" 400 64 "$long"
suite long2 "1 2" 400 64 "$long"
suite long4 "1 2 4" 400 64 "$long"
suite brief2 "1 2" 150 3 "$long" # a 2 s baseline, then TP=2 greedy for ~3 s
suite shm2 "2" 16 1 synthetic:tiny shm

# run NAME BOUND_S CMD...: runs CMD with a time limit; sets rc, secs, log.
run() {
  local name=$1 bound=$2 t0
  shift 2
  log="$tmp/$name.log"
  t0=$(date +%s.%N)
  timeout -k 5 "$bound" "$@" >"$log" 2>&1
  rc=$?
  secs=$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')
}

# verdict NAME WHAT CONDITION...: prints ok or FAIL (with the log's tail).
verdict() {
  local name=$1 what=$2
  shift 2
  if "$@"; then
    echo "ok    $name: $what (rc=$rc, ${secs} s)"
  else
    echo "FAIL  $name: $what (rc=$rc, ${secs} s)"
    tail -n 15 "$log" | sed 's/^/      | /'
    failed=$((failed + 1))
  fi
}

# no_file PATH: neither PATH nor a temporary of it exists.
no_file() { ! compgen -G "$1*" >/dev/null; }
# results_state PATH: absent, interrupted, complete (a machine fast enough
# to finish first) or broken (unreadable, or a temporary left beside it).
results_state() {
  if compgen -G "$1.tmp.*" >/dev/null; then echo broken
  elif [ ! -e "$1" ]; then echo absent
  elif "$RYZ" show "$1" 2>&1 | grep -q '^interrupted: 1$'; then echo interrupted
  elif "$RYZ" show "$1" 2>&1 | grep -q '^interrupted: 0$'; then echo complete
  else echo broken; fi
}
is() { [ "$rc" -eq "$1" ]; }
failed_fast() { [ "$rc" -ne 0 ] && [ "$rc" -ne 124 ] && [ "$rc" -ne 137 -o "$1" = any ]; }
has() { grep -Eq "$1" "$log"; }
timed_out="(all_reduce|all_gather|broadcast|barrier|comm_split) #[0-9]+.*(did not complete within 5 s|when rank [0-9]+ timed out)"

# signal_job NAME PATTERN DELAY_S AGAIN_S CMD...: starts CMD, its output in
# $tmp/NAME.log; once the log shows PATTERN ("": at once; 60 s at most),
# and DELAY_S later, sends SIGTERM (or $SIG), and again AGAIN_S later ("":
# once, as `timeout` signals ryz, then its group); waits 30 s at most for
# CMD to end, then kills it; sets rc, secs, log.
signal_job() {
  local name=$1 pattern=$2 delay=$3 again=$4 t0 pid n=0 waited=0
  shift 4
  log="$tmp/$name.log"
  t0=$(date +%s.%N)
  "$@" >"$log" 2>&1 &
  pid=$!
  while [ -n "$pattern" ] && ! grep -q "$pattern" "$log"; do
    if [ $n -ge 1200 ]; then echo "fault.sh: '$pattern' never came" >>"$log"; break; fi
    sleep 0.05
    n=$((n + 1))
  done
  sleep "$delay"
  kill -"${SIG:-TERM}" "$pid"
  if [ -n "$again" ]; then sleep "$again"; kill -"${SIG:-TERM}" "$pid"; fi
  while kill -0 "$pid" 2>/dev/null && [ $waited -lt 300 ]; do sleep 0.1; waited=$((waited + 1)); done
  kill -KILL "$pid" 2>/dev/null
  wait "$pid"
  rc=$?
  secs=$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')
}

# sigterm NAME SUITE DELAY_S [AGAIN_S]: signal_job of a self-launched suite
# run. DELAY_S "tp2": half a second into the TP=2 greedy runs, where rank 0
# stops at a collective within a few ms (in its TP=1 baseline it reaches
# none, and stops at its next decode step).
sigterm() {
  local pattern="" delay=$3
  if [ "$3" = tp2 ]; then pattern="tp=2 greedy" delay=0.5; fi
  signal_job "$1" "$pattern" "$delay" "${4:-}" "$RYZ" suite "$tmp/$2.ini" -o "$tmp/$1.h5"
}

# kill_and_hang LABEL SUITE AT NP: rank 1 killed, then hung, at AT (RYZ_FAULT's
# step part) of a suite on NP ranks.
kill_and_hang() {
  local label=$1 s=$2 at=$3 np=$4 out="$tmp/kh.h5"
  RYZ_FAULT=kill:rank=1:$at run "kill-${label// /-}" 60 \
    $MPIRUN -np "$np" "$RYZ" suite "$s" -q -o "$out"
  verdict "kill $label" "every rank exits non-zero, no results file" \
    eval 'failed_fast any && no_file "$out"'
  RYZ_FAULT=hang:rank=1:$at run "hang-${label// /-}" 60 \
    $MPIRUN -np "$np" "$RYZ" suite "$s" -q -o "$out"
  verdict "hang $label" "watchdog: exit 3 within timeout + 10 s naming the op and rank 1" \
    eval 'is 3 && [ "${secs%.*}" -lt 20 ] && has "$timed_out" && has "rank 1 did not arrive" && no_file "$out"'
}

for np in 2 4; do
  s="$tmp/np$np.ini" out="$tmp/out$np.h5"
  kill_and_hang "np=$np" "$s" step=40 "$np"

  RYZ_CHECK_COLLECTIVES=1 RYZ_FAULT=desync:rank=1:step=40 \
    run desync$np 60 $MPIRUN -np $np "$RYZ" suite "$s" -q -o "$out"
  verdict "desync np=$np" "exit 3 naming both sides" \
    eval 'is 3 && has "rank 0: [a-z_]+ #[0-9]+ of [0-9]+ floats; rank 1: [a-z_]+ #[0-9]+ of [0-9]+ floats"'

  # Rank 0's first all_reduces are the bandwidth probes (one per TP degree)
  # and the TP group's load agreement (the probe between decode steps adds
  # none while rank 0 times its baseline alone); #12 is well inside a forward pass
  # (5 all_reduces per pass of the 2-layer model), where corruption must be
  # caught by the comparison.
  RYZ_FAULT=corrupt:rank=0:step=12:op=all_reduce \
    run corrupt$np 60 $MPIRUN -np $np "$RYZ" suite "$s" -q -o "$out"
  verdict "corrupt np=$np" "the comparison fails the case: exit 1, results written" \
    eval 'is 1 && [ -s "$out" ] && has "FAIL"'
  rm -f "$out"

  # ryz launched this job's mpirun and passed the signal on: 128 + 15, not
  # the 1 mpirun itself exits with when signalled. Rank 0 is then in its
  # TP=1 baseline, where it stops at its next decode step (or a fast
  # machine is done).
  sigterm term$np long$np 4
  state=$(results_state "$tmp/term$np.h5")
  verdict "SIGTERM np=$np" "exit 143; results $state (interrupted, or complete)" \
    eval 'is 143 && [ "${secs%.*}" -lt 20 ] && [ "$state" != broken ] && [ "$state" != absent ]'
done

# Inside the shm backend's collectives (rank 0 polls shared memory, not
# MPI): the watchdog still names the call and rank 1, and mpirun still ends
# the job when a rank dies.
kill_and_hang "shm np=2" "$tmp/shm2.ini" step=30:op=all_reduce 2

# Two SIGTERMs 50 ms apart reach mpirun as one: Open MPI takes a second
# within 5 s as "kill now", and rank 0 would have no time to write.
RYZ_TIMEOUT=60 sigterm twice2 brief2 tp2 0.05 # rank 1 waits out the baseline (slow under ASan)
state=$(results_state "$tmp/twice2.h5")
verdict "SIGTERM twice np=2" "exit 143, results $state (must be interrupted)" \
  eval 'is 143 && [ "$state" = interrupted ]'

# ryz tells the ranks on this host at once, with the user's own signal:
# mpirun would pass SIGINT on as SIGTERM, and only a second later
# (launch_tell_ranks in src/cli/launch.c).
SIG=INT RYZ_TIMEOUT=60 sigterm int2 brief2 tp2
state=$(results_state "$tmp/int2.h5")
verdict "SIGINT np=2" "exit 130, rank 0 stopped by signal 2, results $state (must be interrupted)" \
  eval 'is 130 && has "rank 0.*interrupted by signal 2$" && [ "$state" = interrupted ]'

sigterm term1 long1 2
state=$(results_state "$tmp/term1.h5")
verdict "SIGTERM np=1" "exit 143 within 10 s (a run after the signal), results $state (must be interrupted)" \
  eval 'is 143 && [ "$state" = interrupted ] && [ "${secs%.*}" -lt 10 ]'

# ryz bench (one process) stops within a decode step of its second
# configuration and keeps the first, marked interrupted.
signal_job bench "bench bf16-t1 run 1/" 0 "" "$RYZ" bench --model synthetic:tiny --threads 1 \
  --dtype f32,bf16 --repeat 16 --prompt-len 8 --new-tokens 32 --probe-mib 16 -o "$tmp/bench.h5"
state=$(results_state "$tmp/bench.h5")
"$RYZ" show --raw "$tmp/bench.h5" >"$tmp/bench.show" 2>&1
verdict "SIGTERM bench" "exit 143, results $state with f32-t1's rows and no bf16-t1's" \
  eval 'is 143 && [ "$state" = interrupted ] && grep -q " f32-t1 " "$tmp/bench.show" &&
    ! grep -q " bf16-t1 " "$tmp/bench.show" && has "partial results \(marked interrupted\)"'
# Stopped in its first configuration, it has nothing to keep, and the file
# an earlier run left at that path stays.
cp "$tmp/bench.h5" "$tmp/bench0.h5"
signal_job bench0 "bench f32-t1 run 1/" 0 "" "$RYZ" bench --model synthetic:tiny --threads 1 \
  --dtype f32 --repeat 16 --prompt-len 8 --new-tokens 32 --probe-mib 16 -o "$tmp/bench0.h5"
verdict "SIGTERM bench, nothing done" "exit 143 saying nothing was written, the old file kept" \
  eval 'is 143 && has "before any configuration finished; nothing written" &&
    cmp -s "$tmp/bench.h5" "$tmp/bench0.h5"'

RYZ_FAULT=slow:rank=1:step=40 run slow 60 $MPIRUN -np 2 "$RYZ" suite "$tmp/np2.ini" -q -o "$tmp/slow.h5"
verdict "slow np=2" "a rank 1 s late is no timeout: exit 0" is 0

# A full disk, as a file size limit (EFBIG; SIGXFSZ ignored): the writer
# builds the file in memory and writes it with write(2), so this is an errno:
# exit 2 naming the file, and nothing left behind.
run full 60 bash -c "trap '' XFSZ; ulimit -f 8; exec \"$RYZ\" suite \"$tmp/np1.ini\" -q -o \"$tmp/full.h5\""
verdict "full disk" "exit 2 naming the file, nothing left behind" \
  eval 'is 2 && has "full.h5: .*(File too large|No space)" && no_file "$tmp/full.h5"'

RYZ_FAULT=explode:rank=1:step=2 run badfault 30 "$RYZ" suite "$tmp/np2.ini" -q -o "$tmp/bad.h5"
verdict "bad RYZ_FAULT" "exit 2 before any rank starts" eval 'is 2 && has "RYZ_FAULT: fault .explode"'
# A rank killed in a self-launched run: ryz maps mpirun's 137 to 3.
RYZ_FAULT=kill:rank=1:step=40 run selfkill 60 "$RYZ" suite "$tmp/np2.ini" -q -o "$tmp/sk.h5"
verdict "self-launched kill" "exit 3 saying a rank died of signal 9, no results file" \
  eval 'is 3 && has "a rank died of signal 9" && no_file "$tmp/sk.h5"'
RYZ_TIMEOUT=soon run badtimeout 30 "$RYZ" suite "$tmp/np2.ini" -q -o "$tmp/bad.h5"
verdict "bad RYZ_TIMEOUT" "exit 2" eval 'is 2 && has "RYZ_TIMEOUT"'

# Issue 9's acceptance commands.
RYZ_FAULT=hang:rank=1:step=3 run accept-hang 60 $MPIRUN -np 2 "$RYZ" suite suites/quick.ini \
  -q -o "$tmp/quick.h5"
verdict "quick.ini hang" "non-zero within 20 s naming the op and rank 1" \
  eval 'failed_fast no && [ "${secs%.*}" -lt 20 ] && has "[a-z_]+ #[0-9]+.* did not complete" && has "rank 1 did not arrive"'
RYZ_FAULT=kill:rank=1:step=2 run accept-kill 60 $MPIRUN -np 2 "$RYZ" suite suites/quick.ini \
  -q -o "$tmp/r.h5"
verdict "quick.ini kill" "non-zero and no results file" eval 'failed_fast any && no_file "$tmp/r.h5"'

echo "fault tests: $failed failed"
[ "$failed" -eq 0 ]
