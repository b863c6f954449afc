#!/usr/bin/env bash
# The kernel tests again, built for CPUs below the build machine: x86-64-v3 (AVX2 + FMA + F16C, no
# AVX-512: the AVX2 integer kernels) and plain x86-64 (SSE2: the portable kernels). The main build
# is -march=native, so without this a fallback path that stops compiling, or gives other bits,
# would pass CI on an AVX-512 machine. Each ISA: one program of test_quant4, test_amx (emulated
# tiles) and test_kernels at -O1. x86-64 hosts only.
#   bash scripts/isa-check.sh [OUT-DIR]
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
out=${1:-$root/build/isa}
if [[ $(uname -m) != x86_64 ]]; then echo "isa-check: not an x86-64 host, skipped"; exit 0; fi
mkdir -p "$out"
for isa in x86-64-v3 x86-64; do
  objs=() pids=()
  for src in doctest_main test_quant4 test_amx test_kernels; do
    g++ -std=gnu++20 -O1 -march=$isa -Wall -Wextra -Werror -fopenmp -I "$root/include" -I "$root/tests" \
      -c "$root/tests/$src.cpp" -o "$out/$isa-$src.o" &
    pids+=($!) objs+=("$out/$isa-$src.o")
  done
  for pid in "${pids[@]}"; do wait "$pid"; done  # each compile's own status
  g++ -fopenmp "${objs[@]}" -o "$out/kernels-$isa"
  (cd "$root/tests" && OMP_NUM_THREADS=2 "$out/kernels-$isa" --minimal)
  echo "isa-check: the kernel tests pass built for $isa"
done
