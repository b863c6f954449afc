#pragma once
// Native 4-, 5- and 6-bit weights: GGUF's Q4_0, Q4_1, Q5_0, Q5_1, Q4_K and Q6_K kept in their
// block format in memory and multiplied directly (issue 14, part 1), with the activations
// quantised to 8 bits per block of 32 as for Q8 (quant.hpp's Q8Acts), as llama.cpp does.
//
// Memory layouts (MatrixView::data; cols a multiple of the block):
//   Q4_0, Q4_1, Q5_0, Q5_1: groups of 16 rows, each a run of tiles (block b of the group's 16 rows),
//     the file's bytes re-laid at load (no arithmetic on any value): q4_groups.hpp, which also
//     holds their kernels.
//     (llama.cpp's Q4_K_M falls back to Q5_0 for matrices whose rows are not whole 256-blocks, such
//     as Qwen2.5-0.5B's 896.)
//   Q4_K: groups of 16 rows too, a tile per super-block of 256 columns: k4_groups.hpp, with its
//     kernels.
//   Q6_K: the GGUF super-blocks of 256 as stored (210 bytes; io/gguf_quants.hpp spells the bits
//     out), row after row.
//
// Products: with activation blocks x = dx * qx (qx int8, one f32 scale dx per 32, sx = dx * sum qx)
//   Q4_0 .. Q5_1, Q4_K  q4_groups.hpp, k4_groups.hpp: block by block (Q4_K: sub-block by
//                       sub-block), one FMA per block and one per minimum
//   Q6_K  sum over groups g of 16: (d sc_g) dx_b (q_g . qx_g - 32 sum qx_g)
// Every integer dot is exact; the float arithmetic of Q6_K is the Q8 kernel's (quant.hpp): 16
// lanes, lane 8 * (b mod 2) + i accumulates by FMA block b's bytes 4i..4i+3, summed by
// q8_tree_sum. The vector kernels and the portable ones do exactly these operations, so results
// are the same bits on every CPU, and for every thread count (each output is summed by one thread
// in this fixed order).
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <functional>
#include <string>
#include <type_traits>
#include <vector>

#include "fathom/core/dtype.hpp"
#include "fathom/core/error.hpp"
#include "fathom/kernels/matrix.hpp"
#include "fathom/kernels/k4_groups.hpp"
#include "fathom/kernels/parallel.hpp"
#include "fathom/kernels/prefetch.hpp"
#include "fathom/kernels/q4_groups.hpp"
#include "fathom/kernels/quant.hpp"
#include "fathom/kernels/weight_buffer.hpp"

