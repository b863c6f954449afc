#pragma once
// gemm_rank's statistics (argmax, target values, counts above), the same numbers bit for bit, from
// a cheaper product: screen with integers, then recompute exactly only the few columns the screen
// cannot decide.
//
// Why: reading every layer of a text out through a 49,152 x 576 unembedding is ~900 GFLOP of f32
// products per 512 tokens, and gemm_rank runs them near the f32 FMA peak. With the weights as int16
// values times a scale per block of 32 (a Q8 matrix is exactly that; other formats are rounded to
// it, |q| <= 4095) and the activations rounded to int16 (one scale per row), each block dot product
// is exact in int32, and AVX512-VNNI's vpdpwssd does 32 multiply-adds per instruction, twice an f32
// FMA's 16. Those approximate values a are within a proven bound E of the exact ones e (gemm_exact's
// f32 chain), per row r and column c:
//
//   |a - e| <= ||w_c|| (||dx_r|| + g(K) ||x_r|| + g(nb+2) ||x^_r||) + ||x^_r|| ||dw_c||
//
// x^ = s q the rounded row, dx = x - x^, dw = w - w^ the rounding of the weights (0 for Q8; the
// norm of w is taken as the larger of ||w|| and ||w^||), g(n) = n u / (1 - n u) with u = 2^-24
// (Higham's bound for n roundings: the f32 chain of K multiply-adds, and the screen's int32->f32
// conversion, its nb block multiply-adds and the row scale; the integer sums are exact), and
// Cauchy-Schwarz for the roundings of x and w. Every norm is computed in double and rounded up, the
// column norms are their 32-column panel's largest, and E is widened by 2^-10 of itself and 2^-20
// of the row's largest possible |value| so the float comparisons below cannot round across it.
// Then, with lo = a - E <= e <= hi = a + E:
//   - lo > v  means the column is above the target value v for sure; hi <= v, not above;
//   - otherwise the column is recomputed exactly (gemm_exact's tile on a gathered panel);
//   - the argmax is among the columns whose hi reaches the row's largest lo (all columns equal
//     to the maximum included), recomputed exactly, lowest column on a tie.
// The target values themselves come from the exact tile first. So the statistics are gemm_rank's;
// tests/test_gemm_rank.cpp checks them bit for bit, near ties and exact ties included.
//
// On SmolLM2's Q8 unembedding 12 of 49,152 columns per row are recomputed on average
// (docs/kernels.md "Ranks screened with integers"). Rows with a non-finite value, matrices with a
// non-finite value or scale, and builds without AVX512-VNNI (kRankScreen false) take gemm_rank's
// exact pass: the results are the same on every machine.
#include <algorithm>
#include <atomic>
#include <bit>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <mutex>
#include <span>
#include <utility>
#include <vector>

#include "fathom/core/error.hpp"
#include "fathom/kernels/convert.hpp"
#include "fathom/kernels/gemm.hpp"
#include "fathom/kernels/gemm_rank.hpp"
#include "fathom/kernels/matrix.hpp"
#include "fathom/kernels/parallel.hpp"
#include "fathom/kernels/prefetch.hpp"
#include "fathom/kernels/quant.hpp"
#include "fathom/kernels/widen.hpp"

#if defined(__AVX512VNNI__) && defined(__AVX512BW__)
#include <immintrin.h>
#endif

