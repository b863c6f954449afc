// Decode against its bandwidth bound, measured so that a shared machine's drifting bandwidth
// cancels out. On the virtual machines fathom is tuned on, one thread's DRAM read rate jumps
// between ~23 and ~42 GB/s from one second to the next (a neighbour's load), so tokens/s and a
// read benchmark taken minutes apart give a ratio anywhere from 55 % to 170 %. Here every round
// decodes 16 tokens and then reads bandwidth.hpp's 512 MiB once, and the ratio is taken per round:
//   bound % = bytes read per token x tokens/s ÷ that round's read GB/s
// reported as the median over rounds (q1 and q3 beside it), counting the weights alone ("weights
// bound %": Model::weight_bytes_per_token) and the weights plus the f32 keys and values attention
// reads at those positions ("bound %"). The read pass also evicts the caches, so each round's
// first token starts cold, as every token of a model larger than L3 does.
//
// Models: SmolLM2-135M-Instruct's GGUF from the shared directory as stored (Q8_0 embedding, Q4_1
// matrices) and converted to Q8 at load (the main job's format), and any GGUF files named in
// FATHOM_BENCH_GGUF (comma-separated paths), as stored. Contexts: FATHOM_BENCH_CONTEXTS
// (comma-separated positions, default 256). Threads: OMP_NUM_THREADS.
#include <chrono>
#include <string>
#include <vector>

#include "bandwidth.hpp"
#include "bench_common.hpp"

#include "fathom/model/full_depth.hpp"

namespace {

void BM_DecodeBound(benchmark::State& state, const std::string& name) {
  constexpr size_t kTokens = 16;  // per round
  const auto& m = bench::model(name);
  const size_t context = size_t(state.range(0));
  fathom::Session s(m, {int64_t(context + kTokens + 1)});
  fathom::FullDepth full;
  s.forward(bench::prompt(m, context), fathom::Phase::PP, full);
  bench::read_buffer();
  // f32 keys and values of (p + 1) positions per layer at position p, averaged over the round.
  const double kv_bytes = 2.0 * 4.0 * double(m.n_layers()) * double(m.layer(0).attn.kv_dim()) *
                          (double(context) + double(kTokens + 1) / 2.0);
  const double w_bytes = double(m.weight_bytes_per_token());
  using clock = std::chrono::steady_clock;
  std::vector<double> tok_s, read_gbs, bound_w, bound_kv;
  const int32_t next = 1;
  for (auto _ : state) {
    s.rewind(int64_t(context));
    const auto t0 = clock::now();
    for (size_t k = 0; k < kTokens; ++k) {
      auto logits = s.forward(std::span<const int32_t>(&next, 1), fathom::Phase::RG, full);
      benchmark::DoNotOptimize(logits.data());
    }
    const auto t1 = clock::now();
    benchmark::DoNotOptimize(bench::read_pass(false));
    const auto t2 = clock::now();
    const double decode = std::chrono::duration<double>(t1 - t0).count();
    const double read = double(bench::kReadBytes) / std::chrono::duration<double>(t2 - t1).count();
    state.SetIterationTime(decode);
    tok_s.push_back(double(kTokens) / decode);
    read_gbs.push_back(read / 1e9);
    bound_w.push_back(100.0 * w_bytes * tok_s.back() / read);
    bound_kv.push_back(100.0 * (w_bytes + kv_bytes) * tok_s.back() / read);
  }
  state.counters["tok/s"] = bench::quantile(tok_s, 0.5);
  state.counters["read GB/s"] = bench::quantile(read_gbs, 0.5);
  state.counters["weights bound %"] = bench::quantile(bound_w, 0.5);
  state.counters["bound %"] = bench::quantile(bound_kv, 0.5);
  state.counters["bound % q1"] = bench::quantile(bound_kv, 0.25);
  state.counters["bound % q3"] = bench::quantile(bound_kv, 0.75);
}

const bool registered = (bench::register_decode_models("BM_DecodeBound", BM_DecodeBound), true);

}  // namespace
