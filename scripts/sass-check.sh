#!/usr/bin/env bash
# Checks in the kernels' sm_90 SASS the rule of kernels/common.cuh: under
# programmatic dependent launch a kernel starts while the one before may
# still be writing its inputs, so a load through the read-only
# (non-coherent) path, `__ldg` or one the compiler chose, SASS `LDG...
# .CONSTANT`, must come after griddepcontrol.wait (SASS `ACQBULK`). The
# source's order is not enough: such a load reads memory the compiler may
# take as constant, which the wait's "memory" clobber does not pin (an
# `__ldg` put before the wait came out after it in 6 of the 32 fp32 GEMV
# instances of 54fa125, before the pair's BOTH mode went), and a refactor
# may add or lose an `__ldg` without a test noticing (the race shows only
# sometimes). Every .CONSTANT load before the wait fails, a weight's too
# (no kernel writes weights, but the rule is kept simple): prefetch
# weights with plain or evict-first loads, as the GEMVs do.
# For each kernels/*.o (built if needed) and each sm_90 function in it:
# - a .CONSTANT load before the function's first ACQBULK, in text order,
#   fails (text order stands for execution order: every thread reaches the
#   wait before any early return, common.cuh, so no path skips it);
# - a function launched with PDL (named in a ryz_k_launch call in
#   kernels/*.cu, the only launcher that sets the attribute) without any
#   ACQBULK fails: nothing then orders its loads after the kernel before;
# - a function with .CONSTANT loads and no ACQBULK that is not
#   PDL-launched (<<<>>> waits for the whole previous kernel) is a note;
# - a function of matmul_f32.o with a wait but no .CONSTANT load after it
#   fails: the fp32 GEMV's x is meant to take the read-only path (plain
#   loads cost 1b's fp32 decode 5 %, docs/gpu-results.md), so losing
#   `__ldg` is caught.
# sm_90 only: sm_80 has no PDL, and what newer GPUs JIT from the
# compute_90 PTX is not in the objects. Without cuobjdump: SKIP, exit 0.
# usage: bash scripts/sass-check.sh             (CUOBJDUMP, BUILD, CUDA_HOME)
#        bash scripts/sass-check.sh --self-test (the awk on synthetic SASS)
set -euo pipefail
# A relative path in CUOBJDUMP is the caller's, not the repository root's.
[[ "${CUOBJDUMP:-}" != */* || "$CUOBJDUMP" == /* ]] || CUOBJDUMP=$PWD/$CUOBJDUMP
cd "$(dirname "$0")/.."

# The object whose GEMV must read x through the read-only path.
NEED_NC=matmul_f32.o

# Reads "sass-check: object NAME" lines, each followed by that object's
# `cuobjdump -sass -arch sm_90` listing (function names mangled or
# demangled); $1: the object whose functions with a wait must each have a
# .CONSTANT load after it, $2: the PDL-launched kernels' names,
# space-separated. Prints failures, notes and a summary; exits 1 on any
# failure. The self-test runs this same function on synthetic listings.
scan() {
  awk -v need_nc="$1" -v pdl=" $2 " '
    # The unqualified name of a kernel, from a demangled name (return type,
    # scopes, template arguments and parameters dropped) or, without
    # c++filt, a mangled one (its last length-prefixed component).
    function base(name,   s, l, last) {
      if (name ~ /^_Z/) {
        s = substr(name, 3)
        sub(/^N/, "", s)
        sub(/^L/, "", s)
        last = ""
        while (match(s, /^[0-9]+/)) {
          l = substr(s, 1, RLENGTH) + 0
          last = substr(s, RLENGTH + 1, l)
          s = substr(s, RLENGTH + 1 + l)
        }
        return last != "" ? last : name
      }
      s = name
      gsub(/\(anonymous namespace\)::/, "", s)
      sub(/[<(].*/, "", s)
      sub(/.*[ :]/, "", s)
      return s
    }
    # The end of a function: its .CONSTANT loads before the wait fail only
    # if it has a wait at all; without one, PDL decides.
    function flush(   i, k) {
      if (fn == "")
        return
      if (acq) {
        waited++
        if (obj == need_nc && !fnncafter) {
          print "sass-check: FAIL: " obj ": " fn ": no non-coherent (.CONSTANT) load after" \
                " the wait: x is no longer read through __ldg"
          fails++
        }
        for (i = 1; i <= npre; i++) {
          print "sass-check: FAIL: " obj ": " fn ": non-coherent load before ACQBULK: " pre[i]
          fails++
        }
        for (k in bcount)
          before[k] += bcount[k]
      } else if (index(pdl, " " base(fn) " ")) {
        print "sass-check: FAIL: " obj ": " fn ": launched with PDL (ryz_k_launch) but" \
              " has no ACQBULK (griddepcontrol.wait)"
        fails++
      } else {
        nowait[base(fn)] = 1
        if (ncnowait)
          print "sass-check: note: " obj ": " fn ": " ncnowait " non-coherent loads and no" \
                " ACQBULK; not PDL-launched, so the previous kernel has ended"
      }
      for (k in bcount)
        delete bcount[k]
      fn = ""
    }
    function endobj() {
      flush()
      if (obj != "" && objfuncs == 0) {
        print "sass-check: FAIL: " obj ": no sm_90 functions (built without sm_90 SASS?)"
        fails++
      }
    }
    $1 == "sass-check:" && $2 == "object" {
      endobj()
      obj = $3; objs++; objfuncs = 0; seen[obj] = 1
      next
    }
    /Function : / {
      flush()
      fn = substr($0, index($0, "Function : ") + 11)
      funcs++; objfuncs++; acq = 0; npre = 0; ncnowait = 0; fnncafter = 0
      next
    }
    # An instruction: "/*addr*/ [@[!]Pn] OPCODE operands ;".
    fn != "" && $1 ~ /^\/\*[0-9a-f]+\*\/$/ {
      op = $2
      if (op ~ /^@/)
        op = $3
      if (op ~ /^ACQBULK(\.|$)/) {
        acq = 1
        next
      }
      # Loads from global memory (generic, global, async copy); shared,
      # local and constant-bank loads hold nothing another kernel writes.
      if (op !~ /^(LD|LDG|LDGSTS)(\.|$)/)
        next
      nc = op ~ /\.CONSTANT(\.|$)/
      if (acq) {
        if (nc) {
          ncafter++
          ncobj[obj]++
          fnncafter++
        }
        next
      }
      bcount[op]++
      if (nc) {
        ncnowait++
        line = $0
        sub(/^[ \t]+/, "", line)
        gsub(/[ \t]+/, " ", line)
        sub(/[ \t]*\/\* 0x[0-9a-f]+ \*\/[ \t]*$/, "", line)
        pre[++npre] = line
      }
    }
    END {
      endobj()
      if (!(need_nc in seen)) {
        print "sass-check: FAIL: " need_nc ": not among the objects checked"
        fails++
      }
      printf "sass-check: %d objects, %d sm_90 functions, %d with a wait (ACQBULK)\n",
        objs, funcs, waited
      s = ""
      for (o in ncobj)
        s = s " " o " " ncobj[o]
      printf "sass-check: non-coherent loads after the wait: %d (%s )\n", ncafter, s
      s = ""
      for (k in before)
        s = s " " k " " before[k]
      print "sass-check: global loads before the wait, by opcode:" (s == "" ? " none" : s)
      s = ""
      for (k in nowait)
        s = s " " k
      print "sass-check: without a wait, not PDL-launched:" (s == "" ? " none" : s)
      if (fails) {
        print "sass-check: FAILED (" fails ")"
        exit 1
      }
      print "sass-check: OK"
    }'
}