namespace fathom::kernels {

constexpr size_t kQ6KBytes = 210;  // the file's Q6_K super-block

inline bool is_gguf_block(DType t) { return is_q4_family(t) || t == DType::Q4_K || t == DType::Q6_K; }
// Held in groups of 16 rows (q4_groups.hpp, k4_groups.hpp): all but Q6_K.
inline bool in_row_groups(DType t) { return is_q4_family(t) || t == DType::Q4_K; }
inline size_t gguf_block_elems(DType t) { return t == DType::Q4_K || t == DType::Q6_K ? kSuperBlock : kQ4Block; }
inline size_t gguf_block_bytes(DType t) {
  switch (t) {
    case DType::Q4_0: return 18;
    case DType::Q4_1: return 20;
    case DType::Q5_0: return 22;
    case DType::Q5_1: return 24;
    case DType::Q4_K: return kQ4KBytes;
    case DType::Q6_K: return kQ6KBytes;
    default: return 0;
  }
}
// Bytes of a rows x cols matrix in one of these formats as held (cols a multiple of the block;
// Q4_0 / Q4_1 / Q5_0 / Q5_1 and Q4_K in whole groups of 16 rows).
inline size_t gguf_block_matrix_bytes(DType t, size_t rows, size_t cols) {
  if (is_q4_family(t)) return detail::q4_matrix_bytes(t, rows, cols);
  if (t == DType::Q4_K) return detail::k4_matrix_bytes(rows, cols);
  return rows * (cols / gguf_block_elems(t)) * gguf_block_bytes(t);
}

namespace detail {

inline float h2f(const uint8_t* p) {
  uint16_t h;
  std::memcpy(&h, p, 2);
  return f16_to_f32(h);
}

// ---- portable kernels: the arithmetic of the header, operation for operation ----

// acc lanes for block b: 8 * (b % 2) + i over bytes 4i..4i+3 of w (values 0..63) x x, minus
// `bias` * sum x per 4 bytes, times scale sc (sc_hi for bytes 16..31 when split, Q6_K's groups).
inline void lanes_fma(float* acc, size_t b, const uint8_t* w, const int8_t* x, int bias, float sc_lo, float sc_hi) {
  float* lane = acc + 8 * (b % 2);
  for (size_t i = 0; i < 8; ++i) {
    int32_t s = 0, sx = 0;
    for (size_t k = 4 * i; k < 4 * i + 4; ++k) {
      s += int32_t(w[k]) * int32_t(x[k]);
      sx += int32_t(x[k]);
    }
    lane[i] = std::fma(float(s - bias * sx), i < 4 ? sc_lo : sc_hi, lane[i]);
  }
}

// One weight row . one activation row; xq: [nb32*32], xd, sx: [nb32].
inline float gguf_row_dot_portable(DType t, const MatrixView& W, size_t r, const int8_t* xq, const float* xd,
                                   const float* sx) {
  if (is_q4_family(t)) return q4_row_dot_portable(q4_layout(W), r, xq, xd, sx);
  if (t == DType::Q4_K) return k4_row_dot_portable(k4_layout(W), r, xq, xd, sx);
  float acc[16] = {};
  uint8_t w[32];
  const size_t nsb = W.cols / kSuperBlock;
  // Q6_K
  for (size_t s = 0; s < nsb; ++s) {
    const uint8_t* blk = static_cast<const uint8_t*>(W.data) + (r * nsb + s) * kQ6KBytes;
    const float d = h2f(blk + 208);
    for (int j = 0; j < 8; ++j) {
      const size_t b = s * 8 + size_t(j);
      const int h = j / 4, jj = j % 4;  // block j covers elements h*128 + 32*jj + l
      for (int l = 0; l < 32; ++l) {
        const int lo = (blk[h * 64 + (jj % 2) * 32 + l] >> (4 * (jj / 2))) & 15;
        const int hi = (blk[128 + h * 32 + l] >> (2 * jj)) & 3;
        w[l] = uint8_t(lo | hi << 4);
      }
      const float s0 = (d * float(int8_t(blk[192 + 2 * j]))) * xd[b];
      const float s1 = (d * float(int8_t(blk[192 + 2 * j + 1]))) * xd[b];
      lanes_fma(acc, b, w, xq + b * 32, 32, s0, s1);
    }
  }
  return q8_tree_sum(acc);
}

#if defined(__AVX512VNNI__) && defined(__AVX512BW__)
// f16 at p -> f32 by the F16C instruction (the same exact value as f16_to_f32, without its
// branches: these kernels convert one or two scales per 256 weights).
inline float h2f_fast(const uint8_t* p) {
  uint16_t h;
  std::memcpy(&h, p, 2);
  return _cvtsh_ss(h);
}

// Q6_K: one weight row against RX activation rows.
template <int RX>
inline void q6k_row_vnni(const uint8_t* row, size_t nsb, const int8_t* const* xq, const float* const* xd,
                         float* out) {
  __m512 acc[RX];
  for (int m = 0; m < RX; ++m) acc[m] = _mm512_setzero_ps();
  const __m512i m0f = _mm512_set1_epi8(15), m30 = _mm512_set1_epi8(0x30);
  // per 16-bit lane shifts of qh: lower 256 bits for the first block of a pair, upper for the second
  const __m512i shl_lo = _mm512_inserti64x4(_mm512_set1_epi16(4), _mm256_set1_epi16(2), 1);
  const __m512i shr_hi = _mm512_inserti64x4(_mm512_set1_epi16(0), _mm256_set1_epi16(2), 1);
  const __m512i g_idx = _mm512_set_epi32(3, 3, 3, 3, 2, 2, 2, 2, 1, 1, 1, 1, 0, 0, 0, 0);
  const __m512i group_block = _mm512_set_epi32(7, 7, 6, 6, 5, 5, 4, 4, 3, 3, 2, 2, 1, 1, 0, 0);
  const bool l2 = gguf_prefetch_l2();
  for (size_t s = 0; s < nsb; ++s) {
    const uint8_t* blk = row + s * kQ6KBytes;
    for (int k = 0; k < 4; ++k) prefetch_line_to(uintptr_t(blk + 64 * k + kGgufPrefetchAhead), l2);
    const float d = h2f_fast(blk + 208);
    // dsc[g] = d * scale_g, exact (11 x 8 significant bits)
    const __m512 dsc = _mm512_mul_ps(_mm512_set1_ps(d), _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(
                                                             _mm_loadu_si128(reinterpret_cast<const __m128i*>(blk + 192)))));
    // S[m] lane g = dsc[g] * dx of group g's block (the product each pair's lanes take, formed once
    // per super-block instead of per pair: two broadcasts, a blend and a multiply less per pair)
    __m512 S[RX];
    for (int m = 0; m < RX; ++m)
      S[m] = _mm512_mul_ps(dsc, _mm512_permutexvar_ps(group_block, _mm512_castps256_ps512(_mm256_loadu_ps(xd[m] + s * 8))));
    for (int h = 0; h < 2; ++h) {
      const __m512i ql = _mm512_loadu_si512(blk + h * 64);
      const __m256i qh256 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(blk + 128 + h * 32));
      const __m512i qh = _mm512_inserti64x4(_mm512_castsi256_si512(qh256), qh256, 1);
      for (int half = 0; half < 2; ++half) {  // blocks 4h + 2 half, 4h + 2 half + 1
        const __m512i lo = half == 0 ? _mm512_and_si512(ql, m0f) : _mm512_and_si512(_mm512_srli_epi16(ql, 4), m0f);
        const __m512i hi = half == 0 ? _mm512_and_si512(_mm512_sllv_epi16(qh, shl_lo), m30)
                                     : _mm512_and_si512(_mm512_srlv_epi16(qh, shr_hi), m30);
        const __m512i w = _mm512_or_si512(lo, hi);
        const int j0 = 4 * h + 2 * half;  // first block of the pair within the super-block
        const size_t b = s * 8 + size_t(j0);
        const __m512i idx = _mm512_add_epi32(g_idx, _mm512_set1_epi32(2 * j0));
        for (int m = 0; m < RX; ++m) {
          const __m512i x = in_register(_mm512_loadu_si512(xq[m] + b * 32));
          const __m512i dot = _mm512_dpbusd_epi32(offset_corr(32, x), w, x);
          acc[m] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(dot), _mm512_permutexvar_ps(idx, S[m]), acc[m]);
        }
      }
    }
  }
  for (int m = 0; m < RX; ++m) out[m] = q8_lanes_sum(acc[m]);
}

