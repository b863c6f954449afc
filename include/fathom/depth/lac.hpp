#pragma once
// L2 Adaptive Computation ("Void in Language Models", Shemiranifar 2025; docs/policies.md). Per token, with h_{-1} the
// embedding output and h_l the output of layer l:
//   n_l = ||h_l||_2,   Δ_l = n_l − n_{l−1} (signed),
//   τ_l = α · (max_{j<l} Δ_j − min_{j<l} Δ_j)   (τ_0 = τ_1 = 0),
//   layer l is a void  ⇔  Δ_l < τ_l.
// Decisions are independent per layer and per token, identical in PP and RG. Every layer is
// computed (Δ_l needs h_l); what a void means is the mode:
//   TraceOnly   record decisions, change nothing (logits bit-identical to FullDepth);
//   InStream    a void's update is discarded: the stream continues from h_{l−1};
//   FinalState  the stack runs unchanged and the final norm + head read the output of the last
//               activated layer (the embeddings if none) — the authors' released code.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <span>
#include <vector>

#include "fathom/core/error.hpp"
#include "fathom/model/depth_policy.hpp"
#include "fathom/kernels/elementwise.hpp"

namespace fathom {

enum class LacMode : uint8_t { TraceOnly, InStream, FinalState };

constexpr const char* lac_mode_name(LacMode m) {
  return m == LacMode::TraceOnly ? "trace-only" : m == LacMode::InStream ? "in-stream" : "final-state";
}

// The decision rule alone, testable on constructed norms. deltas: Δ_0..Δ_{l-1} so far.
struct LacRule {
  double alpha = 0.8;
  // τ_l from the preceding Δ_j (j < l); 0 when fewer than two precede.
  double threshold(std::span<const double> preceding) const {
    if (preceding.size() < 2) return 0.0;
    auto [mn, mx] = std::minmax_element(preceding.begin(), preceding.end());
    return alpha * (*mx - *mn);
  }
  bool is_void(double delta, double tau) const { return delta < tau; }
};

// LAC's decisions for one token from its norms n_{-1}..n_{L-1} when the stream is not changed
// (trace-only and final-state), with exactly the arithmetic of LAC::after_layer, so that many α
// can be derived from one recorded pass. activated: [L] 0/1. Returns the last activated layer
// (-1: none), the layer final-state substitution reads out.
inline int lac_decisions(std::span<const double> norms, double alpha, std::vector<uint8_t>& activated) {
  const LacRule rule{alpha};
  const size_t L = norms.empty() ? 0 : norms.size() - 1;
  activated.assign(L, 0);
  std::vector<double> deltas;  // Δ_0..Δ_{l-1}
  deltas.reserve(L);
  int last = -1;
  for (size_t l = 0; l < L; ++l) {
    const double delta = norms[l + 1] - norms[l];
    const bool a = !rule.is_void(delta, rule.threshold(deltas));
    deltas.push_back(delta);
    activated[l] = a;
    if (a) last = int(l);
  }
  return last;
}

class LAC : public PolicyBase {
 public:
  static constexpr bool needs_layer_input = true;

  struct State {
    std::vector<double> deltas;  // Δ_0..Δ_{l-1}
    double prev_norm = NAN;      // n_{l-1}
    int last_active = -1;        // the last activated layer (-1: none)
    std::vector<float> readout;  // [hidden] FinalState: h of the last activated layer (h_{-1}: none)
  };

  explicit LAC(double alpha = 0.8, LacMode mode = LacMode::TraceOnly) : rule_{alpha}, mode_(mode) {
    if (!(alpha >= 0.0)) throw UsageError("", "alpha", "must be >= 0");
  }

  double alpha() const { return rule_.alpha; }
  LacMode mode() const { return mode_; }

  void begin_token(const TokenInfo&, State& s) const {
    s.deltas.clear();  // keeps its capacity: no allocation per token
    s.prev_norm = NAN;
    s.last_active = -1;
  }

  void after_layer(const TokenInfo&, State& s, int l, std::span<const float> in,
                   std::span<float> out, LayerNote& note) const {
    if (l == 0) {
      s.prev_norm = kernels::l2_norm(in.data(), in.size());
      if (mode_ == LacMode::FinalState) s.readout.assign(in.begin(), in.end());  // h_{-1}
    }
    const double n = kernels::l2_norm(out.data(), out.size());
    const double delta = n - s.prev_norm;
    const double tau = rule_.threshold(s.deltas);
    const bool activated = !rule_.is_void(delta, tau);
    s.deltas.push_back(delta);
    note = LayerNote{activated, float(n), float(delta), float(tau)};
    if (activated) {
      s.last_active = l;
      if (mode_ == LacMode::FinalState) s.readout.assign(out.begin(), out.end());
    }
    if (!activated && mode_ == LacMode::InStream) {
      std::copy(in.begin(), in.end(), out.begin());  // discard the void's update
      s.prev_norm = kernels::l2_norm(in.data(), in.size());
    } else {
      s.prev_norm = n;
    }
  }

  int readout_layer(const TokenInfo&, const State& s, int last_run) const {
    return mode_ == LacMode::FinalState ? s.last_active : last_run;
  }
  std::span<const float> readout(const TokenInfo&, State& s, std::span<const float> final_state) const {
    if (mode_ == LacMode::FinalState && !s.readout.empty()) return s.readout;
    return final_state;
  }

 private:
  LacRule rule_;
  LacMode mode_;
};
static_assert(DepthPolicy<LAC>);

// The original LAC rule (2023) as early exit: after layer j, stop if |Δ_j| < α · (max_{i≤j} Δ_i −
// min_{i≤j} Δ_i); the rest of the stack is skipped and the prediction is read from h_j.
class LACEarlyExit : public PolicyBase {
 public:
  static constexpr bool needs_layer_input = true;

  struct State {
    double prev = 0, lo = INFINITY, hi = -INFINITY;  // n_{j-1}, min and max Δ so far
    bool exit = false;
  };

  explicit LACEarlyExit(double alpha = 0.8, int min_layers = 1)
      : alpha_(alpha), min_layers_(min_layers) {}

  Action before_layer(const TokenInfo&, const State& s, int) const {
    return s.exit ? Action::Exit : Action::Run;
  }
  void after_layer(const TokenInfo&, State& s, int l, std::span<const float> in,
                   std::span<float> out, LayerNote& note) const {
    if (l == 0) s.prev = kernels::l2_norm(in.data(), in.size());
    const double n = kernels::l2_norm(out.data(), out.size()), d = n - s.prev;
    s.prev = n;
    s.lo = std::min(s.lo, d), s.hi = std::max(s.hi, d);
    const double tau = alpha_ * (s.hi - s.lo);
    s.exit = l + 1 >= min_layers_ && l >= 1 && std::abs(d) < tau;
    note = LayerNote{true, float(n), float(d), float(tau)};
  }

 private:
  double alpha_;
  int min_layers_;
};
static_assert(DepthPolicy<LACEarlyExit>);

}  // namespace fathom
