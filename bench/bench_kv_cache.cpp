// Decode tokens/s against context length with the KV cache held in f32 (exact) and in bf16
// (SessionOptions::kv_precision), on the real SmolLM2-135M-Instruct (GGUF, Q8 in memory: 30
// layers, 3 KV heads of 64: 23 KB of f32 keys and values per position, against 0.14 GB of weights).
// Every decoded token reads its whole cache once per layer: 2 x layers x context x kv_dim
// elements, which at a few thousand positions rivals the weights' bytes. "KV GB/s" counts those
// cache bytes; "GB/s" adds the weights' (docs/benchmarks.md, "KV cache precision").
#include "bench_common.hpp"

#include "fathom/model/full_depth.hpp"

static void BM_DecodeAtContext(benchmark::State& state, const std::string& name, fathom::KvPrecision kv) {
  const auto& m = bench::model(name);
  const size_t context = size_t(state.range(0));
  constexpr size_t window = 16;  // decode context..context+window, then rewind
  fathom::Session s(m, {int64_t(context + window + 1), fathom::KvStrategy::Propagate, kv});
  fathom::FullDepth full;
  s.forward(bench::prompt(m, context), fathom::Phase::PP, full);
  const int32_t next = 1;
  for (auto _ : state) {
    if (s.position() >= int64_t(context + window)) s.rewind(int64_t(context));
    auto logits = s.forward(std::span<const int32_t>(&next, 1), fathom::Phase::RG, full);
    benchmark::DoNotOptimize(logits.data());
  }
  const double elem = kv == fathom::KvPrecision::F32 ? 4.0 : 2.0;
  const double kv_bytes = 2.0 * double(m.n_layers()) * double(context + window / 2) *
                          double(m.layer(0).attn.kv_dim()) * elem;
  const double n = double(state.iterations());
  state.counters["tok/s"] = benchmark::Counter(n, benchmark::Counter::kIsRate);
  state.counters["KV GB/s"] = benchmark::Counter(n * kv_bytes / 1e9, benchmark::Counter::kIsRate);
  state.counters["GB/s"] = benchmark::Counter(n * (kv_bytes + double(m.weight_bytes_per_token())) / 1e9,
                                              benchmark::Counter::kIsRate);
}

#define FATHOM_KV_BENCH(model, tag)                                                                    \
  BENCHMARK_CAPTURE(BM_DecodeAtContext, tag##_f32, std::string(model), fathom::KvPrecision::F32)      \
      ->Arg(256)->Arg(1024)->Arg(4096)->Unit(benchmark::kMillisecond)->MinTime(1.0)->UseRealTime();   \
  BENCHMARK_CAPTURE(BM_DecodeAtContext, tag##_bf16, std::string(model), fathom::KvPrecision::BF16)    \
      ->Arg(256)->Arg(1024)->Arg(4096)->Unit(benchmark::kMillisecond)->MinTime(1.0)->UseRealTime()

FATHOM_KV_BENCH("smollm2-q8", smollm2_q8);
