#pragma once
// Plain, obviously-correct reference kernels. The fast kernels are tested against these on odd
// sizes; nothing on a hot path calls them.
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <vector>

#include "fathom/kernels/matrix.hpp"

namespace fathom::kernels::reference {

// y[r] = sum_c W[r,c] x[c]  (double accumulation: the reference is more exact than the kernels)
inline void gemv(const MatrixView& W, const float* x, float* y) {
  for (size_t r = 0; r < W.rows; ++r) {
    double acc = 0;
    for (size_t c = 0; c < W.cols; ++c) acc += double(W.at(r, c)) * x[c];
    y[r] = float(acc);
  }
}

// Y[t, r] = sum_c X[t, c] W[r, c]; X: [n, W.cols], Y: [n, W.rows], both row-major.
inline void gemm(const MatrixView& W, const float* X, size_t n, float* Y) {
  for (size_t t = 0; t < n; ++t) reference::gemv(W, X + t * W.cols, Y + t * W.rows);
}

// transformers' RMSNorm: y = w * (x / sqrt(mean(x^2) + eps)).
inline void rmsnorm(const float* x, const float* w, float* y, size_t n, float eps) {
  double ss = 0;
  for (size_t i = 0; i < n; ++i) ss += double(x[i]) * x[i];
  const float inv = float(1.0 / std::sqrt(ss / double(n) + eps));
  for (size_t i = 0; i < n; ++i) y[i] = w[i] * (x[i] * inv);
}

inline void softmax(float* x, size_t n) {
  float m = -INFINITY;
  for (size_t i = 0; i < n; ++i) m = std::max(m, x[i]);
  double s = 0;
  for (size_t i = 0; i < n; ++i) s += std::exp(double(x[i] - m));
  for (size_t i = 0; i < n; ++i) x[i] = float(std::exp(double(x[i] - m)) / s);
}

}  // namespace fathom::kernels::reference

namespace fathom::kernels::reference {

// The activations as the Q8 products see them: per block of 32, d = max|x| / 127 and
// x' = clamp(round(x / d), -127, 127) * d (0 for an all-zero block).
inline std::vector<float> q8_activations(const float* x, size_t n) {
  std::vector<float> out(n, 0.f);
  for (size_t b = 0; b < n; b += 32) {
    const size_t e = std::min(n, b + 32);
    float amax = 0.f;
    for (size_t i = b; i < e; ++i) amax = std::max(amax, std::fabs(x[i]));
    const float d = amax / 127.f;
    if (d == 0.f) continue;
    const float id = 1.f / d;
    for (size_t i = b; i < e; ++i)
      out[i] = std::clamp(std::nearbyint(x[i] * id), -127.f, 127.f) * d;
  }
  return out;
}

}  // namespace fathom::kernels::reference

namespace fathom::kernels::reference {

inline void swiglu(const float* gate, const float* up, float* out, size_t n) {
  for (size_t i = 0; i < n; ++i) {
    const double g = gate[i];
    out[i] = float(g / (1.0 + std::exp(-g)) * up[i]);
  }
}

inline void rope_rotate_half(float* v, const float* cos, const float* sin, size_t head_dim) {
  const size_t h = head_dim / 2;
  for (size_t i = 0; i < h; ++i) {
    const double a = v[i], b = v[i + h];
    v[i] = float(a * cos[i] - b * sin[i]);
    v[i + h] = float(b * cos[i] + a * sin[i]);
  }
}

// Decode attention in double (see kernels::attend for the contract); Kf/Vf give cache element i
// of position t as f32.
template <class KAt, class VAt>
inline void attend(const float* q, KAt Kf, VAt Vf, size_t T, size_t hd, float scale,
                   const uint8_t* mask, float* out) {
  std::vector<double> s(T, -INFINITY);
  double m = -INFINITY;
  for (size_t t = 0; t < T; ++t) {
    if (mask && !mask[t]) continue;
    double d = 0;
    for (size_t i = 0; i < hd; ++i) d += double(q[i]) * Kf(t, i);
    s[t] = scale * d;
    m = std::max(m, s[t]);
  }
  for (size_t i = 0; i < hd; ++i) out[i] = 0.f;
  if (m == -INFINITY) return;
  double z = 0;
  for (size_t t = 0; t < T; ++t) z += (s[t] = std::exp(s[t] - m));
  for (size_t i = 0; i < hd; ++i) {
    double o = 0;
    for (size_t t = 0; t < T; ++t) o += s[t] / z * Vf(t, i);
    out[i] = float(o);
  }
}

}  // namespace fathom::kernels::reference
