#pragma once
// The exact f32 values of a run of one weight row, in any weight format: the widening step of the
// dense gemm's packing (gemm.hpp). Through it, gemm_exact (linear.hpp) multiplies quantised
// weights (Q8, the GGUF blocks) with unquantised f32 activations at the f32 kernel's rate and in
// its summation order, so its result equals the f32 gemm of the dequantised matrix bit for bit.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <string>

#include "fathom/core/dtype.hpp"
#include "fathom/core/error.hpp"
#include "fathom/kernels/convert.hpp"
#include "fathom/kernels/matrix.hpp"
#include "fathom/kernels/quant.hpp"
#include "fathom/kernels/quant4.hpp"

namespace fathom::kernels::detail {

// The GGUF blocks: their reference dequantisation (io::dequantize's bits, element for element;
// tests/test_quant4.cpp) with each block's, group's or sub-block's scales decoded once, and within
// a run sharing one scale the values read from consecutive bytes (loops the compiler vectorises).
// f16 -> f32: F16C's conversion where there is one (the same exact value as f16_to_f32, without its
// branches: two per block of 32 here).
inline float f16_value(uint16_t h) {
#if defined(__F16C__)
  return _cvtsh_ss(h);
#else
  return f16_to_f32(h);
#endif
}

inline void widen_gguf(const MatrixView& W, size_t r, size_t c0, size_t n, float* out) {
  const size_t end = c0 + n;
  if (is_q4_family(W.dtype)) {
    const Q4Layout L = q4_layout(W);
    const int bias = q4_bias(W.dtype);
    const bool has_min = q4_has_min(L.fmt);
    for (size_t c = c0; c < end;) {
      const size_t b = c / kQ4Block, j0 = c % kQ4Block, j1 = std::min(end - c + j0, kQ4Block);
      const float d = f16_value(q4_scale_bits(L, r, b));
      const float mn = has_min ? f16_value(q4_min_bits(L, r, b)) : 0.f;
      float* o = out + (c - c0) - j0;  // o[j] = element j of block b
      uint8_t q[kQ4Block];  // element j's unsigned value (0..15, Q5 0..31)
      q4_block_elements(L, r, b, q);
      if (has_min) for (size_t j = j0; j < j1; ++j) o[j] = d * float(q[j]) + mn;
      else for (size_t j = j0; j < j1; ++j) o[j] = d * float(q[j] - bias);
      c += j1 - j0;
    }
    return;
  }
  if (W.dtype == DType::Q4_K) {
    const K4Layout L = k4_layout(W);
    for (size_t c = c0; c < end;) {
      const size_t i0 = c % 32, i1 = std::min(end - c + i0, size_t(32));
      uint8_t q[32];  // sub-block c / 32's values
      float dl, ml;
      k4_subblock(L, r, c / kSuperBlock, int(c % kSuperBlock / 32), q, dl, ml);
      float* o = out + (c - c0) - i0;  // o[i] = element i of the sub-block
      for (size_t i = i0; i < i1; ++i) o[i] = dl * float(q[i]) - ml;
      c += i1 - i0;
    }
    return;
  }
  const K6Layout L = k6_layout(W);  // Q6_K
  for (size_t c = c0; c < end;) {
    const size_t i0 = c % 32, i1 = std::min(end - c + i0, size_t(32));
    uint8_t q[32];  // sub-block c / 32's values
    float lo, hi;   // the scales of its two groups of 16
    k6_subblock(L, r, c / kSuperBlock, int(c % kSuperBlock / 32), q, lo, hi);
    float* o = out + (c - c0) - i0;  // o[i] = element i of the sub-block
    for (size_t i = i0; i < i1; ++i) o[i] = (i < 16 ? lo : hi) * float(int(q[i]) - 32);
    c += i1 - i0;
  }
}

#if defined(__AVX512F__) && defined(__AVX512BW__) && defined(__BMI2__)
#define FATHOM_KERNELS_Q4_PANEL_WIDEN 1
// The gemm's 32-column weight panel as two halves of 16 lanes (a 16-row group each): calls
// f(r0, rows, out) for each half with rows present (rows: the lanes below n0 + nr; out: Bp + 16h,
// columns 32 apart) and zeroes a half past the matrix.
template <class F>
inline void for_panel_halves(size_t n0, size_t nr, size_t kc, float* Bp, F&& f) {
  for (size_t h = 0; h < 2; ++h) {
    const size_t r0 = n0 + 16 * h;
    const __mmask16 rows = __mmask16(r0 >= n0 + nr ? 0u : n0 + nr - r0 >= 16 ? 0xffffu : (1u << (n0 + nr - r0)) - 1u);
    float* out = Bp + 16 * h;
    if (rows == 0) {
      for (size_t k = 0; k < kc; ++k) _mm512_storeu_ps(out + k * 32, _mm512_setzero_ps());
      continue;
    }
    f(r0, rows, out);
  }
}

// Bp[k * 32 + 16 h + i] = W[n0 + 16 h + i, k0 + k] for k < kc, h < 2, rows n0 .. n0 + nr - 1 of a
// Q4_0 / Q4_1 / Q5_0 / Q5_1 matrix (n0 a multiple of 16), zero past nr: the gemm's weight panel
// (gemm.hpp, pack_weights, 32 columns with AVX-512) straight from the tiles, a group's 16 rows per
// vector with their 16 scales and minimums, no per-row gather and no transposition. The values are
// widen_gguf's expressions on 16 lanes (d * q + m, d * (q - bias)), so the same bits, contracted or
// not as the compiler does the scalar ones.
inline void q4_widen_panel(const MatrixView& W, size_t n0, size_t nr, size_t k0, size_t kc, float* Bp) {
  const Q4Layout L = q4_layout(W);
  const bool has_min = q4_has_min(L.fmt), five = q4_has_fifth_bit(L.fmt);
  const __m512i bias = _mm512_set1_epi32(q4_bias(L.fmt)), lo4 = _mm512_set1_epi32(15);
  for_panel_halves(n0, nr, kc, Bp, [&](size_t r0, __mmask16 rows, float* out) {
    for (size_t b = k0 / kQ4Block; b * kQ4Block < k0 + kc; ++b) {
      const uint8_t* t = L.tile_at(r0, b);
      const __m512 d = _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(t + L.d_at)));
      const __m512 m = has_min ? _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(t + L.d_at + 32)))
                               : _mm512_setzero_ps();
      const size_t e0 = std::max(k0, b * kQ4Block) - b * kQ4Block, e1 = std::min(k0 + kc, (b + 1) * kQ4Block) - b * kQ4Block;
      for (size_t e = e0; e < e1; ++e) {  // element e = 16 hh + 4 j + c: byte c of chunk j, nibble hh
        const size_t hh = e / 16, j = e % 16 / 4, c = e % 4;
        const __m512i chunk = _mm512_loadu_si512(t + 64 * j);
        __m512i q = _mm512_and_si512(_mm512_srl_epi32(chunk, _mm_cvtsi32_si128(int(8 * c + 4 * hh))), lo4);
        if (five) {
          uint64_t mask;
          std::memcpy(&mask, t + 256 + 8 * (2 * j + hh), 8);
          q = _mm512_mask_add_epi32(q, __mmask16(_pext_u64(mask, 0x1111111111111111ull << c)), q, _mm512_set1_epi32(16));
        }
        __m512 v;
        if (has_min) v = _mm512_add_ps(_mm512_mul_ps(d, _mm512_cvtepi32_ps(q)), m);
        else v = _mm512_mul_ps(d, _mm512_cvtepi32_ps(_mm512_sub_epi32(q, bias)));
        _mm512_storeu_ps(out + (b * kQ4Block + e - k0) * 32, _mm512_maskz_mov_ps(rows, v));
      }
    }
  });
}

