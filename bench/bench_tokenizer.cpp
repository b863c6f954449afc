// Single-thread encode throughput (MB/s of UTF-8 input) of the three real tokenizers on the
// WikiText-2 raw test split, plus load time of each tokenizer.json and decode throughput.
// The reference's figure (PyPI tokenizers, same text, one thread) is measured by
// tools/gen_tokenizer_fixtures.py; both are recorded in docs/benchmarks.md.
#include <benchmark/benchmark.h>

#include <fstream>
#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

#include "fathom/core/shared_path.hpp"
#include "fathom/tokenizer/tokenizer.hpp"

namespace {

const std::string& wikitext() {
  static const std::string text = [] {
    std::ifstream f(fathom::shared_file("data/wikitext2/wikitext-2-raw-test.txt"), std::ios::binary);
    std::stringstream ss;
    ss << f.rdbuf();
    return ss.str();
  }();
  return text;
}

const fathom::tok::Tokenizer& tokenizer(const std::string& name) {
  static std::map<std::string, std::unique_ptr<fathom::tok::Tokenizer>> cache;
  auto& p = cache[name];
  if (!p) p = std::make_unique<fathom::tok::Tokenizer>(
              fathom::tok::Tokenizer::from_dir(fathom::shared_file("tokenizers/" + name)));
  return *p;
}

void BM_Encode(benchmark::State& state, const std::string& name) {
  const auto& tok = tokenizer(name);
  const std::string& text = wikitext();
  size_t n = 0;
  for (auto _ : state) {
    auto ids = tok.encode(text, false);
    n = ids.size();
    benchmark::DoNotOptimize(ids.data());
  }
  state.SetBytesProcessed(int64_t(state.iterations()) * int64_t(text.size()));
  state.counters["tokens"] = double(n);
}

// The same text, one encode() per line (as the reference's per-line figure).
void BM_EncodeLines(benchmark::State& state, const std::string& name) {
  const auto& tok = tokenizer(name);
  const std::string& text = wikitext();
  std::vector<std::string_view> lines;
  for (size_t b = 0; b < text.size();) {
    size_t e = text.find('\n', b);
    e = e == std::string::npos ? text.size() : e + 1;
    lines.push_back(std::string_view(text).substr(b, e - b));
    b = e;
  }
  for (auto _ : state)
    for (auto line : lines) {
      auto ids = tok.encode(line, false);
      benchmark::DoNotOptimize(ids.data());
    }
  state.SetBytesProcessed(int64_t(state.iterations()) * int64_t(text.size()));
}

void BM_Decode(benchmark::State& state, const std::string& name) {
  const auto& tok = tokenizer(name);
  const auto ids = tok.encode(wikitext(), false);
  for (auto _ : state) {
    auto s = tok.decode(ids);
    benchmark::DoNotOptimize(s.data());
  }
  state.SetBytesProcessed(int64_t(state.iterations()) * int64_t(wikitext().size()));
}

void BM_Load(benchmark::State& state, const std::string& name) {
  const auto dir = fathom::shared_file("tokenizers/" + name);
  for (auto _ : state) {
    auto t = fathom::tok::Tokenizer::from_dir(dir);
    benchmark::DoNotOptimize(&t);
  }
}

}  // namespace

BENCHMARK_CAPTURE(BM_Encode, qwen3, std::string("qwen3"))->Unit(benchmark::kMillisecond)->MinTime(2.0);
BENCHMARK_CAPTURE(BM_Encode, llama3, std::string("llama3"))->Unit(benchmark::kMillisecond)->MinTime(2.0);
BENCHMARK_CAPTURE(BM_Encode, mistral, std::string("mistral"))->Unit(benchmark::kMillisecond)->MinTime(2.0);
BENCHMARK_CAPTURE(BM_EncodeLines, qwen3, std::string("qwen3"))->Unit(benchmark::kMillisecond)->MinTime(2.0);
BENCHMARK_CAPTURE(BM_EncodeLines, llama3, std::string("llama3"))->Unit(benchmark::kMillisecond)->MinTime(2.0);
BENCHMARK_CAPTURE(BM_EncodeLines, mistral, std::string("mistral"))->Unit(benchmark::kMillisecond)->MinTime(2.0);
BENCHMARK_CAPTURE(BM_Decode, qwen3, std::string("qwen3"))->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_Decode, mistral, std::string("mistral"))->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_Load, qwen3, std::string("qwen3"))->Unit(benchmark::kMillisecond)->Iterations(3);
BENCHMARK_CAPTURE(BM_Load, llama3, std::string("llama3"))->Unit(benchmark::kMillisecond)->Iterations(3);
BENCHMARK_CAPTURE(BM_Load, mistral, std::string("mistral"))->Unit(benchmark::kMillisecond)->Iterations(3);
