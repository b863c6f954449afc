// Batched decoding (model/batch_session.hpp): tokens/s of B sequences advanced together, one
// token each per step, on the Qwen2.5-0.5B-shaped random model (bf16, and Q8 converted at load),
// for B in {1, 2, 4, 8, 16, 32}. B = 1 is the single-sequence Session::forward path (the reference
// of docs/benchmarks.md's end-to-end table); B > 1 one BatchSession::step per iteration.
//   tok/s = B x steps/s; GB/s = weight bytes per step (the weights are read once per step, whatever
//   B) x steps/s — the read rate of the weights, which falls as B makes the step compute-bound.
// Every sequence decodes at 32..96 tokens of context (its own cache, rewound every 64 tokens).
//
//   OMP_NUM_THREADS=2 build/bench/bench_batch_decode --benchmark_repetitions=3
//       --benchmark_enable_random_interleaving=true --benchmark_report_aggregates_only=true
#include "bandwidth.hpp"
#include "bench_common.hpp"

#include "fathom/model/batch_session.hpp"
#include "fathom/model/full_depth.hpp"

namespace {

constexpr size_t kContext = 32, kWindow = 64;

void BM_BatchDecode(benchmark::State& state, const std::string& name) {
  const auto& m = bench::model(name);
  const size_t B = size_t(state.range(0));
  fathom::FullDepth full;
  const auto ids = bench::prompt(m, kContext);
  if (B == 1) {  // the unbatched path, for the ratio
    bench::decode_loop(state, m, full, fathom::KvStrategy::Propagate, kContext, kWindow);
    state.counters["B"] = 1;
    return;
  }
  fathom::BatchSession bs(m, B, {int64_t(kContext + kWindow + 1)});
  bs.session(0).forward(ids, fathom::Phase::PP, full);
  for (size_t k = 1; k < B; ++k) bs.session(k).continue_from(bs.session(0), int64_t(kContext));
  std::vector<uint32_t> slots(B);
  std::vector<int32_t> toks(B);
  std::vector<fathom::FullDepth*> pols(B, &full);
  for (size_t k = 0; k < B; ++k) slots[k] = uint32_t(k), toks[k] = int32_t(1 + k);
  for (auto _ : state) {
    if (bs.session(0).position() >= int64_t(kContext + kWindow))
      for (size_t k = 0; k < B; ++k) bs.session(k).rewind(int64_t(kContext));
    auto logits = bs.step(std::span<const uint32_t>(slots), std::span<const int32_t>(toks),
                          std::span<fathom::FullDepth* const>(pols));
    benchmark::DoNotOptimize(logits.data());
  }
  const double steps = double(state.iterations());
  state.counters["tok/s"] = benchmark::Counter(steps * double(B), benchmark::Counter::kIsRate);
  state.counters["GB/s"] = benchmark::Counter(steps * double(m.weight_bytes_per_token()) / 1e9,
                                              benchmark::Counter::kIsRate);
  state.counters["B"] = double(B);
}

}  // namespace

BENCHMARK_CAPTURE(BM_BatchDecode, qwen_bf16, std::string("qwen-bf16"))
    ->Arg(1)->Arg(2)->Arg(4)->Arg(8)->Arg(16)->Arg(32)
    ->Unit(benchmark::kMillisecond)->MinTime(1.0)->UseRealTime();
BENCHMARK_CAPTURE(BM_BatchDecode, qwen_q8, std::string("qwen-q8"))
    ->Arg(1)->Arg(2)->Arg(4)->Arg(8)->Arg(16)->Arg(32)
    ->Unit(benchmark::kMillisecond)->MinTime(1.0)->UseRealTime();

// The decode bound: read bandwidth measured in the same program (bandwidth.hpp).
using bench::BM_read_bandwidth;
BENCHMARK_CAPTURE(BM_read_bandwidth, plain, false)->Unit(benchmark::kMillisecond)->UseRealTime();
