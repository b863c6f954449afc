#pragma once
// Vector kernels of the transformer blocks: RMSNorm, SwiGLU gate, softmax, RoPE rotation, adds,
// dot products and norms (xsimd; scalar tails for lengths that are not multiples of the width).
#include <cmath>
#include <cstddef>

#include "fathom/kernels/gemv.hpp"
#include "fathom/kernels/simd.hpp"

namespace fathom::kernels {

namespace detail {
// sum x[i]^2 in f32 with vector lanes (fixed order).
inline float sum_squares(const float* x, size_t n) {
  using simd::fvec;
  constexpr size_t W = simd::W;
  fvec a0(0.f), a1(0.f);
  size_t i = 0;
  for (; i + 2 * W <= n; i += 2 * W) {
    const fvec u = simd::loadu(x + i), v = simd::loadu(x + i + W);
    a0 = xsimd::fma(u, u, a0);
    a1 = xsimd::fma(v, v, a1);
  }
  for (; i + W <= n; i += W) {
    const fvec u = simd::loadu(x + i);
    a0 = xsimd::fma(u, u, a0);
  }
  float s = simd::hsum(a0 + a1);
  for (; i < n; ++i) s += x[i] * x[i];
  return s;
}
}  // namespace detail

// transformers' RMSNorm in f32: y = w * (x * 1/sqrt(mean(x^2) + eps)). y may alias x.
inline void rmsnorm(const float* x, const float* w, float* y, size_t n, float eps) {
  using simd::fvec;
  constexpr size_t W = simd::W;
  const float inv = 1.0f / std::sqrt(detail::sum_squares(x, n) / float(n) + eps);
  const fvec vinv(inv);
  size_t i = 0;
  for (; i + W <= n; i += W) simd::storeu(y + i, simd::loadu(w + i) * (simd::loadu(x + i) * vinv));
  for (; i < n; ++i) y[i] = w[i] * (x[i] * inv);
}

// out = silu(gate) * up, silu(g) = g / (1 + exp(-g)). out may alias gate or up.
inline void swiglu(const float* gate, const float* up, float* out, size_t n) {
  using simd::fvec;
  constexpr size_t W = simd::W;
  const fvec one(1.f);
  size_t i = 0;
  for (; i + W <= n; i += W) {
    const fvec g = simd::loadu(gate + i);
    simd::storeu(out + i, (g / (one + xsimd::exp(-g))) * simd::loadu(up + i));
  }
  for (; i < n; ++i) {
    const float g = gate[i];
    out[i] = (g / (1.0f + std::exp(-g))) * up[i];
  }
}

// In-place softmax over n values. All -inf gives NaN, as torch does.
inline void softmax(float* x, size_t n) {
  using simd::fvec;
  constexpr size_t W = simd::W;
  float m = -INFINITY;
  size_t i = 0;
  if (n >= W) {
    fvec vm(-INFINITY);
    for (; i + W <= n; i += W) vm = xsimd::max(vm, simd::loadu(x + i));
    alignas(64) float lanes[W];  // xsimd 8 has no horizontal max
    vm.store_aligned(lanes);
    for (size_t k = 0; k < W; ++k) m = lanes[k] > m ? lanes[k] : m;
  }
  for (; i < n; ++i) m = x[i] > m ? x[i] : m;
  const fvec vmax(m);
  fvec vs(0.f);
  for (i = 0; i + W <= n; i += W) {
    const fvec e = xsimd::exp(simd::loadu(x + i) - vmax);
    simd::storeu(x + i, e);
    vs += e;
  }
  float s = simd::hsum(vs);
  for (; i < n; ++i) { x[i] = std::exp(x[i] - m); s += x[i]; }
  const float inv = 1.0f / s;
  const fvec vinv(inv);
  for (i = 0; i + W <= n; i += W) simd::storeu(x + i, simd::loadu(x + i) * vinv);
  for (; i < n; ++i) x[i] *= inv;
}

// Rotate-half RoPE of one head vector v[head_dim] in place (transformers' apply_rotary_pos_emb):
// v' = v * cos + rotate_half(v) * sin, with cos/sin[head_dim/2] for this position.
inline void rope_rotate_half(float* v, const float* cos, const float* sin, size_t head_dim) {
  using simd::fvec;
  constexpr size_t W = simd::W;
  const size_t h = head_dim / 2;
  size_t i = 0;
  for (; i + W <= h; i += W) {
    const fvec a = simd::loadu(v + i), b = simd::loadu(v + i + h);
    const fvec c = simd::loadu(cos + i), s = simd::loadu(sin + i);
    simd::storeu(v + i, a * c - b * s);
    simd::storeu(v + i + h, b * c + a * s);
  }
  for (; i < h; ++i) {
    const float a = v[i], b = v[i + h];
    v[i] = a * cos[i] - b * sin[i];
    v[i + h] = b * cos[i] + a * sin[i];
  }
}

inline void add_inplace(float* y, const float* x, size_t n) {
  constexpr size_t W = simd::W;
  size_t i = 0;
  for (; i + W <= n; i += W) simd::storeu(y + i, simd::loadu(y + i) + simd::loadu(x + i));
  for (; i < n; ++i) y[i] += x[i];
}

inline float dot(const float* a, const float* b, size_t n) { return detail::dot_f32(a, b, n); }

// Euclidean norm with double accumulation: each f32 square is exact in double, and eight
// independent double lanes keep the sum as exact as a sequential double loop (norms feed LAC's
// thresholds).
inline float l2_norm(const float* x, size_t n) {
  double acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  size_t i = 0;
  for (; i + 8 <= n; i += 8)
    for (size_t k = 0; k < 8; ++k) acc[k] += double(x[i + k]) * double(x[i + k]);
  for (; i < n; ++i) acc[0] += double(x[i]) * double(x[i]);
  const double s = ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
  return float(std::sqrt(s));
}

}  // namespace fathom::kernels
