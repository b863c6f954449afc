#pragma once
// GGUF's formats of 32-weight blocks with one scale each -- Q4_0, Q4_1, Q5_0, Q5_1 -- kept in
// memory as groups of 16 rows, and their products with 8-bit activations (quant4.hpp dispatches).
//
// Layout (MatrixView::data): ceil(rows / 16) groups of 16 rows, the last padded with zero rows,
// each group a run of nb = cols / 32 tiles; tile b holds block b of the group's 16 rows (row
// i = r % 16 of the group), the file's bytes and nothing else:
//   uint8  qs[4][16][4]  chunk j, row i: the block's GGUF bytes 4j .. 4j + 3 (their low nibbles are
//                        elements 4j .. 4j + 3, their high nibbles elements 16 + 4j ..)     256 B
//   uint64 qh[8]         Q5_0 / Q5_1: mask 2j + h, bit 4i + c = the fifth bit of row i's element
//                        16h + 4j + c (GGUF's qh word, bit 16h + 4j + c)                      64 B
//   uint16 d[16]         f16 scales                                                           32 B
//   uint16 m[16]         f16 minimums (Q4_1, Q5_1)                                            32 B
// = 16 x the file's block (18 / 20 / 22 / 24 bytes). Element = d (q - 8) (Q4_0), d (q - 16)
// (Q5_0), d q + m (Q4_1, Q5_1), q the stored unsigned value (Q5: plus 16 x its fifth bit).
//
// Products, with activation blocks x = dx * qx (Q8Acts: qx int8, dx f32, sumq = sum qx, sx = dx
// sumq), for each row, block after block b = 0, 1, ...:
//   s_b = q_b . qx_b - bias sumq_b              (exact int32; bias 8 for Q4_0, 16 for Q5_0, else 0)
//   acc = fma(float(s_b), d_b * dx_b, acc);  then, with a minimum, acc = fma(m_b, sx_b, acc)
// -- llama.cpp's definition of the dot product, block by block, and the AMX tiles' order
// (amx_q8.hpp). The vector kernels give a vector lane to each of a group's 16 rows, so one
// conversion and one FMA serve 16 rows x 32 weights (the former layout, a row's blocks in a run,
// spent a conversion and an FMA per 64 weights and its scales came as two more streams), and each
// group is one stream of memory. Every kernel below does exactly these operations: the same bits
// on every CPU, for any thread count (a row is summed by one thread) and any number of activation
// rows at once (decode and prompts).
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

#if defined(__SSE2__)
#include <immintrin.h>
#endif

