#pragma once
// Row kernels of the matrix-vector product for dense weights (f32, bf16, f16). Decode is bound
// by reading the weights once, so each row is streamed with independent accumulators and the
// widening of bf16 costs two integer ops per 32 weights.
#include <cstddef>
#include <cstdint>
#include <vector>

#include "fathom/kernels/convert.hpp"
#include "fathom/kernels/simd.hpp"

namespace fathom::kernels::detail {

// sum_c w[c] x[c], fixed summation order (4 vector accumulators, then the scalar tail).
inline float dot_f32(const float* w, const float* x, size_t n) {
  using simd::fvec;
  constexpr size_t W = simd::W;
  fvec a0(0.f), a1(0.f), a2(0.f), a3(0.f);
  size_t c = 0;
  for (; c + 4 * W <= n; c += 4 * W) {
    a0 = xsimd::fma(simd::loadu(w + c), simd::loadu(x + c), a0);
    a1 = xsimd::fma(simd::loadu(w + c + W), simd::loadu(x + c + W), a1);
    a2 = xsimd::fma(simd::loadu(w + c + 2 * W), simd::loadu(x + c + 2 * W), a2);
    a3 = xsimd::fma(simd::loadu(w + c + 3 * W), simd::loadu(x + c + 3 * W), a3);
  }
  for (; c + W <= n; c += W) a0 = xsimd::fma(simd::loadu(w + c), simd::loadu(x + c), a0);
  float s = simd::hsum((a0 + a1) + (a2 + a3));
  for (; c < n; ++c) s += w[c] * x[c];
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

// sum_c bf16 w[c] * x[c], with xs = x split; fixed summation order.
inline float dot_bf16(const uint16_t* w, const SplitVector& xs, const float* x, size_t n) {
  using simd::fvec;
  constexpr size_t W = simd::W;
  const float* xe = xs.even.data();
  const float* xo = xs.odd.data();
  fvec a0(0.f), a1(0.f), a2(0.f), a3(0.f);
  size_t c = 0;
  for (; c + 4 * W <= n; c += 4 * W) {  // 4W weights: 2 x (W even + W odd)
    fvec e0, o0, e1, o1;
    simd::bf16_split(w + c, e0, o0);
    simd::bf16_split(w + c + 2 * W, e1, o1);
    a0 = xsimd::fma(e0, simd::loadu(xe + c / 2), a0);
    a1 = xsimd::fma(o0, simd::loadu(xo + c / 2), a1);
    a2 = xsimd::fma(e1, simd::loadu(xe + c / 2 + W), a2);
    a3 = xsimd::fma(o1, simd::loadu(xo + c / 2 + W), a3);
  }
  for (; c + 2 * W <= n; c += 2 * W) {
    fvec e0, o0;
    simd::bf16_split(w + c, e0, o0);
    a0 = xsimd::fma(e0, simd::loadu(xe + c / 2), a0);
    a1 = xsimd::fma(o0, simd::loadu(xo + c / 2), a1);
  }
  float s = simd::hsum((a0 + a1) + (a2 + a3));
  for (; c < n; ++c) s += bf16_to_f32(w[c]) * x[c];
  return s;
}

}  // namespace fathom::kernels::detail
