#!/usr/bin/env bash
# The test command: installs what is missing, builds everything (the test program, every public
# header alone, benchmarks, examples), runs the whole doctest/CTest suite (one CTest test per
# tests/test_*.cpp), the consumer test (tests/consumer/run.sh: find_package, add_subdirectory,
# fathom::tokenizer alone), distributed eval under mpirun (tests/mpi/run.sh), the sanitizer run,
# then short bounded fuzzing runs of the parsers. Prints each step's wall time at the end.
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
stage "consumer test" bash "$root/tests/consumer/run.sh"
if [[ $mpi == ON ]]; then stage "mpi test" bash "$root/tests/mpi/run.sh" "$build/examples/eval"; fi  # about 30 s
# The parsers, the run loop, the depth policies and the kernels again under AddressSanitizer +
# UBSan (each tests/test_<area>.cpp is also a program of its own, test_<area>, built only when
# named), at -O1 with line tables only: what ASan recommends, and under half the compile time of
# -O2 -g (test_gguf_quants: 68 against > 156 CPU s). GCC's -Wmaybe-uninitialized misfires inside
# libstdc++'s <regex> and <functional> at -O1 with sanitizers, so this build alone drops it.
asan_tests=(test_safetensors test_config test_llama2c test_tokenizer_errors test_model_fixtures test_q8_checkpoint
            test_depth test_early_exit test_report test_eval_data test_gguf test_gguf_quants
            test_gguf_checkpoint test_void_tools test_parallel test_quant4 test_reliability test_bf16dot
            test_eval_shard)
stage "sanitizer configure" cmake -S "$root" -B "$build-asan" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  "-DCMAKE_CXX_FLAGS_RELWITHDEBINFO=-O1 -g1 -DNDEBUG -Wno-maybe-uninitialized" -DFATHOM_SANITIZE=ON \
  -DFATHOM_BUILD_BENCH=OFF -DFATHOM_BUILD_EXAMPLES=OFF >/dev/null
stage "sanitizer build" cmake --build "$build-asan" -j"$(nproc)" --target "${asan_tests[@]}"
sanitizer_runs() {
  local t
  for t in "${asan_tests[@]}"; do
    (cd "$root/tests" && OMP_NUM_THREADS=2 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
       "$build-asan/tests/$t" --minimal) || { echo "sanitizer run failed: $t" >&2; return 1; }
  done
}
stage "sanitizer runs" sanitizer_runs
echo "sanitizers: ${#asan_tests[@]} test programs clean under ASan + UBSan"
if [[ -x $root/scripts/fuzz-smoke.sh ]]; then
  stage "fuzz smoke" bash "$root/scripts/fuzz-smoke.sh" "$build-fuzz"
fi
