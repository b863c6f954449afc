// Matrix-vector product (decode): weights streamed once per call, so the figure that matters is
// bytes/s against the DRAM limit (~44 GB/s on 2 cores, docs/benchmarks.md).
#include "kernel_bench.hpp"

using namespace fathom;

static void BM_gemv(benchmark::State& state, DType dt) {
  const size_t rows = size_t(state.range(0)), cols = size_t(state.range(1));
  kbench::BenchMatrix m(dt, rows, cols);
  const auto x = kbench::bench_vector(cols);
  std::vector<float> y(rows);
  for (auto _ : state) {
    kernels::gemv(m.view, x.data(), y.data());
    benchmark::DoNotOptimize(y.data());
    benchmark::ClobberMemory();
  }
  kbench::report(state, double(m.bytes), 2.0 * double(rows) * double(cols));
}

BENCHMARK_CAPTURE(BM_gemv, f32, DType::F32)->Args({896, 4864})->Args({4864, 896})->Args({4096, 14336})
    ->Unit(benchmark::kMicrosecond)->UseRealTime();
BENCHMARK_CAPTURE(BM_gemv, bf16, DType::BF16)->Args({896, 4864})->Args({4864, 896})->Args({4096, 14336})
    ->Unit(benchmark::kMicrosecond)->UseRealTime();
BENCHMARK_CAPTURE(BM_gemv, q8, DType::Q8)->Args({896, 4864})->Args({4864, 896})->Args({4096, 14336})
    ->Unit(benchmark::kMicrosecond)->UseRealTime();

// The limit the products are measured against, under the same conditions: streaming read of a
// buffer as large as the 4096x14336 bf16 matrix (117 MB), split over the threads like gemv.
static void BM_read_bandwidth(benchmark::State& state) {
  const size_t n = size_t(4096) * 14336 / 2;  // floats: 117 MB
  std::vector<float> a(n, 1.f);
  for (auto _ : state) {
    float total = 0.f;
    kernels::detail::parallel_chunks(64, kernels::detail::worker_count(n), [&](size_t b, size_t e) {
      using kernels::simd::fvec;
      constexpr size_t W = kernels::simd::W;
      fvec a0(0.f), a1(0.f), a2(0.f), a3(0.f);
      for (size_t i = n * b / 64; i + 4 * W <= n * e / 64; i += 4 * W) {
        a0 += kernels::simd::loadu(&a[i]);
        a1 += kernels::simd::loadu(&a[i + W]);
        a2 += kernels::simd::loadu(&a[i + 2 * W]);
        a3 += kernels::simd::loadu(&a[i + 3 * W]);
      }
      const float s = kernels::simd::hsum((a0 + a1) + (a2 + a3));
#pragma omp atomic
      total += s;
    });
    benchmark::DoNotOptimize(total);
  }
  kbench::report(state, double(n) * 4.0, 0.0);
}
BENCHMARK(BM_read_bandwidth)->Unit(benchmark::kMicrosecond)->UseRealTime();
