#pragma once
// CALM-style early exit (Schuster et al. 2022; docs/policies.md). After block l (l = 0..L-2) a confidence is measured on
// the token's state h_l = hidden_states[l+1]:
//   softmax_max    top-1 probability of the readout of h_l (through the lens, default logit lens)
//   softmax_diff   top-1 minus top-2 probability of that readout
//   state          cosine similarity of consecutive hidden states, cos(h_{l-1}, h_l)
// and the token exits before block l+1 (Action::Exit; blocks l+1..L-1 are not run for it) when
//   confidence > λ(t),   λ(t) = λ·e^(−4t/N)/10 + 0.9λ   (with decay; CALM's eq. with τ = 4)
// where t counts generation steps as CALM does: the prompt pass (which yields the first new
// token) is t = 0 for every prompt token, the first generated step after it — the forward pass
// of the token sampled from the prompt's logits — is t = 1, the next t = 2, and so on;
//   λ(t) = λ                                              (without decay, N = 0),
// never before `min_exit` blocks have run (min_exit >= 1: the confidence needs a block's output);
// with exit_prompt = false prompt tokens always run every block (and no confidence is computed).
// The prediction is read from the stream it stopped at, through the same lens. Keys and values
// of the blocks an exited token did not run are the run loop's business (SessionOptions::kv,
// docs/policies.md: Propagate, Exact or None).
//
// The softmax measures cost one readout (a [vocab, hidden] product) per block and token; `state`
// costs one dot product. A Session's trace records executed blocks, exit_layer (the first block
// not run, -1 if none) and readout_layer (the last block run).
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

#include "fathom/core/error.hpp"
#include "fathom/depth/cosine.hpp"
#include "fathom/model/depth_policy.hpp"
#include "fathom/lens/readout.hpp"
#include "fathom/lens/tuned_lens.hpp"
#include "fathom/model/model.hpp"

namespace fathom {

enum class Confidence : uint8_t { SoftmaxMax, SoftmaxDiff, State };

inline const char* confidence_name(Confidence c) {
  return c == Confidence::SoftmaxMax ? "softmax_max" : c == Confidence::SoftmaxDiff ? "softmax_diff"
                                                                                    : "state";
}
inline Confidence parse_confidence(std::string_view s) {
  if (s == "softmax_max") return Confidence::SoftmaxMax;
  if (s == "softmax_diff") return Confidence::SoftmaxDiff;
  if (s == "state") return Confidence::State;
  throw UsageError("", "confidence", "'" + std::string(s) +
                                         "' (expected softmax_max, softmax_diff or state)");
}

struct EarlyExitOptions {
  Confidence measure = Confidence::SoftmaxMax;
  double threshold = 0.9;  // λ
  int min_exit = 1;        // blocks every token runs before it may exit (>= 1)
  int decay_tokens = 0;    // N of the decay λ(t); 0: no decay
  bool exit_prompt = true; // whether prompt (PP) tokens may exit; false: CALM's full-depth prompt
};

// λ(t) of CALM's decaying threshold; N = 0 disables the decay.
inline double decayed_threshold(double lambda, int64_t t, int64_t N) {
  if (N <= 0) return lambda;
  return lambda * std::exp(-4.0 * double(t) / double(N)) / 10.0 + 0.9 * lambda;
}

template <lens::Lens Lens = lens::LogitLens>
class EarlyExit : public PolicyBase {
 public:
  static constexpr bool needs_layer_input = true;

  struct State {
    bool exit = false;
    size_t ran = 0;            // blocks run so far = hidden_states index of the current state
    double lambda = 0;         // λ(t) of this token
    std::vector<float> buf;    // [hidden] translated readout
  };

  // `lens` must outlive the policy (a tuned lens is large; it is not copied).
  EarlyExit(const Model& model, EarlyExitOptions opts, const Lens& lens)
      : L_(model.n_layers()), H_(model.hidden()), opts_(opts), lens_(&lens), reader_(model),
        tr_(model.hidden()) {
    if (opts.min_exit < 1)
      throw UsageError("", "min_exit", "must be >= 1 (a confidence needs one block's output)");
    if (opts.decay_tokens < 0) throw UsageError("", "decay_tokens", "must be >= 0");
    if (!std::isfinite(opts.threshold)) throw UsageError("", "threshold", "must be finite");
    if constexpr (requires { lens.check_fits(model); }) lens.check_fits(model);
    for (auto& h : exits_) h.assign(L_ + 1, 0);
  }
  // With the logit lens.
  EarlyExit(const Model& model, EarlyExitOptions opts)
    requires std::is_same_v<Lens, lens::LogitLens>
      : EarlyExit(model, opts, logit_lens()) {}

