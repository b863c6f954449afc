#pragma once
// GGUF's Q6_K -- super-blocks of 256 weights, 6-bit values q (0..63) in 16 groups of 16 with a
// signed 8-bit scale each under the super-block's f16 d: weight = d sc_g (q - 32) -- kept in memory
// as groups of 16 rows like Q4_0 .. Q5_1 and Q4_K (q4_groups.hpp, k4_groups.hpp), and its products
// with 8-bit activations (quant4.hpp dispatches).
//
// The file's super-block (210 bytes): ql[128] (low 4 bits), qh[64] (high 2 bits), sc[16], d. Half
// h (elements 128h ..) takes ql[64h ..], qh[32h ..]; element 128h + 32jj + l (jj 0..3, l 0..31) is
//   q = ((ql[64h + 32(jj % 2) + l] >> 4(jj / 2)) & 15) | ((qh[32h + l] >> 2jj) & 3) << 4
// in group g = 8h + 2jj + l / 16 (sub-block j = 4h + jj of 32, its low or high 16).
//
// Layout (MatrixView::data): ceil(rows / 16) groups of 16 rows, the last padded with zero rows,
// each a run of nsb = cols / 256 tiles; tile s holds super-block s of the group's 16 rows (row i):
//   uint8  ql[32][16][4]   chunk c, row i: ql bytes 4c .. 4c + 3                             2048 B
//   uint8  qh[16][16][4]   chunk c, row i: qh bytes 4c .. 4c + 3                             1024 B
//   uint8  sc[4][16][4]    word k, row i: scale bytes 4k .. 4k + 3                            256 B
//   uint16 d[16]           f16 scales                                                          32 B
// = 16 x the file's 210 bytes (tiles start 32 bytes off a cache line every other super-block).
//
// Products, with activation blocks x = dx * qx (Q8Acts; sumh: qx summed over each half block),
// for each row and super-block, for each half h, first the low 16 elements of its four
// sub-blocks (jj = 0..3), then their high 16 (the order the vector kernels' registers hold them):
//   s_g = q_g . qx_g - 32 sum qx_g    (exact int32)
//   acc = fma(float(s_g), (d sc_g) dx_b, acc)      (d sc_g exact: an f16 times an 8-bit integer)
// A lane per row: one conversion and one FMA serve 16 rows x 16 weights where the row-major
// kernel spent a conversion and an FMA per 32 weights of each row, plus its per-row sums. Every
// kernel below does exactly these operations: the same bits on every CPU, for any thread count
// and any number of activation rows.
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>

#include "fathom/core/dtype.hpp"
#include "fathom/kernels/convert.hpp"
#include "fathom/kernels/k4_groups.hpp"
#include "fathom/kernels/matrix.hpp"
#include "fathom/kernels/prefetch.hpp"
#include "fathom/kernels/q4_groups.hpp"

