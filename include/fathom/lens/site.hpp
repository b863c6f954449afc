#pragma once
// Named residual-stream sites and an Observer that records them.
//
// Sites are named explicitly so the lens index convention can never be confused:
//   resid_pre[i]   input of block i            = hidden_states[i]   (resid_pre[0] = embeddings)
//   resid_mid[i]   after block i's attention   (no hidden_states index)
//   resid_post[i]  output of block i           = hidden_states[i+1] (before the final norm)
// "hidden_states" follows the tuned-lens 0.2 convention (docs/lenses.md): hidden_states[i] is the
// input of block i, for i = 0..L, with hidden_states[L] the output of the last block.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "fathom/core/error.hpp"
#include "fathom/model/taps.hpp"

namespace fathom::lens {

enum class SiteKind : uint8_t { resid_pre, resid_mid, resid_post };

struct Site {
  SiteKind kind = SiteKind::resid_pre;
  int layer = 0;

  Tap tap() const {
    return kind == SiteKind::resid_pre   ? Tap::resid_pre
           : kind == SiteKind::resid_mid ? Tap::resid_mid
                                         : Tap::resid_post;
  }
  // Index into hidden_states (tuned-lens convention), -1 for resid_mid.
  int hidden_index() const {
    return kind == SiteKind::resid_pre ? layer : kind == SiteKind::resid_post ? layer + 1 : -1;
  }
  std::string name() const {
    const char* k = kind == SiteKind::resid_pre   ? "resid_pre"
                    : kind == SiteKind::resid_mid ? "resid_mid"
                                                  : "resid_post";
    return std::string(k) + "[" + std::to_string(layer) + "]";
  }
  bool operator==(const Site&) const = default;

  // Parses "resid_pre[3]", "resid_mid[0]", "resid_post[11]"; n_layers bounds the index.
  static Site parse(std::string_view s, size_t n_layers) {
    auto bad = [&](const std::string& why) -> Site {
      throw UsageError("", "site '" + std::string(s) + "'", why);
    };
    const auto open = s.find('[');
    if (open == std::string_view::npos || s.size() < open + 3 || s.back() != ']')
      return bad("expected resid_pre[i], resid_mid[i] or resid_post[i]");
    const auto kind = s.substr(0, open);
    Site out;
    if (kind == "resid_pre") out.kind = SiteKind::resid_pre;
    else if (kind == "resid_mid") out.kind = SiteKind::resid_mid;
    else if (kind == "resid_post") out.kind = SiteKind::resid_post;
    else return bad("unknown site kind '" + std::string(kind) + "'");
    const auto num = s.substr(open + 1, s.size() - open - 2);
    long v = 0;
    for (char c : num) {
      if (c < '0' || c > '9' || v > 1'000'000) return bad("layer index is not a small integer");
      v = v * 10 + (c - '0');
    }
    if (size_t(v) >= n_layers)
      return bad("layer " + std::to_string(v) + " outside [0, " + std::to_string(n_layers) + ")");
    out.layer = int(v);
    return out;
  }
};

// hidden_states[i] as a site, i = 0..n_layers (the last one is resid_post[L-1]).
inline Site hidden_state_site(size_t i, size_t n_layers) {
  if (i > n_layers) throw UsageError("", "hidden_states index", "outside [0, n_layers]");
  return i < n_layers ? Site{SiteKind::resid_pre, int(i)} : Site{SiteKind::resid_post, int(i) - 1};
}
// All L+1 hidden states: resid_pre[0..L-1], resid_post[L-1].
inline std::vector<Site> hidden_state_sites(size_t n_layers) {
  std::vector<Site> s;
  for (size_t i = 0; i <= n_layers; ++i) s.push_back(hidden_state_site(i, n_layers));
  return s;
}

// Records the rows of the requested sites for every token slot of one forward pass. Call
// clear() before each forward pass (slots restart at 0 in every pass). A token that did not run
// a layer (skipped, exited) has no row there: has() says so.
class SiteRecorder {
 public:
  static constexpr bool enabled = true;

  SiteRecorder(std::vector<Site> sites, size_t hidden) : sites_(std::move(sites)), hidden_(hidden) {
    data_.resize(sites_.size());
    present_.resize(sites_.size());
  }

  const std::vector<Site>& sites() const { return sites_; }
  size_t hidden() const { return hidden_; }
  size_t tokens() const { return tokens_; }

  void clear() {
    tokens_ = 0;
    for (auto& p : present_) std::fill(p.begin(), p.end(), uint8_t(0));
  }

  void on_tap(Tap tap, int layer, const TapView& v) {
    for (size_t s = 0; s < sites_.size(); ++s) {
      if (sites_[s].tap() != tap || sites_[s].layer != layer) continue;
      if (v.cols != hidden_) throw UsageError("", "SiteRecorder", "tap width differs from hidden");
      for (size_t r = 0; r < v.rows; ++r) {
        const uint32_t slot = v.slots[r];
        grow(slot + 1);
        std::copy_n(v.row(r), hidden_, data_[s].data() + size_t(slot) * hidden_);
        present_[s][slot] = 1;
      }
    }
  }

  bool has(size_t site, uint32_t slot) const {
    return slot < tokens_ && present_[site][slot] != 0;
  }
  // [hidden] the recorded row of `site` for the token in `slot`.
  std::span<const float> get(size_t site, uint32_t slot) const {
    if (!has(site, slot))
      throw UsageError("", "site " + sites_[site].name(),
                       "no row recorded for slot " + std::to_string(slot));
    return {data_[site].data() + size_t(slot) * hidden_, hidden_};
  }
  // [n, hidden] the recorded rows of `site` for slots slot0 .. slot0+n-1 (contiguous: one block
  // for a batched readout); every one of them must be recorded.
  std::span<const float> rows(size_t site, uint32_t slot0, size_t n) const {
    for (size_t j = 0; j < n; ++j)
      if (!has(site, uint32_t(slot0 + j)))
        throw UsageError("", "site " + sites_[site].name(),
                         "no row recorded for slot " + std::to_string(slot0 + j));
    return {data_[site].data() + size_t(slot0) * hidden_, n * hidden_};
  }

 private:
  void grow(size_t n) {
    if (n <= tokens_) return;
    tokens_ = n;
    for (size_t s = 0; s < sites_.size(); ++s) {
      if (data_[s].size() < n * hidden_) data_[s].resize(n * hidden_);
      if (present_[s].size() < n) present_[s].resize(n, 0);
    }
  }

  std::vector<Site> sites_;
  size_t hidden_;
  size_t tokens_ = 0;
  std::vector<std::vector<float>> data_;      // per site: [slots, hidden]
  std::vector<std::vector<uint8_t>> present_; // per site: [slots]
};
static_assert(Observer<SiteRecorder>);

}  // namespace fathom::lens
