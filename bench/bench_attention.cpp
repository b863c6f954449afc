// Decode attention of one token at 2k context with Qwen2.5-0.5B's shape: 14 query heads sharing
// 2 kv heads (GQA 7:1), head_dim 64; the cache row of a position holds both kv heads. Each query
// head reads its kv head's keys and values once, so bytes/s counts 14 x T x 64 x 2 elements.
#include <cmath>

#include "kernel_bench.hpp"
#include "fathom/kernels/attention.hpp"

using namespace fathom;

namespace {
constexpr size_t kHeads = 14, kKvHeads = 2, kHeadDim = 64;
}

template <bool kBf16>
static void BM_attend(benchmark::State& state) {
  const size_t T = size_t(state.range(0)), stride = kKvHeads * kHeadDim;
  const auto q = kbench::bench_vector(kHeads * kHeadDim);
  const auto K = kbench::bench_vector(T * stride), V = kbench::bench_vector(T * stride);
  std::vector<uint16_t> Kb(K.size()), Vb(V.size());
  for (size_t i = 0; i < K.size(); ++i) { Kb[i] = f32_to_bf16(K[i]); Vb[i] = f32_to_bf16(V[i]); }
  std::vector<float> scores(T), out(kHeads * kHeadDim);
  const float scale = 1.f / std::sqrt(float(kHeadDim));
  for (auto _ : state) {
    for (size_t h = 0; h < kHeads; ++h) {
      const size_t kv = h / (kHeads / kKvHeads);
      if constexpr (kBf16)
        kernels::attend_bf16(q.data() + h * kHeadDim, Kb.data() + kv * kHeadDim, Vb.data() + kv * kHeadDim, T,
                             stride, kHeadDim, scale, nullptr, scores.data(), out.data() + h * kHeadDim);
      else
        kernels::attend(q.data() + h * kHeadDim, K.data() + kv * kHeadDim, V.data() + kv * kHeadDim, T,
                        stride, kHeadDim, scale, nullptr, scores.data(), out.data() + h * kHeadDim);
    }
    benchmark::DoNotOptimize(out.data());
  }
  const double elems = double(kHeads) * double(T) * double(kHeadDim) * 2.0;
  kbench::report(state, elems * (kBf16 ? 2.0 : 4.0), 2.0 * elems);
}
BENCHMARK_TEMPLATE(BM_attend, false)->Name("BM_attend/f32")->Arg(2048)->Unit(benchmark::kMicrosecond);
BENCHMARK_TEMPLATE(BM_attend, true)->Name("BM_attend/bf16")->Arg(2048)->Unit(benchmark::kMicrosecond);

// The same work with attend_group: the 7 query heads of a kv head in one pass over its cache.
static void BM_attend_group_f32(benchmark::State& state) {
  const size_t T = size_t(state.range(0)), stride = kKvHeads * kHeadDim, G = kHeads / kKvHeads;
  const auto q = kbench::bench_vector(kHeads * kHeadDim);
  const auto K = kbench::bench_vector(T * stride), V = kbench::bench_vector(T * stride);
  std::vector<float> scores(G * T), out(kHeads * kHeadDim);
  const float scale = 1.f / std::sqrt(float(kHeadDim));
  for (auto _ : state) {
    for (size_t kv = 0; kv < kKvHeads; ++kv)
      kernels::attend_group(q.data() + kv * G * kHeadDim, kHeadDim, G, K.data() + kv * kHeadDim,
                            V.data() + kv * kHeadDim, T, stride, kHeadDim, scale, nullptr,
                            scores.data(), out.data() + kv * G * kHeadDim, kHeadDim);
    benchmark::DoNotOptimize(out.data());
  }
  const double elems = double(kHeads) * double(T) * double(kHeadDim) * 2.0;
  kbench::report(state, elems * 4.0, 2.0 * elems);
}
BENCHMARK(BM_attend_group_f32)->Name("BM_attend_group/f32")->Arg(2048)->Unit(benchmark::kMicrosecond);

static void BM_attend_group_bf16(benchmark::State& state) {
  const size_t T = size_t(state.range(0)), stride = kKvHeads * kHeadDim, G = kHeads / kKvHeads;
  const auto q = kbench::bench_vector(kHeads * kHeadDim);
  const auto K = kbench::bench_vector(T * stride), V = kbench::bench_vector(T * stride);
  std::vector<uint16_t> Kb(K.size()), Vb(V.size());
  for (size_t i = 0; i < K.size(); ++i) { Kb[i] = f32_to_bf16(K[i]); Vb[i] = f32_to_bf16(V[i]); }
  std::vector<float> scores(G * T), out(kHeads * kHeadDim);
  const float scale = 1.f / std::sqrt(float(kHeadDim));
  for (auto _ : state) {
    for (size_t kv = 0; kv < kKvHeads; ++kv)
      kernels::attend_group_bf16(q.data() + kv * G * kHeadDim, kHeadDim, G, Kb.data() + kv * kHeadDim,
                                 Vb.data() + kv * kHeadDim, T, stride, kHeadDim, scale, nullptr,
                                 scores.data(), out.data() + kv * G * kHeadDim, kHeadDim);
    benchmark::DoNotOptimize(out.data());
  }
  const double elems = double(kHeads) * double(T) * double(kHeadDim) * 2.0;
  kbench::report(state, elems * 2.0, 2.0 * elems);
}
BENCHMARK(BM_attend_group_bf16)->Name("BM_attend_group/bf16")->Arg(2048)->Unit(benchmark::kMicrosecond);
