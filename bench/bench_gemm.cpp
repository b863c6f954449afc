// Matrix-matrix product (prefill of 512 tokens): compute bound, so GFLOP/s against the f32 FMA
// peak (~117 GFLOP/s on 2 cores, docs/benchmarks.md).
#include "kernel_bench.hpp"

#include "fathom/kernels/gemm_rank.hpp"
#include "fathom/kernels/rank_screen.hpp"

#include <string>
#include <utility>

using namespace fathom;

static void gemm_bench(benchmark::State& state, DType dt, bool exact) {
  const size_t rows = size_t(state.range(0)), cols = size_t(state.range(1)), n = size_t(state.range(2));
  kbench::BenchMatrix m(dt, rows, cols);
  const auto X = kbench::bench_vector(n * cols);
  std::vector<float> Y(n * rows);
  const bool prompts_exact = kernels::exact_prefill();
  kernels::set_exact_prefill(false);  // BM_gemm: the int8 kernels for Q8 / GGUF blocks
  for (auto _ : state) {
    if (exact) kernels::gemm_exact(m.view, X.data(), n, Y.data());
    else kernels::gemm(m.view, X.data(), n, Y.data());
    benchmark::DoNotOptimize(Y.data());
    benchmark::ClobberMemory();
  }
  kernels::set_exact_prefill(prompts_exact);
  kbench::report(state, double(m.bytes), 2.0 * double(rows) * double(cols) * double(n));
}
// Q8 and the GGUF blocks: the int8-activation kernels (prompts under set_exact_prefill(false),
// batched decoding); every other format: the f32 gemm.
static void BM_gemm(benchmark::State& state, DType dt) { gemm_bench(state, dt, false); }
// Quantised weights' exact values times f32 activations (kernels::gemm_exact, what prompts run
// by default) against the int8-activation kernels of BM_gemm on the same matrices.
static void BM_gemm_exact(benchmark::State& state, DType dt) { gemm_bench(state, dt, true); }

// bf16 weights with bf16 activations (kernels/bf16dot.hpp; opt-in, inexact): the AMX tile kernel
// where the CPU has AMX-BF16 (kernels/amx.hpp), vdpbf16ps with AMX switched off (one run, both).
static void BM_gemm_bf16acts(benchmark::State& state, bool amx) {
  if (amx && !kernels::amx_bf16_active()) return state.SkipWithError("no AMX-BF16 granted on this CPU");
  kernels::set_amx_allowed(amx);
  kernels::set_bf16_activations(true);
  BM_gemm(state, DType::BF16);
  kernels::set_bf16_activations(false);
  kernels::set_amx_allowed(true);
  state.SetLabel(amx ? "AMX tdpbf16ps" : kernels::kBf16Dot ? "vdpbf16ps" : "no AVX512_BF16: exact path");
}
#define FATHOM_BF16ACTS_BENCH(name, amx)                                                          \
  BENCHMARK_CAPTURE(BM_gemm_bf16acts, name, amx)->Args({896, 4864, 512})->Args({4864, 896, 512}) \
      ->Unit(benchmark::kMillisecond)->UseRealTime();                                             \
  BENCHMARK_CAPTURE(BM_gemm_bf16acts, name, amx)->Args({4096, 14336, 512})->Iterations(3)        \
      ->Unit(benchmark::kMillisecond)->UseRealTime();
FATHOM_BF16ACTS_BENCH(amx, true)
FATHOM_BF16ACTS_BENCH(avx512, false)