namespace fathom::kernels {

constexpr size_t kQ4Block = 32;      // weights per block
constexpr size_t kQ4GroupRows = 16;  // rows per group (one vector lane each with AVX-512)

inline bool is_q4_family(DType t) {
  return t == DType::Q4_0 || t == DType::Q4_1 || t == DType::Q5_0 || t == DType::Q5_1;
}

namespace detail {

// The format, also as a template argument: the vector kernels are instantiated per format
// (with_q4_fmt), so that its minimums, fifth bits and offset cost no branch per tile.
enum class Q4Fmt { q4_0, q4_1, q5_0, q5_1 };
constexpr Q4Fmt q4_fmt(DType t) {
  return t == DType::Q4_0 ? Q4Fmt::q4_0 : t == DType::Q4_1 ? Q4Fmt::q4_1 : t == DType::Q5_0 ? Q4Fmt::q5_0 : Q4Fmt::q5_1;
}
constexpr bool q4_has_min(Q4Fmt f) { return f == Q4Fmt::q4_1 || f == Q4Fmt::q5_1; }
constexpr bool q4_has_fifth_bit(Q4Fmt f) { return f == Q4Fmt::q5_0 || f == Q4Fmt::q5_1; }
// The offset a signed format's values are stored with (Q4_0 8, Q5_0 16; 0 for those with a minimum).
constexpr int q4_bias(Q4Fmt f) { return f == Q4Fmt::q4_0 ? 8 : f == Q4Fmt::q5_0 ? 16 : 0; }
constexpr size_t q4_scales_at(Q4Fmt f) { return 256 + (q4_has_fifth_bit(f) ? 64 : 0); }  // in a tile
constexpr size_t q4_tile_bytes(Q4Fmt f) { return q4_scales_at(f) + 32 + (q4_has_min(f) ? 32 : 0); }
inline bool q4_has_min(DType t) { return q4_has_min(q4_fmt(t)); }
inline bool q4_has_fifth_bit(DType t) { return q4_has_fifth_bit(q4_fmt(t)); }
inline int q4_bias(DType t) { return q4_bias(q4_fmt(t)); }
// Calls f(std::integral_constant<Q4Fmt, f>).
template <class F>
inline void with_q4_fmt(Q4Fmt fmt, F&& f) {
  switch (fmt) {
    case Q4Fmt::q4_0: return f(std::integral_constant<Q4Fmt, Q4Fmt::q4_0>{});
    case Q4Fmt::q4_1: return f(std::integral_constant<Q4Fmt, Q4Fmt::q4_1>{});
    case Q4Fmt::q5_0: return f(std::integral_constant<Q4Fmt, Q4Fmt::q5_0>{});
    default: return f(std::integral_constant<Q4Fmt, Q4Fmt::q5_1>{});
  }
}

inline size_t q4_groups(size_t rows) { return (rows + kQ4GroupRows - 1) / kQ4GroupRows; }

// A matrix's tiles (layout above).
struct Q4Layout {
  const uint8_t* base;
  size_t nb;    // blocks per row
  Q4Fmt fmt;
  size_t tile;  // bytes per tile
  size_t d_at;  // offset of the scales in a tile (the minimums follow them)
  const uint8_t* tile_at(size_t r, size_t b) const { return base + ((r / kQ4GroupRows) * nb + b) * tile; }
};
inline Q4Layout q4_layout(DType t, const void* data, size_t cols) {
  const Q4Fmt f = q4_fmt(t);
  return {static_cast<const uint8_t*>(data), cols / kQ4Block, f, q4_tile_bytes(f), q4_scales_at(f)};
}
inline Q4Layout q4_layout(const MatrixView& W) { return q4_layout(W.dtype, W.data, W.cols); }

// Bytes of a rows x cols matrix (cols a multiple of 32), the padding rows included.
inline size_t q4_matrix_bytes(DType t, size_t rows, size_t cols) {
  return q4_groups(rows) * (cols / kQ4Block) * q4_tile_bytes(q4_fmt(t));
}

// f16 scale and minimum bits of block b of row r.
inline uint16_t q4_scale_bits(const Q4Layout& L, size_t r, size_t b) {
  uint16_t h;
  std::memcpy(&h, L.tile_at(r, b) + L.d_at + 2 * (r % kQ4GroupRows), 2);
  return h;
}
inline uint16_t q4_min_bits(const Q4Layout& L, size_t r, size_t b) {
  uint16_t h;
  std::memcpy(&h, L.tile_at(r, b) + L.d_at + 32 + 2 * (r % kQ4GroupRows), 2);
  return h;
}

// Block b of row r's qh word as the file has it (Q5; 0 for Q4_0 / Q4_1).
inline uint32_t q4_block_qh(const Q4Layout& L, size_t r, size_t b) {
  const uint8_t* t = L.tile_at(r, b);
  const size_t i = r % kQ4GroupRows;
  uint32_t qh = 0;
  for (size_t k = 0; q4_has_fifth_bit(L.fmt) && k < 8; ++k) {  // mask k = 2j + h
    uint64_t mask;
    std::memcpy(&mask, t + 256 + 8 * k, 8);
    qh |= uint32_t((mask >> (4 * i)) & 15u) << (16 * (k % 2) + 4 * (k / 2));
  }
  return qh;
}

// Block b of row r as the file has it: its 16 bytes of nibbles and (Q5) its qh word.
inline uint32_t q4_block_bytes(const Q4Layout& L, size_t r, size_t b, uint8_t* bytes) {
  const uint8_t* t = L.tile_at(r, b) + 4 * (r % kQ4GroupRows);
  for (size_t j = 0; j < 4; ++j) std::memcpy(bytes + 4 * j, t + 64 * j, 4);
  return q4_block_qh(L, r, b);
}

// The 32 unsigned values (0..15, Q5 0..31) of block b of row r, in element order (widen_segment:
// MatrixView::at, the exact prefill where q4_widen_panel is not compiled in; the AMX packer).
inline void q4_block_elements(const Q4Layout& L, size_t r, size_t b, uint8_t* w) {
#if defined(__SSE2__)
  // the four chunks' words straight into one register (four 4-byte stores read back as one 16-byte
  // load would not be forwarded: a stall per block)
  const uint8_t* t = L.tile_at(r, b) + 4 * (r % kQ4GroupRows);
  int32_t c[4];
  for (int j = 0; j < 4; ++j) std::memcpy(&c[j], t + 64 * j, 4);
  const __m128i v = _mm_setr_epi32(c[0], c[1], c[2], c[3]), lo4 = _mm_set1_epi8(15);
  __m128i lo = _mm_and_si128(v, lo4), hi = _mm_and_si128(_mm_srli_epi16(v, 4), lo4);
  if (q4_has_fifth_bit(L.fmt)) {
    const uint32_t qh = q4_block_qh(L, r, b);
    auto sixteens = [](uint32_t bits) {  // 16 bits -> 16 bytes: 16 where bit e is set, else 0
      const uint64_t spread = 0x0101010101010101ull;
      const __m128i x = _mm_set_epi64x(int64_t(((bits >> 8) & 0xff) * spread), int64_t((bits & 0xff) * spread));
      const __m128i bit = _mm_set1_epi64x(int64_t(0x8040201008040201ull));
      return _mm_and_si128(_mm_cmpeq_epi8(_mm_and_si128(x, bit), bit), _mm_set1_epi8(16));
    };
    lo = _mm_add_epi8(lo, sixteens(qh & 0xffff));
    hi = _mm_add_epi8(hi, sixteens(qh >> 16));
  }
  _mm_storeu_si128(reinterpret_cast<__m128i*>(w), lo);
  _mm_storeu_si128(reinterpret_cast<__m128i*>(w + 16), hi);
#else
  uint8_t bytes[16];
  const uint32_t qh = q4_block_bytes(L, r, b, bytes);
  for (size_t e = 0; e < 16; ++e) {
    w[e] = bytes[e] & 15;
    w[e + 16] = bytes[e] >> 4;
  }
  for (size_t e = 0; e < kQ4Block; ++e) w[e] |= uint8_t(((qh >> e) & 1) << 4);
#endif
}

// GGUF block `blk` (d, [m], [qh], 16 bytes of nibbles) -> block b of row r. The group's tiles must
// be zero before its first row is written (the fifth bits are or-ed in).
inline void q4_put_block(uint8_t* base, Q4Fmt f, size_t nb, size_t r, size_t b, const uint8_t* blk) {
  const size_t tile = q4_tile_bytes(f), i = r % kQ4GroupRows, d_at = q4_scales_at(f);
  uint8_t* t = base + ((r / kQ4GroupRows) * nb + b) * tile;
  const size_t qh_at = q4_has_min(f) ? 4 : 2, qs_at = qh_at + (q4_has_fifth_bit(f) ? 4 : 0);
  for (size_t j = 0; j < 4; ++j) std::memcpy(t + 64 * j + 4 * i, blk + qs_at + 4 * j, 4);
  std::memcpy(t + d_at + 2 * i, blk, 2);
  if (q4_has_min(f)) std::memcpy(t + d_at + 32 + 2 * i, blk + 2, 2);
  if (!q4_has_fifth_bit(f)) return;
  uint32_t qh;
  std::memcpy(&qh, blk + qh_at, 4);
  for (size_t k = 0; k < 8; ++k) {
    uint64_t mask;
    std::memcpy(&mask, t + 256 + 8 * k, 8);
    mask |= uint64_t((qh >> (16 * (k % 2) + 4 * (k / 2))) & 15u) << (4 * i);
    std::memcpy(t + 256 + 8 * k, &mask, 8);
  }
}

// One weight row . one activation row (xq: [nb * 32], xd, sx: [nb]): the header's arithmetic,
// operation for operation (the reference the vector kernels equal bit for bit).
inline float q4_row_dot_portable(const Q4Layout& L, size_t r, const int8_t* xq, const float* xd, const float* sx) {
  const int bias = q4_bias(L.fmt);
  float acc = 0.f;
  uint8_t w[kQ4Block];
  for (size_t b = 0; b < L.nb; ++b) {
    q4_block_elements(L, r, b, w);
    const int8_t* x = xq + b * kQ4Block;
    int32_t s = 0, sumq = 0;
    for (size_t e = 0; e < kQ4Block; ++e) {
      s += int32_t(w[e]) * int32_t(x[e]);
      sumq += x[e];
    }
    acc = std::fma(float(s - bias * sumq), f16_to_f32(q4_scale_bits(L, r, b)) * xd[b], acc);
    if (q4_has_min(L.fmt)) acc = std::fma(f16_to_f32(q4_min_bits(L, r, b)), sx[b], acc);
  }
  return acc;
}

// How far ahead the GGUF block kernels prefetch their rows (bytes). The AVX512-VNNI kernels take
// fewer instructions per byte than the dense and AVX2 ones, and 2 KiB (kPrefetchAhead) did not
// cover the DRAM latency at their rate: 8 KiB against 2 KiB at one Zen 5 thread, in one program,
// from DRAM: Q4_1 / Q4_0 1.0-1.9x, Q4_K 1.03-1.26x, Q6_K 1.09-1.25x (docs/benchmarks.md, "GGUF
// prefetch distance"); the dense rows there were 0.87-0.97x at 8 KiB, so they keep theirs.
#if defined(__AVX512VNNI__) && defined(__AVX512BW__)
constexpr size_t kGgufPrefetchAhead = 8192;
#else
constexpr size_t kGgufPrefetchAhead = kPrefetchAhead;
#endif
// Where the AVX512-VNNI kernels' prefetches put those lines: into L1 (prefetcht0), on the Zen 5 and
// on a Zen 4 alike for these 16-row groups (a Zen 4 took L2 for the earlier row-by-row layout; with
// the groups, one thread streamed Q4_0 / Q4_1 / Q5_0 / Q5_1 / Q4_K 1.10-1.26x as fast into L1,
// two 1.03-1.18x: docs/benchmarks.md, "Zen 4: GGUF prefetches into L1 again"), except Q6_K's
// (k6_groups.hpp).

// The part of a 16-row group's row that a group kernel computes: its tiles [first, last) (last
// clamped to the row's end), continuing the sums already in `out` when `carry` (sums carried
// through memory are exact: the same bits as one pass). Q4_K's long rows are held and multiplied in
// column slices (k4_groups.hpp, quant4.hpp).
struct GroupPart {
  size_t first = 0, last = SIZE_MAX;
  bool carry = false;
};

// The activation rows a group kernel takes: RX rows of Q8Acts (pointers to row m's blocks).
template <int RX>
struct Q4Acts {
  const int8_t* xq[RX];    // [nb * 32] int8 values
  const float* xd[RX];     // [nb] block scales
  const float* sx[RX];     // [nb] dx * sum qx
  const int32_t* sumq[RX]; // [nb] sum qx
  const int32_t* sumh[RX]; // [2 nb] sum qx of each half block (Q6_K)
};

#if defined(__AVX512VNNI__) && defined(__AVX512BW__)
constexpr bool kQ4Vnni = true;
// out[16 m + i] = row 16 g + i . activation row m. Per tile and activation row: eight vpdpbusd
// (the low nibbles of chunk j against the activations' 4 bytes 4j.., the high ones against 16 +
// 4j.., each broadcast to the 16 rows), one conversion, one FMA (and one for the minimum). Q4:
// the high nibbles are multiplied in place (16 q; the int32 sum shifted back by 4, exactly), Q5:
// shifted down so that the fifth bits (a byte mask each) can add their 16.
template <int RX, Q4Fmt F>
inline void q4_group_vnni(const Q4Layout& L, size_t g, const Q4Acts<RX>& a, float* out) {
  constexpr bool kFive = q4_has_fifth_bit(F), kMin = q4_has_min(F);
  constexpr int kBias = q4_bias(F);
  constexpr size_t kTile = q4_tile_bytes(F), kD = q4_scales_at(F);
  const size_t nb = L.nb;
  const uint8_t* t = L.base + g * nb * kTile;
  const __m512i lo4 = _mm512_set1_epi8(15), hi4 = _mm512_set1_epi8(char(0xf0)), sixteen = _mm512_set1_epi8(16);
  __m512 acc[RX];
  for (int m = 0; m < RX; ++m) acc[m] = _mm512_setzero_ps();
  for (size_t b = 0; b < nb; ++b, t += kTile) {
    for (size_t at = 0; at < kTile; at += 64) prefetch_line(uintptr_t(t + kGgufPrefetchAhead + at));
    __m512i lo[4], hi[4];
    for (int j = 0; j < 4; ++j) {
      const __m512i raw = _mm512_loadu_si512(t + 64 * j);
      lo[j] = _mm512_and_si512(raw, lo4);
      if constexpr (kFive) {
        uint64_t ml, mh;
        std::memcpy(&ml, t + 256 + 16 * j, 8);
        std::memcpy(&mh, t + 264 + 16 * j, 8);
        lo[j] = _mm512_mask_add_epi8(lo[j], _cvtu64_mask64(ml), lo[j], sixteen);
        hi[j] = _mm512_and_si512(_mm512_srli_epi16(raw, 4), lo4);
        hi[j] = _mm512_mask_add_epi8(hi[j], _cvtu64_mask64(mh), hi[j], sixteen);
      } else {
        hi[j] = _mm512_and_si512(raw, hi4);
      }
    }
    const __m512 dw = _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(t + kD)));
    [[maybe_unused]] __m512 mw;
    if constexpr (kMin) mw = _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(t + kD + 32)));
    for (int m = 0; m < RX; ++m) {
      const int8_t* x = a.xq[m] + b * kQ4Block;
      __m512i s0 = kBias ? _mm512_set1_epi32(-kBias * a.sumq[m][b]) : _mm512_setzero_si512();
      __m512i s1 = _mm512_setzero_si512();
      for (int j = 0; j < 4; ++j) {
        int32_t xl, xh;
        std::memcpy(&xl, x + 4 * j, 4);
        std::memcpy(&xh, x + 16 + 4 * j, 4);
        s0 = _mm512_dpbusd_epi32(s0, lo[j], _mm512_set1_epi32(xl));
        s1 = _mm512_dpbusd_epi32(s1, hi[j], _mm512_set1_epi32(xh));
      }
      const __m512i s = _mm512_add_epi32(s0, kFive ? s1 : _mm512_srai_epi32(s1, 4));
      acc[m] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(s), _mm512_mul_ps(dw, _mm512_set1_ps(a.xd[m][b])), acc[m]);
      if constexpr (kMin) acc[m] = _mm512_fmadd_ps(mw, _mm512_set1_ps(a.sx[m][b]), acc[m]);
    }
  }
  for (int m = 0; m < RX; ++m) _mm512_storeu_ps(out + 16 * m, acc[m]);
}
#else
constexpr bool kQ4Vnni = false;
#endif

