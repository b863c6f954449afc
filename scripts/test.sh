#!/usr/bin/env bash
# The test command: installs what is missing, builds everything (the test program, every public
# header alone, benchmarks, examples), runs the whole doctest/CTest suite (one CTest test per
# tests/test_*.cpp), the kernel tests built for AVX2 and SSE2 (scripts/isa-check.sh), the
# consumer test (tests/consumer/run.sh: find_package, add_subdirectory, fathom::tokenizer alone),
# distributed eval under mpirun (tests/mpi/run.sh), the sanitizer run, then short bounded fuzzing
# runs of the parsers. Prints each step's wall time at the end.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build=${FATHOM_BUILD_DIR:-$root/build}
# stage <name> <command...>: runs it and prints its wall time when it ends; all the times again at
# the end (and on failure), so a slow CI run says which step grew.
times=()
stage() {
  local name=$1 t0=$SECONDS rc=0
  shift
  "$@" || rc=$?
  times+=("$(printf '%5d s  %s' $((SECONDS - t0)) "$name")")
  echo "test.sh: ${times[-1]}$( ((rc)) && echo " (exit $rc)")" >&2
  return $rc
}
report_times() { ((${#times[@]})) && printf 'test.sh: %s\n' "${times[@]}" >&2; return 0; }
trap report_times EXIT
stage "install missing packages" bash "$root/scripts/install-deps.sh"
stage "layering check" bash "$root/scripts/check-includes.sh"
# With OpenMPI installed (install-deps.sh installs it) eval is built with MPI and tests/mpi/run.sh
# runs it under mpirun -np 2 / 3 against one process; run by hand it behaves as the plain build.
mpi=OFF
command -v mpirun >/dev/null && command -v mpicxx >/dev/null && mpi=ON
stage "build (tests, benchmarks, examples)" env FATHOM_BUILD_DIR="$build" bash "$root/scripts/build.sh" \
  -DFATHOM_BUILD_TESTS=ON -DFATHOM_BUILD_BENCH=ON -DFATHOM_BUILD_EXAMPLES=ON -DFATHOM_MPI=$mpi
export FATHOM_SHARED=${FATHOM_SHARED:-$(cd "$root/.." && pwd)/shared}
stage "header check" cmake --build "$build" -j"$(nproc)" --target fathom_header_check  # every public header alone
stage "ctest" ctest --test-dir "$build" --output-on-failure -j2
stage "fallback kernels" bash "$root/scripts/isa-check.sh" "$build/isa"  # AVX2 and SSE2 builds, about 35 s
stage "consumer test" bash "$root/tests/consumer/run.sh"
if [[ $mpi == ON ]]; then stage "mpi test" bash "$root/tests/mpi/run.sh" "$build/examples/eval"; fi  # about 30 s
# The parsers, the run loop, the depth policies and the kernels again under AddressSanitizer +
# UBSan: the program fathom_sanitizer_tests (the test files listed in tests/CMakeLists.txt,
# FATHOM_SANITIZER_TESTS, in two batch translation units), at -O1 with line tables only: what ASan
# recommends, and under half the compile time of -O2 -g. GCC's -Wmaybe-uninitialized misfires
# inside libstdc++'s <regex> and <functional> at -O1 with sanitizers, so this build alone drops it.
stage "sanitizer configure" cmake -S "$root" -B "$build-asan" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  "-DCMAKE_CXX_FLAGS_RELWITHDEBINFO=-O1 -g1 -DNDEBUG -Wno-maybe-uninitialized" -DFATHOM_SANITIZE=ON \
  -DFATHOM_BUILD_BENCH=OFF -DFATHOM_BUILD_EXAMPLES=OFF >/dev/null
stage "sanitizer build" cmake --build "$build-asan" -j"$(nproc)" --target fathom_sanitizer_tests
stage "sanitizer runs" env -C "$root/tests" OMP_NUM_THREADS=2 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
  "$build-asan/tests/fathom_sanitizer_tests" --minimal
echo "sanitizers: the test files of fathom_sanitizer_tests clean under ASan + UBSan"
if [[ -x $root/scripts/fuzz-smoke.sh ]]; then
  stage "fuzz smoke" bash "$root/scripts/fuzz-smoke.sh" "$build-fuzz"
fi
