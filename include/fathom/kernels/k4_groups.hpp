#pragma once
// GGUF's Q4_K -- super-blocks of 256 weights in 8 sub-blocks of 32, each with a six-bit scale and
// minimum under the super-block's f16 d and dmin -- kept in memory as groups of 16 rows, as
// q4_groups.hpp holds Q4_0 .. Q5_1, and its products with 8-bit activations (quant4.hpp dispatches).
//
// Layout (MatrixView::data): ceil(rows / 16) groups of 16 rows, the last padded with zero rows,
// each group a run of nsb = cols / 256 tiles; tile s holds super-block s of the group's 16 rows
// (row i = r % 16), the file's bytes and nothing else:
//   uint16 d[16]            f16 super-block scales                                          32 B
//   uint16 dmin[16]         f16 super-block minimums                                        32 B
//   uint8  sc[3][16][4]     word k, row i: the 12 packed scale bytes' 4k .. 4k + 3          192 B
//   uint8  qs[4][8][16][4]  run c, chunk j, row i: nibble bytes 32c + 4j .. 32c + 4j + 3:  2048 B
//                           their low nibbles are elements 4j .. of sub-block 2c, their high
//                           nibbles elements 4j .. of sub-block 2c + 1
// = 16 x the file's 144 bytes. Rows longer than kK4SliceSb super-blocks (2048 columns) are held
// in column slices of at most that many (k4_slice_width): slice k holds super-blocks [k ws,
// (k + 1) ws) of every group, group after group, and the products go slice by slice (each
// group's sums carried from one slice to the next: the same operations in the same order), so
// that one slice's activations serve every group while its tiles stream by (quant4.hpp). A row
// of at most 2048 columns is one slice: the layout above.
//
// Element l of sub-block j = (d sc_j) q - (dmin mn_j), q in 0..15, sc_j and mn_j the six-bit
// integers of GGUF's get_scale_min_k4 (k4_scale_min); d sc_j and dmin mn_j are exact in f32 (an
// f16 times a six-bit integer).
//
// Products, with activation blocks x = dx * qx (Q8Acts; sx = dx sum qx), for each row, sub-block
// after sub-block b = 8 s + j:
//   acc = fma(float(q_b . qx_b), (d sc_j) dx_b, acc);   acc = fma(-(dmin mn_j), sx_b, acc)
// -- the Q4_0 .. Q5_1 kernels' order (q4_groups.hpp) and the AMX tiles' (amx_gguf.hpp), so int8
// prompts give decode's bits there too. A vector lane per row: the scales of 16 rows come from
// three words per lane by shifts and masks, and one conversion and two FMAs serve 16 rows x 32
// weights (the file's layout, a row's super-blocks in a run, ran at 35 GB/s from L3 on a Zen 5
// core, below its DRAM's read rate; docs/benchmarks.md). Every kernel below does exactly these
// operations: the same bits on every CPU, for any thread count and any number of activation rows.
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <type_traits>

#include "fathom/core/dtype.hpp"
#include "fathom/kernels/convert.hpp"
#include "fathom/kernels/matrix.hpp"
#include "fathom/kernels/prefetch.hpp"
#include "fathom/kernels/q4_groups.hpp"

