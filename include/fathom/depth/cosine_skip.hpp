#pragma once
// CosineSkip — the worked example of docs/policies.md: a layer that barely turned the previous
// token's stream (cos(h_{l−1}, h_l) > c) is skipped for the next token. A skipped layer is not
// measured, so it runs again on the token after: it is skipped at most every other token. In a
// prefill pass every token's decision at layer l is taken before any of them runs it, so the
// whole pass sees the previous pass's measurement (its first token skips, the rest run). A new
// sequence (position 0) starts with nothing measured.
#include <algorithm>
#include <cstdint>
#include <span>
#include <vector>

#include "fathom/depth/cosine.hpp"
#include "fathom/model/depth_policy.hpp"

namespace fathom {

class CosineSkip : public PolicyBase {
 public:
  static constexpr bool needs_layer_input = true;  // the cosine needs h_{l−1}

  CosineSkip(size_t n_layers, double c) : c_(c), similar_(n_layers, 0) {}

  // A sequence starts with nothing measured: a session that begins at position 0 does not see the
  // previous sequence's last token (one policy object may serve sequence after sequence; a batch of
  // sequences needs one object each, model/batch_session.hpp).
  void begin_token(const TokenInfo& t, State&) {
    if (t.position == 0) std::fill(similar_.begin(), similar_.end(), uint8_t(0));
  }
  Action before_layer(const TokenInfo&, State&, int l) {
    if (!similar_[size_t(l)]) return Action::Run;
    similar_[size_t(l)] = 0;  // measure it again on the next token
    return Action::Skip;
  }
  void after_layer(const TokenInfo&, State&, int l, std::span<const float> in,
                   std::span<float> out, LayerNote&) {
    similar_[size_t(l)] = cosine(in, out) > c_;
  }

 private:
  double c_;
  std::vector<uint8_t> similar_;  // [layers] the layer's last measured cosine exceeded c
};
static_assert(DepthPolicy<CosineSkip>);

}  // namespace fathom