namespace fathom::kernels {

constexpr size_t kQ6KBytes = 210;  // the file's Q6_K super-block

namespace detail {

constexpr size_t kK6Tile = kQ4GroupRows * kQ6KBytes;  // 3360 bytes
constexpr size_t kK6Qh = 2048, kK6Scales = 3072, kK6D = 3328;       // offsets in a tile

// A matrix's tiles (layout above).
struct K6Layout {
  const uint8_t* base;
  size_t nsb;  // super-blocks per row
  const uint8_t* tile_at(size_t r, size_t s) const { return base + ((r / kQ4GroupRows) * nsb + s) * kK6Tile; }
};
inline K6Layout k6_layout(const MatrixView& W) { return {static_cast<const uint8_t*>(W.data), W.cols / kSuperBlock}; }

inline size_t k6_matrix_bytes(size_t rows, size_t cols) { return q4_groups(rows) * (cols / kSuperBlock) * kK6Tile; }

// The file's super-block `blk` -> super-block s of row r.
inline void k6_put_superblock(uint8_t* base, size_t nsb, size_t r, size_t s, const uint8_t* blk) {
  uint8_t* t = base + ((r / kQ4GroupRows) * nsb + s) * kK6Tile;
  const size_t i = r % kQ4GroupRows;
  for (size_t c = 0; c < 32; ++c) std::memcpy(t + 64 * c + 4 * i, blk + 4 * c, 4);
  for (size_t c = 0; c < 16; ++c) std::memcpy(t + kK6Qh + 64 * c + 4 * i, blk + 128 + 4 * c, 4);
  for (size_t k = 0; k < 4; ++k) std::memcpy(t + kK6Scales + 64 * k + 4 * i, blk + 192 + 4 * k, 4);
  std::memcpy(t + kK6D + 2 * i, blk + 208, 2);
}

// Sub-block j (0..7) of super-block s of row r: its 32 values (0..63) in element order and the
// scales d sc_g of its two groups (exact).
inline void k6_subblock(const K6Layout& L, size_t r, size_t s, int j, uint8_t* q, float& scale_lo, float& scale_hi) {
  const uint8_t* t = L.tile_at(r, s);
  const size_t i = r % kQ4GroupRows, h = size_t(j) / 4, jj = size_t(j) % 4;
  for (size_t l = 0; l < 32; ++l) {
    const uint8_t lo = t[64 * (16 * h + 8 * (jj % 2) + l / 4) + 4 * i + l % 4];
    const uint8_t hi = t[kK6Qh + 64 * (8 * h + l / 4) + 4 * i + l % 4];
    q[l] = uint8_t(((lo >> (4 * (jj / 2))) & 15) | ((hi >> (2 * jj)) & 3) << 4);
  }
  uint16_t d;
  std::memcpy(&d, t + kK6D + 2 * i, 2);
  const auto sc = [&](size_t g) { return float(int8_t(t[kK6Scales + 64 * (g / 4) + 4 * i + g % 4])); };
  scale_lo = f16_to_f32(d) * sc(2 * size_t(j));
  scale_hi = f16_to_f32(d) * sc(2 * size_t(j) + 1);
}

// One weight row . one activation row (xq: [nsb * 256], xd: [nsb * 8], sumh: [nsb * 16]): the
// header's arithmetic, operation for operation (the reference the vector kernels equal bit for bit).
inline float k6_row_dot_portable(const K6Layout& L, size_t r, const int8_t* xq, const float* xd, const int32_t* sumh) {
  float acc = 0.f;
  uint8_t q[4][32];
  float sc[4][2];
  for (size_t s = 0; s < L.nsb; ++s)
    for (size_t h = 0; h < 2; ++h) {
      for (size_t jj = 0; jj < 4; ++jj) k6_subblock(L, r, s, int(4 * h + jj), q[jj], sc[jj][0], sc[jj][1]);
      for (size_t half = 0; half < 2; ++half)
        for (size_t jj = 0; jj < 4; ++jj) {
          const size_t b = 8 * s + 4 * h + jj;
          int32_t dot = -32 * sumh[2 * b + half];
          for (size_t l = 16 * half; l < 16 * half + 16; ++l) dot += int32_t(q[jj][l]) * int32_t(xq[32 * b + l]);
          acc = std::fma(float(dot), sc[jj][half] * xd[b], acc);
        }
    }
  return acc;
}

// Whether the AVX512-VNNI kernel prefetches on two levels: on a Zen 4 (AMD family 19h with
// AVX-512) each line twice, kK6PrefetchFar ahead into L2 (prefetcht1) and kK6PrefetchNear ahead
// into L1; elsewhere once, kGgufPrefetchAhead ahead into L1. On the Zen 4 Q6_K streamed 0.47-0.51x
// as fast from DRAM into L1 alone (one thread, 2048 x 8192 and 8192 x 2048; two 0.51-0.73x) while
// the other 16-row group formats gained from L1 (q4_groups.hpp; docs/benchmarks.md, "Zen 4: GGUF
// prefetches into L1 again"); 24 KiB into L2 and 2 KiB into L1 then streamed 1.04-1.08x as fast
// as 8 KiB into L2 alone (one thread, 512 x 2048 to 32,768 x 2048: 93-101 % of the read; two
// threads 1.02-1.05x), while the Q4 formats ran 0.74-0.84x with the same second level ("Zen 4:
// Q6_K on two prefetch levels").
inline bool k6_prefetch_two_levels() {
#if defined(__AVX512VNNI__) && defined(__AVX512BW__)
  return amd_family_19h();
#else
  return false;
#endif
}
constexpr size_t kK6PrefetchFar = size_t(24) << 10, kK6PrefetchNear = size_t(2) << 10;

#if defined(__AVX512VNNI__) && defined(__AVX512BW__)
// out[16 m + i] = row 16 g + i . activation row m. Per half super-block h and half of its
// sub-blocks' elements (16 x 4 chunks of 4 bytes: ql chunks A, B and qh chunk H give the four
// sub-blocks' values by shifts, masks and one vpternlogd each), per activation row: sixteen
// vpdpbusd, four conversions and four FMAs.
template <int RX>
inline void k6_group_vnni(const K6Layout& L, size_t g, const Q4Acts<RX>& a, float* out) {
  const uint8_t* t = L.base + g * L.nsb * kK6Tile;
  const bool two_levels = k6_prefetch_two_levels();
  const __m512i lo4 = _mm512_set1_epi8(15), m30 = _mm512_set1_epi8(0x30);
  __m512 acc[RX];
  for (int m = 0; m < RX; ++m) acc[m] = _mm512_setzero_ps();
  for (size_t s = 0; s < L.nsb; ++s, t += kK6Tile) {
    const __m512 d = _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(t + kK6D)));
    for (int h = 0; h < 2; ++h)
      for (int half = 0; half < 2; ++half) {
        // a quarter of the tile per step (53 lines at once overran the outstanding misses a core
        // keeps: 0.93x from DRAM, Zen 5)
        const size_t q0 = size_t(2 * h + half) * (kK6Tile / 4);
        for (size_t at = q0; at < q0 + kK6Tile / 4 + 64; at += 64) {
          if (two_levels) {
            prefetch_line_l2(uintptr_t(t + kK6PrefetchFar + at));
            prefetch_line(uintptr_t(t + kK6PrefetchNear + at));
          } else {
            prefetch_line(uintptr_t(t + kGgufPrefetchAhead + at));
          }
        }
        __m512i w[4][4];  // [jj][chunk]
        for (int c = 0; c < 4; ++c) {
          const int cc = 4 * half + c;  // chunk within the 32 bytes of l
          const __m512i A = _mm512_loadu_si512(t + 64 * (16 * h + cc)), B = _mm512_loadu_si512(t + 64 * (16 * h + 8 + cc));
          const __m512i H = _mm512_loadu_si512(t + kK6Qh + 64 * (8 * h + cc));
          // (x & 15) | y for y already masked to 0x30: vpternlogd 0xEA = (a & b) | c
          w[0][c] = _mm512_ternarylogic_epi32(A, lo4, _mm512_and_si512(_mm512_slli_epi16(H, 4), m30), 0xEA);
          w[1][c] = _mm512_ternarylogic_epi32(B, lo4, _mm512_and_si512(_mm512_slli_epi16(H, 2), m30), 0xEA);
          w[2][c] = _mm512_ternarylogic_epi32(_mm512_srli_epi16(A, 4), lo4, _mm512_and_si512(H, m30), 0xEA);
          w[3][c] = _mm512_ternarylogic_epi32(_mm512_srli_epi16(B, 4), lo4, _mm512_and_si512(_mm512_srli_epi16(H, 2), m30), 0xEA);
        }
        __m512 sc[4];  // d sc_g of group 8h + 2jj + half, for the 16 rows
        for (int jj = 0; jj < 4; ++jj) {
          const int grp = 8 * h + 2 * jj + half;
          const __m512i word = _mm512_loadu_si512(t + kK6Scales + 64 * (grp / 4));
          const __m512i v = _mm512_srai_epi32(_mm512_slli_epi32(word, unsigned(24 - 8 * (grp % 4))), 24);
          sc[jj] = _mm512_mul_ps(d, _mm512_cvtepi32_ps(v));
        }
        for (int m = 0; m < RX; ++m)
          for (int jj = 0; jj < 4; ++jj) {
            const size_t b = 8 * s + size_t(4 * h + jj);
            const int8_t* x = a.xq[m] + 32 * b + 16 * half;
            __m512i dot = _mm512_set1_epi32(-32 * a.sumh[m][2 * b + size_t(half)]);
            for (int c = 0; c < 4; ++c) {
              int32_t xw;
              std::memcpy(&xw, x + 4 * c, 4);
              dot = _mm512_dpbusd_epi32(dot, w[jj][c], _mm512_set1_epi32(xw));
            }
            acc[m] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(dot), _mm512_mul_ps(sc[jj], _mm512_set1_ps(a.xd[m][b])), acc[m]);
          }
      }
  }
  for (int m = 0; m < RX; ++m) _mm512_storeu_ps(out + 16 * m, acc[m]);
}
#endif