#if !(defined(__AVX512VNNI__) && defined(__AVX512BW__)) && defined(__AVX2__) && defined(__FMA__) && defined(__F16C__)
constexpr bool kQ4Avx2 = true;
// 32 bits -> 32 bytes: byte i is 16 where bit i is set, else 0.
inline __m256i q4_sixteens(uint32_t bits) {
  const __m256i spread = _mm256_shuffle_epi8(_mm256_set1_epi32(int(bits)),
                                             _mm256_setr_epi64x(0, 0x0101010101010101ll, 0x0202020202020202ll,
                                                                0x0303030303030303ll));
  const __m256i bit = _mm256_set1_epi64x(int64_t(0x8040201008040201ull));
  return _mm256_and_si256(_mm256_cmpeq_epi8(_mm256_and_si256(spread, bit), bit), _mm256_set1_epi8(16));
}
// AVX2 without AVX512-VNNI: the 16 rows as two halves of 8 lanes (rows 8h ..), each 4-byte dot by
// vpmaddubsw + vpmaddwd (the stored values, at most 31, are the unsigned operand: no saturation),
// the same integers and float operations as the header. At most 2 activation rows per call (16
// registers).
template <int RX, Q4Fmt F>
inline void q4_group_avx2(const Q4Layout& L, size_t g, const Q4Acts<RX>& a, float* out) {
  static_assert(RX <= 2);
  constexpr bool kFive = q4_has_fifth_bit(F), kMin = q4_has_min(F);
  constexpr int kBias = q4_bias(F);
  constexpr size_t kTile = q4_tile_bytes(F), kD = q4_scales_at(F);
  const size_t nb = L.nb;
  const uint8_t* t = L.base + g * nb * kTile;
  const __m256i lo4 = _mm256_set1_epi8(15), ones = _mm256_set1_epi16(1);
  __m256 acc[RX][2];
  for (int m = 0; m < RX; ++m) acc[m][0] = acc[m][1] = _mm256_setzero_ps();
  for (size_t b = 0; b < nb; ++b, t += kTile) {
    for (size_t at = 0; at < kTile; at += 64) prefetch_line(uintptr_t(t + kGgufPrefetchAhead + at));
    for (int h = 0; h < 2; ++h) {
      __m256i lo[4], hi[4];
      for (int j = 0; j < 4; ++j) {
        const __m256i raw = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(t + 64 * j + 32 * h));
        lo[j] = _mm256_and_si256(raw, lo4);
        hi[j] = _mm256_and_si256(_mm256_srli_epi16(raw, 4), lo4);
        if constexpr (kFive) {
          uint32_t ml, mh;
          std::memcpy(&ml, t + 256 + 16 * j + 4 * h, 4);
          std::memcpy(&mh, t + 264 + 16 * j + 4 * h, 4);
          lo[j] = _mm256_add_epi8(lo[j], q4_sixteens(ml));
          hi[j] = _mm256_add_epi8(hi[j], q4_sixteens(mh));
        }
      }
      const __m256 dw = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(t + kD + 16 * h)));
      [[maybe_unused]] __m256 mw;
      if constexpr (kMin) mw = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(t + kD + 32 + 16 * h)));
      for (int m = 0; m < RX; ++m) {
        const int8_t* x = a.xq[m] + b * kQ4Block;
        __m256i s = kBias ? _mm256_set1_epi32(-kBias * a.sumq[m][b]) : _mm256_setzero_si256();
        for (int j = 0; j < 4; ++j) {
          int32_t xl, xh;
          std::memcpy(&xl, x + 4 * j, 4);
          std::memcpy(&xh, x + 16 + 4 * j, 4);
          s = _mm256_add_epi32(s, _mm256_madd_epi16(_mm256_maddubs_epi16(lo[j], _mm256_set1_epi32(xl)), ones));
          s = _mm256_add_epi32(s, _mm256_madd_epi16(_mm256_maddubs_epi16(hi[j], _mm256_set1_epi32(xh)), ones));
        }
        acc[m][h] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(s), _mm256_mul_ps(dw, _mm256_set1_ps(a.xd[m][b])), acc[m][h]);
        if constexpr (kMin) acc[m][h] = _mm256_fmadd_ps(mw, _mm256_set1_ps(a.sx[m][b]), acc[m][h]);
      }
    }
  }
  for (int m = 0; m < RX; ++m) {
    _mm256_storeu_ps(out + 16 * m, acc[m][0]);
    _mm256_storeu_ps(out + 16 * m + 8, acc[m][1]);
  }
}
#else
constexpr bool kQ4Avx2 = false;
#endif

