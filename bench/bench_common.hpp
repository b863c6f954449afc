#pragma once
// Shared set-up of the end-to-end benchmarks: models built once per process, decode loops that
// keep the context length in a fixed window, and the counters every benchmark reports.
#include <benchmark/benchmark.h>

#include <algorithm>
#include <cstdlib>
#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "fathom/core/shared_path.hpp"
#include "fathom/model/load.hpp"
#include "fathom/model/random_model.hpp"
#include "fathom/model/session.hpp"

namespace bench {

// "qwen-bf16", "qwen-q8", "qwen-f32": Qwen2.5-0.5B-shaped random model; "stories260K": the real one;
// "smollm2-f32", "smollm2-bf16", "smollm2-q8": the real SmolLM2-135M-Instruct GGUF (Q8_0 embedding,
// Q4_1 matrices) held in that format; "smollm2-native": as stored (Q4_1 matrices multiplied natively);
// a name ending in ".gguf": that file, as stored.
inline const char* kSmolLM2Gguf = "models/smollm2-135m-instruct/SmolLM2-135M-Instruct.Q4_1.gguf";
inline const fathom::Model& model(const std::string& name) {
  static std::map<std::string, std::unique_ptr<fathom::Model>> cache;
  auto& m = cache[name];
  if (!m) {
    if (name.ends_with(".gguf")) {
      m = fathom::load_model(name, {fathom::WeightFormat::AsStored});
    } else if (name == "stories260K") {
      m = fathom::load_model(fathom::shared_file("models/stories260K/stories260K.bin"));
    } else if (name.starts_with("smollm2-")) {
      const auto w = name == "smollm2-f32"      ? fathom::WeightFormat::F32
                     : name == "smollm2-bf16"   ? fathom::WeightFormat::BF16
                     : name == "smollm2-native" ? fathom::WeightFormat::AsStored
                                                : fathom::WeightFormat::Q8;
      m = fathom::load_model(fathom::shared_file(kSmolLM2Gguf), {w});
    } else {
      auto cfg = fathom::qwen25_05b_config();
      fathom::LoadOptions o;
      if (name == "qwen-q8") o.weights = fathom::WeightFormat::Q8;
      if (name == "qwen-f32") o.weights = fathom::WeightFormat::F32;
      m = fathom::random_model(cfg, fathom::DType::BF16, 1, o);
    }
  }
  return *m;
}

inline std::vector<int32_t> prompt(const fathom::Model& m, size_t n) {
  std::vector<int32_t> ids(n);
  for (size_t i = 0; i < n; ++i) ids[i] = int32_t((i * 7919 + 13) % m.vocab());
  return ids;
}

// Decodes one token per iteration after a `context`-token prefill, rewinding to `context`
// every `window` tokens so every iteration sees a context of context..context+window.
template <class Policy>
void decode_loop(benchmark::State& state, const fathom::Model& m, Policy& policy,
                 fathom::KvStrategy kv = fathom::KvStrategy::Propagate, size_t context = 64,
                 size_t window = 64, fathom::Trace* trace = nullptr) {
  fathom::Session s(m, {int64_t(context + window + 1), kv});
  s.set_trace(trace);
  const auto ids = prompt(m, context);
  s.forward(ids, fathom::Phase::PP, policy);
  int32_t next = 1;
  for (auto _ : state) {
    if (s.position() >= int64_t(context + window)) s.rewind(int64_t(context));
    auto logits = s.forward(std::span<const int32_t>(&next, 1), fathom::Phase::RG, policy);
    benchmark::DoNotOptimize(logits.data());
  }
  state.counters["tok/s"] = benchmark::Counter(double(state.iterations()), benchmark::Counter::kIsRate);
  state.counters["GB/s"] = benchmark::Counter(double(state.iterations()) * double(m.weight_bytes_per_token()) / 1e9,
                                              benchmark::Counter::kIsRate);
}

// The value at quantile q (0..1) of v.
inline double quantile(std::vector<double> v, double q) {
  std::sort(v.begin(), v.end());
  return v[size_t(q * double(v.size() - 1) + 0.5)];
}

// Registers `fn` as "<prefix>/<label>/<context>" for the decode-against-the-read benchmarks
// (bench_decode_bound, bench_decode_steps): SmolLM2-135M-Instruct's GGUF as stored and as Q8 (the
// main job's format), and every GGUF file in FATHOM_BENCH_GGUF (comma-separated paths), as
// stored; at each context in FATHOM_BENCH_CONTEXTS (comma-separated positions, default 256).
// 24 rounds each, timed by the benchmark (manual time).
inline void register_decode_models(const std::string& prefix,
                                   void (*fn)(benchmark::State&, const std::string&)) {
  auto add = [&](const std::string& label, const std::string& name) {
    auto* b = benchmark::RegisterBenchmark((prefix + "/" + label).c_str(), fn, name);
    const char* env = std::getenv("FATHOM_BENCH_CONTEXTS");
    std::stringstream contexts(env ? env : "256");
    for (std::string c; std::getline(contexts, c, ',');)
      if (!c.empty()) b->Arg(std::stoll(c));
    b->Iterations(24)->UseManualTime()->Unit(benchmark::kMillisecond);
  };
  add("smollm2_native", "smollm2-native");
  add("smollm2_q8", "smollm2-q8");
  if (const char* files = std::getenv("FATHOM_BENCH_GGUF")) {
    std::stringstream list(files);
    for (std::string path; std::getline(list, path, ',');)
      if (!path.empty()) add(path.substr(path.find_last_of('/') + 1), path);
  }
}

}  // namespace bench