# Demangles the listing when c++filt is there, so messages name kernels.
demangle() {
  if command -v c++filt >/dev/null; then c++filt; else cat; fi
}

# The synthetic listings: $1 the expected status, $2 a pattern the output
# must match, $3 the PDL names, stdin the listing. Run with and without
# c++filt, since the kernel names are matched in either form.
expect() {
  local want=$1 pat=$2 names=$3 input out st filt
  input=$(cat)
  for filt in cat demangle; do
    st=0
    out=$(printf '%s\n' "$input" | "$filt" | scan matmul_f32.o "$names") || st=$?
    if [ "$st" != "$want" ] || ! grep -qE -- "$pat" <<<"$out"; then
      printf 'sass-check self-test: want status %s and /%s/ (%s), got %s:\n%s\n' \
        "$want" "$pat" "$filt" "$st" "$out" >&2
      return 1
    fi
  done
}

self_test() {
  # An instruction line as cuobjdump prints it.
  local h='        /*0000*/                   '
  local enc=' ;     /* 0x000fe20000000800 */'
  local gemv="sass-check: object matmul_f32.o
		Function : _Z15gemv_f32_kernelILi1ELi0EEv13ryz_gemv_segsPfPKfPK6float4ii
${h}LDG.E.EF.128 R4, desc[UR6][R2.64]${enc}
${h}ACQBULK${enc}
${h}@!P0 LDG.E.128.CONSTANT R8, desc[UR6][R6.64]${enc}"
  # Weights before the wait, x after; a <<<>>> kernel with __ldg and no wait.
  expect 0 'sass-check: OK' 'gemv_f32_kernel' <<EOF
$gemv
sass-check: object copy.o
		Function : _Z11copy_kernelP6float4PKS_mi
${h}LDG.E.128.CONSTANT R4, desc[UR6][R4.64]${enc}
EOF
  # A non-coherent load (predicated) before the wait.
  expect 1 'FAIL: elementwise.o: .*rope_kernel.*@P1 LDG.E.64.CONSTANT' 'rope_kernel' <<EOF
$gemv
sass-check: object elementwise.o
		Function : _Z11rope_kernelPfmiiPKif
${h}@P1 LDG.E.64.CONSTANT R12, desc[UR14][R12.64]${enc}
${h}ACQBULK${enc}
EOF
  # The GEMV reads x with plain loads: __ldg lost.
  expect 1 'FAIL: matmul_f32.o: .*gemv_f32_kernel.*no non-coherent' 'gemv_f32_kernel' <<EOF
sass-check: object matmul_f32.o
		Function : _Z15gemv_f32_kernelILi1ELi0EEv13ryz_gemv_segsPfPKfPK6float4ii
${h}LDG.E.EF.128 R4, desc[UR6][R2.64]${enc}
${h}ACQBULK${enc}
${h}LDG.E.128 R8, desc[UR6][R6.64]${enc}
EOF
  # A PDL-launched kernel without a wait.
  expect 1 'FAIL: vocab.o: .*argmax_kernel.* no ACQBULK' 'gemv_f32_kernel argmax_kernel' <<EOF
$gemv
sass-check: object vocab.o
		Function : _Z13argmax_kernelPiPKfii
${h}LDG.E R3, desc[UR6][R2.64]${enc}
EOF
  # An object with no sm_90 code.
  expect 1 'FAIL: launch.o: no sm_90 functions' 'gemv_f32_kernel' <<EOF
$gemv
sass-check: object launch.o
EOF
  echo "sass-check self-test: OK"
}