// Q8 weights with int8 activations (the int8 prompts, `--prefill int8`): the AMX-INT8 tile kernel
// where the CPU has it (kernels/amx_q8.hpp), the AVX512-VNNI / AVX2 kernel with AMX switched off.
// (shared with the GGUF formats below: the int8 prompt kernel with the tiles allowed or not)
static void int8_prompt_bench(benchmark::State& state, DType dt, bool amx, const std::string& other) {
  if (amx && !kernels::amx_int8_active()) return state.SkipWithError("no AMX-INT8 granted on this CPU");
  kernels::set_amx_allowed(amx);
  BM_gemm(state, dt);
  kernels::set_amx_allowed(true);
  state.SetLabel(amx ? "AMX tdpbssd" : other);
}
static void BM_gemm_q8_int8(benchmark::State& state, bool amx) {
  int8_prompt_bench(state, DType::Q8, amx, kernels::detail::q8_kernel_name());
}
#define FATHOM_Q8INT8_BENCH(name, amx)                                                           \
  BENCHMARK_CAPTURE(BM_gemm_q8_int8, name, amx)->Args({896, 4864, 512})->Args({4864, 896, 512}) \
      ->Unit(benchmark::kMillisecond)->UseRealTime();                                              \
  BENCHMARK_CAPTURE(BM_gemm_q8_int8, name, amx)->Args({4096, 14336, 512})->Iterations(3)        \
      ->Unit(benchmark::kMillisecond)->UseRealTime();
FATHOM_Q8INT8_BENCH(amx, true)
FATHOM_Q8INT8_BENCH(avx512, false)

// The GGUF 4- and 5-bit formats with int8 activations: the AMX-INT8 tile kernel where the CPU has
// it (kernels/amx_gguf.hpp), the AVX512-VNNI / AVX2 kernels (quant4.hpp) with AMX switched off.
static void BM_gemm_gguf_int8(benchmark::State& state, DType dt, bool amx) {
  int8_prompt_bench(state, dt, amx, "int8 block kernel");
}
#define FATHOM_GGUF_INT8_BENCH(name, dt, amx)                                                        \
  BENCHMARK_CAPTURE(BM_gemm_gguf_int8, name, dt, amx)->Args({896, 4864, 512})->Args({4864, 896, 512}) \
      ->Unit(benchmark::kMillisecond)->UseRealTime();
#define FATHOM_GGUF_K_INT8_BENCH(name, dt, amx)                                                       \
  BENCHMARK_CAPTURE(BM_gemm_gguf_int8, name, dt, amx)->Args({1536, 1536, 512})                       \
      ->Unit(benchmark::kMillisecond)->UseRealTime();                                                  \
  BENCHMARK_CAPTURE(BM_gemm_gguf_int8, name, dt, amx)->Args({4096, 14336, 512})->Iterations(3)       \
      ->Unit(benchmark::kMillisecond)->UseRealTime();
FATHOM_GGUF_INT8_BENCH(q4_0_amx, DType::Q4_0, true)
FATHOM_GGUF_INT8_BENCH(q4_0_vnni, DType::Q4_0, false)
FATHOM_GGUF_INT8_BENCH(q4_1_amx, DType::Q4_1, true)
FATHOM_GGUF_INT8_BENCH(q4_1_vnni, DType::Q4_1, false)
FATHOM_GGUF_INT8_BENCH(q5_0_amx, DType::Q5_0, true)
FATHOM_GGUF_INT8_BENCH(q5_0_vnni, DType::Q5_0, false)
FATHOM_GGUF_K_INT8_BENCH(q4_k_amx, DType::Q4_K, true)
FATHOM_GGUF_K_INT8_BENCH(q4_k_vnni, DType::Q4_K, false)

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
// The AMX unit's int8 peak on one core: tdpbssd on tiles that stay in the unit, four independent
// accumulators; full tiles (K = 64 bytes) and the Q8 kernel's (K = 32: one block per instruction).
static void BM_amx_int8_peak(benchmark::State& state) {
  if (!kernels::amx_int8_active()) return state.SkipWithError("no AMX-INT8 granted on this CPU");
  using T = kernels::detail::AmxTiles;
  const bool block = state.range(0) == 32;
  alignas(64) static int8_t ones[16 * 64];
  std::fill(std::begin(ones), std::end(ones), int8_t(1));
  constexpr int kSteps = 1024;
  T::configure(block ? kernels::detail::amx_int8_tiles() : kernels::detail::amx_full_tiles());
  T::load<4>(ones, 64), T::load<5>(ones, 64), T::load<6>(ones, 64), T::load<7>(ones, 64);
  for (auto _ : state) {
    T::zero<0>(), T::zero<1>(), T::zero<2>(), T::zero<3>();
    for (int i = 0; i < kSteps; ++i) {
      T::dpbssd<0, 4, 6>();
      T::dpbssd<1, 4, 7>();
      T::dpbssd<2, 5, 6>();
      T::dpbssd<3, 5, 7>();
    }
  }
  T::release();
  state.SetLabel("GFLOP/s = int8 Gop/s");
  kbench::report(state, 0.0, 4.0 * kSteps * 2.0 * 16 * 16 * double(state.range(0)));
}
BENCHMARK(BM_amx_int8_peak)->Arg(64)->Arg(32);