namespace fathom::kernels {

#if defined(__AVX512VNNI__) && defined(__AVX512BW__)
constexpr bool kRankScreen = true;
#else
constexpr bool kRankScreen = false;
#endif

namespace detail {
constexpr size_t kScreenRows = 6;     // X rows per screening tile: 4 of the 32 registers each
// |int16 values|: activations against Q8's int8 values 32,767; other formats share the int32 range
// of a block dot (32 products) between weights and activations, 4,095 x 16,383 (32 x 4,095 x
// 16,383 < 2^31), which balances the two roundings better than 2,047 x 32,767.
constexpr int32_t kScreenQ = 32767, kScreenQShared = 16383, kScreenWeightQ = 4095;
constexpr size_t kScreenPairs = kQ8Block / 2;  // int16 pairs per Q8 block

inline double rounding_bound(size_t n) {  // g(n) above
  const double u = 0x1p-24;
  return double(n) * u / (1 - double(n) * u);
}
inline float round_up(double x) {  // the smallest float >= x
  const float f = float(x);
  return double(f) < x ? std::nextafter(f, INFINITY) : f;
}
}  // namespace detail

// A matrix W [N, K] for the screen: per 32-row panel its values as int16 pairs, [nb*16][NR] 32-bit
// words (word [i][j] = q[j, 2i] | q[j, 2i+1] << 16), one f32 scale per row and block of 32, [nb][NR]
// (w^ = scale * q), and per panel the largest column norms: max(||w_j||, ||w^_j||) and ||w_j - w^_j||.
// A Q8 matrix is held exactly (q its int8 values, the scale its f16 d: w^ = w); any other format
// (F32, BF16, F16, the GGUF blocks: widened exactly first) is rounded to |q| <= 4095 per block, its
// rounding bounded like the activations' (top of this file). About 2.1 bytes per weight.
class RankScreen {
 public:
  RankScreen() = default;
  explicit RankScreen(const MatrixView& W) : W_(W) {
    detail::check_matrix(W, "RankScreen");
    constexpr size_t NR = detail::kNR, PB = detail::kScreenPairs;
    nb_ = q8_blocks(W.cols);
    const size_t P = panels();
    words_.assign(P * nb_ * PB * NR, 0u);
    scales_.assign(P * nb_ * NR, 0.f);
    norm_.assign(P, 0.f);
    dnorm_.assign(P, 0.f);
    std::atomic<bool> finite{true};
    detail::parallel_chunks(P, detail::worker_count(W.rows * W.cols), [&](size_t pb, size_t pe) {
      std::vector<float> w(nb_ * kQ8Block);  // one row widened (zero padded to whole blocks)
      std::vector<int32_t> q(nb_ * kQ8Block);
      std::vector<float> d(nb_);
      for (size_t p = pb; p < pe; ++p) {
        double largest = 0, dlargest = 0;
        for (size_t j = 0; j < NR && p * NR + j < W.rows; ++j) {
          const size_t n = p * NR + j;
          row_blocks(W, n, w, q, d);
          double ww = 0, hh = 0, dd = 0;  // ||w||^2, ||w^||^2, ||w - w^||^2
          for (size_t b = 0; b < nb_; ++b) {
            if (!std::isfinite(d[b])) finite = false;
            scales_[(p * nb_ + b) * NR + j] = d[b];
            for (size_t i = 0; i < kQ8Block; ++i) {
              const double v = w[b * kQ8Block + i], h = double(d[b]) * q[b * kQ8Block + i];
              ww += v * v, hh += h * h, dd += (v - h) * (v - h);
            }
            for (size_t i = 0; i < PB; ++i)
              words_[((p * nb_ + b) * PB + i) * NR + j] = uint32_t(uint16_t(int16_t(q[b * kQ8Block + 2 * i]))) |
                                                          uint32_t(uint16_t(int16_t(q[b * kQ8Block + 2 * i + 1]))) << 16;
          }
          largest = std::max({largest, std::sqrt(ww), std::sqrt(hh)});
          dlargest = std::max(dlargest, std::sqrt(dd));
        }
        norm_[p] = detail::round_up(largest * (1 + 0x1p-30));
        dnorm_[p] = detail::round_up(dlargest * (1 + 0x1p-30));
      }
    });
    const auto all_finite = [](const std::vector<float>& v) {
      return std::all_of(v.begin(), v.end(), [](float x) { return std::isfinite(x); });
    };
    finite_ = finite && all_finite(norm_) && all_finite(dnorm_);
  }

  const MatrixView& matrix() const { return W_; }
  bool empty() const { return words_.empty(); }
  // False when a value or scale is not finite (products then take the exact pass).
  bool finite() const { return finite_; }
  size_t blocks() const { return nb_; }
  size_t panels() const { return (W_.rows + detail::kNR - 1) / detail::kNR; }
  const uint32_t* words(size_t p) const { return words_.data() + p * nb_ * detail::kScreenPairs * detail::kNR; }
  const float* scales(size_t p) const { return scales_.data() + p * nb_ * detail::kNR; }
  float norm(size_t p) const { return norm_[p]; }    // max(||w_j||, ||w^_j||) over panel p, rounded up
  float dnorm(size_t p) const { return dnorm_[p]; }  // max ||w_j - w^_j|| over panel p (0 for Q8)
  float norm_max() const { return norm_.empty() ? 0.f : *std::max_element(norm_.begin(), norm_.end()); }
  // The largest |int16 value| of the activations against this matrix.
  int32_t activation_max() const { return W_.dtype == DType::Q8 ? detail::kScreenQ : detail::kScreenQShared; }
  size_t bytes() const { return (words_.size() + scales_.size() + norm_.size() + dnorm_.size()) * 4; }