#endif

#if defined(FATHOM_KERNELS_AVX2_INT8)
// AVX2 without AVX512-VNNI (quant.hpp's Q8 AVX2 kernel): the header's 16 lanes are two 8-lane
// registers (lo: even blocks, hi: odd blocks), one 32-byte block per step; int32 lane i = block b's
// bytes 4i..4i+3 by vpmaddubsw + vpmaddwd (dot4_u8s8). Q6_K weights minus their offset 32 are
// signed, so their magnitudes are the unsigned operand and their signs move to the activations
// (vpsignb), which makes the int32 q.qx - 32 sum qx directly. Same integers, same float
// operations, so the same bits as the portable and VNNI kernels.
inline float h2f_avx2(const uint8_t* p) {
  uint16_t h;
  std::memcpy(&h, p, 2);
  return _cvtsh_ss(h);
}

// acc += block dot (signed weights `sw` with magnitudes `aw` = |sw|) x scale.
inline __m256 q_fma_s(__m256i aw, __m256i sw, const int8_t* x, __m256 scale, __m256 acc) {
  const __m256i xv = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x));
  return _mm256_fmadd_ps(_mm256_cvtepi32_ps(dot4_u8s8(aw, _mm256_sign_epi8(xv, sw))), scale, acc);
}

// Q6_K: one weight row against RX activation rows (RX <= 4).
template <int RX>
inline void q6k_row_avx2(const uint8_t* row, size_t nsb, const int8_t* const* xq, const float* const* xd,
                         float* out) {
  __m256 acc[RX][2];
  for (int m = 0; m < RX; ++m) acc[m][0] = acc[m][1] = _mm256_setzero_ps();
  const __m256i m0f = _mm256_set1_epi8(15), m30 = _mm256_set1_epi8(0x30), m32 = _mm256_set1_epi8(32);
  alignas(32) float dsc[16];
  for (size_t s = 0; s < nsb; ++s) {
    const uint8_t* blk = row + s * kQ6KBytes;
    for (int k = 0; k < 4; ++k) prefetch_line(uintptr_t(blk + 64 * k + kGgufPrefetchAhead));
    // dsc[g] = d * scale_g, exact (11 x 8 significant bits)
    const __m256 d = _mm256_set1_ps(h2f_avx2(blk + 208));
    const __m128i s16 = _mm_loadu_si128(reinterpret_cast<const __m128i*>(blk + 192));
    _mm256_store_ps(dsc, _mm256_mul_ps(d, _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(s16))));
    _mm256_store_ps(dsc + 8, _mm256_mul_ps(d, _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_srli_si128(s16, 8)))));
    for (int h = 0; h < 2; ++h) {
      const __m256i ql0 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(blk + h * 64));
      const __m256i ql1 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(blk + h * 64 + 32));
      const __m256i qh = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(blk + 128 + h * 32));
      for (int jj = 0; jj < 4; ++jj) {  // block j = 4h + jj: elements h*128 + 32 jj + l
        const __m256i ql = jj % 2 ? ql1 : ql0;
        const __m256i lo = jj < 2 ? _mm256_and_si256(ql, m0f) : _mm256_and_si256(_mm256_srli_epi16(ql, 4), m0f);
        const __m256i hb = jj == 0 ? _mm256_slli_epi16(qh, 4)
                           : jj == 1 ? _mm256_slli_epi16(qh, 2)
                           : jj == 2 ? qh
                                     : _mm256_srli_epi16(qh, 2);
        const __m256i sw = _mm256_sub_epi8(_mm256_or_si256(lo, _mm256_and_si256(hb, m30)), m32);
        const __m256i aw = _mm256_sign_epi8(sw, sw);
        const int j = 4 * h + jj;
        const size_t b = s * 8 + size_t(j);
        // lanes 0-3: group 2j, lanes 4-7: group 2j + 1
        const __m256 gsc = _mm256_insertf128_ps(_mm256_castps128_ps256(_mm_set1_ps(dsc[2 * j])),
                                                _mm_set1_ps(dsc[2 * j + 1]), 1);
        for (int m = 0; m < RX; ++m)
          acc[m][j % 2] = q_fma_s(aw, sw, xq[m] + b * 32, _mm256_mul_ps(gsc, _mm256_set1_ps(xd[m][b])), acc[m][j % 2]);
      }
    }
  }
  for (int m = 0; m < RX; ++m) out[m] = q8_lanes_sum(acc[m][0], acc[m][1]);
}

