#pragma once
// ShortGPT's layer importance ("ShortGPT: Layers in Large Language Models are More Redundant
// Than You Expect", Men et al. 2024): a layer whose output is nearly its input by cosine does
// little, so it is the first to remove. Block Influence BI_l = 1 − E_tokens[cos(h_{l−1}, h_l)].
//
// LayerSimilarity<P> runs any policy P unchanged and, after every layer a token ran, adds
// cos(h_{l−1}, h_l) — measured on the layer's own output before P may rewrite it — to per-phase
// sums. Wrapping final-state LAC therefore measures the full-depth stream (that policy never
// changes it), so one calibration pass yields both LAC usage and ShortGPT's ranking.
// shortgpt_layers(sim, k) is ShortGPT's removal set: the k layers with the highest mean cosine
// (lowest BI) over all calibration tokens, PP and RG together (ties: the lower layer).
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <set>
#include <span>
#include <vector>

#include "fathom/core/error.hpp"
#include "fathom/depth/cosine.hpp"
#include "fathom/model/depth_policy.hpp"

namespace fathom {

// Per phase and layer: Σ cos(h_{l−1}, h_l) and how many tokens it sums.
struct LayerCosines {
  std::vector<double> sum[2];      // [phase][layers]
  std::vector<uint64_t> count[2];  // [phase][layers]

  explicit LayerCosines(size_t n_layers = 0) {
    for (int p = 0; p < 2; ++p) sum[p].assign(n_layers, 0.0), count[p].assign(n_layers, 0);
  }
  size_t n_layers() const { return sum[0].size(); }
  // Mean cosine per layer over one phase; NaN where no token ran the layer.
  std::vector<double> mean(Phase p) const {
    std::vector<double> m(n_layers(), NAN);
    for (size_t l = 0; l < m.size(); ++l)
      if (count[size_t(p)][l]) m[l] = sum[size_t(p)][l] / double(count[size_t(p)][l]);
    return m;
  }
  // Mean cosine per layer over both phases together (every calibration token weighs the same).
  std::vector<double> mean() const {
    std::vector<double> m(n_layers(), NAN);
    for (size_t l = 0; l < m.size(); ++l) {
      const uint64_t n = count[0][l] + count[1][l];
      if (n) m[l] = (sum[0][l] + sum[1][l]) / double(n);
    }
    return m;
  }
};

template <DepthPolicy P>
class LayerSimilarity {
 public:
  using State = typename P::State;
  static constexpr bool needs_layer_input = true;
  static constexpr bool observes_layers = true;

  LayerSimilarity(P& inner, LayerCosines& out) : p_(&inner), out_(&out) {}

  void begin_token(const TokenInfo& t, State& s) { p_->begin_token(t, s); }
  Action before_layer(const TokenInfo& t, State& s, int l) { return p_->before_layer(t, s, l); }
  void after_layer(const TokenInfo& t, State& s, int l, std::span<const float> in,
                   std::span<float> out, LayerNote& note) {
    if (size_t(l) < out_->n_layers()) {
      out_->sum[size_t(t.phase)][size_t(l)] += cosine(in, out);
      ++out_->count[size_t(t.phase)][size_t(l)];
    }
    if constexpr (P::observes_layers) p_->after_layer(t, s, l, in, out, note);
  }
  int readout_layer(const TokenInfo& t, const State& s, int last_run) {
    return p_->readout_layer(t, s, last_run);
  }
  std::span<const float> readout(const TokenInfo& t, State& s, std::span<const float> final_state) {
    return p_->readout(t, s, final_state);
  }
  void end_token(const TokenInfo& t, State& s) { p_->end_token(t, s); }

 private:
  P* p_;
  LayerCosines* out_;
};

// ShortGPT's k layers to remove: highest mean cosine first (ties: the lower layer); layers no
// token ran are never chosen.
inline std::set<int> shortgpt_layers(const std::vector<double>& mean_cos, size_t k) {
  std::vector<int> order;
  for (size_t l = 0; l < mean_cos.size(); ++l)
    if (std::isfinite(mean_cos[l])) order.push_back(int(l));
  if (k > order.size())
    throw UsageError("", "shortgpt", "asked to remove " + std::to_string(k) + " layers, " +
                                         std::to_string(order.size()) + " have calibration data");
  std::stable_sort(order.begin(), order.end(),
                   [&](int a, int b) { return mean_cos[size_t(a)] > mean_cos[size_t(b)]; });
  return std::set<int>(order.begin(), order.begin() + std::ptrdiff_t(k));
}
inline std::set<int> shortgpt_layers(const LayerCosines& c, size_t k) { return shortgpt_layers(c.mean(), k); }

}  // namespace fathom
