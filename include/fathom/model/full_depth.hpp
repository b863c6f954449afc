#pragma once
// FullDepth: every layer for every token, read out after the last. Everything is constexpr or
// empty, so a run with FullDepth compiles to the plain forward pass.
#include "fathom/model/depth_policy.hpp"

namespace fathom {

struct FullDepth {
  static constexpr bool needs_layer_input = false;
  static constexpr bool observes_layers = false;  // after_layer is a no-op: the loop may omit it
  void begin_token(const TokenInfo&) {}
  constexpr Action before_layer(const TokenInfo&, int) const { return Action::Run; }
  void after_layer(const TokenInfo&, int, std::span<const float>, std::span<float>) {}
  std::span<const float> readout(const TokenInfo&, std::span<const float> final_state) const {
    return final_state;
  }
  void end_token(const TokenInfo&) {}
};
static_assert(DepthPolicy<FullDepth>);

}  // namespace fathom
