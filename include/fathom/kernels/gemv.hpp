#pragma once
// Row kernels of the matrix-vector product for dense weights (f32, bf16, f16). Decode is bound
// by reading the weights once, so each row is streamed with independent accumulators and the
// widening of bf16 costs two integer ops per 32 weights.
#include <cstddef>
#include <cmath>
#include <cstdint>
#include <vector>

#include "fathom/kernels/convert.hpp"
#include "fathom/kernels/prefetch.hpp"
#include "fathom/kernels/simd.hpp"

namespace fathom::kernels::detail {

// out[r] = sum_c w[r*ld + c] x[c] for R rows at once: the rows share every load of x (x of a
// 14336-wide layer does not fit L1, so this halves to quarters the L2 traffic per weight byte).
// Each row has its own 4 vector accumulators and the same operation sequence whatever R, so a
// row's result does not depend on how rows are grouped (or split over threads). `pf` prefetches
// the rows ahead (decode, prefetch.hpp). The scalar tail is an explicit fused multiply-add: left as
// `s += w * x`, GCC contracts it or not depending on where the function is inlined, and the
// batched kernels (gemv_batch.hpp) must reproduce it bit for bit.
template <int R>
inline void dot_f32_rows(const float* w, size_t ld, const float* x, size_t n, float* out,
                         const TilePrefetch& pf = {}) {
  using simd::fvec;
  constexpr size_t W = simd::W;
  fvec a[R][4];
  for (int r = 0; r < R; ++r) a[r][0] = a[r][1] = a[r][2] = a[r][3] = fvec(0.f);
  size_t c = 0;
  for (; c + 4 * W <= n; c += 4 * W) {
    pf.tile<R>(w, c * sizeof(float), 4 * W * sizeof(float));
    const fvec x0 = simd::loadu(x + c), x1 = simd::loadu(x + c + W);
    const fvec x2 = simd::loadu(x + c + 2 * W), x3 = simd::loadu(x + c + 3 * W);
    for (int r = 0; r < R; ++r) {
      const float* wr = w + r * ld + c;
      a[r][0] = xsimd::fma(simd::loadu(wr), x0, a[r][0]);
      a[r][1] = xsimd::fma(simd::loadu(wr + W), x1, a[r][1]);
      a[r][2] = xsimd::fma(simd::loadu(wr + 2 * W), x2, a[r][2]);
      a[r][3] = xsimd::fma(simd::loadu(wr + 3 * W), x3, a[r][3]);
    }
  }
  for (; c + W <= n; c += W) {
    const fvec x0 = simd::loadu(x + c);
    for (int r = 0; r < R; ++r) a[r][0] = xsimd::fma(simd::loadu(w + r * ld + c), x0, a[r][0]);
  }
  for (int r = 0; r < R; ++r) {
    float s = simd::hsum((a[r][0] + a[r][1]) + (a[r][2] + a[r][3]));
    for (size_t k = c; k < n; ++k) s = std::fma(w[r * ld + k], x[k], s);  // explicit (above)
    out[r] = s;
  }
}

// sum_c w[c] x[c], fixed summation order (4 vector accumulators, then the scalar tail).
inline float dot_f32(const float* w, const float* x, size_t n) {
  float s;
  dot_f32_rows<1>(w, 0, x, n, &s);
  return s;
}

// x split into its even and odd elements, so that bf16 weights can be widened in place
// (see simd::bf16_split). xe[i] = x[2i], xo[i] = x[2i+1].
struct SplitVector {
  std::vector<float> even, odd;
  void assign(const float* x, size_t n) {
    even.resize(n / 2 + 1);
    odd.resize(n / 2 + 1);
    for (size_t i = 0; 2 * i + 1 < n; ++i) { even[i] = x[2 * i]; odd[i] = x[2 * i + 1]; }
  }
};

// One step of dot_bf16_rows: 4W weights of each of R rows (2 x (W even + W odd)).
template <int R>
[[gnu::always_inline]] inline void bf16_rows_step(const uint16_t* w, size_t ld, const float* xe,
                                                  const float* xo, size_t c, simd::fvec (&a)[R][4]) {
  using simd::fvec;
  constexpr size_t W = simd::W;
  const fvec xe0 = simd::loadu(xe + c / 2), xo0 = simd::loadu(xo + c / 2);
  const fvec xe1 = simd::loadu(xe + c / 2 + W), xo1 = simd::loadu(xo + c / 2 + W);
  for (int r = 0; r < R; ++r) {
    fvec e0, o0, e1, o1;
    simd::bf16_split(w + r * ld + c, e0, o0);
    simd::bf16_split(w + r * ld + c + 2 * W, e1, o1);
    a[r][0] = xsimd::fma(e0, xe0, a[r][0]);
    a[r][1] = xsimd::fma(o0, xo0, a[r][1]);
    a[r][2] = xsimd::fma(e1, xe1, a[r][2]);
    a[r][3] = xsimd::fma(o1, xo1, a[r][3]);
  }
}

// out[r] = sum_c bf16 w[r*ld + c] * x[c] for R rows sharing the loads of x (xs = x split);
// per-row operation sequence independent of R, as dot_f32_rows.
template <int R>
inline void dot_bf16_rows(const uint16_t* w, size_t ld, const SplitVector& xs, const float* x,
                          size_t n, float* out, const TilePrefetch& pf = {}) {
  using simd::fvec;
  constexpr size_t W = simd::W;
  const float* xe = xs.even.data();
  const float* xo = xs.odd.data();
  fvec a[R][4];
  for (int r = 0; r < R; ++r) a[r][0] = a[r][1] = a[r][2] = a[r][3] = fvec(0.f);
  size_t c = 0;
  for (; c + 8 * W <= n; c += 8 * W) {  // prefetch 256 bytes of every row, then read them
    pf.tile<R>(w, c * sizeof(uint16_t), 8 * W * sizeof(uint16_t));
    bf16_rows_step<R>(w, ld, xe, xo, c, a);
    bf16_rows_step<R>(w, ld, xe, xo, c + 4 * W, a);
  }
  for (; c + 4 * W <= n; c += 4 * W) bf16_rows_step<R>(w, ld, xe, xo, c, a);
  for (; c + 2 * W <= n; c += 2 * W) {
    const fvec xe0 = simd::loadu(xe + c / 2), xo0 = simd::loadu(xo + c / 2);
    for (int r = 0; r < R; ++r) {
      fvec e0, o0;
      simd::bf16_split(w + r * ld + c, e0, o0);
      a[r][0] = xsimd::fma(e0, xe0, a[r][0]);
      a[r][1] = xsimd::fma(o0, xo0, a[r][1]);
    }
  }
  for (int r = 0; r < R; ++r) {
    float s = simd::hsum((a[r][0] + a[r][1]) + (a[r][2] + a[r][3]));
    for (size_t k = c; k < n; ++k) s = std::fma(bf16_to_f32(w[r * ld + k]), x[k], s);
    out[r] = s;
  }
}

// sum_c bf16 w[c] * x[c], with xs = x split; fixed summation order.
inline float dot_bf16(const uint16_t* w, const SplitVector& xs, const float* x, size_t n) {
  float s;
  dot_bf16_rows<1>(w, 0, xs, x, n, &s);
  return s;
}

}  // namespace fathom::kernels::detail
