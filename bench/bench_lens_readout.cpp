// Depth-metric readouts of 512 tokens at every layer on a SmolLM2-135M-shaped random model
// (30 layers, hidden 576, vocabulary 49,152, tied embeddings): one [vocab] product per token and
// readout (depth::profile_tokens_per_token) against a block of tokens per product
// (depth::profile_tokens), with an f32 and a Q8 unembedding; the batched Q8 readout with its
// default exact products (kernels::gemm_exact) and with the int8 kernels (Rows::Gemm under
// set_exact_prefill(false), argument 2). BM_Forward is the full-depth pass all include. One iteration each: the per-token
// path takes minutes.
//
//   OMP_NUM_THREADS=1 bench_lens_readout
#include <benchmark/benchmark.h>

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "fathom/depth/metrics.hpp"
#include "fathom/model/random_model.hpp"

namespace {

constexpr size_t kTokens = 512;

const fathom::Model& model(bool q8) {
  static std::map<bool, std::unique_ptr<fathom::Model>> cache;
  auto& m = cache[q8];
  if (!m) {
    fathom::LoadOptions o;
    o.weights = q8 ? fathom::WeightFormat::Q8 : fathom::WeightFormat::F32;
    m = fathom::random_model(fathom::smollm2_135m_config(), fathom::DType::BF16, 1, o);
  }
  return *m;
}

std::vector<int32_t> tokens(const fathom::Model& m) {
  std::vector<int32_t> ids(kTokens);
  for (size_t i = 0; i < kTokens; ++i) ids[i] = int32_t((i * 7919 + 13) % m.vocab());
  return ids;
}

template <bool Batched>
void BM_Profile(benchmark::State& state) {
  const auto& m = model(state.range(0) != 0);
  const auto ids = tokens(m);
  fathom::lens::LogitLens ll{m.n_layers()};
  const auto products = state.range(0) == 2 ? fathom::kernels::Rows::Gemm : fathom::kernels::Rows::Exact;
  const bool prompts_exact = fathom::kernels::exact_prefill();
  if (state.range(0) == 2) fathom::kernels::set_exact_prefill(false);  // the int8 prompt kernels
  for (auto _ : state) {
    fathom::Session s(m, {int64_t(kTokens), fathom::KvStrategy::Propagate});
    auto p = Batched ? fathom::depth::profile_tokens(s, ids, ll, fathom::depth::Target::FinalTop1,
                                                     fathom::lens::BatchReader::kDefaultRows, products)
                     : fathom::depth::profile_tokens_per_token(s, ids, ll);
    benchmark::DoNotOptimize(p.data());
  }
  fathom::kernels::set_exact_prefill(prompts_exact);
  const char* labels[] = {"f32 unembedding", "Q8 unembedding", "Q8 unembedding, int8 kernels"};
  state.SetLabel(labels[state.range(0)]);
  const double flop = 2.0 * double(kTokens) * double(m.n_layers() + 1) * double(m.hidden()) *
                      double(m.vocab());
  state.counters["readout GFLOP/s"] =
      benchmark::Counter(flop / 1e9 * double(state.iterations()), benchmark::Counter::kIsRate);
}

void BM_Forward(benchmark::State& state) {
  const auto& m = model(state.range(0) != 0);
  const auto ids = tokens(m);
  for (auto _ : state) {
    fathom::Session s(m, {int64_t(kTokens), fathom::KvStrategy::Propagate});
    auto rec = fathom::lens::record_hidden_states(s, ids);
    benchmark::DoNotOptimize(&rec);
  }
}

}  // namespace

BENCHMARK(BM_Forward)->Arg(0)->Arg(1)->Iterations(1)->Unit(benchmark::kSecond)->UseRealTime();
BENCHMARK_TEMPLATE(BM_Profile, true)->Arg(0)->Arg(1)->Arg(2)->Iterations(1)->Unit(benchmark::kSecond)->UseRealTime();
BENCHMARK_TEMPLATE(BM_Profile, false)->Arg(0)->Arg(1)->Iterations(1)->Unit(benchmark::kSecond)->UseRealTime();