#endif

// The fast path compiled in: "AVX512-VNNI", "AVX2" or "portable".
inline const char* gguf_kernel_name() { return kQ4Vnni ? "AVX512-VNNI" : kQ4Avx2 ? "AVX2" : "portable"; }
// Most activation rows a row kernel takes at once (gemm): 8 with AVX-512's 32 registers, 4 with
// AVX2's 16.
constexpr int kGgufMaxRx = kQ4Vnni ? 8 : 4;

// out[m] = row r of W . activation row m, for RX rows, W Q6_K; vector kernel when compiled in.
template <int RX>
inline void q6k_row(const MatrixView& W, size_t r, const int8_t* const* xq, const float* const* xd, float* out) {
  const size_t nsb = W.cols / kSuperBlock;
  [[maybe_unused]] const uint8_t* row = static_cast<const uint8_t*>(W.data) + r * nsb * kQ6KBytes;
#if defined(__AVX512VNNI__) && defined(__AVX512BW__)
  q6k_row_vnni<RX>(row, nsb, xq, xd, out);
#elif defined(FATHOM_KERNELS_AVX2_INT8)
  if constexpr (RX > 4) {  // 16 registers: two halves
    q6k_row<RX / 2>(W, r, xq, xd, out);
    q6k_row<RX - RX / 2>(W, r, xq + RX / 2, xd + RX / 2, out + RX / 2);
  } else {
    q6k_row_avx2<RX>(row, nsb, xq, xd, out);
  }
#else
  for (int m = 0; m < RX; ++m) out[m] = gguf_row_dot_portable(W.dtype, W, r, xq[m], xd[m], nullptr);
#endif
}