// The Q8 tile kernel's plans (blocks rescaled together: 1, 2 or 4; the same bits) and, against
// the VNNI kernel, few rows of X (where gemm starts to use the tiles: kAmxQ8MinRows), both
// called directly.
static void BM_amx_q8(benchmark::State& state, int plan) {
  if (plan && !kernels::amx_int8_active()) return state.SkipWithError("no AMX-INT8 granted on this CPU");
  const size_t rows = size_t(state.range(0)), cols = size_t(state.range(1)), n = size_t(state.range(2));
  kbench::BenchMatrix m(DType::Q8, rows, cols);
  const auto X = kbench::bench_vector(n * cols);
  std::vector<float> Y(n * rows);
  namespace kd = kernels::detail;
  for (auto _ : state) {
    switch (plan) {
      case 0: kd::gemm_q8(m.view, X.data(), n, Y.data()); break;
      case 1: kd::gemm_amx_q8<kd::AmxTiles, 1>(m.view, X.data(), n, Y.data()); break;
      case 2: kd::gemm_amx_q8<kd::AmxTiles, 2>(m.view, X.data(), n, Y.data()); break;
      default: kd::gemm_amx_q8<kd::AmxTiles, 4>(m.view, X.data(), n, Y.data()); break;
    }
    benchmark::DoNotOptimize(Y.data());
    benchmark::ClobberMemory();
  }
  state.SetLabel(plan ? "AMX, blocks per rescale " + std::to_string(plan) : kernels::detail::q8_kernel_name());
  kbench::report(state, double(m.bytes), 2.0 * double(rows) * double(cols) * double(n));
}
#define FATHOM_AMX_Q8_PLAN(name, plan)                                                                \
  BENCHMARK_CAPTURE(BM_amx_q8, name, plan)->Args({896, 4864, 512})->Args({4864, 896, 512})          \
      ->Unit(benchmark::kMillisecond)->UseRealTime();                                                 \
  BENCHMARK_CAPTURE(BM_amx_q8, name, plan)->Args({4096, 14336, 512})->Iterations(3)                  \
      ->Unit(benchmark::kMillisecond)->UseRealTime();
FATHOM_AMX_Q8_PLAN(plan1, 1)
FATHOM_AMX_Q8_PLAN(plan2, 2)
FATHOM_AMX_Q8_PLAN(plan4, 4)
BENCHMARK_CAPTURE(BM_amx_q8, rows_amx, 2)->ArgsProduct({{4864}, {896}, {8, 12, 16, 24, 32}})
    ->Unit(benchmark::kMicrosecond)->UseRealTime();
BENCHMARK_CAPTURE(BM_amx_q8, rows_vnni, 0)->ArgsProduct({{4864}, {896}, {8, 12, 16, 24, 32}})
    ->Unit(benchmark::kMicrosecond)->UseRealTime();