 private:
  // Row n's blocks: w its exact values, q the int16 values, d the block scales.
  static void row_blocks(const MatrixView& W, size_t n, std::vector<float>& w, std::vector<int32_t>& q,
                         std::vector<float>& d) {
    const size_t nb = d.size();
    std::fill(w.begin(), w.end(), 0.f);
    detail::widen_segment(W, n, 0, W.cols, w.data());
    if (W.dtype == DType::Q8) {  // exactly: w = d * (stored - 128)
      const detail::Q8Layout L = detail::q8_layout(W);
      for (size_t b = 0; b < nb; ++b) d[b] = f16_to_f32(L.d[n * nb + b]);
      for (size_t i = 0; i < nb * kQ8Block; ++i) q[i] = int32_t(L.qs[n * nb * kQ8Block + i]) - 128;
      return;
    }
    for (size_t b = 0; b < nb; ++b) {
      const float* v = w.data() + b * kQ8Block;
      float top = 0;
      for (size_t i = 0; i < kQ8Block; ++i) top = std::max(top, std::fabs(v[i]));
      float s = top / float(detail::kScreenWeightQ);
      if (!(s > 0) || !std::isfinite(s)) s = std::isfinite(top) ? 1.f : top;  // zeros; or not finite
      d[b] = s;
      for (size_t i = 0; i < kQ8Block; ++i)
        q[b * kQ8Block + i] = std::isfinite(v[i]) ? std::clamp(int32_t(std::lrint(v[i] / s)), -detail::kScreenWeightQ,
                                                               detail::kScreenWeightQ)
                                                  : 0;
    }
  }

  MatrixView W_{};
  size_t nb_ = 0;
  std::vector<uint32_t> words_;  // [panels][nb*16][NR] int16 pairs
  std::vector<float> scales_;    // [panels][nb][NR]
  std::vector<float> norm_, dnorm_;  // [panels]
  bool finite_ = true;
};

namespace detail {

// X [M, K] rounded to int16 per row (scale s = max|x| / qmax), packed for the screen tiles as
// [tiles][nb*16][kScreenRows] words of pairs (zero past K and past row M), with each row's bound
// factors: E(row, panel) = G * norm(panel) + H * dnorm(panel) + C.
struct ScreenRows {
  std::vector<uint32_t> words;
  std::vector<float> scale, G, H, C;  // [M]
  bool finite = true;

