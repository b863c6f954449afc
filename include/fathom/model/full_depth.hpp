#pragma once
// FullDepth: every layer for every token, read out after the last. Every call is a no-op or a
// constant, so a run with FullDepth compiles to the plain forward pass.
#include "fathom/model/depth_policy.hpp"

namespace fathom {

struct FullDepth : PolicyBase {
  static constexpr bool observes_layers = false;
  template <class S>
  void begin_token(const TokenInfo&, S&) const {}  // State is empty: nothing to reset
};
static_assert(DepthPolicy<FullDepth>);

}  // namespace fathom