#if !(defined(__AVX512VNNI__) && defined(__AVX512BW__)) && defined(__AVX2__) && defined(__FMA__) && defined(__F16C__)
// AVX2 without AVX512-VNNI: two halves of 8 rows; each chunk's dot by vpmaddubsw (values 0..63 the
// unsigned operand; a pair sum at most 2 x 63 x 127), two chunks added in int16 (at most 32004)
// before vpmaddwd. The same integers and float operations as the header. At most 2 activation
// rows per call.
template <int RX>
inline void k6_group_avx2(const K6Layout& L, size_t g, const Q4Acts<RX>& a, float* out) {
  static_assert(RX <= 2);
  const uint8_t* t = L.base + g * L.nsb * kK6Tile;
  const __m256i lo4 = _mm256_set1_epi8(15), m30 = _mm256_set1_epi8(0x30), ones = _mm256_set1_epi16(1);
  __m256 acc[RX][2];
  for (int m = 0; m < RX; ++m) acc[m][0] = acc[m][1] = _mm256_setzero_ps();
  const auto ld = [](const uint8_t* p) { return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)); };
  for (size_t s = 0; s < L.nsb; ++s, t += kK6Tile) {
    for (size_t at = 0; at < kK6Tile; at += 64) prefetch_line(uintptr_t(t + kGgufPrefetchAhead + at));
    for (int r8 = 0; r8 < 2; ++r8) {  // rows 8 r8 ..
      const uint8_t* tr = t + 32 * r8;
      const __m256 d = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(t + kK6D + 16 * r8)));
      for (int h = 0; h < 2; ++h)
        for (int half = 0; half < 2; ++half)
          for (int jj = 0; jj < 4; ++jj) {
            const int grp = 8 * h + 2 * jj + half;
            const __m256i word = ld(tr + kK6Scales + 64 * (grp / 4));
            const __m256 sc = _mm256_mul_ps(d, _mm256_cvtepi32_ps(_mm256_srai_epi32(_mm256_slli_epi32(word, 24 - 8 * (grp % 4)), 24)));
            __m256i w[4];
            for (int c = 0; c < 4; ++c) {
              const int cc = 4 * half + c;
              const __m256i q = ld(tr + 64 * (16 * h + 8 * (jj % 2) + cc)), H = ld(tr + kK6Qh + 64 * (8 * h + cc));
              const __m256i lo = jj < 2 ? _mm256_and_si256(q, lo4) : _mm256_and_si256(_mm256_srli_epi16(q, 4), lo4);
              const __m256i hb = jj == 0 ? _mm256_slli_epi16(H, 4) : jj == 1 ? _mm256_slli_epi16(H, 2) : jj == 2 ? H : _mm256_srli_epi16(H, 2);
              w[c] = _mm256_or_si256(lo, _mm256_and_si256(hb, m30));
            }
            const size_t b = 8 * s + size_t(4 * h + jj);
            for (int m = 0; m < RX; ++m) {
              const int8_t* x = a.xq[m] + 32 * b + 16 * half;
              int32_t xw[4];
              std::memcpy(xw, x, 16);
              const __m256i p01 = _mm256_add_epi16(_mm256_maddubs_epi16(w[0], _mm256_set1_epi32(xw[0])),
                                                   _mm256_maddubs_epi16(w[1], _mm256_set1_epi32(xw[1])));
              const __m256i p23 = _mm256_add_epi16(_mm256_maddubs_epi16(w[2], _mm256_set1_epi32(xw[2])),
                                                   _mm256_maddubs_epi16(w[3], _mm256_set1_epi32(xw[3])));
              const __m256i dot = _mm256_add_epi32(_mm256_set1_epi32(-32 * a.sumh[m][2 * b + size_t(half)]),
                                                   _mm256_add_epi32(_mm256_madd_epi16(p01, ones), _mm256_madd_epi16(p23, ones)));
              acc[m][r8] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(dot), _mm256_mul_ps(sc, _mm256_set1_ps(a.xd[m][b])), acc[m][r8]);
            }
          }
    }
  }
  for (int m = 0; m < RX; ++m) {
    _mm256_storeu_ps(out + 16 * m, acc[m][0]);
    _mm256_storeu_ps(out + 16 * m + 8, acc[m][1]);
  }
}
#endif

// out[16 m + i] = row 16 g + i . activation row m (m < RX), the padding rows included.
template <int RX>
inline void k6_group(const K6Layout& L, size_t g, const Q4Acts<RX>& a, float* out) {
#if defined(__AVX512VNNI__) && defined(__AVX512BW__)
  k6_group_vnni<RX>(L, g, a, out);
#elif defined(__AVX2__) && defined(__FMA__) && defined(__F16C__)
  in_pairs_of_rows<RX>(a, out, [&](const Q4Acts<2>& two, float* part) { k6_group_avx2<2>(L, g, two, part); },
                       [&](const Q4Acts<1>& one, float* part) { k6_group_avx2<1>(L, g, one, part); });
#else
  for (int m = 0; m < RX; ++m)
    for (size_t i = 0; i < kQ4GroupRows; ++i)
      out[16 * m + i] = k6_row_dot_portable(L, g * kQ4GroupRows + i, a.xq[m], a.xd[m], a.sumh[m]);
#endif
}

}  // namespace detail
}  // namespace fathom::kernels