namespace fathom::kernels {

constexpr size_t kSuperBlock = 256;  // Q4_K / Q6_K super-block
constexpr size_t kQ4KBytes = 144;    // the file's Q4_K super-block

namespace detail {

constexpr size_t kK4Tile = kQ4GroupRows * kQ4KBytes;  // 2304 bytes
constexpr size_t kK4Min = 32, kK4Scales = 64, kK4Qs = 256;  // offsets in a tile

// Q4_K's six-bit scale and minimum j of a super-block's 12 packed bytes s (GGUF's get_scale_min_k4).
inline void k4_scale_min(const uint8_t* s, int j, int& sc, int& mn) {
  if (j < 4) {
    sc = s[j] & 63;
    mn = s[j + 4] & 63;
  } else {
    sc = (s[j + 4] & 15) | (s[j - 4] >> 6) << 4;
    mn = (s[j + 4] >> 4) | (s[j] >> 6) << 4;
  }
}

// Most super-blocks in a column slice. From DRAM one Zen 4 thread streamed Q4_K rows of 4096 to
// 16,384 columns at 80-85 % of the read and rows of 2048 at 93-99 %, the same kernel, as fast as
// each other from L3; with the activations' int8 values confined to 2 KiB (a test, wrong sums)
// the long rows ran at 93-97 %. A group's pass over a row of 8192 columns reads its 8 KiB of
// activations once per 72 KiB of weights streaming through L1. In slices of 2048 columns: 1.06-
// 1.14x (docs/benchmarks.md, "Zen 4: long Q4_K rows in column slices").
constexpr size_t kK4SliceSb = 8;

// Super-blocks per column slice of a row of nsb: the fewest slices of at most kK4SliceSb, as even
// as whole super-blocks allow (the last may be narrower).
inline size_t k4_slice_width(size_t nsb) {
  const size_t slices = (nsb + kK4SliceSb - 1) / kK4SliceSb;
  return slices <= 1 ? nsb : (nsb + slices - 1) / slices;
}

// A matrix of super-block tiles of TileBytes each, in column slices (layout above; Q6_K's tiles in
// k6_groups.hpp are sliced alike).
template <size_t TileBytes>
struct SuperBlockTiles {
  const uint8_t* base;
  size_t nsb;     // super-blocks per row
  size_t groups;  // groups of 16 rows
  size_t ws;      // super-blocks per column slice (k4_slice_width)
  // Tile of group g's super-block s, counted from base: its slice's start (every earlier slice is
  // ws wide), then g's part of the slice.
  size_t tile_index(size_t g, size_t s) const {
    const size_t first = s / ws * ws;
    return groups * first + g * std::min(ws, nsb - first) + (s - first);
  }
  const uint8_t* tile_at(size_t r, size_t s) const { return base + tile_index(r / kQ4GroupRows, s) * TileBytes; }
  // First super-block past s's slice.
  size_t slice_end(size_t s) const { return std::min(nsb, (s / ws + 1) * ws); }
  bool sliced() const { return ws < nsb; }
  // f(s, tile) for group g's super-blocks s in [part.first, part.last), slice by slice (each
  // slice's tiles one run in memory).
  template <class F>
  void for_tiles(size_t g, GroupPart part, F&& f) const {
    const size_t last = std::min(part.last, nsb);
    for (size_t s = part.first; s < last;) {
      const size_t end = std::min(last, slice_end(s));
      const uint8_t* t = base + tile_index(g, s) * TileBytes;
      for (; s < end; ++s, t += TileBytes) f(s, t);
    }
  }
};
template <size_t TileBytes>
inline SuperBlockTiles<TileBytes> super_block_tiles(const void* data, size_t rows, size_t cols) {
  const size_t nsb = cols / kSuperBlock;
  return {static_cast<const uint8_t*>(data), nsb, q4_groups(rows), k4_slice_width(nsb)};
}

using K4Layout = SuperBlockTiles<kK4Tile>;
inline K4Layout k4_layout(const void* data, size_t rows, size_t cols) { return super_block_tiles<kK4Tile>(data, rows, cols); }
inline K4Layout k4_layout(const MatrixView& W) { return k4_layout(W.data, W.rows, W.cols); }

// Bytes of a rows x cols matrix (cols a multiple of 256), the padding rows included.
inline size_t k4_matrix_bytes(size_t rows, size_t cols) { return q4_groups(rows) * (cols / kSuperBlock) * kK4Tile; }

// The file's super-block `blk` (d, dmin, 12 scale bytes, 128 nibble bytes) -> super-block s of row r
// of the matrix at L.base.
inline void k4_put_superblock(const K4Layout& L, size_t r, size_t s, const uint8_t* blk) {
  uint8_t* t = const_cast<uint8_t*>(L.tile_at(r, s));
  const size_t i = r % kQ4GroupRows;
  std::memcpy(t + 2 * i, blk, 2);
  std::memcpy(t + kK4Min + 2 * i, blk + 2, 2);
  for (size_t k = 0; k < 3; ++k) std::memcpy(t + kK4Scales + 64 * k + 4 * i, blk + 4 + 4 * k, 4);
  for (size_t c = 0; c < 4; ++c)
    for (size_t j = 0; j < 8; ++j) std::memcpy(t + kK4Qs + 512 * c + 64 * j + 4 * i, blk + 16 + 32 * c + 4 * j, 4);
}

// Sub-block j of super-block s of row r: its 32 values (0..15) in element order, its scale
// d sc_j and minimum dmin mn_j (both exact).
inline void k4_subblock(const K4Layout& L, size_t r, size_t s, int j, uint8_t* q, float& scale, float& min) {
  const uint8_t* t = L.tile_at(r, s);
  const size_t i = r % kQ4GroupRows;
  uint16_t d, dmin;
  std::memcpy(&d, t + 2 * i, 2);
  std::memcpy(&dmin, t + kK4Min + 2 * i, 2);
  uint8_t packed[12];
  for (size_t k = 0; k < 3; ++k) std::memcpy(packed + 4 * k, t + kK4Scales + 64 * k + 4 * i, 4);
  int sc, mn;
  k4_scale_min(packed, j, sc, mn);
  scale = f16_to_f32(d) * float(sc);
  min = f16_to_f32(dmin) * float(mn);
  const uint8_t* run = t + kK4Qs + 512 * size_t(j / 2) + 4 * i;
  const int shift = 4 * (j % 2);
  for (size_t c = 0; c < 8; ++c)
    for (size_t e = 0; e < 4; ++e) q[4 * c + e] = (run[64 * c + e] >> shift) & 15;
}

// One weight row . one activation row (xq: [nsb * 256], xd, sx: [nsb * 8]): the header's
// arithmetic, operation for operation (the reference the vector kernels equal bit for bit).
// Super-blocks [first, last) only, continuing from acc: a GroupPart (q4_groups.hpp).
inline float k4_row_dot_portable(const K4Layout& L, size_t r, const int8_t* xq, const float* xd, const float* sx,
                                 size_t first = 0, size_t last = SIZE_MAX, float acc = 0.f) {
  uint8_t q[32];
  for (size_t s = first; s < std::min(last, L.nsb); ++s)
    for (int j = 0; j < 8; ++j) {
      float scale, min;
      k4_subblock(L, r, s, j, q, scale, min);
      const size_t b = 8 * s + size_t(j);
      int32_t dot = 0;
      for (size_t e = 0; e < 32; ++e) dot += int32_t(q[e]) * int32_t(xq[32 * b + e]);
      acc = std::fma(float(dot), scale * xd[b], acc);
      acc = std::fma(-min, sx[b], acc);
    }
  return acc;
}

#if defined(__AVX512F__)
// The six-bit scales (or, with `min`, minimums) of sub-block j for the lanes' rows, from the
// packed words w0, w1, w2 (word k: bytes 4k .. 4k + 3): k4_scale_min on every lane. (j is a
// constant in the group kernels once inlined: immediate shifts.)
inline __m512i k4_six_bits(int j, bool min, __m512i w0, __m512i w1, __m512i w2) {
  const __m512i w = min ? w1 : w0;
  if (j < 4) return _mm512_and_si512(_mm512_srli_epi32(w, unsigned(8 * j)), _mm512_set1_epi32(63));
  const int k = j - 4;
  return _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi32(w2, unsigned(8 * k + (min ? 4 : 0))), _mm512_set1_epi32(15)),
                         _mm512_and_si512(_mm512_srli_epi32(w, unsigned(8 * k + 2)), _mm512_set1_epi32(0x30)));
}

