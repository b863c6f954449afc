#!/usr/bin/env bash
# The test command: installs what is missing, builds everything (the test program, every public
# header alone, benchmarks, examples), runs the whole doctest/CTest suite (one CTest test per
# tests/test_*.cpp), the consumer test (tests/consumer/run.sh: find_package, add_subdirectory,
# fathom::tokenizer alone), distributed eval under mpirun (tests/mpi/run.sh), the sanitizer runs, then short bounded fuzzing runs of the parsers.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build=${FATHOM_BUILD_DIR:-$root/build}
bash "$root/scripts/install-deps.sh"
bash "$root/scripts/check-includes.sh"
# With OpenMPI installed (install-deps.sh installs it) eval is built with MPI and tests/mpi/run.sh
# runs it under mpirun -np 2 / 3 against one process; run by hand it behaves as the plain build.
mpi=OFF
command -v mpirun >/dev/null && command -v mpicxx >/dev/null && mpi=ON
FATHOM_BUILD_DIR=$build bash "$root/scripts/build.sh" \
  -DFATHOM_BUILD_TESTS=ON -DFATHOM_BUILD_BENCH=ON -DFATHOM_BUILD_EXAMPLES=ON -DFATHOM_MPI=$mpi
export FATHOM_SHARED=${FATHOM_SHARED:-$(cd "$root/.." && pwd)/shared}
cmake --build "$build" -j"$(nproc)" --target fathom_header_check  # every public header alone
ctest --test-dir "$build" --output-on-failure -j2
bash "$root/tests/consumer/run.sh"
if [[ $mpi == ON ]]; then bash "$root/tests/mpi/run.sh" "$build/examples/eval"; fi  # about 30 s
# The parsers, the run loop and the depth policies again under AddressSanitizer + UBSan (each
# tests/test_<area>.cpp is also a program of its own, test_<area>, built only when named).
asan_tests=(test_safetensors test_config test_llama2c test_tokenizer_errors test_model_fixtures test_q8_checkpoint
            test_depth test_early_exit test_report test_eval_data test_gguf test_gguf_quants
            test_gguf_checkpoint test_void_tools test_parallel test_quant4 test_reliability test_bf16dot)
cmake -S "$root" -B "$build-asan" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DFATHOM_SANITIZE=ON \
  -DFATHOM_BUILD_BENCH=OFF -DFATHOM_BUILD_EXAMPLES=OFF >/dev/null
cmake --build "$build-asan" -j"$(nproc)" --target "${asan_tests[@]}"
for t in "${asan_tests[@]}"; do
  (cd "$root/tests" && OMP_NUM_THREADS=2 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
     "$build-asan/tests/$t" --minimal) || { echo "sanitizer run failed: $t" >&2; exit 1; }
done
echo "sanitizers: ${#asan_tests[@]} test programs clean under ASan + UBSan"
if [[ -x $root/scripts/fuzz-smoke.sh ]]; then
  bash "$root/scripts/fuzz-smoke.sh" "$build-fuzz"
fi
