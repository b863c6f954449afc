#!/usr/bin/env bash
# Builds bench/ab: the kernels of commit OLD and of the working tree in one program, for
# before/after ratios measured interleaved (a VM's bandwidth drifts too much between processes).
#   bash bench/ab/ab.sh OLD [OUT]      then   OUT/ab 10 1536 576 cold      (see main.cpp)
set -euo pipefail
old=${1:?usage: ab.sh OLD-COMMIT [OUT-DIR]}
root=$(git rev-parse --show-toplevel)
out=${2:-$root/build/ab}
mkdir -p "$out/old"
git -C "$root" archive "$old" include bench | tar -x -C "$out/old"
flags=(-std=gnu++20 -O3 -march=native -fopenmp)
here=$root/bench/ab
g++ "${flags[@]}" -DSIDE_OLD -DSIDE_NS=fathom_old -I "$out/old/include" -I "$out/old/bench" -I "$here" \
  -c "$here/side.cpp" -o "$out/old.o" &
g++ "${flags[@]}" -DSIDE_NS=fathom_new -I "$root/include" -I "$root/bench" -I "$here" -c "$here/side.cpp" -o "$out/new.o"
wait
g++ "${flags[@]}" -I "$root/include" -I "$root/bench" -I "$here" "$here/main.cpp" "$out/old.o" "$out/new.o" -o "$out/ab" -lbenchmark -lpthread
echo "$out/ab"
