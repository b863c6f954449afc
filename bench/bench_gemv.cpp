// Matrix-vector product (decode). Decode reads every weight once from DRAM, so the cold
// benchmarks cycle through copies of a matrix larger than the caches together and report GB/s of
// weights against the read bandwidth measured in the same program (bandwidth.hpp). The hot ones
// repeat one matrix that stays in L3: the kernels' compute ceiling.
//
//   OMP_NUM_THREADS=2 build/bench/bench_gemv --benchmark_repetitions=5
//     --benchmark_enable_random_interleaving=true --benchmark_report_aggregates_only=true
#include "bandwidth.hpp"
#include "kernel_bench.hpp"

using namespace fathom;

// One gemv per iteration, on the next of `set`'s copies.
static void run_gemv(benchmark::State& state, kbench::ColdMatrices& set) {
  const size_t rows = size_t(state.range(0)), cols = size_t(state.range(1));
  const auto x = kbench::bench_vector(cols);
  std::vector<float> y(rows);
  for (auto _ : state) {
    kernels::gemv(set.next().view, x.data(), y.data());
    benchmark::DoNotOptimize(y.data());
    benchmark::ClobberMemory();
  }
  kbench::report(state, double(set.copies[0]->bytes), 2.0 * double(rows) * double(cols));
}

static void BM_gemv(benchmark::State& state, DType dt) {
  kbench::ColdMatrices set(dt, size_t(state.range(0)), size_t(state.range(1)));
  run_gemv(state, set);
}

static void BM_gemv_hot(benchmark::State& state, DType dt) {
  kbench::ColdMatrices one(dt, size_t(state.range(0)), size_t(state.range(1)), /*min_bytes=*/0, /*min_copies=*/1);
  run_gemv(state, one);
}

// Shapes: Llama-8B's FFN (the target), Qwen2.5-0.5B's MLP and its 151,936-row LM head.
#define FATHOM_GEMV_BENCH(name, dt)                                                                \
  BENCHMARK_CAPTURE(BM_gemv, name, dt)->Args({4096, 14336})->Args({4864, 896})->Args({896, 4864}) \
      ->Args({151936, 896})->Unit(benchmark::kMicrosecond)->UseRealTime();                          \
  BENCHMARK_CAPTURE(BM_gemv_hot, name, dt)->Args({896, 4864})->Args({4864, 896})                   \
      ->Unit(benchmark::kMicrosecond)->UseRealTime();
FATHOM_GEMV_BENCH(f32, DType::F32)
FATHOM_GEMV_BENCH(bf16, DType::BF16)
FATHOM_GEMV_BENCH(q8, DType::Q8)
FATHOM_GEMV_BENCH(q4_0, DType::Q4_0)
FATHOM_GEMV_BENCH(q4_1, DType::Q4_1)
FATHOM_GEMV_BENCH(q5_0, DType::Q5_0)

// SmolLM2-135M's shapes (576 wide, MLP 1536) for the native GGUF formats and Q8; K-quants need
// whole 256-blocks in a row, so they skip the 576-wide shape.
#define FATHOM_GEMV_SMALL(name, dt)                                                                \
  BENCHMARK_CAPTURE(BM_gemv, name, dt)->Args({576, 1536})->Args({4096, 14336})->Args({1536, 4096}) \
      ->Unit(benchmark::kMicrosecond)->UseRealTime();
FATHOM_GEMV_SMALL(small_q8, DType::Q8)
FATHOM_GEMV_SMALL(small_q4_0, DType::Q4_0)
FATHOM_GEMV_SMALL(small_q4_1, DType::Q4_1)
FATHOM_GEMV_SMALL(small_q5_0, DType::Q5_0)
FATHOM_GEMV_SMALL(small_q5_1, DType::Q5_1)
FATHOM_GEMV_SMALL(small_q4_k, DType::Q4_K)
FATHOM_GEMV_SMALL(small_q6_k, DType::Q6_K)
BENCHMARK_CAPTURE(BM_gemv, small_q8, DType::Q8)->Args({1536, 576})->Unit(benchmark::kMicrosecond)->UseRealTime();
BENCHMARK_CAPTURE(BM_gemv, small_q4_1, DType::Q4_1)->Args({1536, 576})->Unit(benchmark::kMicrosecond)->UseRealTime();

