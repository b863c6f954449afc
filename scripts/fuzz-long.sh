#!/usr/bin/env bash
# Long libFuzzer runs of every target, one at a time, with a summary table of executions,
# coverage and crashes (the figures of docs/reliability.md).
# Usage: scripts/fuzz-long.sh BUILD_DIR SECONDS_PER_TARGET [RUNS] [TARGET...]
#   BUILD_DIR           configured and built as by fuzz-smoke.sh (done here if needed)
#   SECONDS_PER_TARGET  time limit of each target (-max_total_time)
#   RUNS                stop a target after this many executions (-runs; default: no limit)
#   TARGET...           only these targets (default: every fuzz/fuzz_*.cpp)
# Each target starts from its seeds and the corpus earlier runs left in BUILD_DIR/fuzz-corpus/,
# single-threaded (run them one after another on a shared machine). Crash inputs are kept as
# BUILD_DIR/fuzz-artifacts/<target>/crash-*, leak-*, timeout-*, oom-*; logs as BUILD_DIR/<target>.long.log.
# Prints a Markdown table: target | executions | exec/s | cov | ft | corpus | crashes; exits
# non-zero if any target crashed.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build=${1:?usage: fuzz-long.sh BUILD_DIR SECONDS_PER_TARGET [RUNS] [TARGET...]}
seconds=${2:?usage: fuzz-long.sh BUILD_DIR SECONDS_PER_TARGET [RUNS] [TARGET...]}
runs=${3:--1}
shift 3 2>/dev/null || shift $#
cxx=${FATHOM_FUZZ_CXX:-clang++}
source "$root/scripts/fuzz-targets.sh"
build=$(mkdir -p "$build" && cd "$build" && pwd)

if [[ $# -gt 0 ]]; then targets=("$@"); else mapfile -t targets < <(fuzz_targets); fi
if [[ ! -f $build/build.ninja ]]; then
  CXX=$cxx cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DFATHOM_BUILD_FUZZ=ON -DFATHOM_BUILD_TESTS=OFF -DFATHOM_BUILD_BENCH=OFF -DFATHOM_BUILD_EXAMPLES=OFF >/dev/null
fi
cmake --build "$build" --target "${targets[@]}" -j2 >/dev/null
seeds=$build/fuzz-seeds
write_runtime_seeds "$seeds"

echo "fuzz-long: $(date -u +%Y-%m-%dT%H:%MZ), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), ${seconds}s per target, runs ${runs}"
echo
echo "| target | executions | exec/s | cov | ft | corpus | crashes |"
echo "|---|---:|---:|---:|---:|---:|---:|"
status=0
for t in "${targets[@]}"; do
  corpus=$build/fuzz-corpus/$t
  artifacts=$build/fuzz-artifacts/$t/
  mkdir -p "$corpus" "$artifacts"
  mapfile -t seed_dirs < <(fuzz_seed_dirs "$t" "$seeds")
  dict=$(fuzz_dict "$t")
  log=$build/$t.long.log
  rc=0
  (cd "$build" && "./fuzz/$t" -max_total_time="$seconds" -runs="$runs" -max_len=4096 -timeout=10 \
      -rss_limit_mb=2048 -artifact_prefix="$artifacts" ${dict:+-dict="$dict"} -print_final_stats=1 \
      "$corpus" "${seed_dirs[@]}" >"$log" 2>&1) || rc=$?
  execs=$(grep -oE 'stat::number_of_executed_units: *[0-9]+' "$log" | tail -1 | grep -o '[0-9]*$' || echo "?")
  rate=$(grep -oE 'stat::average_exec_per_sec: *[0-9]+' "$log" | tail -1 | grep -o '[0-9]*$' || echo "?")
  # The last status line ("#N DONE cov: C ft: F corp: K/..." or the last pulse) has the coverage.
  last=$(grep -E '^#[0-9]+' "$log" | tail -1 || true)
  cov=$(sed -n 's/.* cov: \([0-9]*\).*/\1/p' <<<"$last"); ft=$(sed -n 's/.* ft: \([0-9]*\).*/\1/p' <<<"$last")
  corp=$(sed -n 's/.* corp: \([0-9]*\).*/\1/p' <<<"$last")
  crashes=$(find "$artifacts" -type f \( -name 'crash-*' -o -name 'leak-*' -o -name 'timeout-*' -o -name 'oom-*' \) | wc -l)
  echo "| $t | $execs | $rate | ${cov:-?} | ${ft:-?} | ${corp:-?} | $crashes |"
  if [[ $rc -ne 0 || $crashes -ne 0 ]]; then
    status=1
    echo "fuzz-long: $t exited $rc; see $log and $artifacts" >&2
  fi
done
exit $status