// The same panel from Q4_K's tiles (k4_groups.hpp): per sub-block the 16 rows' scales d sc_j and
// minimums dmin mn_j, then each element as widen_gguf's d sc_j q - dmin mn_j on 16 lanes (the
// product exact, so the same bits contracted or not).
inline void k4_widen_panel(const MatrixView& W, size_t n0, size_t nr, size_t k0, size_t kc, float* Bp) {
  const K4Layout L = k4_layout(W);
  const __m512i lo4 = _mm512_set1_epi32(15);
  for_panel_halves(n0, nr, kc, Bp, [&](size_t r0, __mmask16 rows, float* out) {
    for (size_t sb = k0 / 32; sb * 32 < k0 + kc; ++sb) {  // sub-block sb: j = sb % 8 of super-block sb / 8
      const int j = int(sb % 8);
      const uint8_t* t = L.tile_at(r0, sb / 8);
      const __m512 d = _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(t)));
      const __m512 dmin = _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(t + kK4Min)));
      const __m512i w0 = _mm512_loadu_si512(t + kK4Scales), w1 = _mm512_loadu_si512(t + kK4Scales + 64),
                    w2 = _mm512_loadu_si512(t + kK4Scales + 128);
      const __m512 dl = _mm512_mul_ps(d, _mm512_cvtepi32_ps(k4_six_bits(j, false, w0, w1, w2)));
      const __m512 ml = _mm512_mul_ps(dmin, _mm512_cvtepi32_ps(k4_six_bits(j, true, w0, w1, w2)));
      const uint8_t* run = t + kK4Qs + 512 * size_t(j / 2);
      const size_t e0 = std::max(k0, sb * 32) - sb * 32, e1 = std::min(k0 + kc, (sb + 1) * 32) - sb * 32;
      for (size_t e = e0; e < e1; ++e) {  // element e: byte e % 4 of chunk e / 4, nibble j % 2
        const __m512i chunk = _mm512_loadu_si512(run + 64 * (e / 4));
        const __m512i q = _mm512_and_si512(_mm512_srl_epi32(chunk, _mm_cvtsi32_si128(int(8 * (e % 4) + 4 * (j % 2)))), lo4);
        const __m512 v = _mm512_sub_ps(_mm512_mul_ps(dl, _mm512_cvtepi32_ps(q)), ml);
        _mm512_storeu_ps(out + (sb * 32 + e - k0) * 32, _mm512_maskz_mov_ps(rows, v));
      }
    }
  });
}