  ScreenRows(const float* X, size_t M, size_t K, size_t nb, float wmax, int32_t qmax, int threads)
      : words((M + kScreenRows - 1) / kScreenRows * nb * kScreenPairs * kScreenRows, 0u), scale(M), G(M), H(M), C(M) {
    const size_t K2 = nb * kScreenPairs;
    const double gk = rounding_bound(K), gs = rounding_bound(nb + 2), widen = 1 + 0x1p-10;
    const double slack = double(K + nb + 8) * 0x1p-126;  // underflow (also with FTZ/DAZ set)
    std::atomic<bool> ok{true};
    parallel_chunks(M, threads, [&](size_t b, size_t e) {
      std::vector<int32_t> q(2 * K2);
      for (size_t m = b; m < e; ++m) {
        const float* x = X + m * K;
        float top = 0;
        bool row_ok = true;
        for (size_t k = 0; k < K; ++k) top = std::max(top, std::fabs(x[k])), row_ok &= std::isfinite(x[k]);
        if (!row_ok) {
          ok = false;
          continue;
        }
        float s = top / float(qmax);
        if (!(s > 0)) s = 1;
        double nx = 0, nxh = 0, ndx = 0;
        std::fill(q.begin(), q.end(), 0);
        for (size_t k = 0; k < K; ++k) {
          const int32_t v = std::clamp(int32_t(std::lrint(x[k] / s)), -qmax, qmax);
          q[k] = v;
          const double xh = double(s) * v, dx = double(x[k]) - xh;
          nx += double(x[k]) * x[k], nxh += xh * xh, ndx += dx * dx;
        }
        uint32_t* dst = words.data() + m / kScreenRows * K2 * kScreenRows + m % kScreenRows;
        for (size_t i = 0; i < K2; ++i)
          dst[i * kScreenRows] = uint32_t(uint16_t(int16_t(q[2 * i]))) | uint32_t(uint16_t(int16_t(q[2 * i + 1]))) << 16;
        nx = std::sqrt(nx), nxh = std::sqrt(nxh), ndx = std::sqrt(ndx);
        scale[m] = s;
        G[m] = round_up((ndx + gs * nxh + gk * nx) * widen);
        H[m] = round_up(nxh * widen);
        C[m] = round_up(0x1p-20 * (nxh + nx) * double(wmax) * widen + slack);
        if (!std::isfinite(G[m]) || !(C[m] < 1e30f)) ok = false;
      }
    });
    finite = ok;
  }
};

// Exact values (gemm_exact's bits) of row m of X against the given columns of W, 32 at a time:
// the columns widened and transposed into one panel, multiplied by gemm_tile on the row's packed
// values (the kernel and the K blocks of gemm_rank's pass, so the same chain per element).
inline void exact_columns(const MatrixView& W, const PackedRows& A, size_t m, std::span<const int32_t> cols,
                          float* out) {
  const size_t K = W.cols;
  thread_local std::vector<float> rows, panel, C;
  rows.resize(kNR * K);
  panel.resize(K * kNR + 16);
  C.resize(kMR * kNR);
  // The columns are scattered over the matrix (mostly beyond L2): all of a group's rows are
  // requested before the first is widened, and the next group's during this one.
  const RowBytes rb = row_bytes(W);
  const auto fetch = [&](size_t from) {
    for (size_t i = from; i < std::min(from + kNR, cols.size()) && rb.elem; ++i) {
      const uintptr_t row = uintptr_t(rb.base + size_t(cols[i]) * rb.stride);
      for (size_t off = 0; off < K * rb.elem; off += 64) prefetch_line(row + off);
      if (W.dtype == DType::Q8) prefetch_line(uintptr_t(q8_layout(W).d + size_t(cols[i]) * q8_blocks(K)));
    }
  };
  fetch(0);
  for (size_t c0 = 0; c0 < cols.size(); c0 += kNR) {
    const size_t n = std::min(kNR, cols.size() - c0);
    fetch(c0 + kNR);
    for (size_t j = 0; j < kNR; ++j)
      if (j < n) widen_segment(W, size_t(cols[c0 + j]), 0, K, rows.data() + j * K);
      else std::fill_n(rows.data() + j * K, K, 0.f);
    transpose_panel(rows.data(), K, K, panel.data());
    for (size_t kb = 0; kb < A.kblocks; ++kb)
      gemm_tile_rows(1, std::min(A.KC, K - kb * A.KC), A.tile(m / kMR, kb) + m % kMR, panel.data() + kb * A.KC * kNR,
                     C.data(), kNR, kb > 0);
    std::copy_n(C.data(), n, out + c0);
  }
}

// One thread's screen results: per row the largest lo and the argmax candidates (column, hi);
// per (row, target) the sure count above and the undecided columns.
struct ScreenPartial {
  std::vector<float> lo;                                  // [M]
  std::vector<std::vector<std::pair<int32_t, float>>> cand;  // [M]
  std::vector<int64_t> above;                             // [M, T]
  std::vector<std::vector<int32_t>> open;                 // [M, T]
  ScreenPartial(size_t M, size_t T) : lo(M, -INFINITY), cand(M), above(M * T, 0), open(M * T) {}
};

#if defined(__AVX512VNNI__) && defined(__AVX512BW__)
// out[i][j] = sum_b D[b][j] * (int32 dot of block b: A's row i . B's column j), for kScreenRows rows
// and NR = 32 columns. A: [nb*16][kScreenRows] pairs, B: [nb*16][32] pairs, D: [nb][32].
inline void screen_tile(size_t nb, const uint32_t* A, const uint32_t* B, const float* D, float* out) {
  constexpr size_t R = kScreenRows;
  __m512 t0[R], t1[R];
  for (size_t i = 0; i < R; ++i) t0[i] = t1[i] = _mm512_setzero_ps();
  for (size_t b = 0; b < nb; ++b) {
    __m512i a0[R], a1[R];
    for (size_t i = 0; i < R; ++i) a0[i] = a1[i] = _mm512_setzero_si512();
    const uint32_t* Ab = A + b * kScreenPairs * R;
    const uint32_t* Bb = B + b * kScreenPairs * kNR;
#pragma GCC unroll 16
    for (size_t k = 0; k < kScreenPairs; ++k) {
      const __m512i b0 = _mm512_loadu_si512(Bb + k * kNR), b1 = _mm512_loadu_si512(Bb + k * kNR + 16);
#pragma GCC unroll 6
      for (size_t i = 0; i < R; ++i) {
        const __m512i x = _mm512_set1_epi32(int(Ab[k * R + i]));
        a0[i] = _mm512_dpwssd_epi32(a0[i], x, b0);
        a1[i] = _mm512_dpwssd_epi32(a1[i], x, b1);
      }
    }
    const __m512 d0 = _mm512_loadu_ps(D + b * kNR), d1 = _mm512_loadu_ps(D + b * kNR + 16);
    for (size_t i = 0; i < R; ++i) {
      t0[i] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(a0[i]), d0, t0[i]);
      t1[i] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(a1[i]), d1, t1[i]);
    }
  }
  for (size_t i = 0; i < R; ++i) {
    _mm512_storeu_ps(out + i * kNR, t0[i]);
    _mm512_storeu_ps(out + i * kNR + 16, t1[i]);
  }
}

