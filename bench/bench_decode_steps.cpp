// Where a decoded token's time goes, step by step, against the same run's read bandwidth. An
// observer on the named taps (model/taps.hpp) stamps the time at every tap of the layer pass, so
// each interval is the work between two taps, on the calling thread's clock (at several threads:
// the step's jobs and the hand-offs between them):
//   norm      resid_pre -> attn_norm and resid_mid -> mlp_norm: the two RMS norms
//   qkv       attn_norm -> q, k, v: the q/k/v products, bias, q/k norm, RoPE
//   attention v -> attn_ctx: keys and values stored, attention over the cache
//   o         attn_ctx -> attn_out: the output projection
//   gate/up   mlp_norm -> mlp_act: the gate and up products, SwiGLU
//   down      mlp_act -> mlp_out: the down projection
//   adds      attn_out -> resid_mid, mlp_out -> resid_post: the residual adds
//   between   resid_post -> the next resid_pre, embed -> resid_pre: the policy's decisions
//   head      resid_post of the last layer -> final_norm -> logits: final norm and unembedding
// Each round decodes 16 tokens and then reads bandwidth.hpp's 512 MiB once (decode_rounds.hpp);
// per step the counters give µs per token ("<step> us", the median over the rounds) and, for the
// steps that stream weights or the cache, the rate ("<step> GB/s": the matrices' bytes as held,
// the f32 keys and values attention reads) and its share of the rounds' median read ("<step> %").
// With no observer (the library's default) the taps cost nothing; here they cost a clock read
// each (15 a layer).
//
// Models: SmolLM2-135M-Instruct's GGUF from the shared directory as stored and as Q8 (the main
// job's format), and any GGUF files named in FATHOM_BENCH_GGUF (comma-separated paths), as stored.
// Contexts: FATHOM_BENCH_CONTEXTS (comma-separated positions, default 256). Threads:
// OMP_NUM_THREADS.
#include <array>
#include <chrono>
#include <string>
#include <vector>

#include "decode_rounds.hpp"

namespace {

enum Step { kNorm, kQkv, kAttention, kO, kGateUp, kDown, kAdds, kBetween, kHead, kSteps };
constexpr const char* kStepNames[kSteps] = {"norm", "qkv", "attention", "o", "gate/up", "down", "adds",
                                            "between", "head"};

// The step whose work ends at tap t (the interval since the previous tap).
Step step_ending_at(fathom::Tap t) {
  using fathom::Tap;
  switch (t) {
    case Tap::attn_norm: case Tap::mlp_norm: return kNorm;
    case Tap::q: case Tap::k: case Tap::v: return kQkv;
    case Tap::attn_ctx: return kAttention;
    case Tap::attn_out: return kO;
    case Tap::mlp_act: return kGateUp;
    case Tap::mlp_out: return kDown;
    case Tap::resid_mid: case Tap::resid_post: return kAdds;
    case Tap::final_norm: case Tap::logits: return kHead;
    default: return kBetween;  // resid_pre (embed starts a token: not counted)
  }
}

struct StepClock {
  static constexpr bool enabled = true;
  using clock = std::chrono::steady_clock;
  std::array<double, kSteps> seconds{};
  clock::time_point last{};
  void on_tap(fathom::Tap t, int, const fathom::TapView&) {
    const auto now = clock::now();
    if (t != fathom::Tap::embed) seconds[step_ending_at(t)] += std::chrono::duration<double>(now - last).count();
    last = now;
  }
};

void BM_DecodeSteps(benchmark::State& state, const std::string& name) {
  const auto& m = bench::model(name);
  bench::DecodeRounds rounds(m, size_t(state.range(0)));

  // Bytes each step streams per token: the matrices as held; attention the f32 keys and values.
  std::array<double, kSteps> bytes{};
  for (size_t l = 0; l < m.n_layers(); ++l) {
    const auto& A = m.layer(l).attn;
    const auto& M = m.layer(l).mlp;
    bytes[kQkv] += double(fathom::Model::matrix_bytes(A.wq) + fathom::Model::matrix_bytes(A.wk) +
                          fathom::Model::matrix_bytes(A.wv));
    bytes[kO] += double(fathom::Model::matrix_bytes(A.wo));
    bytes[kGateUp] += double(fathom::Model::matrix_bytes(M.gate) + fathom::Model::matrix_bytes(M.up));
    bytes[kDown] += double(fathom::Model::matrix_bytes(M.down));
    bytes[kAttention] += rounds.kv_bytes(A.kv_dim());
  }
  bytes[kHead] = double(fathom::Model::matrix_bytes(m.readout().unembed));

  std::array<std::vector<double>, kSteps> us;  // [step][round] µs per token
  std::vector<double> tok_s, read_gbs;
  for (auto _ : state) {
    StepClock steps;
    const auto r = rounds.run(steps);
    state.SetIterationTime(r.decode_s);
    tok_s.push_back(double(rounds.kTokens) / r.decode_s);
    read_gbs.push_back(r.read_gbs);
    for (size_t k = 0; k < kSteps; ++k) us[k].push_back(1e6 * steps.seconds[k] / double(rounds.kTokens));
  }
  const double read = bench::quantile(read_gbs, 0.5);
  state.counters["tok/s"] = bench::quantile(tok_s, 0.5);
  state.counters["read GB/s"] = read;
  for (size_t k = 0; k < kSteps; ++k) {
    const double t = bench::quantile(us[k], 0.5);
    state.counters[std::string(kStepNames[k]) + " us"] = t;
    if (bytes[k] > 0 && t > 0) {
      state.counters[std::string(kStepNames[k]) + " GB/s"] = bytes[k] / t / 1e3;
      state.counters[std::string(kStepNames[k]) + " %"] = 100.0 * bytes[k] / t / 1e3 / read;
    }
  }
}

const bool registered = (bench::register_decode_models("BM_DecodeSteps", BM_DecodeSteps), true);

}  // namespace