// The same panel from Q6_K's tiles (k6_groups.hpp): per sub-block the 16 rows' two group scales
// d sc_g, then each element as widen_gguf's d sc_g (q - 32) on 16 lanes (exact: the same bits).
inline void k6_widen_panel(const MatrixView& W, size_t n0, size_t nr, size_t k0, size_t kc, float* Bp) {
  const K6Layout L = k6_layout(W);
  for_panel_halves(n0, nr, kc, Bp, [&](size_t r0, __mmask16 rows, float* out) {
    for (size_t sb = k0 / 32; sb * 32 < k0 + kc; ++sb) {  // sub-block j = sb % 8 of super-block sb / 8
      const size_t j = sb % 8, h4 = j / 4, jj = j % 4;  // half super-block h4
      const uint8_t* t = L.tile_at(r0, sb / 8);
      const __m512 d = _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(t + kK6D)));
      __m512 sc[2];
      for (size_t k = 0; k < 2; ++k) {
        const size_t grp = 2 * j + k;
        const __m512i word = _mm512_loadu_si512(t + kK6Scales + 64 * (grp / 4));
        const __m512i v = _mm512_srai_epi32(_mm512_sll_epi32(word, _mm_cvtsi32_si128(int(24 - 8 * (grp % 4)))), 24);
        sc[k] = _mm512_mul_ps(d, _mm512_cvtepi32_ps(v));
      }
      const size_t e0 = std::max(k0, sb * 32) - sb * 32, e1 = std::min(k0 + kc, (sb + 1) * 32) - sb * 32;
      for (size_t e = e0; e < e1; ++e) {  // element e: byte e % 4 of chunk e / 4
        // byte e % 4 of plane k's chunk: q(jj) in its low 6 bits (jj < 3), or q(3)'s bits 2k, 2k + 1 on top
        const auto byte = [&](size_t k, int shift) {
          const __m512i P = _mm512_loadu_si512(t + k6_plane_at(h4, e, k));
          return _mm512_srl_epi32(P, _mm_cvtsi32_si128(int(8 * (e % 4)) + shift));
        };
        const __m512i m3 = _mm512_set1_epi32(3);
        const __m512i u = jj < 3 ? _mm512_and_si512(byte(jj, 0), _mm512_set1_epi32(63))
                                 : _mm512_or_si512(_mm512_or_si512(_mm512_and_si512(byte(0, 6), m3),
                                                                   _mm512_slli_epi32(_mm512_and_si512(byte(1, 6), m3), 2)),
                                                   _mm512_slli_epi32(_mm512_and_si512(byte(2, 6), m3), 4));
        const __m512i q = _mm512_sub_epi32(u, _mm512_set1_epi32(32));
        const __m512 v = _mm512_mul_ps(sc[e / 16], _mm512_cvtepi32_ps(q));
        _mm512_storeu_ps(out + (sb * 32 + e - k0) * 32, _mm512_maskz_mov_ps(rows, v));
      }
    }
  });
}
#endif