// Q8 decode rows with each prefetch plan (kernels/quant.hpp, q8_decode_prefetch; BM_gemv runs the
// CPU's default): third argument 0 = the stream 8 KiB ahead, 1 = the tile's prefetches 8 KiB ahead
// into L2 (on AMD CPUs one line short of whole rows into L1), 2 = the tile's 2 KiB ahead into L1,
// 3 = the stream on two levels (16 KiB into L2, 2 KiB into L1).
static void BM_gemv_q8_prefetch(benchmark::State& state) {
  kernels::detail::q8_decode_prefetch_forced().store(int(state.range(2)));
  BM_gemv(state, DType::Q8);
  kernels::detail::q8_decode_prefetch_forced().store(-1);
}
BENCHMARK(BM_gemv_q8_prefetch)->ArgsProduct({{4096}, {14336}, {0, 1, 2}})->ArgsProduct({{896}, {4864}, {0, 1, 2}})
    ->ArgsProduct({{1536}, {4096}, {0, 1, 2}})->ArgsProduct({{4864}, {896}, {0, 1, 3}})
    ->ArgsProduct({{1536}, {576}, {0, 3}})
    ->Unit(benchmark::kMicrosecond)->UseRealTime();

// The dense rows with and without their software prefetch (kernels::set_dense_prefetch): the third
// argument is the distance in bytes, 0 for none (BM_gemv runs the defaults). Shapes: llama2.c's
// 15M (288 / 768 wide) and 110M (768 / 2048), Qwen2.5-0.5B's MLP, Llama-8B's FFN.
static void BM_gemv_dense_prefetch(benchmark::State& state, DType dt) {
  kernels::set_dense_prefetch(size_t(state.range(2)));
  BM_gemv(state, dt);
  kernels::reset_dense_prefetch();
}
#define FATHOM_DENSE_PREFETCH_BENCH(name, dt)                                                 \
  BENCHMARK_CAPTURE(BM_gemv_dense_prefetch, name, dt)                                          \
      ->ArgsProduct({{768}, {288}, {0, 2048}})->ArgsProduct({{288}, {768}, {0, 2048}})         \
      ->ArgsProduct({{2048}, {768}, {0, 2048}})->ArgsProduct({{768}, {2048}, {0, 2048}})       \
      ->ArgsProduct({{4864}, {896}, {0, 2048}})->ArgsProduct({{896}, {4864}, {0, 2048}})       \
      ->ArgsProduct({{4096}, {14336}, {0, 2048}})->Unit(benchmark::kMicrosecond)->UseRealTime();
FATHOM_DENSE_PREFETCH_BENCH(f32, DType::F32)
FATHOM_DENSE_PREFETCH_BENCH(bf16, DType::BF16)

// A layer's q, k and v (Qwen2.5-0.5B: 896, 128, 128 rows x 896) as three gemv calls or as one
// gemv_fused call (one parallel region; k and v alone are too small to split over threads).
static void BM_qkv(benchmark::State& state, DType dt, bool fused) {
  kbench::ColdMatrices q(dt, 896, 896), k(dt, 128, 896), v(dt, 128, 896);
  const auto x = kbench::bench_vector(896);
  std::vector<float> yq(896), yk(128), yv(128);
  double bytes = 0;
  for (auto _ : state) {
    const auto &Wq = q.next(), &Wk = k.next(), &Wv = v.next();
    if (fused) {
      kernels::gemv_fused({{&Wq.view, yq.data()}, {&Wk.view, yk.data()}, {&Wv.view, yv.data()}}, x.data());
    } else {
      kernels::gemv(Wq.view, x.data(), yq.data());
      kernels::gemv(Wk.view, x.data(), yk.data());
      kernels::gemv(Wv.view, x.data(), yv.data());
    }
    benchmark::ClobberMemory();
    bytes = double(Wq.bytes + Wk.bytes + Wv.bytes);
  }
  kbench::report(state, bytes, 2.0 * 1152 * 896);
}
BENCHMARK_CAPTURE(BM_qkv, bf16_separate, DType::BF16, false)->Unit(benchmark::kMicrosecond)->UseRealTime();
BENCHMARK_CAPTURE(BM_qkv, bf16_fused, DType::BF16, true)->Unit(benchmark::kMicrosecond)->UseRealTime();
BENCHMARK_CAPTURE(BM_qkv, q8_separate, DType::Q8, false)->Unit(benchmark::kMicrosecond)->UseRealTime();
BENCHMARK_CAPTURE(BM_qkv, q8_fused, DType::Q8, true)->Unit(benchmark::kMicrosecond)->UseRealTime();

using bench::BM_read_bandwidth;
BENCHMARK_CAPTURE(BM_read_bandwidth, plain, false)->Unit(benchmark::kMicrosecond)->UseRealTime();
BENCHMARK_CAPTURE(BM_read_bandwidth, prefetch, true)->Unit(benchmark::kMicrosecond)->UseRealTime();