// The AMX unit's peak on one core: tdpbf16ps on tiles that stay in the unit (no loads), four
// independent accumulators as in the tile GEMM; 16 x 16 x 32 multiply-adds each.
static void BM_amx_bf16_peak(benchmark::State& state) {
  if (!kernels::amx_bf16_active()) return state.SkipWithError("no AMX-BF16 granted on this CPU");
  using T = kernels::detail::AmxTiles;
  alignas(64) static uint16_t ones[16 * 32];
  std::fill(std::begin(ones), std::end(ones), f32_to_bf16(1.f));
  constexpr int kSteps = 1024;
  T::configure();
  T::load<4>(ones, 64), T::load<5>(ones, 64), T::load<6>(ones, 64), T::load<7>(ones, 64);
  for (auto _ : state) {
    T::zero<0>(), T::zero<1>(), T::zero<2>(), T::zero<3>();
    for (int i = 0; i < kSteps; ++i) {
      T::dpbf16ps<0, 4, 6>();
      T::dpbf16ps<1, 4, 7>();
      T::dpbf16ps<2, 5, 6>();
      T::dpbf16ps<3, 5, 7>();
    }
  }
  T::release();
  kbench::report(state, 0.0, 4.0 * kSteps * 2.0 * 16 * 16 * 32);
}
BENCHMARK(BM_amx_bf16_peak);

#if defined(__AVX512BF16__) && defined(__AVX512BW__)
// Where the tile kernel starts to pay: few rows of X (short prompts, batched decoding) through
// the tile kernel called directly (it steps 32 rows whatever M is) against vdpbf16ps, on Qwen2.5-
// 0.5B's FFN shape (bf16dot.hpp: the tile kernel from one row on).
static void BM_amx_rows(benchmark::State& state, bool amx) {
  if (amx && !kernels::amx_bf16_active()) return state.SkipWithError("no AMX-BF16 granted on this CPU");
  const size_t rows = size_t(state.range(0)), cols = size_t(state.range(1)), n = size_t(state.range(2));
  kbench::BenchMatrix m(DType::BF16, rows, cols);
  const auto X = kbench::bench_vector(n * cols);
  std::vector<float> Y(n * rows);
  const kernels::detail::DenseProduct p{m.view.data, rows, Y.data()};
  const std::span<const kernels::detail::DenseProduct> products(&p, 1);
  kernels::set_amx_allowed(false);
  for (auto _ : state) {
    if (amx) kernels::detail::gemm_amx_bf16<kernels::detail::AmxTiles>(cols, X.data(), n, products);
    else kernels::detail::gemm_bf16dot(cols, X.data(), n, products);
    benchmark::DoNotOptimize(Y.data());
    benchmark::ClobberMemory();
  }
  kernels::set_amx_allowed(true);
  state.SetLabel(amx ? "AMX tdpbf16ps" : "vdpbf16ps");
  kbench::report(state, double(m.bytes), 2.0 * double(rows) * double(cols) * double(n));
}
BENCHMARK_CAPTURE(BM_amx_rows, amx, true)->ArgsProduct({{4864}, {896}, {1, 4, 8, 12, 16, 24, 32, 64}})
    ->Unit(benchmark::kMicrosecond)->UseRealTime();
BENCHMARK_CAPTURE(BM_amx_rows, avx512, false)->ArgsProduct({{4864}, {896}, {1, 4, 8, 12, 16, 24, 32, 64}})
    ->Unit(benchmark::kMicrosecond)->UseRealTime();
#endif  // AVX512_BF16
#endif

// The big shape takes ~0.5 s per call: a few iterations are enough.
#define FATHOM_GEMM_BENCH(name, dt)                                                         \
  BENCHMARK_CAPTURE(BM_gemm, name, dt)->Args({896, 4864, 512})->Args({4864, 896, 512})     \
      ->Unit(benchmark::kMillisecond)->UseRealTime();                                       \
  BENCHMARK_CAPTURE(BM_gemm, name, dt)->Args({4096, 14336, 512})->Iterations(3)            \
      ->Unit(benchmark::kMillisecond)->UseRealTime();
