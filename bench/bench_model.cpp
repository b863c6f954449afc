// End-to-end tokens/s: prefill of 512 tokens and decode (at 64..128 tokens of context) on a
// randomly initialised model with Qwen2.5-0.5B's shape (bf16, and converted to Q8 / f32 at load)
// and on the real stories260K and SmolLM2-135M-Instruct (GGUF, held as f32 / bf16 / Q8 / natively as
// Q4_1), plus the
// GGUF's load time from the page cache (warm) and from disk (cold: the file's cached pages are
// dropped with posix_fadvise before each load). GB/s is weight bytes read per decoded token × tokens/s; the
// bandwidth bound is DRAM bandwidth ÷ weight bytes per token (docs/benchmarks.md).
#include "bandwidth.hpp"
#include "bench_common.hpp"

#include <fcntl.h>
#include <unistd.h>

#include "fathom/model/full_depth.hpp"

// load_model of the SmolLM2 GGUF as held by default (Q8 matrices). cold: evict the file's pages
// first (POSIX_FADV_DONTNEED drops clean cached pages nobody maps), so the load reads the disk.
static void BM_LoadGguf(benchmark::State& state, bool cold) {
  const auto path = fathom::shared_file(bench::kSmolLM2Gguf);
  for (auto _ : state) {
    if (cold) {
      state.PauseTiming();
      const int fd = ::open(path.c_str(), O_RDONLY);
      if (fd >= 0) {
        ::posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
        ::close(fd);
      }
      state.ResumeTiming();
    }
    auto m = fathom::load_model(path);
    benchmark::DoNotOptimize(m.get());
  }
}

static void BM_Prefill(benchmark::State& state, const std::string& name, size_t n) {
  const auto& m = bench::model(name);
  const auto ids = bench::prompt(m, n);
  fathom::Session s(m, {int64_t(n)});
  for (auto _ : state) {
    s.reset();
    auto logits = s.forward(ids);
    benchmark::DoNotOptimize(logits.data());
  }
  state.counters["tok/s"] = benchmark::Counter(double(state.iterations() * n), benchmark::Counter::kIsRate);
}

static void BM_Decode(benchmark::State& state, const std::string& name) {
  fathom::FullDepth full;
  bench::decode_loop(state, bench::model(name), full);
}

// The same with bf16 activations (kernels/bf16dot.hpp: opt-in, inexact; bf16 weights only).
static void BM_PrefillBf16Acts(benchmark::State& state, const std::string& name, size_t n) {
  fathom::kernels::set_bf16_activations(true);
  BM_Prefill(state, name, n);
  fathom::kernels::set_bf16_activations(false);
}
static void BM_DecodeBf16Acts(benchmark::State& state, const std::string& name) {
  fathom::kernels::set_bf16_activations(true);
  BM_Decode(state, name);
  fathom::kernels::set_bf16_activations(false);
}

BENCHMARK_CAPTURE(BM_Prefill, qwen_bf16_512, std::string("qwen-bf16"), 512)->Unit(benchmark::kMillisecond)->Iterations(2)->UseRealTime();
BENCHMARK_CAPTURE(BM_Prefill, qwen_q8_512, std::string("qwen-q8"), 512)->Unit(benchmark::kMillisecond)->Iterations(2)->UseRealTime();
BENCHMARK_CAPTURE(BM_Decode, qwen_bf16, std::string("qwen-bf16"))->Unit(benchmark::kMillisecond)->MinTime(2.0)->UseRealTime();
BENCHMARK_CAPTURE(BM_PrefillBf16Acts, qwen_bf16acts_512, std::string("qwen-bf16"), 512)->Unit(benchmark::kMillisecond)->Iterations(2)->UseRealTime();
BENCHMARK_CAPTURE(BM_DecodeBf16Acts, qwen_bf16acts, std::string("qwen-bf16"))->Unit(benchmark::kMillisecond)->MinTime(2.0)->UseRealTime();
BENCHMARK_CAPTURE(BM_PrefillBf16Acts, smollm2_bf16acts_256, std::string("smollm2-bf16"), 256)->Unit(benchmark::kMillisecond)->Iterations(3)->UseRealTime();
BENCHMARK_CAPTURE(BM_DecodeBf16Acts, smollm2_bf16acts, std::string("smollm2-bf16"))->Unit(benchmark::kMillisecond)->MinTime(1.0)->UseRealTime();
BENCHMARK_CAPTURE(BM_Decode, qwen_q8, std::string("qwen-q8"))->Unit(benchmark::kMillisecond)->MinTime(2.0)->UseRealTime();
BENCHMARK_CAPTURE(BM_Decode, qwen_f32, std::string("qwen-f32"))->Unit(benchmark::kMillisecond)->MinTime(2.0)->UseRealTime();
BENCHMARK_CAPTURE(BM_Prefill, smollm2_f32_256, std::string("smollm2-f32"), 256)->Unit(benchmark::kMillisecond)->Iterations(3)->UseRealTime();
BENCHMARK_CAPTURE(BM_Prefill, smollm2_bf16_256, std::string("smollm2-bf16"), 256)->Unit(benchmark::kMillisecond)->Iterations(3)->UseRealTime();
BENCHMARK_CAPTURE(BM_Prefill, smollm2_q8_256, std::string("smollm2-q8"), 256)->Unit(benchmark::kMillisecond)->Iterations(3)->UseRealTime();
BENCHMARK_CAPTURE(BM_Prefill, smollm2_native_256, std::string("smollm2-native"), 256)->Unit(benchmark::kMillisecond)->Iterations(3)->UseRealTime();
BENCHMARK_CAPTURE(BM_Decode, smollm2_native, std::string("smollm2-native"))->Unit(benchmark::kMillisecond)->MinTime(1.0)->UseRealTime();
BENCHMARK_CAPTURE(BM_Decode, smollm2_f32, std::string("smollm2-f32"))->Unit(benchmark::kMillisecond)->MinTime(1.0)->UseRealTime();
BENCHMARK_CAPTURE(BM_Decode, smollm2_bf16, std::string("smollm2-bf16"))->Unit(benchmark::kMillisecond)->MinTime(1.0)->UseRealTime();
BENCHMARK_CAPTURE(BM_Decode, smollm2_q8, std::string("smollm2-q8"))->Unit(benchmark::kMillisecond)->MinTime(1.0)->UseRealTime();
BENCHMARK_CAPTURE(BM_LoadGguf, smollm2_warm, false)->Unit(benchmark::kMillisecond)->Iterations(3)->UseRealTime();
BENCHMARK_CAPTURE(BM_LoadGguf, smollm2_cold, true)->Unit(benchmark::kMillisecond)->Iterations(3)->UseRealTime();
BENCHMARK_CAPTURE(BM_Prefill, stories260K_256, std::string("stories260K"), 256)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK_CAPTURE(BM_Decode, stories260K, std::string("stories260K"))->Unit(benchmark::kMicrosecond)->UseRealTime();

// The decode bound: read bandwidth measured in the same program (bandwidth.hpp).
using bench::BM_read_bandwidth;
BENCHMARK_CAPTURE(BM_read_bandwidth, plain, false)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK_CAPTURE(BM_read_bandwidth, prefetch, true)->Unit(benchmark::kMillisecond)->UseRealTime();
