#pragma once
// One row of the tuned-lens loss: KL(p ‖ softmax(logits)) and its gradient with respect to the
// logits, in two vector passes over the vocabulary (max, then exp-sum with the p·logits dot
// product) and one more for the gradient. Lens training runs this for every token and layer, so
// it must not be a scalar exp loop (one std::exp per vocabulary entry costs more than the
// unembedding product itself at vocabularies of 50k).
//
//   lse = log Σ_v exp(logits_v)
//   KL  = Σ_v p_v (log p_v − logits_v + lse) = neg_entropy − Σ_v p_v logits_v + lse · Σ_v p_v
//   dKL/dlogits_v = softmax(logits)_v · Σ_u p_u − p_v   (Σ p = 1 up to rounding: q − p)
#include <cmath>
#include <cstddef>

#include "fathom/kernels/simd.hpp"

namespace fathom::kernels {

struct KlRow {
  double lse = 0;           // log Σ exp(logits)
  double p_dot_logits = 0;  // Σ p · logits
};

// Reads logits[n] and p[n]. When `grad` is set, overwrites logits with (softmax(logits) − p) ·
// scale. Partial sums are f32 vector lanes folded into doubles every block, in a fixed order
// (the result does not depend on threads).
inline KlRow kl_row(float* logits, const float* p, size_t n, bool grad, float scale) {
  using simd::fvec;
  constexpr size_t W = simd::W;
  constexpr size_t kBlock = 64 * W;  // values per f32 partial sum before it is folded into a double
  float m = -INFINITY;
  size_t i = 0;
  if (n >= W) {
    fvec vm(-INFINITY);
    for (; i + W <= n; i += W) vm = xsimd::max(vm, simd::loadu(logits + i));
    alignas(64) float lanes[W];
    vm.store_aligned(lanes);
    for (size_t k = 0; k < W; ++k) m = lanes[k] > m ? lanes[k] : m;
  }
  for (; i < n; ++i) m = logits[i] > m ? logits[i] : m;
  const fvec vmax(m);
  double s = 0, pl = 0;
  for (size_t b = 0; b < n; b += kBlock) {
    const size_t e = b + kBlock < n ? b + kBlock : n;
    fvec vs(0.f), vpl(0.f);
    size_t j = b;
    for (; j + W <= e; j += W) {
      const fvec x = simd::loadu(logits + j);
      vs += xsimd::exp(x - vmax);
      vpl = xsimd::fma(simd::loadu(p + j), x, vpl);
    }
    float ts = simd::hsum(vs), tpl = simd::hsum(vpl);
    for (; j < e; ++j) ts += std::exp(logits[j] - m), tpl += p[j] * logits[j];
    s += double(ts), pl += double(tpl);
  }
  KlRow r{double(m) + std::log(s), pl};
  if (!grad) return r;
  const float off = float(r.lse);
  const fvec voff(off), vsc(scale);
  i = 0;
  for (; i + W <= n; i += W)
    simd::storeu(logits + i, (xsimd::exp(simd::loadu(logits + i) - voff) - simd::loadu(p + i)) * vsc);
  for (; i < n; ++i) logits[i] = (std::exp(logits[i] - off) - p[i]) * scale;
  return r;
}

}  // namespace fathom::kernels