FATHOM_GEMM_BENCH(f32, DType::F32)
FATHOM_GEMM_BENCH(bf16, DType::BF16)
FATHOM_GEMM_BENCH(q8, DType::Q8)
FATHOM_GEMM_BENCH(q4_0, DType::Q4_0)
FATHOM_GEMM_BENCH(q4_1, DType::Q4_1)
FATHOM_GEMM_BENCH(q5_0, DType::Q5_0)
// K-quants: whole 256-blocks only (1536 x 1536 and the Llama-8B FFN)
#define FATHOM_GEMM_K_BENCH(name, dt)                                                       \
  BENCHMARK_CAPTURE(BM_gemm, name, dt)->Args({1536, 1536, 512})                             \
      ->Unit(benchmark::kMillisecond)->UseRealTime();                                       \
  BENCHMARK_CAPTURE(BM_gemm, name, dt)->Args({4096, 14336, 512})->Iterations(3)            \
      ->Unit(benchmark::kMillisecond)->UseRealTime();
FATHOM_GEMM_K_BENCH(q8_1536, DType::Q8)
FATHOM_GEMM_K_BENCH(q4_1_1536, DType::Q4_1)
FATHOM_GEMM_K_BENCH(q4_k_1536, DType::Q4_K)
FATHOM_GEMM_K_BENCH(q6_k_1536, DType::Q6_K)
BENCHMARK_CAPTURE(BM_gemm_exact, q8, DType::Q8)->Args({896, 4864, 512})->Args({4864, 896, 512})
    ->Args({49152, 576, 256})->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK_CAPTURE(BM_gemm, q8_readout, DType::Q8)->Args({49152, 576, 256})->Unit(benchmark::kMillisecond)->UseRealTime();

// The lens readout's product reduced as it is computed (kernels/gemm_rank.hpp): per row the argmax
// and the count above one target, the [256, 49,152] logits never stored. Arg 2: 1 = weights
// pre-packed to f32 panels once outside the loop (what lens::BatchReader keeps), 0 = packed per call.
static void BM_gemm_rank(benchmark::State& state, DType dt) {
  const size_t rows = size_t(state.range(0)), cols = size_t(state.range(1)), n = size_t(state.range(2));
  kbench::BenchMatrix m(dt, rows, cols);
  const auto X = kbench::bench_vector(n * cols);
  std::vector<int32_t> targets(n);
  for (size_t i = 0; i < n; ++i) targets[i] = int32_t(i * 7919 % rows);
  const kernels::PackedPanels packed = state.range(3) ? kernels::PackedPanels(m.view) : kernels::PackedPanels();
  for (auto _ : state) {
    auto r = kernels::gemm_rank(m.view, state.range(3) ? &packed : nullptr, X.data(), n, targets, 1);
    benchmark::DoNotOptimize(r.argmax.data());
  }
  kbench::report(state, double(m.bytes), 2.0 * double(rows) * double(cols) * double(n));
}
BENCHMARK_CAPTURE(BM_gemm_rank, q8_readout, DType::Q8)->Args({49152, 576, 256, 1})->Args({49152, 576, 256, 0})
    ->Unit(benchmark::kMillisecond)->UseRealTime();
