#pragma once
// StaticSkip: a fixed set of layers is never computed (per phase, or the same in both) — the
// building block of ShortGPT-style layer removal and of calibrated void skipping.
// CalibratedSkip derives those sets from a LAC trace: a layer activated for fewer than
// `min_fraction` of a phase's calibration tokens is skipped in that phase, without computing it.
#include <set>
#include <vector>

#include "fathom/core/error.hpp"
#include "fathom/model/depth_policy.hpp"
#include "fathom/model/trace.hpp"

namespace fathom {

class StaticSkip : public PolicyBase {
 public:
  static constexpr bool observes_layers = false;

  explicit StaticSkip(size_t n_layers, std::set<int> skip = {}) : StaticSkip(n_layers, skip, skip) {}
  StaticSkip(size_t n_layers, std::set<int> skip_pp, std::set<int> skip_rg) {
    for (int p = 0; p < 2; ++p) skip_[p].assign(n_layers, 0);
    for (int l : skip_pp) check(l, n_layers), skip_[0][size_t(l)] = 1;
    for (int l : skip_rg) check(l, n_layers), skip_[1][size_t(l)] = 1;
  }

  const std::vector<uint8_t>& skipped(Phase p) const { return skip_[size_t(p)]; }

  void begin_token(const TokenInfo&, State&) const {}
  Action before_layer(const TokenInfo& t, State&, int l) const {
    return skip_[size_t(t.phase)][size_t(l)] ? Action::Skip : Action::Run;
  }

 private:
  static void check(int l, size_t n) {
    if (l < 0 || size_t(l) >= n)
      throw UsageError("", "layer", std::to_string(l) + " outside [0, " + std::to_string(n) + ")");
  }
  std::vector<uint8_t> skip_[2];  // [phase][layers]
};
static_assert(DepthPolicy<StaticSkip>);

// Layers activated for fewer than min_fraction of the trace's tokens, per phase.
inline StaticSkip calibrated_skip(const Trace& lac_trace, double min_fraction) {
  std::set<int> sets[2];
  for (int p = 0; p < 2; ++p) {
    const Usage u = lac_trace.usage(Phase(p));
    if (u.tokens == 0) continue;
    for (size_t l = 0; l < u.activated.size(); ++l)
      if (u.activated[l] < min_fraction) sets[p].insert(int(l));
  }
  return StaticSkip(lac_trace.n_layers(), sets[0], sets[1]);
}

}  // namespace fathom
