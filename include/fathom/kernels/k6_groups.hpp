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
// each a run of nsb = cols / 256 tiles (per column slice, below); tile s holds super-block s of the
// group's 16 rows (row i), in the order the kernels read it:
//   uint16 d[16]           f16 scales                                                    32 B
//   uint8  sc[4][16][4]    word k, row i: scale bytes 4k .. 4k + 3                       256 B
//   quarter u = 2h + half (4 x 768 B): the values of l = 16 half .. 16 half + 15 of half h,
//   uint8  p[3][4][16][4]  plane k, chunk c, row i: bytes of l = 16 half + 4c .. + 3,   3072 B
//                          p_k = q(jj = k) | (bits 2k, 2k + 1 of q(jj = 3)) << 6
// = 16 x the file's 210 bytes (tiles start 32 bytes off a cache line every other super-block).
// Rows longer than 2048 columns are held in column slices exactly as Q4_K's (k4_groups.hpp:
// SuperBlockTiles), and the products go slice by slice.
// The planes hold the four values of an l in three bytes such that three of them are one mask
// each (the file's split into four low and two high bits takes shifts for all four: 1.23-1.25x
// from cache on a Zen 4), and the tile is read front to back, which the hardware prefetchers
// follow (the file's order, ql, qh, then the scales, took three interleaved runs per step);
// without the slices the faster kernel streamed long rows 17-28 % slower from DRAM
// (docs/benchmarks.md, "Zen 4: Q6_K tiles in read order, in column slices").
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
constexpr size_t kK6D = 0, kK6Scales = 32, kK6Quarters = 288;     // offsets in a tile
constexpr size_t kK6Quarter = 768, kK6Plane = 256;
// Offset in a tile of plane k's chunk of l (0..31) in half h, row 0 (row i: + 4 i; byte l % 4).
constexpr size_t k6_plane_at(size_t h, size_t l, size_t k) {
  return kK6Quarters + kK6Quarter * (2 * h + l / 16) + kK6Plane * k + 64 * (l % 16 / 4);
}

// A matrix's tiles (layout above), in column slices as Q4_K's (k4_groups.hpp).
using K6Layout = SuperBlockTiles<kK6Tile>;
inline K6Layout k6_layout(const void* data, size_t rows, size_t cols) { return super_block_tiles<kK6Tile>(data, rows, cols); }
inline K6Layout k6_layout(const MatrixView& W) { return k6_layout(W.data, W.rows, W.cols); }

inline size_t k6_matrix_bytes(size_t rows, size_t cols) { return q4_groups(rows) * (cols / kSuperBlock) * kK6Tile; }

// The file's super-block `blk` -> super-block s of row r of the matrix at L.base.
inline void k6_put_superblock(const K6Layout& L, size_t r, size_t s, const uint8_t* blk) {
  uint8_t* t = const_cast<uint8_t*>(L.tile_at(r, s));
  const size_t i = r % kQ4GroupRows;
  for (size_t h = 0; h < 2; ++h)
    for (size_t l = 0; l < 32; ++l) {
      uint8_t q[4];  // the file's values of element 128h + 32jj + l (header)
      for (size_t jj = 0; jj < 4; ++jj)
        q[jj] = uint8_t(((blk[64 * h + 32 * (jj % 2) + l] >> (4 * (jj / 2))) & 15) |
                        ((blk[128 + 32 * h + l] >> (2 * jj)) & 3) << 4);
      for (size_t k = 0; k < 3; ++k)
        t[k6_plane_at(h, l, k) + 4 * i + l % 4] = uint8_t(q[k] | ((q[3] >> (2 * k)) & 3) << 6);
    }
  for (size_t k = 0; k < 4; ++k) std::memcpy(t + kK6Scales + 64 * k + 4 * i, blk + 192 + 4 * k, 4);
  std::memcpy(t + kK6D + 2 * i, blk + 208, 2);
}

// Sub-block j (0..7) of super-block s of row r: its 32 values (0..63) in element order and the
// scales d sc_g of its two groups (exact).
inline void k6_subblock(const K6Layout& L, size_t r, size_t s, int j, uint8_t* q, float& scale_lo, float& scale_hi) {
  const uint8_t* t = L.tile_at(r, s);
  const size_t i = r % kQ4GroupRows, h = size_t(j) / 4, jj = size_t(j) % 4;
  for (size_t l = 0; l < 32; ++l) {
    const auto plane = [&](size_t k) { return t[k6_plane_at(h, l, k) + 4 * i + l % 4]; };
    q[l] = jj < 3 ? uint8_t(plane(jj) & 63) : uint8_t(plane(0) >> 6 | (plane(1) >> 6) << 2 | (plane(2) >> 6) << 4);
  }
  uint16_t d;
  std::memcpy(&d, t + kK6D + 2 * i, 2);
  const auto sc = [&](size_t g) { return float(int8_t(t[kK6Scales + 64 * (g / 4) + 4 * i + g % 4])); };
  scale_lo = f16_to_f32(d) * sc(2 * size_t(j));
  scale_hi = f16_to_f32(d) * sc(2 * size_t(j) + 1);
}

