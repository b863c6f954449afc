// What depth policies cost and save, in decode tokens/s on the Qwen2.5-0.5B-shaped model (bf16):
//  - FullDepth vs StaticSkip(∅) (a run-time policy that always runs) vs LAC trace-only: the
//    policy machinery and LAC's norms/thresholds;
//  - StaticSkip of 25 %, 50 %, 75 % of the layers (layers not computed at all);
//  - the KV strategies when every generated token exits halfway (propagate / exact / none).
// Compare ratios within one run: the machine is shared and noisy.
#include "bench_common.hpp"

#include <set>

#include "fathom/model/full_depth.hpp"
#include "fathom/depth/lac.hpp"
#include "fathom/depth/static_skip.hpp"

namespace {
const char* kModel = "qwen-bf16";

// Every `1/fraction`-th layer from the middle outwards, keeping the first and last layers.
std::set<int> spread(size_t layers, double fraction) {
  std::set<int> s;
  const size_t n = size_t(double(layers) * fraction + 0.5);
  for (size_t i = 0; s.size() < n; ++i) s.insert(int(1 + (i * (layers - 2)) / n % (layers - 2)));
  return s;
}

// Exits every RG token before layer `at`.
struct ExitAt : fathom::PolicyBase {
  static constexpr bool observes_layers = false;
  explicit ExitAt(int layer) : at(layer) {}
  int at;
  fathom::Action before_layer(const fathom::TokenInfo& t, State&, int l) const {
    return t.phase == fathom::Phase::RG && l >= at ? fathom::Action::Exit : fathom::Action::Run;
  }
};
}  // namespace

static void BM_FullDepth(benchmark::State& state) {
  fathom::FullDepth p;
  bench::decode_loop(state, bench::model(kModel), p);
}
static void BM_StaticSkipNone(benchmark::State& state) {
  fathom::StaticSkip p(bench::model(kModel).n_layers());
  bench::decode_loop(state, bench::model(kModel), p);
}
static void BM_LacTraceOnly(benchmark::State& state) {
  const auto& m = bench::model(kModel);
  fathom::Trace trace(m.n_layers(), false);
  fathom::LAC p(0.8, fathom::LacMode::TraceOnly);
  bench::decode_loop(state, m, p, fathom::KvStrategy::Propagate, 64, 64, &trace);
}
static void BM_StaticSkip(benchmark::State& state) {
  const auto& m = bench::model(kModel);
  const double fraction = double(state.range(0)) / 100.0;
  fathom::StaticSkip p(m.n_layers(), spread(m.n_layers(), fraction));
  const auto& sk = p.skipped(fathom::Phase::RG);
  state.SetLabel(std::to_string(std::count(sk.begin(), sk.end(), 1)) + " layers, " +
                 std::to_string(state.range(0)) + "% skipped");
  bench::decode_loop(state, m, p);
}
static void BM_ExitHalfway(benchmark::State& state) {
  const auto& m = bench::model(kModel);
  const auto kv = fathom::KvStrategy(state.range(0));
  ExitAt p{int(m.n_layers() / 2)};
  state.SetLabel(kv == fathom::KvStrategy::Propagate ? "propagate"
                 : kv == fathom::KvStrategy::Exact   ? "exact"
                                                     : "none");
  bench::decode_loop(state, m, p, kv);
}

BENCHMARK(BM_FullDepth)->Unit(benchmark::kMillisecond)->MinTime(2.0)->UseRealTime();
BENCHMARK(BM_StaticSkipNone)->Unit(benchmark::kMillisecond)->MinTime(2.0)->UseRealTime();
BENCHMARK(BM_LacTraceOnly)->Unit(benchmark::kMillisecond)->MinTime(2.0)->UseRealTime();
BENCHMARK(BM_StaticSkip)->Arg(25)->Arg(50)->Arg(75)->Unit(benchmark::kMillisecond)->MinTime(2.0)->UseRealTime();
BENCHMARK(BM_ExitHalfway)->Arg(int(fathom::KvStrategy::Propagate))->Arg(int(fathom::KvStrategy::Exact))
    ->Arg(int(fathom::KvStrategy::None))->Unit(benchmark::kMillisecond)->MinTime(2.0)->UseRealTime();
