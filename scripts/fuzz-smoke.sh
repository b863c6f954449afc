#!/usr/bin/env bash
# Short bounded libFuzzer runs of every fathom input parser (fuzz/fuzz_*.cpp, see
# docs/reliability.md for the list and the long runs).
# Usage: scripts/fuzz-smoke.sh BUILD_DIR [SECONDS]
# Configures BUILD_DIR with clang++ and -DFATHOM_BUILD_FUZZ=ON (tests/bench/examples off), builds
# every fuzz target, runs each for SECONDS (default 10: 16 targets stay under 3 minutes) starting
# from its seed corpus (fuzz/corpus/<target>/ and seeds written here) with its dictionary, and
# exits non-zero if any target crashes, leaks, times out or trips a sanitizer.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build=${1:?usage: fuzz-smoke.sh BUILD_DIR [SECONDS]}
build=$(mkdir -p "$build" && cd "$build" && pwd)  # the runs below cd into it
seconds=${2:-10}
cxx=${FATHOM_FUZZ_CXX:-clang++}
command -v "$cxx" >/dev/null || { echo "fuzz-smoke: $cxx not found (install clang and libclang-rt-dev)" >&2; exit 1; }
source "$root/scripts/fuzz-targets.sh"

CXX=$cxx cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DFATHOM_BUILD_FUZZ=ON -DFATHOM_BUILD_TESTS=OFF -DFATHOM_BUILD_BENCH=OFF -DFATHOM_BUILD_EXAMPLES=OFF >/dev/null
mapfile -t targets < <(fuzz_targets)
cmake --build "$build" --target "${targets[@]}" -j2

seeds=$build/fuzz-seeds
write_runtime_seeds "$seeds"

status=0
for t in "${targets[@]}"; do
  corpus=$build/fuzz-corpus/$t  # what the runs found, kept between runs of this build folder
  mkdir -p "$corpus"
  mapfile -t seed_dirs < <(fuzz_seed_dirs "$t" "$seeds")
  dict=$(fuzz_dict "$t")
  echo "fuzz-smoke: $t for ${seconds}s"
  if ! (cd "$build" && "./fuzz/$t" -max_total_time="$seconds" -max_len=4096 -timeout=10 -rss_limit_mb=2048 \
          ${dict:+-dict="$dict"} -print_final_stats=1 "$corpus" "${seed_dirs[@]}" 2>"$build/$t.log"); then
    echo "fuzz-smoke: $t FAILED; last lines of $build/$t.log:" >&2
    tail -n 40 "$build/$t.log" >&2
    status=1
  else
    grep -E "stat::number_of_executed_units|stat::new_units_added" "$build/$t.log" | sed "s/^/  $t: /" || true
  fi
done
exit $status