#endif

#if defined(__AVX512VNNI__) && defined(__AVX512BW__)
// out[16 m + i] = row 16 g + i . activation row m. Per pair of sub-blocks (32 nibble bytes of each
// of 16 rows: eight vectors) and activation row: sixteen vpdpbusd against broadcast activation
// words (the high nibbles in place, 16 q: the int32 sum shifted back by 4, exactly), two
// conversions, four FMAs. Each pair asks for its quarter of the tile kGgufPrefetchAhead on (9
// lines), as k6_group_vnni does: from DRAM on a Zen 4 1.07-1.18x (one thread) and 1.07-1.23x (two)
// as fast as the whole tile's 36 lines at once before the first pair (docs/benchmarks.md, "Zen 4:
// GGUF prefetches into L1 again").
template <int RX>
inline void k4_group_vnni(const K4Layout& L, size_t g, const Q4Acts<RX>& a, float* out, GroupPart part = {}) {
  const __m512i lo4 = _mm512_set1_epi8(15), hi4 = _mm512_set1_epi8(char(0xf0));
  __m512 acc[RX];
  for (int m = 0; m < RX; ++m) acc[m] = part.carry ? _mm512_loadu_ps(out + 16 * m) : _mm512_setzero_ps();
  L.for_tiles(g, part, [&](size_t s, const uint8_t* t) {  // slice by slice: each a run of tiles
    const __m512 d = _mm512_cvtph_ps(_mm256_load_si256(reinterpret_cast<const __m256i*>(t)));
    const __m512 dmin = _mm512_cvtph_ps(_mm256_load_si256(reinterpret_cast<const __m256i*>(t + kK4Min)));
    const __m512i w0 = _mm512_load_si512(t + kK4Scales), w1 = _mm512_load_si512(t + kK4Scales + 64),
                  w2 = _mm512_load_si512(t + kK4Scales + 128);
    auto pair = [&](auto C) {  // sub-blocks 2c (low nibbles) and 2c + 1 (high nibbles)
      constexpr int c = decltype(C)::value;
      for (size_t at = c * (kK4Tile / 4); at < (c + 1) * (kK4Tile / 4); at += 64)
        prefetch_line(uintptr_t(t + kGgufPrefetchAhead + at));
      const uint8_t* run = t + kK4Qs + 512 * c;
      __m512i lo[8], hi[8];
      for (int j = 0; j < 8; ++j) {
        const __m512i raw = _mm512_load_si512(run + 64 * j);
        lo[j] = _mm512_and_si512(raw, lo4);
        hi[j] = _mm512_and_si512(raw, hi4);
      }
      const __m512 sc0 = _mm512_mul_ps(d, _mm512_cvtepi32_ps(k4_six_bits(2 * c, false, w0, w1, w2)));
      const __m512 mn0 = _mm512_mul_ps(dmin, _mm512_cvtepi32_ps(k4_six_bits(2 * c, true, w0, w1, w2)));
      const __m512 sc1 = _mm512_mul_ps(d, _mm512_cvtepi32_ps(k4_six_bits(2 * c + 1, false, w0, w1, w2)));
      const __m512 mn1 = _mm512_mul_ps(dmin, _mm512_cvtepi32_ps(k4_six_bits(2 * c + 1, true, w0, w1, w2)));
      const size_t b = 8 * s + 2 * c;
      if constexpr (RX == 1) {  // decode: the next super-block's activations (past the row's end: harmless)
        prefetch_line(uintptr_t(a.xq[0] + 32 * (b + 8)));
        if (c == 0) prefetch_line(uintptr_t(a.xd[0] + b + 8)), prefetch_line(uintptr_t(a.sx[0] + b + 8));
      }
      for (int m = 0; m < RX; ++m) {
        const int8_t* x = a.xq[m] + 32 * b;
        __m512i s0 = _mm512_setzero_si512(), s1 = _mm512_setzero_si512();
        for (int j = 0; j < 8; ++j) {
          int32_t xl, xh;
          std::memcpy(&xl, x + 4 * j, 4);
          std::memcpy(&xh, x + 32 + 4 * j, 4);
          s0 = _mm512_dpbusd_epi32(s0, lo[j], _mm512_set1_epi32(xl));
          s1 = _mm512_dpbusd_epi32(s1, hi[j], _mm512_set1_epi32(xh));
        }
        acc[m] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(s0), _mm512_mul_ps(sc0, _mm512_set1_ps(a.xd[m][b])), acc[m]);
        acc[m] = _mm512_fnmadd_ps(mn0, _mm512_set1_ps(a.sx[m][b]), acc[m]);
        acc[m] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(_mm512_srai_epi32(s1, 4)),
                                 _mm512_mul_ps(sc1, _mm512_set1_ps(a.xd[m][b + 1])), acc[m]);
        acc[m] = _mm512_fnmadd_ps(mn1, _mm512_set1_ps(a.sx[m][b + 1]), acc[m]);
      }
    };
    pair(std::integral_constant<int, 0>{});
    pair(std::integral_constant<int, 1>{});
    pair(std::integral_constant<int, 2>{});
    pair(std::integral_constant<int, 3>{});
  });
  for (int m = 0; m < RX; ++m) _mm512_storeu_ps(out + 16 * m, acc[m]);
}
#endif