// One weight row . one activation row (xq: [nsb * 256], xd: [nsb * 8], sumh: [nsb * 16]): the
// header's arithmetic, operation for operation (the reference the vector kernels equal bit for bit).
// Super-blocks [first, last) only, continuing from acc: a GroupPart (q4_groups.hpp).
inline float k6_row_dot_portable(const K6Layout& L, size_t r, const int8_t* xq, const float* xd, const int32_t* sumh,
                                 size_t first = 0, size_t last = SIZE_MAX, float acc = 0.f) {
  uint8_t q[4][32];
  float sc[4][2];
  for (size_t s = first; s < std::min(last, L.nsb); ++s)
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

// How the AVX512-VNNI kernel prefetches. On a Zen 4 (AMD family 19h with AVX-512) each quarter
// asks for its own lines (and the first quarter for d's and the scales') just before it loads
// them, and the hardware prefetchers run ahead along the tile, which is read front to back: with
// the slices, one thread 1.08-1.14x as fast from DRAM as the file-order tile with its 24 KiB into
// L2 and 2 KiB into L1 ahead (93-101 % of the read), while every distance ahead, into L1 or L2,
// was slower with this tile (docs/benchmarks.md, "Zen 4: Q6_K tiles in read order, in column
// slices"). Elsewhere (not measured with this tile) each line kGgufPrefetchAhead ahead into L1.
inline bool k6_prefetch_own_lines() {
#if defined(__AVX512VNNI__) && defined(__AVX512BW__)
  return amd_family_19h();
#else
  return false;
#endif
}

#if defined(__AVX512VNNI__) && defined(__AVX512BW__)
// out[16 m + i] = row 16 g + i . activation row m. Per quarter of the tile (half super-block h,
// half of its sub-blocks' elements; 16 x 4 chunks of 4 bytes in each of the three planes: three
// sub-blocks' values a mask each, the fourth's gathered by three shifts, two vpternlogd and a
// mask), per activation row: sixteen vpdpbusd, four conversions and four FMAs.
template <int RX>
inline void k6_group_vnni(const K6Layout& L, size_t g, const Q4Acts<RX>& a, float* out, GroupPart part = {}) {
  const bool own_lines = k6_prefetch_own_lines();
  const __m512i m3f = _mm512_set1_epi8(63), m03 = _mm512_set1_epi8(3), m0f = _mm512_set1_epi8(15);
  __m512 acc[RX];
  for (int m = 0; m < RX; ++m) acc[m] = part.carry ? _mm512_loadu_ps(out + 16 * m) : _mm512_setzero_ps();
  L.for_tiles(g, part, [&](size_t s, const uint8_t* t) {  // slice by slice: each a run of tiles
    const __m512 d = _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(t + kK6D)));
    for (int h = 0; h < 2; ++h)
      for (int half = 0; half < 2; ++half) {
        const uint8_t* quarter = t + k6_plane_at(size_t(h), size_t(16 * half), 0);
        if (own_lines) {
          const uintptr_t from = uintptr_t(h + half == 0 ? t : quarter) & ~uintptr_t(63);
          for (uintptr_t at = from; at < uintptr_t(quarter + kK6Quarter); at += 64) prefetch_line(at);
        } else {
          // a quarter of the tile per step (53 lines at once overran the outstanding misses a
          // core keeps: 0.93x from DRAM, Zen 5)
          const size_t q0 = size_t(2 * h + half) * (kK6Tile / 4);
          for (size_t at = q0; at < q0 + kK6Tile / 4 + 64; at += 64) prefetch_line(uintptr_t(t + kGgufPrefetchAhead + at));
        }
        __m512i w[4][4];  // [jj][chunk]
        for (int c = 0; c < 4; ++c) {
          const __m512i P0 = _mm512_loadu_si512(quarter + 64 * c), P1 = _mm512_loadu_si512(quarter + kK6Plane + 64 * c),
                        P2 = _mm512_loadu_si512(quarter + 2 * kK6Plane + 64 * c);
          w[0][c] = _mm512_and_si512(P0, m3f);
          w[1][c] = _mm512_and_si512(P1, m3f);
          w[2][c] = _mm512_and_si512(P2, m3f);
          // each plane's top two bits moved to bits 2k, 2k + 1 (16-bit shifts: the bits kept come
          // from the same byte); vpternlogd 0xE4 = c ? a : b, bit by bit
          const __m512i lo = _mm512_ternarylogic_epi32(_mm512_srli_epi16(P0, 6), _mm512_srli_epi16(P1, 4), m03, 0xE4);
          w[3][c] = _mm512_and_si512(_mm512_ternarylogic_epi32(lo, _mm512_srli_epi16(P2, 2), m0f, 0xE4), m3f);
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
  });
  for (int m = 0; m < RX; ++m) _mm512_storeu_ps(out + 16 * m, acc[m]);
}
#endif

#if !(defined(__AVX512VNNI__) && defined(__AVX512BW__)) && defined(__AVX2__) && defined(__FMA__) && defined(__F16C__)
// AVX2 without AVX512-VNNI: two halves of 8 rows; each chunk's dot by vpmaddubsw (values 0..63 the
// unsigned operand; a pair sum at most 2 x 63 x 127), two chunks added in int16 (at most 32004)
// before vpmaddwd. The same integers and float operations as the header. At most 2 activation
// rows per call.
template <int RX>
inline void k6_group_avx2(const K6Layout& L, size_t g, const Q4Acts<RX>& a, float* out, GroupPart part = {}) {
  static_assert(RX <= 2);
  const __m256i m3f = _mm256_set1_epi8(63), ones = _mm256_set1_epi16(1);
  __m256 acc[RX][2];
  for (int m = 0; m < RX; ++m)
    for (int h = 0; h < 2; ++h) acc[m][h] = part.carry ? _mm256_loadu_ps(out + 16 * m + 8 * h) : _mm256_setzero_ps();
  const auto ld = [](const uint8_t* p) { return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)); };
  L.for_tiles(g, part, [&](size_t s, const uint8_t* t) {  // slice by slice: each a run of tiles
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
            const uint8_t* quarter = tr + k6_plane_at(size_t(h), size_t(16 * half), 0);
            for (int c = 0; c < 4; ++c) {
              const auto plane = [&](int k) { return ld(quarter + kK6Plane * size_t(k) + 64 * size_t(c)); };
              if (jj < 3) {
                w[c] = _mm256_and_si256(plane(jj), m3f);
              } else {  // the planes' top two bits at bits 0-1, 2-3, 4-5 (16-bit shifts: from the same byte)
                const __m256i b01 = _mm256_and_si256(_mm256_srli_epi16(plane(0), 6), _mm256_set1_epi8(3));
                const __m256i b23 = _mm256_and_si256(_mm256_srli_epi16(plane(1), 4), _mm256_set1_epi8(12));
                const __m256i b45 = _mm256_and_si256(_mm256_srli_epi16(plane(2), 2), _mm256_set1_epi8(48));
                w[c] = _mm256_or_si256(_mm256_or_si256(b01, b23), b45);
              }
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
  });
  for (int m = 0; m < RX; ++m) {
    _mm256_storeu_ps(out + 16 * m, acc[m][0]);
    _mm256_storeu_ps(out + 16 * m + 8, acc[m][1]);
  }
}
#endif

// out[16 m + i] = row 16 g + i . activation row m (m < RX), the padding rows included; with a
// GroupPart, super-blocks [first, last) only, added to out when carry (q4_groups.hpp).
template <int RX>
inline void k6_group(const K6Layout& L, size_t g, const Q4Acts<RX>& a, float* out, GroupPart part = {}) {
#if defined(__AVX512VNNI__) && defined(__AVX512BW__)
  k6_group_vnni<RX>(L, g, a, out, part);
#elif defined(__AVX2__) && defined(__FMA__) && defined(__F16C__)
  in_pairs_of_rows<RX>(a, out, [&](const Q4Acts<2>& two, float* o) { k6_group_avx2<2>(L, g, two, o, part); },
                       [&](const Q4Acts<1>& one, float* o) { k6_group_avx2<1>(L, g, one, o, part); });
#else
  for (int m = 0; m < RX; ++m)
    for (size_t i = 0; i < kQ4GroupRows; ++i)
      out[16 * m + i] = k6_row_dot_portable(L, g * kQ4GroupRows + i, a.xq[m], a.xd[m], a.sumh[m], part.first, part.last,
                                            part.carry ? out[16 * m + i] : 0.f);
#endif
}

}  // namespace detail
}  // namespace fathom::kernels
