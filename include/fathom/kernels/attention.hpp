#pragma once
// Decode attention of one query head against the cached keys/values of T positions, with the
// cache in f32 (attend) or bf16 (attend_bf16).
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <vector>

#include "fathom/core/dtype.hpp"
#include "fathom/kernels/elementwise.hpp"
#include "fathom/kernels/simd.hpp"

namespace fathom::kernels {

namespace detail {
// scores[t] -> softmax weights in place over visible positions; returns false when none is
// visible. Masked positions get weight 0.
inline bool attention_weights(float* scores, size_t T) {
  float m = -INFINITY;
  for (size_t t = 0; t < T; ++t) m = scores[t] > m ? scores[t] : m;
  if (m == -INFINITY) return false;
  softmax(scores, T);  // exp(-inf - m) = 0 for masked positions
  return true;
}

// out[hd] += p * v[hd] (f32 row).
inline void axpy(float p, const float* v, float* out, size_t hd) {
  constexpr size_t W = simd::W;
  const simd::fvec vp(p);
  size_t i = 0;
  for (; i + W <= hd; i += W) simd::storeu(out + i, xsimd::fma(vp, simd::loadu(v + i), simd::loadu(out + i)));
  for (; i < hd; ++i) out[i] += p * v[i];
}
}  // namespace detail

// out[hd] = sum_t softmax_t(scale * q.K[t]) V[t] over positions t in [0, T) with mask[t] != 0
// (mask may be null: all positions). K[t] = K + t*stride, V[t] = V + t*stride (the cache holds
// every kv head of a position side by side). scores: scratch of T floats. When no position is
// visible, out is zero.
inline void attend(const float* q, const float* K, const float* V, size_t T, size_t stride,
                   size_t hd, float scale, const uint8_t* mask, float* scores, float* out) {
  for (size_t t = 0; t < T; ++t)
    scores[t] = (mask && !mask[t]) ? -INFINITY : scale * dot(q, K + t * stride, hd);
  for (size_t i = 0; i < hd; ++i) out[i] = 0.f;
  if (!detail::attention_weights(scores, T)) return;
  for (size_t t = 0; t < T; ++t)
    if (scores[t] != 0.f) detail::axpy(scores[t], V + t * stride, out, hd);
}

// attend with a bf16 cache: K and V hold bf16 bits (uint16_t), same layout and semantics; every
// product is computed in f32 from the exactly widened cache values.
inline void attend_bf16(const float* q, const uint16_t* K, const uint16_t* V, size_t T,
                        size_t stride, size_t hd, float scale, const uint8_t* mask, float* scores,
                        float* out) {
  constexpr size_t W = simd::W;
  thread_local detail::SplitVector qs;  // [hd/2] even and odd elements of q
  qs.assign(q, hd);
  for (size_t t = 0; t < T; ++t)
    scores[t] = (mask && !mask[t]) ? -INFINITY : scale * detail::dot_bf16(K + t * stride, qs, q, hd);
  for (size_t i = 0; i < hd; ++i) out[i] = 0.f;
  if (!detail::attention_weights(scores, T)) return;
  // Accumulate even and odd output elements separately (the natural result of widening pairs),
  // interleave once at the end.
  thread_local std::vector<float> acc;  // [2][hd/2 + 1] even, odd
  const size_t h2 = hd / 2 + 1;
  acc.assign(2 * h2, 0.f);
  float* oe = acc.data();
  float* oo = acc.data() + h2;
  const size_t vec_end = hd / (2 * W) * (2 * W);  // elements covered by whole pair vectors
  for (size_t t = 0; t < T; ++t) {
    const float p = scores[t];
    if (p == 0.f) continue;
    const uint16_t* v = V + t * stride;
    const simd::fvec vp(p);
    for (size_t i = 0; i < vec_end; i += 2 * W) {
      simd::fvec e, o;
      simd::bf16_split(v + i, e, o);
      simd::storeu(oe + i / 2, xsimd::fma(vp, e, simd::loadu(oe + i / 2)));
      simd::storeu(oo + i / 2, xsimd::fma(vp, o, simd::loadu(oo + i / 2)));
    }
    for (size_t i = vec_end; i < hd; ++i) out[i] += p * bf16_to_f32(v[i]);
  }
  for (size_t i = 0; i < vec_end; i += 2) {
    out[i] = oe[i / 2];
    out[i + 1] = oo[i / 2];
  }
}

}  // namespace fathom::kernels
