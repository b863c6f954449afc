#pragma once
// Decode attention of one query head against the cached keys/values of T positions, with the
// cache in f32 (attend) or bf16 (attend_bf16).
#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <type_traits>
#include <vector>

#include "fathom/core/dtype.hpp"
#include "fathom/kernels/cpu_features.hpp"
#include "fathom/kernels/elementwise.hpp"
#include "fathom/kernels/prefetch.hpp"
#include "fathom/kernels/simd.hpp"

namespace fathom::kernels {

namespace detail {
// Cache rows asked for this many positions ahead of the row being read, in the grouped kernels
// (attend_group, attend_group_bf16): decode reads each layer's keys and then its values once, as
// two streams of T rows, from DRAM (the weights' stream evicts them between tokens), and the
// hardware prefetchers started each stream late. 32 rows: 8 KiB of a 64-wide f32 head.
//
// Not on a Zen 4 (AMD family 19h with AVX-512): there every software prefetch in these kernels
// made decode slower. SmolLM2-135M's decode at 256 positions, one thread: attention took 680-686
// us a token with these prefetches and 541-545 without (the keys' pass 347-355 and 243-262); the
// keys also read ahead into L2 (64 rows), the prefetches one line at a time, or only the values'
// first rows asked for during the keys' pass did no better (docs/benchmarks.md, "Zen 4: decode
// attention in one pass over the keys, without software prefetch").
constexpr size_t kAttendAheadRows = 32;
// -1: the choice above; 0 / 1: prefetches off / on everywhere (bench_attention compares them).
// Results do not depend on it.
inline std::atomic<int>& attend_prefetch_forced() {
  static std::atomic<int> v{-1};
  return v;
}
inline bool attend_prefetch() {
  if (const int f = attend_prefetch_forced().load(std::memory_order_relaxed); f >= 0) return f != 0;
#if defined(__AVX512F__)
  static const bool on = !amd_family_19h();
  return on;
#else
  return true;
#endif
}
// The lines of elements [c0, c0 + n) of row t (element size E bytes).
template <class E>
inline void prefetch_row(const E* base, size_t t, size_t stride, size_t c0, size_t n) {
  const uintptr_t at = reinterpret_cast<uintptr_t>(base + t * stride + c0);
  for (uintptr_t line = at & ~uintptr_t(63); line < at + n * sizeof(E); line += 64) prefetch_line(line);
}
// Keys then values as one stream of 2T rows: row i < T is key i, else value i - T. The scores'
// pass asks for the first values while it ends, so the weighted sum starts on warm rows.
template <class E>
inline void prefetch_kv_row(const E* K, const E* V, size_t i, size_t T, size_t stride, size_t hd) {
  if (i < T) prefetch_row(K, i, stride, 0, hd);
  else if (i < 2 * T) prefetch_row(V, i - T, stride, 0, hd);
}

// The prefetches for one block of W positions (rows t0 + kAttendAheadRows on), shared out over the
// G heads' score passes of the block: head g asks for rows [W g / G, W (g + 1) / G). All W rows at
// once before the first head (64 lines of a 64-wide f32 head) ran the keys' pass at 20-23 GB/s
// from DRAM on a Zen 5, shared out 29-30 (1.33-1.45x at 4000 positions, 1.05-1.19x at 449-1000;
// docs/benchmarks.md, "Decode at two threads"). For the head sizes without a one-pass kernel;
// scores_heads spreads them the same way, one row asked for with each row it reads.
template <class E>
inline void prefetch_block_share(const E* K, const E* V, size_t t0, size_t g, size_t G, size_t T, size_t stride,
                                 size_t hd) {
  constexpr size_t W = simd::W;
  for (size_t j = W * g / G; j < W * (g + 1) / G; ++j) prefetch_kv_row(K, V, t0 + j + kAttendAheadRows, T, stride, hd);
}

// scores[t] -> softmax weights in place over visible positions; returns false when none is
// visible. Masked positions get weight 0.
inline bool attention_weights(float* scores, size_t T) {
  // Is any score above -inf? Vectors: softmax finds the maximum itself, and a scalar maximum here
  // (a chain of maxss) took 15 % of a grouped head's time at 2048 positions.
  constexpr size_t W = simd::W;
  bool any = false;
  size_t t = 0;
  for (; t + W <= T && !any; t += W) any = xsimd::any(simd::loadu(scores + t) > simd::fvec(-INFINITY));
  for (; t < T && !any; ++t) any = scores[t] > -INFINITY;
  if (!any) return false;
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

// Fast paths for head sizes that are whole vectors (64, 128, ...): W positions' scores at once
// (one horizontal reduction of W vectors, simd::hsum_rows, instead of W separate ones), and the output
// kept in registers while the positions stream by.
template <class RowDot>
inline void scores_blocked(RowDot row_dot, size_t T, float scale, const uint8_t* mask,
                           float* scores) {
  constexpr size_t W = simd::W;
  alignas(64) float tmp[W];
  for (size_t t0 = 0; t0 < T; t0 += W) {
    const size_t tb = std::min(W, T - t0);
    simd::fvec rows[W];
    for (size_t j = 0; j < W; ++j) rows[j] = j < tb ? row_dot(t0 + j) : simd::fvec(0.f);
    (simd::hsum_rows(rows) * simd::fvec(scale)).store_aligned(tmp);
    for (size_t j = 0; j < tb; ++j) scores[t0 + j] = (mask && !mask[t0 + j]) ? -INFINITY : tmp[j];
  }
}

// Scores of H heads over positions [t0, t0 + tb) (tb <= W), head g's into scores + g*T + t0;
// rows(k, part, j) puts every head's per-lane partial sums for the key row at k in part[g][j].
// Each key row is thus loaded once for the H heads, whose queries the caller keeps in registers;
// per head and position the FMAs run in attend()'s (attend_bf16()'s) order and the W positions'
// sums are one hsum_rows, as scores_blocked's, so the bits are theirs. One pass over the rows
// for all heads, where each head had its own: the keys' pass of SmolLM2's decode from DRAM
// 1.5-1.6x as fast on a Zen 4 (3 heads; docs/benchmarks.md, "Zen 4: decode attention in one
// pass over the keys, without software prefetch"). `ahead`: with each row read, ask for the row
// kAttendAheadRows on (the keys, then the values, as one stream).
template <size_t H, class E, class Rows>
inline void scores_heads(const E* K, const E* V, size_t t0, size_t tb, size_t T, size_t stride, size_t hd,
                         float scale, const uint8_t* mask, float* scores, bool ahead, Rows rows) {
  constexpr size_t W = simd::W;
  simd::fvec part[H][W];  // [head][position] per-lane partial sums of the block's dot products
  for (size_t j = 0; j < tb; ++j) {
    if (ahead) prefetch_kv_row(K, V, t0 + j + kAttendAheadRows, T, stride, hd);
    rows(K + (t0 + j) * stride, part, j);
  }
  for (size_t g = 0; g < H; ++g) {
    for (size_t j = tb; j < W; ++j) part[g][j] = simd::fvec(0.f);
    alignas(64) float tmp[W];
    (simd::hsum_rows(part[g]) * simd::fvec(scale)).store_aligned(tmp);
    float* sg = scores + g * T + t0;
    for (size_t j = 0; j < tb; ++j) sg[j] = (mask && !mask[t0 + j]) ? -INFINITY : tmp[j];
  }
}

// f32 keys of NV vectors: H heads' queries (q + g*q_stride) in registers.
template <size_t NV, size_t H>
inline void scores_heads_f32(const float* q, size_t q_stride, const float* K, const float* V, size_t t0, size_t tb,
                             size_t T, size_t stride, float scale, const uint8_t* mask, float* scores, bool ahead) {
  constexpr size_t W = simd::W;
  simd::fvec qv[H][NV];
  for (size_t g = 0; g < H; ++g)
    for (size_t i = 0; i < NV; ++i) qv[g][i] = simd::loadu(q + g * q_stride + i * W);
  scores_heads<H>(K, V, t0, tb, T, stride, NV * W, scale, mask, scores, ahead,
                  [&](const float* k, simd::fvec(&part)[H][W], size_t j) {
                    simd::fvec kr[NV];
                    for (size_t i = 0; i < NV; ++i) kr[i] = simd::loadu(k + i * W);
                    for (size_t g = 0; g < H; ++g) {
                      simd::fvec a(0.f);
                      for (size_t i = 0; i < NV; ++i) a = xsimd::fma(qv[g][i], kr[i], a);
                      part[g][j] = a;
                    }
                  });
}

// bf16 keys of NP pairs of vectors: H heads' queries split into even and odd elements
// (qs[g], as attend_bf16 splits them) in registers.
template <size_t NP, size_t H>
inline void scores_heads_bf16(const SplitVector* qs, const uint16_t* K, const uint16_t* V, size_t t0, size_t tb,
                              size_t T, size_t stride, float scale, const uint8_t* mask, float* scores, bool ahead) {
  constexpr size_t W = simd::W;
  simd::fvec qe[H][NP], qo[H][NP];
  for (size_t g = 0; g < H; ++g)
    for (size_t i = 0; i < NP; ++i) {
      qe[g][i] = simd::loadu(qs[g].even.data() + i * W);
      qo[g][i] = simd::loadu(qs[g].odd.data() + i * W);
    }
  scores_heads<H>(K, V, t0, tb, T, stride, 2 * NP * W, scale, mask, scores, ahead,
                  [&](const uint16_t* k, simd::fvec(&part)[H][W], size_t j) {
                    simd::fvec ke[NP], ko[NP];
                    for (size_t i = 0; i < NP; ++i) simd::bf16_split(k + 2 * i * W, ke[i], ko[i]);
                    for (size_t g = 0; g < H; ++g) {
                      simd::fvec a(0.f), b(0.f);
                      for (size_t i = 0; i < NP; ++i) {
                        a = xsimd::fma(qe[g][i], ke[i], a);
                        b = xsimd::fma(qo[g][i], ko[i], b);
                      }
                      part[g][j] = a + b;
                    }
                  });
}

// The most heads one pass takes for N query vectors a head: their queries, one key row (N
// vectors) and the heads' sums fit the vector registers (32 with AVX-512, 16 below).
template <size_t N>
constexpr size_t kScoreHeads = simd::W == 16 ? (N <= 4 ? 4 : 2) : (N <= 2 ? 4 : N <= 4 ? 2 : 1);

// Every head's scores over one block of positions, in passes of up to HM heads: pass(h, g0)
// runs heads g0 .. g0 + h (h <= HM, a compile-time constant). The callers let only the first
// pass ask for rows ahead (the later ones read the block from L1).
template <size_t HM, class Pass>
inline void scores_passes(size_t G, Pass pass) {
  for (size_t g0 = 0; g0 < G; g0 += HM) switch (std::min(HM, G - g0)) {
      case 1: pass(std::integral_constant<size_t, 1>{}, g0); break;
      case 2: pass(std::integral_constant<size_t, std::min<size_t>(HM, 2)>{}, g0); break;
      case 3: pass(std::integral_constant<size_t, std::min<size_t>(HM, 3)>{}, g0); break;
      default: pass(std::integral_constant<size_t, HM>{}, g0); break;
    }
}
template <size_t NV>
inline void scores_block_f32(const float* q, size_t q_stride, size_t G, const float* K, const float* V, size_t t0,
                             size_t tb, size_t T, size_t stride, float scale, const uint8_t* mask, float* scores,
                             bool ahead) {
  scores_passes<kScoreHeads<NV>>(G, [&](auto h, size_t g0) {
    scores_heads_f32<NV, h>(q + g0 * q_stride, q_stride, K, V, t0, tb, T, stride, scale, mask, scores + g0 * T,
                            ahead && g0 == 0);
  });
}
template <size_t NP>
inline void scores_block_bf16(const SplitVector* qs, size_t G, const uint16_t* K, const uint16_t* V, size_t t0,
                              size_t tb, size_t T, size_t stride, float scale, const uint8_t* mask, float* scores,
                              bool ahead) {
  scores_passes<kScoreHeads<2 * NP>>(G, [&](auto h, size_t g0) {
    scores_heads_bf16<NP, h>(qs + g0, K, V, t0, tb, T, stride, scale, mask, scores + g0 * T, ahead && g0 == 0);
  });
}

// out[c*W .. c*W + NV*W) = sum_t p[t] * V[t][same range], V rows given by v_at(t) (f32).
template <size_t NV>
inline void weighted_sum_f32(const float* p, const float* V, size_t T, size_t stride, size_t c0,
                             float* out) {
  constexpr size_t W = simd::W;
  simd::fvec acc[NV];
  for (size_t k = 0; k < NV; ++k) acc[k] = simd::fvec(0.f);
  for (size_t t = 0; t < T; ++t) {
    if (p[t] == 0.f) continue;
    const simd::fvec vp(p[t]);
    const float* v = V + t * stride + c0;
    for (size_t k = 0; k < NV; ++k) acc[k] = xsimd::fma(vp, simd::loadu(v + k * W), acc[k]);
  }
  for (size_t k = 0; k < NV; ++k) simd::storeu(out + c0 + k * W, acc[k]);
}

// bf16 V: NP pairs of vectors (2W elements each) from element c0; even/odd accumulators,
// interleaved into out at the end.
template <size_t NP>
inline void weighted_sum_bf16(const float* p, const uint16_t* V, size_t T, size_t stride,
                              size_t c0, float* out) {
  constexpr size_t W = simd::W;
  simd::fvec ae[NP], ao[NP];
  for (size_t k = 0; k < NP; ++k) ae[k] = ao[k] = simd::fvec(0.f);
  for (size_t t = 0; t < T; ++t) {
    if (p[t] == 0.f) continue;
    const simd::fvec vp(p[t]);
    const uint16_t* v = V + t * stride + c0;
    for (size_t k = 0; k < NP; ++k) {
      simd::fvec e, o;
      simd::bf16_split(v + 2 * k * W, e, o);
      ae[k] = xsimd::fma(vp, e, ae[k]);
      ao[k] = xsimd::fma(vp, o, ao[k]);
    }
  }
  alignas(64) float le[W], lo[W];
  for (size_t k = 0; k < NP; ++k) {
    ae[k].store_aligned(le);
    ao[k].store_aligned(lo);
    for (size_t i = 0; i < W; ++i) {
      out[c0 + 2 * k * W + 2 * i] = le[i];
      out[c0 + 2 * k * W + 2 * i + 1] = lo[i];
    }
  }
}
}  // namespace detail

// out[hd] = sum_t softmax_t(scale * q.K[t]) V[t] over positions t in [0, T) with mask[t] != 0
// (mask may be null: all positions). K[t] = K + t*stride, V[t] = V + t*stride (KvCache keeps a
// kv head's rows one after another: stride = hd). scores: scratch of T floats. When no position is
// visible, out is zero.
inline void attend(const float* q, const float* K, const float* V, size_t T, size_t stride,
                   size_t hd, float scale, const uint8_t* mask, float* scores, float* out) {
  constexpr size_t W = simd::W;
  if (hd % W == 0 && hd > 0) {
    const size_t nv = hd / W;
    detail::scores_blocked(
        [&](size_t t) {
          const float* k = K + t * stride;
          simd::fvec a(0.f);
          for (size_t i = 0; i < nv; ++i) a = xsimd::fma(simd::loadu(q + i * W), simd::loadu(k + i * W), a);
          return a;
        },
        T, scale, mask, scores);
    for (size_t i = 0; i < hd; ++i) out[i] = 0.f;
    if (!detail::attention_weights(scores, T)) return;
    size_t c = 0;
    for (; c + 8 <= nv; c += 8) detail::weighted_sum_f32<8>(scores, V, T, stride, c * W, out);
    for (; c + 4 <= nv; c += 4) detail::weighted_sum_f32<4>(scores, V, T, stride, c * W, out);
    for (; c < nv; ++c) detail::weighted_sum_f32<1>(scores, V, T, stride, c * W, out);
    return;
  }
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
  if (hd % (2 * W) == 0 && hd > 0) {
    const size_t np = hd / (2 * W);
    const float* qe = qs.even.data();
    const float* qo = qs.odd.data();
    detail::scores_blocked(
        [&](size_t t) {
          const uint16_t* k = K + t * stride;
          simd::fvec a(0.f), b(0.f);
          for (size_t i = 0; i < np; ++i) {
            simd::fvec e, o;
            simd::bf16_split(k + 2 * i * W, e, o);
            a = xsimd::fma(simd::loadu(qe + i * W), e, a);
            b = xsimd::fma(simd::loadu(qo + i * W), o, b);
          }
          return a + b;
        },
        T, scale, mask, scores);
    for (size_t i = 0; i < hd; ++i) out[i] = 0.f;
    if (!detail::attention_weights(scores, T)) return;
    size_t c = 0;
    for (; c + 4 <= np; c += 4) detail::weighted_sum_bf16<4>(scores, V, T, stride, 2 * c * W, out);
    for (; c < np; ++c) detail::weighted_sum_bf16<1>(scores, V, T, stride, 2 * c * W, out);
    return;
  }
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

namespace detail {
// out_g[c0 .. c0 + NV*W) for H heads g: each V row chunk is loaded once for all of them. Per
// head the operations are those of weighted_sum_f32 (same order over t, positions with weight 0
// skipped), so results match attend(). H and NV are compile-time so the H*NV accumulators stay
// in registers.
template <size_t H, size_t NV>
inline void weighted_sum_heads(const float* const* p, float* const* out, size_t T, const float* V,
                               size_t stride, size_t c0, bool ahead) {
  constexpr size_t W = simd::W;
  simd::fvec acc[H][NV];
  for (size_t g = 0; g < H; ++g)
    for (size_t k = 0; k < NV; ++k) acc[g][k] = simd::fvec(0.f);
  for (size_t t = 0; t < T; ++t) {
    if (ahead && t + kAttendAheadRows < T) prefetch_row(V, t + kAttendAheadRows, stride, c0, NV * W);
    const float* row = V + t * stride + c0;
    for (size_t g = 0; g < H; ++g) {
      const float pg = p[g][t];
      if (pg == 0.f) continue;  // masked: the cache row may hold anything
      const simd::fvec vp(pg);
      for (size_t k = 0; k < NV; ++k) acc[g][k] = xsimd::fma(vp, simd::loadu(row + k * W), acc[g][k]);
    }
  }
  for (size_t g = 0; g < H; ++g)
    for (size_t k = 0; k < NV; ++k) simd::storeu(out[g] + c0 + k * W, acc[g][k]);
}

template <size_t H>
inline void weighted_sum_heads_nv(size_t nv, const float* const* p, float* const* out, size_t T,
                                  const float* V, size_t stride, size_t c0, bool ahead) {
  switch (nv) {
    case 1: return weighted_sum_heads<H, 1>(p, out, T, V, stride, c0, ahead);
    case 2: return weighted_sum_heads<H, 2>(p, out, T, V, stride, c0, ahead);
    case 3: return weighted_sum_heads<H, 3>(p, out, T, V, stride, c0, ahead);
    default: return weighted_sum_heads<H, 4>(p, out, T, V, stride, c0, ahead);
  }
}

// bf16 V: H heads x NP vector pairs from element c0, as weighted_sum_bf16 per head.
template <size_t H, size_t NP>
inline void weighted_sum_heads_bf16(const float* const* p, float* const* out, size_t T,
                                    const uint16_t* V, size_t stride, size_t c0, bool ahead) {
  constexpr size_t W = simd::W;
  simd::fvec ae[H][NP], ao[H][NP];
  for (size_t g = 0; g < H; ++g)
    for (size_t k = 0; k < NP; ++k) ae[g][k] = ao[g][k] = simd::fvec(0.f);
  for (size_t t = 0; t < T; ++t) {
    if (ahead && t + kAttendAheadRows < T) prefetch_row(V, t + kAttendAheadRows, stride, c0, 2 * NP * W);
    const uint16_t* row = V + t * stride + c0;
    for (size_t g = 0; g < H; ++g) {
      const float pg = p[g][t];
      if (pg == 0.f) continue;
      const simd::fvec vp(pg);
      for (size_t k = 0; k < NP; ++k) {
        simd::fvec e, o;
        simd::bf16_split(row + 2 * k * W, e, o);
        ae[g][k] = xsimd::fma(vp, e, ae[g][k]);
        ao[g][k] = xsimd::fma(vp, o, ao[g][k]);
      }
    }
  }
  alignas(64) float le[W], lo[W];
  for (size_t g = 0; g < H; ++g)
    for (size_t k = 0; k < NP; ++k) {
      ae[g][k].store_aligned(le);
      ao[g][k].store_aligned(lo);
      for (size_t i = 0; i < W; ++i) {
        out[g][c0 + 2 * k * W + 2 * i] = le[i];
        out[g][c0 + 2 * k * W + 2 * i + 1] = lo[i];
      }
    }
}

template <size_t H>
inline void weighted_sum_heads_bf16_np(size_t np, const float* const* p, float* const* out,
                                       size_t T, const uint16_t* V, size_t stride, size_t c0, bool ahead) {
  if (np == 1) return weighted_sum_heads_bf16<H, 1>(p, out, T, V, stride, c0, ahead);
  return weighted_sum_heads_bf16<H, 2>(p, out, T, V, stride, c0, ahead);
}
}  // namespace detail

// G query heads that share one kv head (grouped-query attention), in one pass over the cache:
// head g's query is q + g*q_stride, its output out + g*out_stride, its scores scratch
// scores + g*T (G*T floats in all). Each head's result equals attend() on it bit for bit; the
// keys and values are read once per group instead of once per head.
inline void attend_group(const float* q, size_t q_stride, size_t G, const float* K, const float* V,
                         size_t T, size_t stride, size_t hd, float scale, const uint8_t* mask,
                         float* scores, float* out, size_t out_stride) {
  constexpr size_t W = simd::W;
  if (hd % W != 0 || hd == 0 || hd > 8 * W) {
    for (size_t g = 0; g < G; ++g)
      attend(q + g * q_stride, K, V, T, stride, hd, scale, mask, scores + g * T, out + g * out_stride);
    return;
  }
  const size_t nv = hd / W;
  const bool ahead = detail::attend_prefetch();
  if (ahead)
    for (size_t i = 0; i < detail::kAttendAheadRows; ++i) detail::prefetch_kv_row(K, V, i, T, stride, hd);
  for (size_t t0 = 0; t0 < T; t0 += W) {  // scores, one block of W positions for all heads
    const size_t tb = std::min(W, T - t0);
    switch (nv) {
      case 2: detail::scores_block_f32<2>(q, q_stride, G, K, V, t0, tb, T, stride, scale, mask, scores, ahead); continue;
      case 4: detail::scores_block_f32<4>(q, q_stride, G, K, V, t0, tb, T, stride, scale, mask, scores, ahead); continue;
      case 8: detail::scores_block_f32<8>(q, q_stride, G, K, V, t0, tb, T, stride, scale, mask, scores, ahead); continue;
      default: break;
    }
    for (size_t g = 0; g < G; ++g) {
      if (ahead) detail::prefetch_block_share(K, V, t0, g, G, T, stride, hd);
      const float* qg = q + g * q_stride;
      detail::scores_blocked(
          [&](size_t t) {
            const float* k = K + (t0 + t) * stride;
            simd::fvec a(0.f);
            for (size_t i = 0; i < nv; ++i) a = xsimd::fma(simd::loadu(qg + i * W), simd::loadu(k + i * W), a);
            return a;
          },
          tb, scale, mask ? mask + t0 : nullptr, scores + g * T + t0);
    }
  }
  thread_local std::vector<uint8_t> visible;  // [G] does head g see any position?
  visible.assign(G, 0);
  for (size_t g = 0; g < G; ++g) {
    for (size_t i = 0; i < hd; ++i) out[g * out_stride + i] = 0.f;
    visible[g] = detail::attention_weights(scores + g * T, T) ? 1 : 0;
  }
  for (size_t g0 = 0; g0 < G; g0 += 4) {
    const float* p[4];
    float* o[4];
    size_t heads = 0;
    for (size_t g = g0; g < std::min(G, g0 + 4); ++g)
      if (visible[g]) {
        p[heads] = scores + g * T;
        o[heads++] = out + g * out_stride;
      }
    if (heads == 0) continue;
    for (size_t c = 0; c < nv; c += 4) {
      const size_t cn = std::min<size_t>(4, nv - c);
      switch (heads) {
        case 1: detail::weighted_sum_heads_nv<1>(cn, p, o, T, V, stride, c * W, ahead); break;
        case 2: detail::weighted_sum_heads_nv<2>(cn, p, o, T, V, stride, c * W, ahead); break;
        case 3: detail::weighted_sum_heads_nv<3>(cn, p, o, T, V, stride, c * W, ahead); break;
        default: detail::weighted_sum_heads_nv<4>(cn, p, o, T, V, stride, c * W, ahead); break;
      }
    }
  }
}

// attend_group with a bf16 cache: each head's result equals attend_bf16() on it bit for bit.
inline void attend_group_bf16(const float* q, size_t q_stride, size_t G, const uint16_t* K,
                              const uint16_t* V, size_t T, size_t stride, size_t hd, float scale,
                              const uint8_t* mask, float* scores, float* out, size_t out_stride) {
  constexpr size_t W = simd::W;
  if (hd % (2 * W) != 0 || hd == 0) {
    for (size_t g = 0; g < G; ++g)
      attend_bf16(q + g * q_stride, K, V, T, stride, hd, scale, mask, scores + g * T,
                  out + g * out_stride);
    return;
  }
  const size_t np = hd / (2 * W);
  thread_local std::vector<detail::SplitVector> qs;  // [G] even/odd elements of each query
  if (qs.size() < G) qs.resize(G);
  for (size_t g = 0; g < G; ++g) qs[g].assign(q + g * q_stride, hd);
  const bool ahead = detail::attend_prefetch();
  if (ahead)
    for (size_t i = 0; i < detail::kAttendAheadRows; ++i) detail::prefetch_kv_row(K, V, i, T, stride, hd);
  for (size_t t0 = 0; t0 < T; t0 += W) {
    const size_t tb = std::min(W, T - t0);
    switch (np) {
      case 1: detail::scores_block_bf16<1>(qs.data(), G, K, V, t0, tb, T, stride, scale, mask, scores, ahead); continue;
      case 2: detail::scores_block_bf16<2>(qs.data(), G, K, V, t0, tb, T, stride, scale, mask, scores, ahead); continue;
      case 4: detail::scores_block_bf16<4>(qs.data(), G, K, V, t0, tb, T, stride, scale, mask, scores, ahead); continue;
      default: break;
    }
    for (size_t g = 0; g < G; ++g) {
      if (ahead) detail::prefetch_block_share(K, V, t0, g, G, T, stride, hd);
      const float* qe = qs[g].even.data();
      const float* qo = qs[g].odd.data();
      detail::scores_blocked(
          [&](size_t t) {
            const uint16_t* k = K + (t0 + t) * stride;
            simd::fvec a(0.f), b(0.f);
            for (size_t i = 0; i < np; ++i) {
              simd::fvec e, o;
              simd::bf16_split(k + 2 * i * W, e, o);
              a = xsimd::fma(simd::loadu(qe + i * W), e, a);
              b = xsimd::fma(simd::loadu(qo + i * W), o, b);
            }
            return a + b;
          },
          tb, scale, mask ? mask + t0 : nullptr, scores + g * T + t0);
    }
  }
  thread_local std::vector<uint8_t> visible;  // [G] does head g see any position?
  visible.assign(G, 0);
  for (size_t g = 0; g < G; ++g) {
    for (size_t i = 0; i < hd; ++i) out[g * out_stride + i] = 0.f;
    visible[g] = detail::attention_weights(scores + g * T, T) ? 1 : 0;
  }
  for (size_t g0 = 0; g0 < G; g0 += 4) {
    const float* p[4];
    float* o[4];
    size_t heads = 0;
    for (size_t g = g0; g < std::min(G, g0 + 4); ++g)
      if (visible[g]) {
        p[heads] = scores + g * T;
        o[heads++] = out + g * out_stride;
      }
    if (heads == 0) continue;
    for (size_t c = 0; c < np; c += 2) {
      const size_t cn = std::min<size_t>(2, np - c);
      switch (heads) {
        case 1: detail::weighted_sum_heads_bf16_np<1>(cn, p, o, T, V, stride, 2 * c * W, ahead); break;
        case 2: detail::weighted_sum_heads_bf16_np<2>(cn, p, o, T, V, stride, 2 * c * W, ahead); break;
        case 3: detail::weighted_sum_heads_bf16_np<3>(cn, p, o, T, V, stride, 2 * c * W, ahead); break;
        default: detail::weighted_sum_heads_bf16_np<4>(cn, p, o, T, V, stride, 2 * c * W, ahead); break;
      }
    }
  }
}

}  // namespace fathom::kernels
