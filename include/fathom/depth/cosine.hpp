#pragma once
// cos(a, b) of two residual-stream vectors, in double (a layer that barely changes the stream has
// a cosine within 1e-4 of 1, below float's resolution of the sums). Used by CALM's `state`
// confidence, ShortGPT's Block Influence and the cosine-skip policy.
#include <cmath>
#include <cstddef>
#include <span>

namespace fathom {

// 0 when either vector is zero.
inline double cosine(std::span<const float> a, std::span<const float> b) {
  double ab = 0, aa = 0, bb = 0;
  for (size_t i = 0; i < a.size(); ++i)
    ab += double(a[i]) * b[i], aa += double(a[i]) * a[i], bb += double(b[i]) * b[i];
  return aa > 0 && bb > 0 ? ab / std::sqrt(aa * bb) : 0.0;
}

}  // namespace fathom