  const EarlyExitOptions& options() const { return opts_; }
  // Tokens by the number of blocks they ran (index L: no exit), per phase.
  const std::vector<uint64_t>& exit_histogram(Phase p) const { return exits_[size_t(p)]; }
  uint64_t tokens(Phase p) const {
    uint64_t n = 0;
    for (auto c : exits_[size_t(p)]) n += c;
    return n;
  }
  uint64_t tokens() const { return tokens(Phase::PP) + tokens(Phase::RG); }
  // Mean number of blocks run per token of a phase (L for a model that never exits).
  double mean_exit_layer(Phase p) const {
    double s = 0;
    const auto& h = exits_[size_t(p)];
    for (size_t i = 0; i < h.size(); ++i) s += double(i) * double(h[i]);
    return tokens(p) ? s / double(tokens(p)) : 0.0;
  }
  // Over both phases.
  double mean_exit_layer() const {
    const double n = double(tokens());
    return n ? (mean_exit_layer(Phase::PP) * double(tokens(Phase::PP)) +
                mean_exit_layer(Phase::RG) * double(tokens(Phase::RG))) / n
             : 0.0;
  }
  // λ(t) of the last token begun (in decode: the current token).
  double last_threshold() const { return last_lambda_; }
  void reset_stats() {
    for (auto& h : exits_) std::fill(h.begin(), h.end(), 0);
  }

  void begin_token(const TokenInfo& t, State& s) {
    s.exit = false;
    s.ran = 0;
    if (t.phase == Phase::PP) first_rg_ = -1;
    else if (first_rg_ < 0) first_rg_ = t.position;
    // The first RG forward pass after the prompt is generation step t = 1 (t = 0: the prompt).
    const int64_t gen = t.phase == Phase::RG ? t.position - first_rg_ + 1 : 0;
    s.lambda = last_lambda_ = decayed_threshold(opts_.threshold, gen, opts_.decay_tokens);
  }

  Action before_layer(const TokenInfo&, const State& s, int) const {
    return s.exit ? Action::Exit : Action::Run;
  }

  void after_layer(const TokenInfo& t, State& s, int l, std::span<const float> in,
                   std::span<float> out, LayerNote&) {
    s.ran = size_t(l) + 1;
    // Exiting is possible before block l+1 only if l+1 >= min_exit and a block remains.
    if (int(s.ran) < opts_.min_exit || s.ran >= L_) return;
    if (t.phase == Phase::PP && !opts_.exit_prompt) return;
    const double c = confidence(s.ran, in, out);
    s.exit = c > s.lambda;
  }

  std::span<const float> readout(const TokenInfo&, State& s, std::span<const float> state) const {
    if (lens_->identity(s.ran)) return state;
    s.buf.resize(H_);
    lens_->translate(s.ran, state.data(), s.buf.data(), 1, H_);
    return s.buf;
  }

  void end_token(const TokenInfo& t, const State& s) { ++exits_[size_t(t.phase)][s.ran]; }

  // The confidence of state h = hidden_states[i] (i blocks ran); prev = hidden_states[i-1].
  double confidence(size_t i, std::span<const float> prev, std::span<const float> h) {
    if (opts_.measure == Confidence::State) return cosine(prev, h);
    std::span<const float> v = h;
    if (!lens_->identity(i)) {
      lens_->translate(i, h.data(), tr_.data(), 1, H_);
      v = tr_;
    }
    const auto p = lens::softmax_top2(reader_.logits(v));
    return opts_.measure == Confidence::SoftmaxMax ? p.p1 : p.p1 - p.p2;
  }

 private:
  static const lens::LogitLens& logit_lens() {
    static const lens::LogitLens l;
    return l;
  }
  size_t L_, H_;
  EarlyExitOptions opts_;
  const Lens* lens_;
  lens::Reader reader_;
  std::vector<float> tr_;  // [hidden]
  int64_t first_rg_ = -1;
  double last_lambda_ = 0;
  std::vector<uint64_t> exits_[2];  // per phase: [L+1]
};
static_assert(DepthPolicy<EarlyExit<>>);

}  // namespace fathom