#if !(defined(__AVX512VNNI__) && defined(__AVX512BW__)) && defined(__AVX2__) && defined(__FMA__) && defined(__F16C__)
inline __m256i k4_six_bits(int j, bool min, __m256i w0, __m256i w1, __m256i w2) {  // as above, 8 lanes
  const __m256i w = min ? w1 : w0;
  if (j < 4) return _mm256_and_si256(_mm256_srli_epi32(w, 8 * j), _mm256_set1_epi32(63));
  const int k = j - 4;
  return _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi32(w2, 8 * k + (min ? 4 : 0)), _mm256_set1_epi32(15)),
                         _mm256_and_si256(_mm256_srli_epi32(w, 8 * k + 2), _mm256_set1_epi32(0x30)));
}

// AVX2 without AVX512-VNNI: the 16 rows as two halves of 8 lanes, each 4-byte dot by vpmaddubsw +
// vpmaddwd (values 0..15 the unsigned operand: no saturation), the same integers and float
// operations as the header. At most 2 activation rows per call (16 registers).
template <int RX>
inline void k4_group_avx2(const K4Layout& L, size_t g, const Q4Acts<RX>& a, float* out, GroupPart part = {}) {
  static_assert(RX <= 2);
  const __m256i lo4 = _mm256_set1_epi8(15), ones = _mm256_set1_epi16(1);
  __m256 acc[RX][2];
  for (int m = 0; m < RX; ++m)
    for (int h = 0; h < 2; ++h) acc[m][h] = part.carry ? _mm256_loadu_ps(out + 16 * m + 8 * h) : _mm256_setzero_ps();
  L.for_tiles(g, part, [&](size_t s, const uint8_t* t) {  // slice by slice: each a run of tiles
    for (size_t at = 0; at < kK4Tile; at += 64) prefetch_line(uintptr_t(t + kGgufPrefetchAhead + at));
    for (int h = 0; h < 2; ++h) {
      const __m256 d = _mm256_cvtph_ps(_mm_load_si128(reinterpret_cast<const __m128i*>(t + 16 * h)));
      const __m256 dmin = _mm256_cvtph_ps(_mm_load_si128(reinterpret_cast<const __m128i*>(t + kK4Min + 16 * h)));
      const auto word = [&](int k) {
        return _mm256_load_si256(reinterpret_cast<const __m256i*>(t + kK4Scales + 64 * k + 32 * h));
      };
      const __m256i w0 = word(0), w1 = word(1), w2 = word(2);
      auto pair = [&](auto C) {
        constexpr int c = decltype(C)::value;
        const size_t b = 8 * s + 2 * c;
        // int16 pair sums of the 8 chunks: each at most 2 x 15 x 127, all 8 at most 30480 (no
        // overflow), widened to int32 once
        __m256i s0[RX], s1[RX];
        for (int m = 0; m < RX; ++m) s0[m] = s1[m] = _mm256_setzero_si256();
        for (int j = 0; j < 8; ++j) {
          const __m256i raw =
              _mm256_load_si256(reinterpret_cast<const __m256i*>(t + kK4Qs + 512 * c + 64 * j + 32 * h));
          const __m256i lo = _mm256_and_si256(raw, lo4), hi = _mm256_and_si256(_mm256_srli_epi16(raw, 4), lo4);
          for (int m = 0; m < RX; ++m) {
            int32_t xl, xh;
            std::memcpy(&xl, a.xq[m] + 32 * b + 4 * j, 4);
            std::memcpy(&xh, a.xq[m] + 32 * b + 32 + 4 * j, 4);
            s0[m] = _mm256_add_epi16(s0[m], _mm256_maddubs_epi16(lo, _mm256_set1_epi32(xl)));
            s1[m] = _mm256_add_epi16(s1[m], _mm256_maddubs_epi16(hi, _mm256_set1_epi32(xh)));
          }
        }
        for (int m = 0; m < RX; ++m) {
          s0[m] = _mm256_madd_epi16(s0[m], ones);
          s1[m] = _mm256_madd_epi16(s1[m], ones);
        }
        const __m256 sc0 = _mm256_mul_ps(d, _mm256_cvtepi32_ps(k4_six_bits(2 * c, false, w0, w1, w2)));
        const __m256 mn0 = _mm256_mul_ps(dmin, _mm256_cvtepi32_ps(k4_six_bits(2 * c, true, w0, w1, w2)));
        const __m256 sc1 = _mm256_mul_ps(d, _mm256_cvtepi32_ps(k4_six_bits(2 * c + 1, false, w0, w1, w2)));
        const __m256 mn1 = _mm256_mul_ps(dmin, _mm256_cvtepi32_ps(k4_six_bits(2 * c + 1, true, w0, w1, w2)));
        for (int m = 0; m < RX; ++m) {
          __m256& y = acc[m][h];
          y = _mm256_fmadd_ps(_mm256_cvtepi32_ps(s0[m]), _mm256_mul_ps(sc0, _mm256_set1_ps(a.xd[m][b])), y);
          y = _mm256_fnmadd_ps(mn0, _mm256_set1_ps(a.sx[m][b]), y);
          y = _mm256_fmadd_ps(_mm256_cvtepi32_ps(s1[m]), _mm256_mul_ps(sc1, _mm256_set1_ps(a.xd[m][b + 1])), y);
          y = _mm256_fnmadd_ps(mn1, _mm256_set1_ps(a.sx[m][b + 1]), y);
        }
      };
      pair(std::integral_constant<int, 0>{});
      pair(std::integral_constant<int, 1>{});
      pair(std::integral_constant<int, 2>{});
      pair(std::integral_constant<int, 3>{});
    }
  });
  for (int m = 0; m < RX; ++m) {
    _mm256_storeu_ps(out + 16 * m, acc[m][0]);
    _mm256_storeu_ps(out + 16 * m + 8, acc[m][1]);
  }
}
#endif