// out[j] = W[r, c0 + j] for j < n. Every format's value is exact in f32 (Q8: q * d, an 8-bit
// integer times an f16; the GGUF blocks: their reference dequantisation, widen_gguf).
inline void widen_segment(const MatrixView& W, size_t r, size_t c0, size_t n, float* out) {
  const size_t i = r * W.cols + c0;
  switch (W.dtype) {
    case DType::F32: std::copy_n(static_cast<const float*>(W.data) + i, n, out); return;
    case DType::BF16: bf16_to_f32_n(static_cast<const uint16_t*>(W.data) + i, out, n); return;
    case DType::F16: f16_to_f32_n(static_cast<const uint16_t*>(W.data) + i, out, n); return;
    case DType::Q8: {
      const Q8Layout L = q8_layout(W);
      const uint8_t* q = L.qs + r * L.nb * kQ8Block;  // [nb*32] q + 128
      for (size_t c = c0, end = c0 + n; c < end;) {
        const size_t b = c / kQ8Block, stop = std::min(end, (b + 1) * kQ8Block);
        const float d = f16_to_f32(L.d[r * L.nb + b]);
        for (; c < stop; ++c) out[c - c0] = float(int(q[c]) - 128) * d;
      }
      return;
    }
    case DType::Q4_0: case DType::Q4_1: case DType::Q4_K: case DType::Q6_K: case DType::Q5_0: case DType::Q5_1:
      return widen_gguf(W, r, c0, n, out);
    default: throw UnsupportedError("", std::string(dtype_name(W.dtype)), "widen_segment: weight dtype");
  }
}

// Where row r's elements lie, for prefetching: row r's element c at base + r * stride + c * elem
// (elem 0: a format whose rows are not one such run, not prefetched).
struct RowBytes {
  const uint8_t* base = nullptr;
  size_t stride = 0, elem = 0;
};
inline RowBytes row_bytes(const MatrixView& W) {
  if (W.dtype == DType::Q8) return {q8_layout(W).qs, q8_blocks(W.cols) * kQ8Block, 1};
  const size_t esz = dtype_size(W.dtype);
  return {static_cast<const uint8_t*>(W.data), W.cols * esz, esz};
}

}  // namespace fathom::kernels::detail

namespace fathom::kernels {

// Q8 (quant.hpp) from a matrix in any format: each row widened exactly, then quantised as
// quantize_q8 does (a --weights q8 model's GGUF block matrices and embedding).
inline QuantizedMatrix quantize_q8_blocks(const MatrixView& W) {
  if (!is_gguf_block(W.dtype)) return quantize_q8(W);
  return quantize_q8_rows(W.rows, W.cols,
                          [&](size_t r, float* out) { detail::widen_segment(W, r, 0, W.cols, out); });
}

}  // namespace fathom::kernels
