// Decode against its bandwidth bound, measured so that a shared machine's drifting bandwidth
// cancels out. On the virtual machines fathom is tuned on, one thread's DRAM read rate jumps
// between ~23 and ~42 GB/s from one second to the next (a neighbour's load), so tokens/s and a
// read benchmark taken minutes apart give a ratio anywhere from 55 % to 170 %. Here every round
// decodes 16 tokens and then reads bandwidth.hpp's 512 MiB once (decode_rounds.hpp), and the
// ratio is taken per round:
//   bound % = bytes read per token x tokens/s ÷ that round's read GB/s
// reported as the median over rounds (q1 and q3 beside it), counting the weights alone ("weights
// bound %": Model::weight_bytes_per_token) and the weights plus the f32 keys and values attention
// reads at those positions ("bound %").
//
// Models: SmolLM2-135M-Instruct's GGUF from the shared directory as stored (Q8_0 embedding, Q4_1
// matrices) and converted to Q8 at load (the main job's format), and any GGUF files named in
// FATHOM_BENCH_GGUF (comma-separated paths), as stored. Contexts: FATHOM_BENCH_CONTEXTS
// (comma-separated positions, default 256). Threads: OMP_NUM_THREADS.
#include <string>
#include <vector>

#include "decode_rounds.hpp"

namespace {

void BM_DecodeBound(benchmark::State& state, const std::string& name) {
  const auto& m = bench::model(name);
  bench::DecodeRounds rounds(m, size_t(state.range(0)));
  const double kv_bytes = double(m.n_layers()) * rounds.kv_bytes(m.layer(0).attn.kv_dim());
  const double w_bytes = double(m.weight_bytes_per_token());
  std::vector<double> tok_s, read_gbs, bound_w, bound_kv;
  for (auto _ : state) {
    const auto r = rounds.run();
    state.SetIterationTime(r.decode_s);
    tok_s.push_back(double(rounds.kTokens) / r.decode_s);
    read_gbs.push_back(r.read_gbs);
    bound_w.push_back(100.0 * w_bytes * tok_s.back() / (r.read_gbs * 1e9));
    bound_kv.push_back(100.0 * (w_bytes + kv_bytes) * tok_s.back() / (r.read_gbs * 1e9));
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