// Activation rows t .. t + RX - 1 of A for the group kernels.
template <int RX>
inline Q4Acts<RX> q4_acts(const Q8Acts& A, size_t t) {
  Q4Acts<RX> a;
  for (int m = 0; m < RX; ++m) {
    a.xq[m] = A.qs.data() + (t + m) * A.nb * kQ8Block;
    a.xd[m] = A.d.data() + (t + m) * A.nb;
    a.sx[m] = A.sx.data() + (t + m) * A.nb;
    a.sumq[m] = A.sumq.data() + (t + m) * A.nb;
  }
  return a;
}

// Calls run(std::integral_constant<int, RX>{}, t) for activation rows t .. t + RX - 1 covering
// [t0, t1): RX = kGgufMaxRx, then 4, then 1.
template <class Run>
inline void in_activation_steps(size_t t0, size_t t1, Run&& run) {
  size_t t = t0;
  if constexpr (kGgufMaxRx >= 8)
    for (; t + 8 <= t1; t += 8) run(std::integral_constant<int, 8>{}, t);
  for (; t + 4 <= t1; t += 4) run(std::integral_constant<int, 4>{}, t);
  for (; t < t1; ++t) run(std::integral_constant<int, 1>{}, t);
}

// Y[t * ldy + r] for rows r in [r0, r1) of a matrix held in groups of 16 rows (in_row_groups) and
// activation rows t in [0, n): each group overlapping the range against RX activation rows at a
// time (its tiles unpacked once for all of them), in token blocks of ~24 KB of activations
// (L1-resident while the group's tiles pass). Only the range's rows are written.
inline void group_rows(const MatrixView& W, const Q8Acts& A, size_t n, size_t r0, size_t r1, float* Y, size_t ldy) {
  if (r0 >= r1) return;
  const size_t tb = n == 1 ? 1 : std::max<size_t>(8, (size_t(24) << 10) / (A.nb * kQ8Block) / 8 * 8);
  for (size_t t0 = 0; t0 < n; t0 += tb)
    for (size_t g = r0 / kQ4GroupRows; g * kQ4GroupRows < r1; ++g) {
      const size_t lo = std::max(r0, g * kQ4GroupRows), hi = std::min(r1, (g + 1) * kQ4GroupRows);
      in_activation_steps(t0, std::min(n, t0 + tb), [&](auto rx, size_t t) {
        constexpr int RX = decltype(rx)::value;
        float out[kQ4GroupRows * RX];  // [RX][16]
        if (W.dtype == DType::Q4_K) k4_group<RX>(k4_layout(W), g, q4_acts<RX>(A, t), out);
        else q4_group<RX>(q4_layout(W), g, q4_acts<RX>(A, t), out);
        for (int m = 0; m < RX; ++m)
          for (size_t r = lo; r < hi; ++r) Y[(t + m) * ldy + r] = out[16 * m + r % kQ4GroupRows];
      });
    }
}

