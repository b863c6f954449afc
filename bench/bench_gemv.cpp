// Matrix-vector product (decode): weights streamed once per call, so the figure that matters is
// bytes/s against the DRAM limit (~44 GB/s on 2 cores, docs/benchmarks.md).
#include "bench_common.hpp"

using namespace fathom;

static void BM_gemv(benchmark::State& state, DType dt) {
  const size_t rows = size_t(state.range(0)), cols = size_t(state.range(1));
  bench::BenchMatrix m(dt, rows, cols);
  const auto x = bench::bench_vector(cols);
  std::vector<float> y(rows);
  for (auto _ : state) {
    kernels::gemv(m.view, x.data(), y.data());
    benchmark::DoNotOptimize(y.data());
    benchmark::ClobberMemory();
  }
  bench::report(state, double(m.bytes), 2.0 * double(rows) * double(cols));
}

BENCHMARK_CAPTURE(BM_gemv, f32, DType::F32)->Args({896, 4864})->Args({4864, 896})->Args({4096, 14336})
    ->Unit(benchmark::kMicrosecond)->UseRealTime();
BENCHMARK_CAPTURE(BM_gemv, bf16, DType::BF16)->Args({896, 4864})->Args({4864, 896})->Args({4096, 14336})
    ->Unit(benchmark::kMicrosecond)->UseRealTime();
BENCHMARK_CAPTURE(BM_gemv, q8, DType::Q8)->Args({896, 4864})->Args({4864, 896})->Args({4096, 14336})
    ->Unit(benchmark::kMicrosecond)->UseRealTime();