// 32 bits, one per column of the two halves: x > v (GT) or x >= v (GE), valid columns only.
template <int Cmp>
inline uint32_t mask32(__m512 x0, __m512 x1, float v, uint32_t valid) {
  const __m512 vv = _mm512_set1_ps(v);
  return (uint32_t(_mm512_cmp_ps_mask(x0, vv, Cmp)) | uint32_t(_mm512_cmp_ps_mask(x1, vv, Cmp)) << 16) & valid;
}

// Folds row m's 32 screened sums (before the row scale) of columns n0.. (valid: a bit per column)
// into the partial, with bound E for this row and panel.
inline void fold_screen(const float* sums, size_t m, float s, float E, int32_t n0, uint32_t valid, size_t T,
                        const int32_t* targets, const float* value, ScreenPartial& r) {
  const __m512 vs = _mm512_set1_ps(s), vE = _mm512_set1_ps(E);
  const __m512 a0 = _mm512_mul_ps(_mm512_loadu_ps(sums), vs), a1 = _mm512_mul_ps(_mm512_loadu_ps(sums + 16), vs);
  const __m512 lo0 = _mm512_sub_ps(a0, vE), lo1 = _mm512_sub_ps(a1, vE);
  const __m512 hi0 = _mm512_add_ps(a0, vE), hi1 = _mm512_add_ps(a1, vE);
  alignas(64) float hi[32];
  // argmax: a new largest lo is rare once the row is under way
  if (mask32<_CMP_GT_OQ>(lo0, lo1, r.lo[m], valid)) {
    const __mmask16 v0 = __mmask16(valid), v1 = __mmask16(valid >> 16);
    float best = r.lo[m];
    if (v0) best = std::max(best, _mm512_mask_reduce_max_ps(v0, lo0));
    if (v1) best = std::max(best, _mm512_mask_reduce_max_ps(v1, lo1));
    r.lo[m] = best;
  }
  if (uint32_t c = mask32<_CMP_GE_OQ>(hi0, hi1, r.lo[m], valid)) {
    _mm512_store_ps(hi, hi0), _mm512_store_ps(hi + 16, hi1);
    for (; c; c &= c - 1) {
      const int j = std::countr_zero(c);
      r.cand[m].emplace_back(n0 + j, hi[j]);
    }
  }
  for (size_t t = 0; t < T; ++t) {
    if (targets[m * T + t] < 0) continue;
    const float v = value[m * T + t];
    const uint32_t sure = mask32<_CMP_GT_OQ>(lo0, lo1, v, valid);
    r.above[m * T + t] += std::popcount(sure);
    for (uint32_t o = mask32<_CMP_GT_OQ>(hi0, hi1, v, valid) & ~sure; o; o &= o - 1)
      r.open[m * T + t].push_back(n0 + std::countr_zero(o));
  }
}
#endif

}  // namespace detail