// Y[t, r] for t in [0, n), r in [r0, r1), W Q6_K: each weight row against RX activation rows at a
// time (its blocks unpacked once for all of them), token blocks of ~24 KB of activations
// (L1-resident while every row of the range passes; the rows come from L2).
inline void q6k_rows(const MatrixView& W, const Q8Acts& A, size_t n, size_t r0, size_t r1, float* Y, size_t ldy) {
  const size_t nb = A.nb;
  const size_t tb = n == 1 ? 1 : std::max<size_t>(8, (size_t(24) << 10) / (nb * kQ8Block) / 8 * 8);
  for (size_t t0 = 0; t0 < n; t0 += tb)
    for (size_t r = r0; r < r1; ++r)
      in_activation_steps(t0, std::min(n, t0 + tb), [&](auto rx, size_t t) {
        constexpr int RX = decltype(rx)::value;
        const int8_t* xq[RX];
        const float* xd[RX];
        for (int m = 0; m < RX; ++m) {
          xq[m] = A.qs.data() + (t + m) * nb * kQ8Block;
          xd[m] = A.d.data() + (t + m) * nb;
        }
        float out[RX];
        q6k_row<RX>(W, r, xq, xd, out);
        for (int m = 0; m < RX; ++m) Y[(t + m) * ldy + r] = out[m];
      });
}

// y[r] for r in [r0, r1), one activation row (decode).
inline void gguf_rows_gemv(const MatrixView& W, const Q8Acts& A, size_t r0, size_t r1, float* y) {
  if (in_row_groups(W.dtype)) return group_rows(W, A, 1, r0, r1, y, 0);
  q6k_rows(W, A, 1, r0, r1, y, 0);
}

// Prompts through the int8 kernels: the threads split the rows (whole groups of 16 where held so).
inline void gemm_gguf_block(const MatrixView& W, const float* X, size_t n, float* Y) {
  thread_local Q8Acts acts;  // [n][nb*32] quantised activations and their block sums
  acts.assign(X, n, W.cols);
  const Q8Acts& A = acts;
  const int threads = worker_count(W.rows * W.cols * n);
  if (in_row_groups(W.dtype)) {
    parallel_chunks(q4_groups(W.rows), threads, [&](size_t b, size_t e) {
      group_rows(W, A, n, b * kQ4GroupRows, std::min(W.rows, e * kQ4GroupRows), Y, W.rows);
    });
    return;
  }
  parallel_chunks(W.rows, threads, [&](size_t b, size_t e) { q6k_rows(W, A, n, b, e, Y, W.rows); });
}

// Checks a matrix of one of these formats before it is used: the cols are whole blocks.
inline void check_gguf_block(const MatrixView& W, const char* who) {
  if (W.cols % gguf_block_elems(W.dtype) != 0)
    throw UsageError("", std::string(dtype_name(W.dtype)),
                     std::string(who) + ": " + std::to_string(W.cols) + " columns are not whole blocks of " +
                         std::to_string(gguf_block_elems(W.dtype)));
}

}  // namespace detail