// The same statistics from the integer screen and an exact recheck of the undecided columns
// (kernels/rank_screen.hpp; without AVX512-VNNI it is gemm_rank's pass): a Q8 matrix exactly, a
// bf16 one rounded to int16 blocks (a wider bound, more rechecks). GFLOP/s counts the f32
// product it replaces; "rechecked" is the columns per row computed exactly (random states and
// targets: the targets sit mid-vocabulary, where the values are densest).
static void BM_gemm_rank_screened(benchmark::State& state, DType dt) {
  const size_t rows = size_t(state.range(0)), cols = size_t(state.range(1)), n = size_t(state.range(2));
  kbench::BenchMatrix m(dt, rows, cols);
  const auto X = kbench::bench_vector(n * cols);
  std::vector<int32_t> targets(n);
  for (size_t i = 0; i < n; ++i) targets[i] = int32_t(i * 7919 % rows);
  const kernels::RankScreen screen(m.view);
  int64_t rechecked = 0;
  for (auto _ : state) {
    auto r = kernels::gemm_rank_screened(screen, X.data(), n, targets, 1);
    rechecked = r.rechecked;
    benchmark::DoNotOptimize(r.argmax.data());
  }
  kbench::report(state, double(m.bytes), 2.0 * double(rows) * double(cols) * double(n));
  state.counters["rechecked"] = double(rechecked) / double(n);
  state.SetLabel(kernels::kRankScreen ? "vpdpwssd screen" : "no AVX512-VNNI: gemm_rank");
}
BENCHMARK_CAPTURE(BM_gemm_rank_screened, q8_readout, DType::Q8)->Args({49152, 576, 256})
    ->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK_CAPTURE(BM_gemm_rank_screened, bf16_readout, DType::BF16)->Args({49152, 576, 256})
    ->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK_CAPTURE(BM_gemm_rank, bf16_readout, DType::BF16)->Args({49152, 576, 256, 1})
    ->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK_CAPTURE(BM_gemm_exact, q4_1, DType::Q4_1)->Args({896, 4864, 512})->Args({4864, 896, 512})
    ->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK_CAPTURE(BM_gemm_exact, q4_k_1536, DType::Q4_K)->Args({1536, 1536, 512})->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK_CAPTURE(BM_gemm_exact, q6_k_1536, DType::Q6_K)->Args({1536, 1536, 512})->Unit(benchmark::kMillisecond)->UseRealTime();

// The limit the products are measured against, under the same conditions: f32 FMA throughput
// with independent vector accumulators per thread (no memory traffic): 24 where there are 32
// vector registers (AVX-512), 12 where there are 16 (AVX2: 24 would spill to the stack and measure
// loads and stores, half the FMA rate on a Zen 3) — enough to cover FMA latency x pipes either
// way. The updates are a fold, not a loop over an array: GCC interchanges a `for k, for i` nest into one dependent chain
// per accumulator kept in memory, which measured store-forwarding latency, not the FMA units.
template <size_t... I>
static void fma_round(kernels::simd::fvec* acc, const kernels::simd::fvec& a,
                      const kernels::simd::fvec& b, std::index_sequence<I...>) {
  ((acc[I] = xsimd::fma(acc[I], a, b)), ...);
}
static void BM_fma_peak(benchmark::State& state) {
  constexpr size_t kIters = 1 << 20, kChains = kernels::simd::W >= 16 ? 24 : 12;
  const int threads = kernels::detail::worker_count(size_t(1) << 30);
  for (auto _ : state) {
    float total = 0.f;
    // 16 chunks per thread: the pool hands chunks out dynamically (kernels/parallel.hpp)
    kernels::detail::parallel_chunks(size_t(threads) * 16, threads, [&](size_t c0, size_t c1) {
      using kernels::simd::fvec;
      fvec acc[kChains];
      for (size_t i = 0; i < kChains; ++i) acc[i] = fvec(float(i));
      const fvec a(0.999f), b(0.001f);
      for (size_t k = 0; k < (c1 - c0) * (kIters / 16); ++k) fma_round(acc, a, b, std::make_index_sequence<kChains>{});
      fvec s(0.f);
      for (size_t i = 0; i < kChains; ++i) s += acc[i];
      const float v = kernels::simd::hsum(s);
#pragma omp atomic
      total += v;
    });
    benchmark::DoNotOptimize(total);
  }
  kbench::report(state, 0.0, 2.0 * double(kChains * kernels::simd::W * kIters) * threads);
}
BENCHMARK(BM_fma_peak)->Unit(benchmark::kMillisecond)->UseRealTime();