if [ "${1:-}" = --self-test ]; then
  self_test
  exit 0
fi

CUDA_HOME=${CUDA_HOME:-/usr/local/cuda}
BUILD=${BUILD:-build-cuda}
cuobjdump=${CUOBJDUMP:-}
# A CUOBJDUMP given but wrong is a mistake to report, not a tool missing.
if [ -n "$cuobjdump" ] && [ ! -x "$cuobjdump" ]; then
  echo "sass-check: CUOBJDUMP=$cuobjdump is not an executable" >&2
  exit 2
fi
if [ -z "$cuobjdump" ]; then
  cuobjdump=$(command -v cuobjdump || true)
  [ -n "$cuobjdump" ] || [ ! -x "$CUDA_HOME/bin/cuobjdump" ] || cuobjdump=$CUDA_HOME/bin/cuobjdump
fi
if [ -z "$cuobjdump" ]; then
  echo "sass-check: SKIP: no cuobjdump (\$CUOBJDUMP, PATH, $CUDA_HOME/bin); to get it:" \
    "pip download --no-deps nvidia-cuda-cuobjdump -d DIR, unzip DIR/*.whl, then" \
    "CUOBJDUMP=DIR/nvidia/cu*/bin/cuobjdump"
  exit 0
fi

objs=()
for cu in kernels/*.cu; do
  objs+=("$BUILD/obj/kernels/$(basename "${cu%.cu}").o")
done
make -s --no-print-directory CUDA=1 BUILD="$BUILD" CUDA_HOME="$CUDA_HOME" "${objs[@]}"

# The kernels ryz_k_launch launches, its first argument (the calls may
# span lines, hence tr).
pdl=$(cat kernels/*.cu | tr '\n' ' ' |
  { grep -oE 'ryz_k_launch\([[:space:]]*[A-Za-z_][A-Za-z0-9_]*' || true; } |
  sed 's/.*([[:space:]]*//' | sort -u | tr '\n' ' ' | sed 's/ $//')
if [ -z "$pdl" ]; then
  echo "sass-check: FAIL: no ryz_k_launch(KERNEL, ...) call found in kernels/*.cu" >&2
  exit 1
fi

echo "sass-check: $cuobjdump, $BUILD/obj/kernels; PDL-launched: $pdl"
for o in "${objs[@]}"; do
  echo "sass-check: object ${o##*/}"
  "$cuobjdump" -sass -arch sm_90 "$o"
done | demangle | scan "$NEED_NC" "$pdl"