// An owning matrix in one of the formats above; view() is what gemv/gemm take.
class BlockMatrix {
 public:
  BlockMatrix() = default;
  BlockMatrix(DType t, size_t rows, size_t cols)
      : dtype_(t), rows_(rows), cols_(cols), buf_(gguf_block_matrix_bytes(t, rows, cols)) {}
  MatrixView view() const { return MatrixView{dtype_, rows_, cols_, buf_.data()}; }
  size_t bytes() const { return gguf_block_matrix_bytes(dtype_, rows_, cols_); }
  std::byte* data() { return buf_.data(); }

 private:
  DType dtype_ = DType::Q4_0;
  size_t rows_ = 0, cols_ = 0;
  WeightBuffer buf_;
};

// A matrix from GGUF-layout rows: row r of the result is the bytes at src(r) (cols / block
// elements GGUF blocks). Q4_0 / Q4_1 / Q5_0 / Q5_1 and Q4_K are re-laid in groups of 16 rows
// (q4_groups.hpp, k4_groups.hpp), Q6_K copied. Throws FormatError naming the row and block of a non-finite
// scale or minimum.
inline BlockMatrix block_matrix_from_gguf(DType t, size_t rows, size_t cols,
                                          const std::function<const std::byte*(size_t)>& src) {
  if (!is_gguf_block(t)) throw UsageError("", std::string(dtype_name(t)), "block_matrix_from_gguf: not a GGUF block type");
  if (cols % gguf_block_elems(t) != 0)
    throw UsageError("", std::string(dtype_name(t)), "block_matrix_from_gguf: columns are not whole blocks");
  BlockMatrix M(t, rows, cols);
  const size_t nb = cols / gguf_block_elems(t), bb = gguf_block_bytes(t);
  auto bad = [](size_t r, size_t b) {
    throw FormatError("", "row " + std::to_string(r) + ", block " + std::to_string(b), "non-finite block scale");
  };
  auto* base = reinterpret_cast<uint8_t*>(M.data());
  if (t == DType::Q6_K) {
    for (size_t r = 0; r < rows; ++r) {
      const auto* row = reinterpret_cast<const uint8_t*>(src(r));
      for (size_t b = 0; b < nb; ++b)
        if (!std::isfinite(detail::h2f(row + b * bb + 208))) bad(r, b);
      std::memcpy(base + r * nb * bb, row, nb * bb);
    }
    return M;
  }
  if (t == DType::Q4_K) {
    if (rows % kQ4GroupRows != 0)  // the padding rows: zero
      std::memset(base + (rows / kQ4GroupRows) * nb * detail::kK4Tile, 0, nb * detail::kK4Tile);
    for (size_t r = 0; r < rows; ++r) {
      const auto* row = reinterpret_cast<const uint8_t*>(src(r));
      for (size_t b = 0; b < nb; ++b) {
        const uint8_t* blk = row + b * bb;
        if (!std::isfinite(detail::h2f(blk)) || !std::isfinite(detail::h2f(blk + 2))) bad(r, b);
        detail::k4_put_superblock(base, nb, r, b, blk);
      }
    }
    return M;
  }
  // GGUF blocks: f16 d, f16 m (with a minimum), u32 qh (Q5), 16 bytes of nibbles -> tiles
  const detail::Q4Fmt f = detail::q4_fmt(t);
  const size_t group_bytes = nb * detail::q4_tile_bytes(f);
  for (size_t r = 0; r < rows; ++r) {
    if (r % kQ4GroupRows == 0)  // the fifth bits are or-ed in, the padding rows stay zero
      std::memset(base + r / kQ4GroupRows * group_bytes, 0, group_bytes);
    const auto* row = reinterpret_cast<const uint8_t*>(src(r));
    for (size_t b = 0; b < nb; ++b) {
      const uint8_t* blk = row + b * bb;
      if (!std::isfinite(detail::h2f(blk)) || (detail::q4_has_min(f) && !std::isfinite(detail::h2f(blk + 2)))) bad(r, b);
      detail::q4_put_block(base, f, nb, r, b, blk);
    }
  }
  return M;
}

}  // namespace fathom::kernels
