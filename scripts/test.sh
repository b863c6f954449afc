#!/usr/bin/env bash
# The test command: installs what is missing, builds everything (tests, benchmarks, examples),
# runs the whole doctest/CTest suite, then short bounded fuzzing runs of the input parsers.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build=${FATHOM_BUILD_DIR:-$root/build}
bash "$root/scripts/install-deps.sh"
FATHOM_BUILD_DIR=$build bash "$root/scripts/build.sh" \
  -DFATHOM_BUILD_TESTS=ON -DFATHOM_BUILD_BENCH=ON -DFATHOM_BUILD_EXAMPLES=ON
export FATHOM_SHARED=${FATHOM_SHARED:-$(cd "$root/.." && pwd)/shared}
ctest --test-dir "$build" --output-on-failure -j2
if [[ -x $root/scripts/fuzz-smoke.sh ]]; then
  bash "$root/scripts/fuzz-smoke.sh" "$build-fuzz"
fi
