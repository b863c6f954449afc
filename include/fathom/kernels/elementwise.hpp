#pragma once
// Vector kernels of the transformer blocks: RMSNorm, SwiGLU gate, softmax, RoPE rotation, adds.
#include <cmath>
#include <cstddef>

namespace fathom::kernels {

// transformers' RMSNorm in f32: y = w * (x * 1/sqrt(mean(x^2) + eps)). y may alias x.
inline void rmsnorm(const float* x, const float* w, float* y, size_t n, float eps) {
  float ss = 0.f;
  for (size_t i = 0; i < n; ++i) ss += x[i] * x[i];
  const float inv = 1.0f / std::sqrt(ss / float(n) + eps);
  for (size_t i = 0; i < n; ++i) y[i] = w[i] * (x[i] * inv);
}

// out = silu(gate) * up, silu(g) = g / (1 + exp(-g)). out may alias gate or up.
inline void swiglu(const float* gate, const float* up, float* out, size_t n) {
  for (size_t i = 0; i < n; ++i) {
    const float g = gate[i];
    out[i] = (g / (1.0f + std::exp(-g))) * up[i];
  }
}

// In-place softmax over n values.
inline void softmax(float* x, size_t n) {
  float m = -INFINITY;
  for (size_t i = 0; i < n; ++i) m = x[i] > m ? x[i] : m;
  float s = 0.f;
  for (size_t i = 0; i < n; ++i) { x[i] = std::exp(x[i] - m); s += x[i]; }
  const float inv = 1.0f / s;
  for (size_t i = 0; i < n; ++i) x[i] *= inv;
}

// Rotate-half RoPE of one head vector v[head_dim] in place (transformers' apply_rotary_pos_emb):
// v' = v * cos + rotate_half(v) * sin, with cos/sin[head_dim/2] for this position.
inline void rope_rotate_half(float* v, const float* cos, const float* sin, size_t head_dim) {
  const size_t h = head_dim / 2;
  for (size_t i = 0; i < h; ++i) {
    const float a = v[i], b = v[i + h];
    v[i] = a * cos[i] - b * sin[i];
    v[i + h] = b * cos[i] + a * sin[i];
  }
}

inline void add_inplace(float* y, const float* x, size_t n) {
  for (size_t i = 0; i < n; ++i) y[i] += x[i];
}

inline float dot(const float* a, const float* b, size_t n) {
  float s = 0.f;
  for (size_t i = 0; i < n; ++i) s += a[i] * b[i];
  return s;
}

inline float l2_norm(const float* x, size_t n) {
  double s = 0;  // norms feed LAC's thresholds: keep them exact
  for (size_t i = 0; i < n; ++i) s += double(x[i]) * x[i];
  return float(std::sqrt(s));
}

}  // namespace fathom::kernels
