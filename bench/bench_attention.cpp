// Decode attention of one token at 2k context with Qwen2.5-0.5B's shape: 14 query heads sharing
// 2 kv heads (GQA 7:1), head_dim 64, in KvCache's layout (each kv head's rows one after another).
// Each query head reads its kv head's keys and values once, so bytes/s counts 14 x T x 64 x 2
// elements.
#include <algorithm>
#include <cmath>

#include "kernel_bench.hpp"
#include "fathom/kernels/attention.hpp"
#include "fathom/kernels/weight_buffer.hpp"

using namespace fathom;

namespace {
constexpr size_t kHeads = 14, kKvHeads = 2, kHeadDim = 64;
}

template <bool kBf16>
static void BM_attend(benchmark::State& state) {
  const size_t T = size_t(state.range(0)), stride = kHeadDim;
  const auto q = kbench::bench_vector(kHeads * kHeadDim);
  const auto K = kbench::bench_vector(kKvHeads * T * kHeadDim), V = kbench::bench_vector(kKvHeads * T * kHeadDim);
  std::vector<uint16_t> Kb(K.size()), Vb(V.size());
  for (size_t i = 0; i < K.size(); ++i) { Kb[i] = f32_to_bf16(K[i]); Vb[i] = f32_to_bf16(V[i]); }
  std::vector<float> scores(T), out(kHeads * kHeadDim);
  const float scale = 1.f / std::sqrt(float(kHeadDim));
  for (auto _ : state) {
    for (size_t h = 0; h < kHeads; ++h) {
      const size_t kv = h / (kHeads / kKvHeads);
      if constexpr (kBf16)
        kernels::attend_bf16(q.data() + h * kHeadDim, Kb.data() + kv * T * kHeadDim, Vb.data() + kv * T * kHeadDim, T,
                             stride, kHeadDim, scale, nullptr, scores.data(), out.data() + h * kHeadDim);
      else
        kernels::attend(q.data() + h * kHeadDim, K.data() + kv * T * kHeadDim, V.data() + kv * T * kHeadDim, T,
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
  const size_t T = size_t(state.range(0)), stride = kHeadDim, G = kHeads / kKvHeads;
  const auto q = kbench::bench_vector(kHeads * kHeadDim);
  const auto K = kbench::bench_vector(kKvHeads * T * kHeadDim), V = kbench::bench_vector(kKvHeads * T * kHeadDim);
  std::vector<float> scores(G * T), out(kHeads * kHeadDim);
  const float scale = 1.f / std::sqrt(float(kHeadDim));
  for (auto _ : state) {
    for (size_t kv = 0; kv < kKvHeads; ++kv)
      kernels::attend_group(q.data() + kv * G * kHeadDim, kHeadDim, G, K.data() + kv * T * kHeadDim,
                            V.data() + kv * T * kHeadDim, T, stride, kHeadDim, scale, nullptr,
                            scores.data(), out.data() + kv * G * kHeadDim, kHeadDim);
    benchmark::DoNotOptimize(out.data());
  }
  const double elems = double(kHeads) * double(T) * double(kHeadDim) * 2.0;
  kbench::report(state, elems * 4.0, 2.0 * elems);
}
BENCHMARK(BM_attend_group_f32)->Name("BM_attend_group/f32")->Arg(2048)->Unit(benchmark::kMicrosecond);

static void BM_attend_group_bf16(benchmark::State& state) {
  const size_t T = size_t(state.range(0)), stride = kHeadDim, G = kHeads / kKvHeads;
  const auto q = kbench::bench_vector(kHeads * kHeadDim);
  const auto K = kbench::bench_vector(kKvHeads * T * kHeadDim), V = kbench::bench_vector(kKvHeads * T * kHeadDim);
  std::vector<uint16_t> Kb(K.size()), Vb(V.size());
  for (size_t i = 0; i < K.size(); ++i) { Kb[i] = f32_to_bf16(K[i]); Vb[i] = f32_to_bf16(V[i]); }
  std::vector<float> scores(G * T), out(kHeads * kHeadDim);
  const float scale = 1.f / std::sqrt(float(kHeadDim));
  for (auto _ : state) {
    for (size_t kv = 0; kv < kKvHeads; ++kv)
      kernels::attend_group_bf16(q.data() + kv * G * kHeadDim, kHeadDim, G, Kb.data() + kv * T * kHeadDim,
                                 Vb.data() + kv * T * kHeadDim, T, stride, kHeadDim, scale, nullptr,
                                 scores.data(), out.data() + kv * G * kHeadDim, kHeadDim);
    benchmark::DoNotOptimize(out.data());
  }
  const double elems = double(kHeads) * double(T) * double(kHeadDim) * 2.0;
  kbench::report(state, elems * 2.0, 2.0 * elems);
}
BENCHMARK(BM_attend_group_bf16)->Name("BM_attend_group/bf16")->Arg(2048)->Unit(benchmark::kMicrosecond);

// One decode token's attention over every layer's cache of SmolLM2-135M (30 layers, 9 query heads
// sharing 3 kv heads, head_dim 64) at T positions: 20 MB of keys and values at T = 448, more than
// L2 and most of a shared L3, so it streams as decode does. Arg 1: KvCache's layout, each kv
// head's rows one after another (stride 64); arg 0: position-major rows of all three kv heads
// (stride 192), the layout fathom used before: each head's pass reads a slice of every row. Arg
// 2: the cache rows asked for ahead (1), not (0), or as this CPU does by default (-1;
// kernels/attention.hpp's attend_prefetch).
static void BM_attend_model_cache(benchmark::State& state) {
  constexpr size_t L = 30, H = 9, KvH = 3, hd = 64, G = H / KvH;
  const size_t T = size_t(state.range(0));
  const bool head_major = state.range(1) != 0;
  kernels::detail::attend_prefetch_forced() = int(state.range(2));
  const auto q = kbench::bench_vector(H * hd);
  // On huge pages, as KvCache holds it (kernels::WeightBuffer): on 4 KiB pages the Zen 4 read the
  // cache 1.5-1.8x slower at T = 4096 (each 4 KiB a TLB miss and a restart of the prefetchers).
  const size_t n = L * KvH * T * hd;
  kernels::WeightBuffer cache(2 * n * sizeof(float));  // [keys, values][L * KvH * T * hd]
  float* K = cache.as<float>();
  float* V = K + n;
  const auto src = kbench::bench_vector(2 * n);
  std::copy(src.begin(), src.end(), K);
  std::vector<float> scores(G * T), out(H * hd);
  const float scale = 1.f / std::sqrt(float(hd));
  const size_t stride = head_major ? hd : KvH * hd;
  for (auto _ : state) {
    for (size_t l = 0; l < L; ++l)
      for (size_t kv = 0; kv < KvH; ++kv) {
        const size_t at = l * KvH * T * hd + (head_major ? kv * T * hd : kv * hd);
        kernels::attend_group(q.data() + kv * G * hd, hd, G, K + at, V + at, T, stride, hd,
                              scale, nullptr, scores.data(), out.data() + kv * G * hd, hd);
      }
    benchmark::DoNotOptimize(out.data());
  }
  kernels::detail::attend_prefetch_forced() = -1;
  const double elems = double(L) * double(KvH) * double(T) * double(hd) * 2.0;  // keys and values, once
  kbench::report(state, elems * 4.0, 2.0 * elems * G);
}
BENCHMARK(BM_attend_model_cache)
    ->ArgNames({"T", "head_major", "ahead"})
    ->Args({448, 0, -1})
    ->Args({448, 1, -1})
    ->Args({448, 1, 0})
    ->Args({448, 1, 1})
    ->Args({4096, 1, -1})
    ->Args({4096, 1, 0})
    ->Args({4096, 1, 1})
    ->Unit(benchmark::kMillisecond);