// AVX2's group kernels take at most 2 activation rows (16 registers): RX rows as pairs, two(acts,
// out) for each, and one(acts, out) for a last odd row.
template <int RX, class Two, class One>
inline void in_pairs_of_rows(const Q4Acts<RX>& a, float* out, Two&& two, One&& one) {
  auto rows = [&](auto k, int m0) {
    Q4Acts<decltype(k)::value> p;
    for (int m = 0; m < decltype(k)::value; ++m)
      p.xq[m] = a.xq[m0 + m], p.xd[m] = a.xd[m0 + m], p.sx[m] = a.sx[m0 + m], p.sumq[m] = a.sumq[m0 + m],
      p.sumh[m] = a.sumh[m0 + m];
    return p;
  };
  if constexpr (RX >= 2)
    for (int m0 = 0; m0 + 2 <= RX; m0 += 2) two(rows(std::integral_constant<int, 2>{}, m0), out + 16 * m0);
  if constexpr (RX % 2) one(rows(std::integral_constant<int, 1>{}, RX - 1), out + 16 * (RX - 1));
}

// out[16 m + i] = row 16 g + i . activation row m (m < RX), the padding rows included: the vector
// kernel compiled in, else the portable one.
template <int RX>
inline void q4_group(const Q4Layout& L, size_t g, const Q4Acts<RX>& a, float* out) {
#if defined(__AVX512VNNI__) && defined(__AVX512BW__)
  with_q4_fmt(L.fmt, [&](auto F) { q4_group_vnni<RX, decltype(F)::value>(L, g, a, out); });
#elif defined(__AVX2__) && defined(__FMA__) && defined(__F16C__)
  with_q4_fmt(L.fmt, [&](auto F) {
    constexpr Q4Fmt f = decltype(F)::value;
    in_pairs_of_rows<RX>(a, out, [&](const Q4Acts<2>& two, float* part) { q4_group_avx2<2, f>(L, g, two, part); },
                         [&](const Q4Acts<1>& one, float* part) { q4_group_avx2<1, f>(L, g, one, part); });
  });
#else
  for (int m = 0; m < RX; ++m)
    for (size_t i = 0; i < kQ4GroupRows; ++i)
      out[16 * m + i] = q4_row_dot_portable(L, g * kQ4GroupRows + i, a.xq[m], a.xd[m], a.sx[m]);
#endif
}

}  // namespace detail
}  // namespace fathom::kernels
