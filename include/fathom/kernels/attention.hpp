#pragma once
// Decode attention of one query head against the cached keys/values of T positions.
#include <cmath>
#include <cstddef>
#include <cstdint>

#include "fathom/kernels/elementwise.hpp"

namespace fathom::kernels {

// out[hd] = sum_t softmax_t(scale * q.K[t]) V[t] over positions t in [0, T) with mask[t] != 0
// (mask may be null: all positions). K[t] = K + t*stride, V[t] = V + t*stride (the cache holds
// every kv head of a position side by side). scores: scratch of T floats. When no position is
// visible, out is zero.
inline void attend(const float* q, const float* K, const float* V, size_t T, size_t stride,
                   size_t hd, float scale, const uint8_t* mask, float* scores, float* out) {
  float m = -INFINITY;
  for (size_t t = 0; t < T; ++t) {
    scores[t] = (mask && !mask[t]) ? -INFINITY : scale * dot(q, K + t * stride, hd);
    m = scores[t] > m ? scores[t] : m;
  }
  for (size_t i = 0; i < hd; ++i) out[i] = 0.f;
  if (m == -INFINITY) return;
  float s = 0.f;
  for (size_t t = 0; t < T; ++t) {
    scores[t] = std::exp(scores[t] - m);
    s += scores[t];
  }
  const float inv = 1.0f / s;
  for (size_t t = 0; t < T; ++t) {
    const float p = scores[t] * inv;
    if (p == 0.f) continue;
    const float* v = V + t * stride;
    for (size_t i = 0; i < hd; ++i) out[i] += p * v[i];
  }
}

}  // namespace fathom::kernels