// gemm_rank(screen.matrix(), ...)'s RankStats for X [M, K], by the screen (see the top of this
// file); `rechecked` counts the columns computed exactly after the screen.
inline RankStats gemm_rank_screened(const RankScreen& screen, const float* X, size_t M,
                                    std::span<const int32_t> targets, size_t T) {
  using namespace detail;
  const MatrixView& W = screen.matrix();
  check_rank_args(W, "gemm_rank_screened", M, targets, T);
  const size_t N = W.rows, K = W.cols;
  if (!kRankScreen || screen.empty() || !screen.finite() || M == 0 || K == 0)
    return gemm_rank(W, nullptr, X, M, targets, T);
  const int threads = worker_count(M * N * K);
  const size_t nb = screen.blocks();
  const ScreenRows S(X, M, K, nb, screen.norm_max(), screen.activation_max(), threads);
  if (!S.finite) return gemm_rank(W, nullptr, X, M, targets, T);
  const PackedRows A(X, K, M, threads);

  RankStats out;
  out.argmax.assign(M, 0);
  out.value.assign(M * T, NAN);
  out.above.assign(M * T, 0);
  // 1. the targets' exact values
  parallel_chunks(M, threads, [&](size_t b, size_t e) {
    std::vector<int32_t> cols;
    std::vector<float> vals;
    for (size_t m = b; m < e; ++m) {
      cols.clear();
      for (size_t t = 0; t < T; ++t)
        if (targets[m * T + t] >= 0) cols.push_back(targets[m * T + t]);
      vals.resize(cols.size());
      exact_columns(W, A, m, cols, vals.data());
      for (size_t t = 0, i = 0; t < T; ++t)
        if (targets[m * T + t] >= 0) out.value[m * T + t] = vals[i++];
    }
  });

#if defined(__AVX512VNNI__) && defined(__AVX512BW__)
  // 2. the screen, the threads splitting the panels
  const size_t P = screen.panels(), tiles = (M + kScreenRows - 1) / kScreenRows, K2 = nb * kScreenPairs;
  ScreenPartial total(M, T);
  std::mutex merge;
  parallel_chunks(P, threads, [&](size_t pb, size_t pe) {
    ScreenPartial r(M, T);
    alignas(64) float sums[kScreenRows * kNR];
    for (size_t p = pb; p < pe; ++p) {
      const size_t n0 = p * kNR, nr = std::min(kNR, N - n0);
      const uint32_t valid = nr == kNR ? ~0u : (1u << nr) - 1;
      const float norm = screen.norm(p), dnorm = screen.dnorm(p);
      for (size_t t = 0; t < tiles; ++t) {
        screen_tile(nb, S.words.data() + t * K2 * kScreenRows, screen.words(p), screen.scales(p), sums);
        for (size_t i = 0, m = t * kScreenRows; i < kScreenRows && m < M; ++i, ++m)
          fold_screen(sums + i * kNR, m, S.scale[m], std::fma(S.G[m], norm, std::fma(S.H[m], dnorm, S.C[m])), int32_t(n0), valid, T,
                      targets.data(), out.value.data(), r);
      }
    }
    std::lock_guard<std::mutex> lock(merge);
    for (size_t m = 0; m < M; ++m) {
      total.lo[m] = std::max(total.lo[m], r.lo[m]);
      total.cand[m].insert(total.cand[m].end(), r.cand[m].begin(), r.cand[m].end());
    }
    for (size_t i = 0; i < M * T; ++i) {
      total.above[i] += r.above[i];
      total.open[i].insert(total.open[i].end(), r.open[i].begin(), r.open[i].end());
    }
  });

  // 3. the undecided columns exactly, row by row
  std::atomic<int64_t> rechecked{0};
  parallel_chunks(M, threads, [&](size_t b, size_t e) {
    std::vector<int32_t> cols;
    std::vector<float> vals;
    for (size_t m = b; m < e; ++m) {
      cols.clear();
      for (const auto& [c, hi] : total.cand[m])
        if (hi >= total.lo[m]) cols.push_back(c);
      for (size_t t = 0; t < T; ++t) cols.insert(cols.end(), total.open[m * T + t].begin(), total.open[m * T + t].end());
      std::sort(cols.begin(), cols.end());
      cols.erase(std::unique(cols.begin(), cols.end()), cols.end());
      vals.resize(cols.size());
      exact_columns(W, A, m, cols, vals.data());
      rechecked += int64_t(cols.size());
      const auto exact = [&](int32_t c) { return vals[size_t(std::lower_bound(cols.begin(), cols.end(), c) - cols.begin())]; };
      float best = -INFINITY;
      int32_t best_id = -1;
      for (const auto& [c, hi] : total.cand[m]) {
        if (hi < total.lo[m]) continue;
        const float y = exact(c);
        if (best_id < 0 || y > best || (y == best && c < best_id)) best = y, best_id = c;
      }
      out.argmax[m] = std::max(best_id, 0);
      for (size_t t = 0; t < T; ++t) {
        if (targets[m * T + t] < 0) continue;
        int64_t n = total.above[m * T + t];
        for (const int32_t c : total.open[m * T + t]) n += exact(c) > out.value[m * T + t];
        out.above[m * T + t] = n;
      }
    }
  });
  out.rechecked = rechecked.load();
#endif
  return out;
}

}  // namespace fathom::kernels