// out[16 m + i] = row 16 g + i . activation row m (m < RX), the padding rows included: the vector
// kernel compiled in, else the portable one.
template <int RX>
inline void k4_group(const K4Layout& L, size_t g, const Q4Acts<RX>& a, float* out, GroupPart part = {}) {
#if defined(__AVX512VNNI__) && defined(__AVX512BW__)
  k4_group_vnni<RX>(L, g, a, out, part);
#elif defined(__AVX2__) && defined(__FMA__) && defined(__F16C__)
  in_pairs_of_rows<RX>(a, out, [&](const Q4Acts<2>& two, float* o) { k4_group_avx2<2>(L, g, two, o, part); },
                       [&](const Q4Acts<1>& one, float* o) { k4_group_avx2<1>(L, g, one, o, part); });
#else
  for (int m = 0; m < RX; ++m)
    for (size_t i = 0; i < kQ4GroupRows; ++i)
      out[16 * m + i] = k4_row_dot_portable(L, g * kQ4GroupRows + i, a.xq[m], a.xd[m], a.sx[m], part.first, part.last,
                                            part.carry ? out[16 * m + i] : 0.f);
#endif
}

// Calls f(first, last) for the column slices of L in order.
template <size_t TileBytes, class F>
inline void for_column_slices(const SuperBlockTiles<TileBytes>& L, F&& f) {
  for (size_t first = 0; first < L.nsb; first = L.slice_end(first)) f(first, L.slice_end(first));
}

}  // namespace detail
}  // namespace fathom::kernels
