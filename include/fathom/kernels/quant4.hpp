#pragma once
// Native 4-, 5- and 6-bit weights: GGUF's Q4_0, Q4_1, Q5_0, Q5_1, Q4_K and Q6_K kept in their
// block format in memory and multiplied directly (issue 14, part 1), with the activations
// quantised to 8 bits per block of 32 as for Q8 (quant.hpp's Q8Acts), as llama.cpp does.
//
// Memory layouts (MatrixView::data; rows are whole blocks, cols a multiple of the block):
//   Q4_0, Q4_1, Q5_0, Q5_1 (re-laid from GGUF at load, like Q8_0: no arithmetic on any value):
//     uint8  qs[rows][nb * 16]  each block's 16 bytes as in GGUF: byte j holds element j in its low
//                               nibble and element j + 16 in its high nibble (q in 0..15); with
//                               AVX512-VNNI re-laid by fours and pairs ("quad lanes", "pair lanes")
//     uint32 qh[rows][nb]       Q5 only: bit j is element j's fifth bit (q += 16 * bit); AVX2 and
//                               AVX512-VNNI builds keep them in their kernels' order (below)
//     uint16 d [rows][nb]       f16 scales
//     uint16 m [rows][nb]       f16 minimums (Q4_1, Q5_1)
//     element = d * (q - 8) (Q4_0), d * (q - 16) (Q5_0), d * q + m (Q4_1, Q5_1); 18 / 20 / 22 / 24
//     bytes per 32 weights as in the file (llama.cpp's Q4_K_M falls back to Q5_0 for matrices whose
//     rows are not whole 256-blocks, such as Qwen2.5-0.5B's 896).
//   Q4_K, Q6_K: the GGUF super-blocks of 256 as stored (144 / 210 bytes; io/gguf_quants.hpp spells
//     the bits out), row after row.
//
// Products: with activation blocks x = dx * qx (qx int8, one f32 scale dx per 32, sx = dx * sum qx)
//   Q4_0  sum_b d_b dx_b (q_b . qx_b - 8 sum qx_b)       (Q5_0: 16 sum qx_b)
//   Q4_1  sum_b d_b dx_b (q_b . qx_b)  +  sum_b m_b sx_b  (Q5_1 alike)
//   Q4_K  sum_b (d sc_j) dx_b (q_b . qx_b)  -  sum_b (dmin mn_j) sx_b     (block b = group j of 32)
//   Q6_K  sum over groups g of 16: (d sc_g) dx_b (q_g . qx_g - 32 sum qx_g)
// Every integer dot is exact; the float arithmetic is the Q8 kernel's (quant.hpp): 16 lanes, lane
// 8 * (b mod 2) + i accumulates by FMA block b's bytes 4i..4i+3, the minimum terms go to lane
// b mod 16 of a second accumulator, both are summed by q8_tree_sum. The AVX512-VNNI kernels and the
// portable ones do exactly these operations, so results are the same bits on every CPU, and for
// every thread count (each output is summed by one thread in this fixed order).
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
#include "fathom/kernels/parallel.hpp"
#include "fathom/kernels/prefetch.hpp"
#include "fathom/kernels/quant.hpp"
#include "fathom/kernels/weight_buffer.hpp"

namespace fathom::kernels {

constexpr size_t kQ4Block = 32;    // Q4_0 / Q4_1 / Q5_0 / Q5_1 block
constexpr size_t kSuperBlock = 256;  // Q4_K / Q6_K super-block
constexpr size_t kQ4KBytes = 144, kQ6KBytes = 210;

// The formats of 32-weight blocks with one scale each (the rest are 256-weight super-blocks).
inline bool is_q4_family(DType t) {
  return t == DType::Q4_0 || t == DType::Q4_1 || t == DType::Q5_0 || t == DType::Q5_1;
}
inline bool is_gguf_block(DType t) { return is_q4_family(t) || t == DType::Q4_K || t == DType::Q6_K; }
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
// Bytes of a rows x cols matrix in one of these formats (cols a multiple of the block).
inline size_t gguf_block_matrix_bytes(DType t, size_t rows, size_t cols) {
  return rows * (cols / gguf_block_elems(t)) * gguf_block_bytes(t);
}

namespace detail {

// Q4_0 / Q4_1 / Q5_0 / Q5_1 pointers (layout above).
struct Q4Layout {
  const uint8_t* qs;   // [rows][nb*16]
  const uint32_t* qh;  // [rows][nb] (Q5_0, Q5_1), else null
  const uint16_t* d;   // [rows][nb]
  const uint16_t* m;   // [rows][nb] (Q4_1, Q5_1), else null
  size_t nb;
};
// The format of a Q4_0 / Q4_1 / Q5_0 / Q5_1 matrix, also as a template argument: the AVX512-VNNI
// decode kernels are instantiated per format (with_q4_fmt), so that its minimums, fifth bits and
// offset cost no branch per pair and row (with the format a run-time value GCC kept one per feature
// in the unrolled steps, and a register copy around each vpdpbusd: ~15 instructions per pair and row
// where 9 do the work). `runtime`: the kernel reads them from the layout.
enum class Q4Fmt { runtime, q4_0, q4_1, q5_0, q5_1 };
constexpr Q4Fmt q4_fmt(DType t) {
  return t == DType::Q4_0 ? Q4Fmt::q4_0 : t == DType::Q4_1 ? Q4Fmt::q4_1 : t == DType::Q5_0 ? Q4Fmt::q5_0
       : t == DType::Q5_1 ? Q4Fmt::q5_1 : Q4Fmt::runtime;
}
constexpr bool q4_has_min(Q4Fmt f) { return f == Q4Fmt::q4_1 || f == Q4Fmt::q5_1; }
constexpr bool q4_has_fifth_bit(Q4Fmt f) { return f == Q4Fmt::q5_0 || f == Q4Fmt::q5_1; }
// The offset a signed format's values are stored with (Q4_0 8, Q5_0 16; 0 for those with a minimum).
constexpr int q4_bias(Q4Fmt f) { return f == Q4Fmt::q4_0 ? 8 : f == Q4Fmt::q5_0 ? 16 : 0; }
inline bool q4_has_min(DType t) { return q4_has_min(q4_fmt(t)); }
inline bool q4_has_fifth_bit(DType t) { return q4_has_fifth_bit(q4_fmt(t)); }
inline int q4_bias(DType t) { return q4_bias(q4_fmt(t)); }
// Calls f(std::integral_constant<Q4Fmt, q4_fmt(t)>) for t one of the four formats.
template <class F>
inline void with_q4_fmt(DType t, F&& f) {
  switch (q4_fmt(t)) {
    case Q4Fmt::q4_0: return f(std::integral_constant<Q4Fmt, Q4Fmt::q4_0>{});
    case Q4Fmt::q4_1: return f(std::integral_constant<Q4Fmt, Q4Fmt::q4_1>{});
    case Q4Fmt::q5_0: return f(std::integral_constant<Q4Fmt, Q4Fmt::q5_0>{});
    default: return f(std::integral_constant<Q4Fmt, Q4Fmt::q5_1>{});
  }
}
inline Q4Layout q4_layout(const MatrixView& W) {
  const size_t nb = W.cols / kQ4Block, n = W.rows * nb;
  const auto* base = static_cast<const uint8_t*>(W.data);
  const bool five = q4_has_fifth_bit(W.dtype);
  const auto* qh = reinterpret_cast<const uint32_t*>(base + n * 16);  // 16-byte aligned
  const auto* d = reinterpret_cast<const uint16_t*>(base + n * 16 + (five ? n * 4 : 0));
  return {base, five ? qh : nullptr, d, q4_has_min(W.dtype) ? d + n : nullptr, nb};
}
// Where the AVX2 kernels run, each whole group of 8 Q5 blocks (blocks g .. g + 7, g a multiple of
// 8) keeps its 8 qh words as 32 bytes of bit planes, in the order the kernel reads the nibbles: byte
// j, bit s = 2p + h holds the fifth bit of element j % 16 + 16 h of block g + 2p + j / 16 (p the
// pair of blocks, h the nibble half). One load then serves the group, and each 32 nibbles get their
// fifth bits by a shift and a mask. The blocks after the last whole group keep GGUF's word. (The
// AVX512-VNNI kernel has its own order, "pair lanes" below.)
#if defined(FATHOM_KERNELS_AVX2_INT8)
constexpr bool kQ5Planes = true;
#else
constexpr bool kQ5Planes = false;
#endif

// How far ahead the GGUF block kernels prefetch their rows (bytes of blocks). The AVX512-VNNI
// kernels take fewer instructions per byte than the dense and AVX2 ones, and 2 KiB (kPrefetchAhead)
// did not cover the DRAM latency at their rate: 8 KiB against 2 KiB at one Zen 5 thread, in one
// program, from DRAM: Q4_1 / Q4_0 1.0-1.9x (576 x 1536 most; 1536 x 576 0.91-0.98x), Q4_K
// 1.03-1.26x, Q6_K 1.09-1.25x (docs/benchmarks.md, "GGUF prefetch distance"); the dense rows there
// were 0.87-0.97x at 8 KiB, so they keep theirs.
#if defined(__AVX512VNNI__) && defined(__AVX512BW__)
constexpr size_t kGgufPrefetchAhead = 8192;
#else
constexpr size_t kGgufPrefetchAhead = kPrefetchAhead;
#endif
// Where the AVX512-VNNI kernels' prefetches put those lines: into L1 (prefetcht0) as measured on
// the Zen 5, into L2 only (prefetcht1) on a Zen 4 (AMD family 19h with AVX-512), where one thread
// streamed Q4_0 / Q4_1 / Q5_0 / Q4_K / Q6_K rows at 7-20 GB/s of its 30 with them into L1 and at
// 14-22 into L2 (1.03-2.15x; two threads 1.04-1.71x; docs/benchmarks.md, "Zen 4: quantised decode
// prefetches"). The AVX2 kernels keep L1.
inline bool gguf_prefetch_l2() {
#if defined(__AVX512VNNI__) && defined(__AVX512BW__)
  return amd_family_19h();
#else
  return false;
#endif
}

// The scales (and minimums, fifth bits) of the rows kGgufPrefetchAhead bytes of nibbles ahead,
// asked for while block g of a row is read: they are streams of their own (2 or 4 bytes per 16
// bytes of nibbles), which the hardware prefetchers did not keep ahead of a matrix-vector product
// (on a Zen 5 the loads of a Q4_1 row's d and m were a third of SmolLM2's decode gemv time).
inline void q4_prefetch_scales(const uint16_t* d, const uint16_t* m, const uint32_t* qh, size_t g, bool l2 = false) {
  constexpr size_t ahead = kGgufPrefetchAhead / 8;  // bytes of scales per kGgufPrefetchAhead of nibbles
  prefetch_line_to(uintptr_t(d + g) + ahead, l2);
  if (m) prefetch_line_to(uintptr_t(m + g) + ahead, l2);
  if (qh) prefetch_line_to(uintptr_t(qh + g) + 2 * ahead, l2);
}

// Pair lanes (kQ4PairLanes, AVX512-VNNI builds): each pair of blocks b, b + 1 (b even) keeps its 32
// bytes of nibbles interleaved by 4-byte groups, [b 0-3 | b+1 0-3 | b 4-7 | b+1 4-7 | .. | b+1
// 12-15] (GGUF's bytes of each block), and, for Q5, its two qh words as one 64-bit mask in the
// order the kernel unpacks them: bit p < 32 is the fifth bit of stored byte p's low nibble, bit
// 32 + p of its high nibble. Unpacked (one variable shift for both halves), int32 lane L of a pair
// then belongs to block b + L % 2: one 64-bit broadcast of the two blocks' scales serves the pair,
// where GGUF's order needed a permutation of the group's scales per pair and row, and its fifth
// bits are one mask load (q4_rows_vnni). A last unpaired block keeps GGUF's bytes and word.
//
// Quad lanes (the blocks b .. b + 3 of each whole four, b a multiple of 4): the two pairs' unpacked
// values in one 64-byte run, byte p holding value p of pair b, b + 1 in its low nibble and value p
// of pair b + 2, b + 3 in its high one; the Q5 masks stay one per pair. The kernel then unpacks two
// pairs from one load by a mask and a shift by 4 (instead of a 32-byte broadcast and a variable
// shift per pair): 1.05-1.15x decode at one Zen 4 thread (docs/benchmarks.md, "Zen 4: quad
// lanes"). A pair after the last whole four keeps pair lanes.
inline bool q4_paired(size_t nb, size_t b) { return kQ4PairLanes && b < nb / 2 * 2; }
inline bool q4_in_quad(size_t nb, size_t b) { return kQ4PairLanes && b < nb / 4 * 4; }

// Value p (0..63, q4_pair_element's order) of the unpacked pair of blocks b, b + 1 (b even) of a
// row's nibbles, stored in quad or pair lanes.
inline uint8_t q4_pair_value(const uint8_t* row, size_t nb, size_t b, size_t p) {
  if (q4_in_quad(nb, b)) return uint8_t((row[(b & ~size_t(3)) * 16 + p] >> (4 * (b / 2 % 2))) & 15);
  return uint8_t((row[b * 16 + p % 32] >> (4 * (p / 32))) & 15);
}

// GGUF's nibbles and qh words of one row -> quad and pair lanes (in place; qh null for Q4_0 / Q4_1).
// (Whole groups of bytes and bits at a time, the order q4_pair_element describes: loading
// Qwen2.5-0.5B's Q4_K_M spent 2 s here when this went value by value.)
inline void q4_to_lanes(uint8_t* qs, uint32_t* qh, size_t nb) {
  if (!kQ4PairLanes) return;
  for (size_t b = 0; b + 2 <= nb; b += 2) {
    uint8_t pair[32];
    uint64_t mask = 0;
    for (size_t g = 0; g < 8; ++g) {  // 4-byte group g: bytes 4 (g / 2) .. of block b + g % 2
      const size_t blk = b + g % 2, j = 4 * (g / 2);
      std::memcpy(pair + 4 * g, qs + blk * 16 + j, 4);
      if (qh)  // the fifth bits of those bytes' low nibbles (elements j ..), then of their high ones
        mask |= uint64_t((qh[blk] >> j) & 15u) << (4 * g) | uint64_t((qh[blk] >> (16 + j)) & 15u) << (32 + 4 * g);
    }
    std::memcpy(qs + b * 16, pair, 32);
    if (qh) std::memcpy(qh + b, &mask, 8);
  }
  for (size_t b = 0; b + 4 <= nb; b += 4) {  // two pairs in pair lanes -> one quad
    uint8_t quad[64];
    const uint8_t* lo = qs + b * 16;  // pair b, b + 1
    const uint8_t* hi = lo + 32;      // pair b + 2, b + 3
    for (size_t s = 0; s < 32; ++s) {
      quad[s] = uint8_t((lo[s] & 15) | (hi[s] & 15) << 4);
      quad[32 + s] = uint8_t((lo[s] >> 4) | (hi[s] >> 4) << 4);
    }
    std::memcpy(qs + b * 16, quad, 64);
  }
}

// GGUF's qh words of one row -> the layout above (in place).
inline void q5_to_planes(uint32_t* qh, size_t nb) {
  if (!kQ5Planes) return;
  for (size_t g = 0; g + 8 <= nb; g += 8) {
    uint8_t plane[32] = {};
    for (size_t i = 0; i < 8; ++i) {  // block g + i: its bits j and 16 + j -> byte j + 16 (i % 2)
      const uint32_t bits = qh[g + i];
      const int at = int(2 * (i / 2));
      for (size_t j = 0; j < 16; ++j)
        plane[j + 16 * (i % 2)] |= uint8_t(((bits >> j) & 1u) << at | ((bits >> (16 + j)) & 1u) << (at + 1));
    }
    std::memcpy(qh + g, plane, 32);
  }
}

// Block b of row r as GGUF stores it: its 16 bytes of nibbles, and (Q5) its qh word, whichever
// layout this build keeps.
inline void q4_block_bytes(const Q4Layout& L, size_t r, size_t b, uint8_t* bytes) {
  const uint8_t* row = L.qs + r * L.nb * 16;
  if (!q4_paired(L.nb, b)) return (void)std::memcpy(bytes, row + b * 16, 16);
  // element e of block b is value p = 32 (e / 16) + 8 (e % 16 / 4) + 4 (b % 2) + e % 4 of its pair
  const size_t pb = b & ~size_t(1);
  for (size_t j = 0; j < 16; ++j) {
    const size_t p = 8 * (j / 4) + 4 * (b % 2) + j % 4;
    bytes[j] = uint8_t(q4_pair_value(row, L.nb, pb, p) | q4_pair_value(row, L.nb, pb, 32 + p) << 4);
  }
}
inline uint32_t q5_block_word(const Q4Layout& L, size_t r, size_t b) {
  const uint32_t* qh = L.qh + r * L.nb;
  if (q4_paired(L.nb, b)) {  // bits 8k + 4 (b & 1) .. + 3 of the pair's mask are elements 4k .. 4k + 3
    uint64_t mask;
    std::memcpy(&mask, qh + (b & ~size_t(1)), 8);
    uint32_t word = 0;
    for (size_t k = 0; k < 8; ++k) word |= uint32_t((mask >> (8 * k + 4 * (b & 1))) & 15) << (4 * k);
    return word;
  }
  if (!kQ5Planes || b >= L.nb / 8 * 8) return qh[b];
  // kQ5Planes: element j's bit is bit 2 p + j / 16 of the group's plane byte j % 16 + 16 q
  const size_t g = b / 8 * 8, p = (b - g) / 2, q = (b - g) % 2;
  const auto* plane = reinterpret_cast<const uint8_t*>(qh + g);
  uint32_t word = 0;
  for (size_t j = 0; j < 32; ++j) word |= uint32_t((plane[j % 16 + 16 * q] >> (2 * p + j / 16)) & 1) << j;
  return word;
}

// The 32 unsigned values (0..15, or 0..31 with the fifth bit) of block b of row r, in element order.
inline void q4_block_unsigned(const Q4Layout& L, size_t r, size_t b, uint8_t* w) {
  uint8_t bytes[16];
  q4_block_bytes(L, r, b, bytes);
  const uint32_t fifth = L.qh ? q5_block_word(L, r, b) : 0;
  for (size_t j = 0; j < 16; ++j) {
    w[j] = uint8_t((bytes[j] & 15) | ((fifth >> j) & 1) << 4);
    w[j + 16] = uint8_t((bytes[j] >> 4) | ((fifth >> (j + 16)) & 1) << 4);
  }
}

// Q4_K's six-bit scale and minimum j of a super-block (GGUF's get_scale_min_k4).
inline void k4_scale_min(const uint8_t* s, int j, int& sc, int& mn) {
  if (j < 4) {
    sc = s[j] & 63;
    mn = s[j + 4] & 63;
  } else {
    sc = (s[j + 4] & 15) | (s[j - 4] >> 6) << 4;
    mn = (s[j + 4] >> 4) | (s[j] >> 6) << 4;
  }
}

#if defined(__AVX2__)
// The 12 packed bytes of a Q4_K block's scales (at blk + 4) unpacked in one register: bytes 0-7 the
// 8 six-bit scales, bytes 8-15 the 8 six-bit minimums (k4_scale_min for all j at once), by two byte
// shuffles and masks. (Unpacked as four 32-bit words in scalar registers, stored and loaded back as
// one vector, they stalled every super-block: a 16-byte load from four 4-byte stores is not
// forwarded.) Reads the 16 bytes at blk + 4: the 12 of the scales and 4 of the nibbles.
inline __m128i k4_scales_mins_vec(const uint8_t* blk) {
  const __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(blk + 4));
  // a: [s0-3 | s8-11 | s4-7 | s8-11], b: [0 | s0-3 | 0 | s4-7] (s: the 12 packed bytes)
  const __m128i a = _mm_shuffle_epi8(v, _mm_setr_epi8(0, 1, 2, 3, 8, 9, 10, 11, 4, 5, 6, 7, 8, 9, 10, 11));
  const __m128i b = _mm_shuffle_epi8(v, _mm_setr_epi8(-1, -1, -1, -1, 0, 1, 2, 3, -1, -1, -1, -1, 4, 5, 6, 7));
  const __m128i low = _mm_and_si128(a, _mm_setr_epi32(0x3f3f3f3f, 0x0f0f0f0f, 0x3f3f3f3f, 0));
  const __m128i high_nibbles = _mm_and_si128(_mm_srli_epi16(a, 4), _mm_setr_epi32(0, 0, 0, 0x0f0f0f0f));
  const __m128i top_bits = _mm_and_si128(_mm_srli_epi16(b, 2), _mm_setr_epi32(0, 0x30303030, 0, 0x30303030));
  return _mm_or_si128(low, _mm_or_si128(high_nibbles, top_bits));
}
#endif

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
  float acc[16] = {}, macc[16] = {};
  uint8_t w[32];
  if (is_q4_family(t)) {
    const Q4Layout L = q4_layout(W);
    for (size_t b = 0; b < L.nb; ++b) {
      q4_block_unsigned(L, r, b, w);
      const float sc = f16_to_f32(L.d[r * L.nb + b]) * xd[b];
      lanes_fma(acc, b, w, xq + b * 32, q4_bias(t), sc, sc);
      if (L.m) macc[b % 16] = std::fma(f16_to_f32(L.m[r * L.nb + b]), sx[b], macc[b % 16]);
    }
    return L.m ? q8_tree_sum(acc) + q8_tree_sum(macc) : q8_tree_sum(acc);
  }
  const size_t nsb = W.cols / kSuperBlock;
  if (t == DType::Q4_K) {
    for (size_t s = 0; s < nsb; ++s) {
      const uint8_t* blk = static_cast<const uint8_t*>(W.data) + (r * nsb + s) * kQ4KBytes;
      const float d = h2f(blk), dmin = h2f(blk + 2);
      for (int j = 0; j < 8; ++j) {
        const size_t b = s * 8 + size_t(j);
        int sc, mn;
        k4_scale_min(blk + 4, j, sc, mn);
        const uint8_t* qs = blk + 16 + (j / 2) * 32;
        for (int l = 0; l < 32; ++l) w[l] = (qs[l] >> (4 * (j % 2))) & 15;
        const float scale = (d * float(sc)) * xd[b];
        lanes_fma(acc, b, w, xq + b * 32, 0, scale, scale);
        macc[b % 16] = std::fma(dmin * float(mn), sx[b], macc[b % 16]);
      }
    }
    return q8_tree_sum(acc) - q8_tree_sum(macc);
  }
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
constexpr bool kQ4Vnni = true;

// f16 at p -> f32 by the F16C instruction (the same exact value as f16_to_f32, without its
// branches: these kernels convert one or two scales per 256 weights).
inline float h2f_fast(const uint8_t* p) {
  uint16_t h;
  std::memcpy(&h, p, 2);
  return _cvtsh_ss(h);
}

// The nibbles of a pair of blocks (32 bytes in pair lanes, both halves of a 512-bit register) ->
// 64 values in q4_pair_element's order: the low nibbles below, the high ones above, by one variable
// shift and a mask (no shuffle); Q8Acts::qp holds the activations in this order.
inline __m512i q4_unpack_pair(__m256i raw) {
  const __m512i shifts = _mm512_inserti64x4(_mm512_setzero_si512(), _mm256_set1_epi16(4), 1);
  return _mm512_and_si512(_mm512_srlv_epi16(_mm512_broadcast_i64x4(raw), shifts), _mm512_set1_epi8(15));
}

// Pair lanes -> the header's order, as a dword / float permutation: lane 8c + i <- lane 2i + c
// (i < 4) or 8 + 2 (i - 4) + c. It puts a pair's unpacked 4-byte groups in element order
// (q4_pair_elements) and a decode step's accumulator lanes where the portable kernel has them.
inline __m512i q4_pair_lane_order() {
  return _mm512_set_epi32(15, 13, 11, 9, 7, 5, 3, 1, 14, 12, 10, 8, 6, 4, 2, 0);
}

// The 64 bytes of a quad (quad lanes) -> the unpacked values of its pair h (0: blocks b, b + 1 in
// the low nibbles; 1: b + 2, b + 3 in the high ones), in q4_unpack_pair's order.
inline __m512i q4_unpack_quad(__m512i raw, int h) {
  return _mm512_and_si512(h ? _mm512_srli_epi16(raw, 4) : raw, _mm512_set1_epi8(15));
}

// Weight rows r .. r + RW - 1 against RX activation rows: out[m * RW + w] = row r + w . x_m.
// Q4_0 / Q4_1 / Q5_0 / Q5_1, two blocks per step (four from one load in quad lanes), unpacked into
// pair lanes' order (above) against xp (Q8Acts::qp): int32 lane L = 2i + k (L < 8) holds block
// b + k's bytes 4i..4i+3, lane 8 + 2i + k its bytes 16 + 4i..; each lane is one of the header's
// lanes (8k + i, 8k + 4 + i), takes the same products in the same order and is put back in place
// (q4_pair_lane_order) before q8_lanes_sum: the portable kernel's
// bits. Per pair and row: the unpacking, a masked add of the 16s (Q5: the pair's mask loaded as it
// is stored), one vpdpbusd, a conversion and an FMA with the two blocks' scales broadcast from the
// group's 16 (stored once per group). A last unpaired block (GGUF's bytes and word) is widened into
// the same lanes, its partner's lanes zero. Each row runs the same operations in the same order
// whatever RW (its own accumulator chain), so the bits do not depend on it; RW = 2 or 4 gives the
// core independent chains for short rows (decode, gguf_rows_gemv). Fmt: the format, when known at
// compile time (Q4Fmt), else read from L and bias_arg.
template <int RW, int RX, bool OwnPrefetch = true, Q4Fmt Fmt = Q4Fmt::runtime>
inline void q4_rows_vnni(const Q4Layout& L, int bias_arg, size_t r, const int8_t* const* xp, const float* const* xd,
                         const float* const* sx, float* out) {
  const size_t nb = L.nb;
  constexpr bool kFixed = Fmt != Q4Fmt::runtime;
  const bool has_min = kFixed ? q4_has_min(Fmt) : L.m != nullptr;
  const bool five = kFixed ? q4_has_fifth_bit(Fmt) : L.qh != nullptr;
  const int bias = kFixed ? q4_bias(Fmt) : bias_arg;
  const uint8_t* qs[RW];
  const uint32_t* qh[RW];
  const uint16_t* wd[RW];
  const uint16_t* wm[RW];
  for (int w = 0; w < RW; ++w) {
    qs[w] = L.qs + (r + w) * nb * 16;
    qh[w] = five ? L.qh + (r + w) * nb : nullptr;
    wd[w] = L.d + (r + w) * nb;
    wm[w] = has_min ? L.m + (r + w) * nb : nullptr;
  }
  __m512 acc[RW][RX], macc[RW][RX];
  for (int w = 0; w < RW; ++w)
    for (int m = 0; m < RX; ++m) acc[w][m] = macc[w][m] = _mm512_setzero_ps();
  const __m512i sixteen = _mm512_set1_epi8(16);
  [[maybe_unused]] const bool l2 = gguf_prefetch_l2();
  // The group's scales d * dx. One activation row (decode): stored, each pair's two read by a 64-bit
  // broadcast (a load). More (prompts): kept in registers, each pair's two permuted into place (a
  // shuffle): eight broadcasts per pair and row were 0.88x the permutations at 64 tokens (Q4_1).
  constexpr bool kStored = RX == 1;
  alignas(64) float scm[RW][RX][kStored ? 16 : 1];
  __m512 scr[RW][RX];
  const __m512i parity = _mm512_set_epi32(1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0);
  // The pairs' values wv[w] (unpacked, Q5's 16s not yet added) against blocks b, b + 1 (b - g
  // even) of group g; `two` false: b is the last block, alone. (Inlined by force: GCC called it
  // for Q5_0 with the registers passed through memory, at half the speed.)
  auto pair_products = [&](size_t g, size_t b, bool two, __m512i (&wv)[RW]) __attribute__((always_inline)) {
    __m512i x[RX], corr[RX];
    for (int m = 0; m < RX; ++m) {
      x[m] = in_register(two ? _mm512_loadu_si512(xp[m] + b * 32)  // a last block: its 4-byte groups into even lanes
                             : _mm512_cvtepu32_epi64(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(xp[m] + b * 32))));
      corr[m] = offset_corr(bias, x[m]);
    }
    for (int w = 0; w < RW; ++w) {
      if (five) {
        uint64_t bits;
        if (two) {
          std::memcpy(&bits, qh[w] + b, 8);
        } else {  // element j -> byte 32 (j / 16) + 8 (j % 16 / 4) + j % 4, its 4-byte group's lane
          bits = 0;
          for (int k = 0; k < 8; ++k) bits |= uint64_t((qh[w][b] >> (4 * k)) & 15u) << (8 * k);
        }
        wv[w] = _mm512_mask_add_epi8(wv[w], _cvtu64_mask64(bits), wv[w], sixteen);
      }
      for (int m = 0; m < RX; ++m) {
        const __m512i sd = _mm512_dpbusd_epi32(corr[m], wv[w], x[m]);
        __m512 s2;  // the scales of blocks b, b + 1 in lanes of parity 0, 1
        if constexpr (kStored) {
          double two_scales;
          std::memcpy(&two_scales, &scm[w][m][b - g], 8);
          s2 = _mm512_castpd_ps(_mm512_set1_pd(two_scales));
        } else {
          s2 = _mm512_permutexvar_ps(_mm512_add_epi32(parity, _mm512_set1_epi32(int(b - g))), scr[w][m]);
        }
        acc[w][m] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(sd), s2, acc[w][m]);
      }
    }
  };
  // A pair in pair lanes (or the last block alone).
  auto pair_step = [&](size_t g, size_t b, bool two) __attribute__((always_inline)) {
    __m512i wv[RW];
    for (int w = 0; w < RW; ++w) {
      const auto* src = reinterpret_cast<const __m128i*>(qs[w] + b * 16);
      wv[w] = q4_unpack_pair(two ? _mm256_loadu_si256(reinterpret_cast<const __m256i*>(src))
                                 : _mm256_cvtepu32_epi64(_mm_loadu_si128(src)));
    }
    pair_products(g, b, two, wv);
  };
  // Blocks b .. b + 3 in quad lanes: one load, its low nibbles the first pair, its high the second.
  auto quad_step = [&](size_t g, size_t b) __attribute__((always_inline)) {
    __m512i raw[RW], wv[RW];
    for (int w = 0; w < RW; ++w) {
      raw[w] = _mm512_loadu_si512(qs[w] + b * 16);
      wv[w] = q4_unpack_quad(raw[w], 0);
    }
    pair_products(g, b, true, wv);
    for (int w = 0; w < RW; ++w) wv[w] = q4_unpack_quad(raw[w], 1);
    pair_products(g, b + 2, true, wv);
  };
  const size_t pairs_end = nb / 2 * 2, quads_end = nb / 4 * 4;
  for (size_t g = 0; g < nb; g += 16) {
    const size_t gb = std::min<size_t>(16, nb - g);
    const __mmask16 bm = __mmask16(gb == 16 ? 0xffffu : (1u << gb) - 1u);
    for (int w = 0; w < RW; ++w) {
      const __m512 dw = _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(bm, wd[w] + g));
      for (int m = 0; m < RX; ++m) {
        scr[w][m] = _mm512_mul_ps(dw, _mm512_maskz_loadu_ps(bm, xd[m] + g));
        if constexpr (kStored) _mm512_store_ps(scm[w][m], scr[w][m]);
      }
      if (has_min) {
        const __m512 mw = _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(bm, wm[w] + g));
        for (int m = 0; m < RX; ++m)
          macc[w][m] = _mm512_fmadd_ps(mw, _mm512_maskz_loadu_ps(bm, sx[m] + g), macc[w][m]);
      }
      if constexpr (OwnPrefetch) {  // else the caller streams the rows (gguf_rows_gemv)
        for (size_t k = 0; k < 4; ++k) prefetch_line_to(uintptr_t(qs[w] + g * 16 + 64 * k + kGgufPrefetchAhead), l2);
        q4_prefetch_scales(wd[w], wm[w], qh[w], g, l2);
      }
    }
    if (gb == 16) {  // a whole group: four quads, unrolled
#pragma GCC unroll 4
      for (size_t j = 0; j < 4; ++j) quad_step(g, g + 4 * j);
    } else {
      size_t b = g;
      for (; b < quads_end; b += 4) quad_step(g, b);
      if (b < pairs_end) pair_step(g, b, true);
      if (pairs_end < nb) pair_step(g, pairs_end, false);
    }
  }
  const __m512i back = q4_pair_lane_order();
  if constexpr (RW == 4) {
    for (int m = 0; m < RX; ++m) {
      __m128 s = q8_lanes_sum4(_mm512_permutexvar_ps(back, acc[0][m]), _mm512_permutexvar_ps(back, acc[1][m]),
                               _mm512_permutexvar_ps(back, acc[2][m]), _mm512_permutexvar_ps(back, acc[3][m]));
      if (has_min) s = _mm_add_ps(s, q8_lanes_sum4(macc[0][m], macc[1][m], macc[2][m], macc[3][m]));
      _mm_storeu_ps(out + m * RW, s);
    }
    return;
  }
  for (int w = 0; w < RW; ++w)
    for (int m = 0; m < RX; ++m) {
      const float s = q8_lanes_sum(_mm512_permutexvar_ps(back, acc[w][m]));
      out[m * RW + w] = has_min ? s + q8_lanes_sum(macc[w][m]) : s;
    }
}
template <int RX>
inline void q4_row_vnni(const Q4Layout& L, int bias, size_t r, const int8_t* const* xp, const float* const* xd,
                        const float* const* sx, float* out) {
  q4_rows_vnni<1, RX>(L, bias, r, xp, xd, sx, out);
}

// Q4_K: one weight row against RX activation rows, two super-blocks per step. Their 16 group scales
// times the 16 activation scales are one vector product (S; each d * sc exact), permuted to the
// lanes of each pair of groups; the minimum terms (dmin * mn) * sx accumulate in lane b mod 16 of
// the header, which is lane b - b0 of the step's blocks b0 .. b0 + 15 (b0 a multiple of 16). A last
// odd super-block takes lanes 0-7 alone. (One super-block per step, with its scale work in 8 lanes
// and its minimum terms in a register pair indexed by its parity, i.e. through memory, spent as much
// on those as on its 256 multiply-adds: two per step are 1.07-1.23x faster, the same bits.)
template <int RX>
inline void q4k_row_vnni(const uint8_t* row, size_t nsb, const int8_t* const* xq, const float* const* xd,
                         const float* const* sx, float* out) {
  __m512 acc[RX], macc[RX];
  for (int m = 0; m < RX; ++m) acc[m] = macc[m] = _mm512_setzero_ps();
  const __m512i pair_idx = _mm512_set_epi32(1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0);
  const __m512i nibble_shift = _mm512_inserti64x4(_mm512_setzero_si512(), _mm256_set1_epi16(4), 1);
  const __m512i m0f = _mm512_set1_epi8(15);
  // groups 2p, 2p + 1 of the super-block at blk (its scales in lanes 8h .. 8h + 7 of S, its
  // activations from block b)
  auto pairs = [&](const uint8_t* blk, size_t b, int h, const __m512 (&S)[RX]) {
    for (int p = 0; p < 4; ++p) {  // the low and high nibbles of 32 bytes: one shift, both halves
      const __m512i raw = _mm512_broadcast_i64x4(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(blk + 16 + p * 32)));
      const __m512i w = _mm512_and_si512(_mm512_srlv_epi16(raw, nibble_shift), m0f);
      const __m512i idx = _mm512_add_epi32(pair_idx, _mm512_set1_epi32(8 * h + 2 * p));
      for (int m = 0; m < RX; ++m) {
        const __m512i x = _mm512_loadu_si512(xq[m] + (b + 2 * p) * 32);
        const __m512i dot = _mm512_dpbusd_epi32(_mm512_setzero_si512(), w, x);
        acc[m] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(dot), _mm512_permutexvar_ps(idx, S[m]), acc[m]);
      }
    }
  };
  const __m512i lanes_d = _mm512_set_epi32(2, 2, 2, 2, 2, 2, 2, 2, 0, 0, 0, 0, 0, 0, 0, 0);
  const __m512i lanes_dmin = _mm512_add_epi32(lanes_d, _mm512_set1_epi32(1));
  const bool l2 = gguf_prefetch_l2();
  size_t s = 0;
  for (; s + 2 <= nsb; s += 2) {
    const uint8_t* blk = row + s * kQ4KBytes;
    for (size_t k = 0; k < 5; ++k) prefetch_line_to(uintptr_t(blk + 64 * k + kGgufPrefetchAhead), l2);
    const __m128i sm0 = k4_scales_mins_vec(blk), sm1 = k4_scales_mins_vec(blk + kQ4KBytes);
    uint32_t h0, h1;  // f16 d, dmin of each
    std::memcpy(&h0, blk, 4);
    std::memcpy(&h1, blk + kQ4KBytes, 4);
    const __m512 dd = _mm512_castps128_ps512(_mm_cvtph_ps(_mm_cvtsi64_si128(int64_t(h0) | int64_t(h1) << 32)));
    const __m512 dl = _mm512_mul_ps(_mm512_permutexvar_ps(lanes_d, dd),
                                    _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(_mm_unpacklo_epi64(sm0, sm1))));
    const __m512 ml = _mm512_mul_ps(_mm512_permutexvar_ps(lanes_dmin, dd),
                                    _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(_mm_unpackhi_epi64(sm0, sm1))));
    const size_t b0 = s * 8;
    __m512 S[RX];
    for (int m = 0; m < RX; ++m) {
      S[m] = _mm512_mul_ps(dl, _mm512_loadu_ps(xd[m] + b0));
      macc[m] = _mm512_fmadd_ps(ml, _mm512_loadu_ps(sx[m] + b0), macc[m]);
    }
    pairs(blk, b0, 0, S);
    pairs(blk + kQ4KBytes, b0 + 8, 1, S);
  }
  if (s < nsb) {  // a last odd super-block; without its prefetches 896 x 4864 streamed at 0.6x (Zen 4)
    const uint8_t* blk = row + s * kQ4KBytes;
    for (size_t k = 0; k < 3; ++k) prefetch_line_to(uintptr_t(blk + 64 * k + kGgufPrefetchAhead), l2);
    const __m128i sm = k4_scales_mins_vec(blk);
    const __m256 dl = _mm256_mul_ps(_mm256_set1_ps(h2f_fast(blk)), _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(sm)));
    const __m256 ml = _mm256_mul_ps(_mm256_set1_ps(h2f_fast(blk + 2)),
                                    _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_srli_si128(sm, 8))));
    const size_t b0 = s * 8;
    __m512 S[RX];
    for (int m = 0; m < RX; ++m) {
      S[m] = _mm512_castps256_ps512(_mm256_mul_ps(dl, _mm256_loadu_ps(xd[m] + b0)));
      macc[m] = _mm512_mask3_fmadd_ps(_mm512_castps256_ps512(ml), _mm512_castps256_ps512(_mm256_loadu_ps(sx[m] + b0)),
                                      macc[m], __mmask16(0x00ff));
    }
    pairs(blk, b0, 0, S);
  }
  for (int m = 0; m < RX; ++m) out[m] = q8_lanes_sum(acc[m]) - q8_lanes_sum(macc[m]);
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

// Pair pb, pb + 1 of row r, unpacked (v, pair lanes' order) -> its 64 unsigned values in element
// order (block pb's 32, then pb + 1's), Q5's 16s added: one dword permutation.
inline __m512i q4_pair_elements(const Q4Layout& L, size_t r, size_t pb, __m512i v) {
  if (L.qh) {
    uint64_t bits;
    std::memcpy(&bits, L.qh + r * L.nb + pb, 8);
    v = _mm512_mask_add_epi8(v, _cvtu64_mask64(bits), v, _mm512_set1_epi8(16));
  }
  // dword t: block t / 8's bytes 4 (t % 8)..
  return _mm512_permutexvar_epi32(q4_pair_lane_order(), v);
}

// Rows [r0, r0 + P) of a Q4_0 / Q5_0 matrix as Q8 rows (quant.hpp's layout: value + 128, the same
// f16 scale) for gemm_gguf_block: a pair of blocks unpacked as the kernel does (quad or pair lanes,
// the mask of 16s), its 4-byte groups put back in element order by one dword permutation, then - bias
// + 128; a last unpaired block from GGUF's bytes and word. Exact: every weight keeps its value and
// its block's scale. qs: [P][nb*32], d: [P][nb].
inline void q4_rows_to_q8(const MatrixView& W, size_t r0, size_t P, uint8_t* qs, uint16_t* d) {
  const Q4Layout L = q4_layout(W);
  const size_t nb = L.nb;
  const char off = char(128 - q4_bias(W.dtype));
  for (size_t i = 0; i < P; ++i) {
    const size_t r = r0 + i;
    const uint8_t* src = L.qs + r * nb * 16;
    uint8_t* dst = qs + i * nb * kQ8Block;
    std::memcpy(d + i * nb, L.d + r * nb, nb * sizeof(uint16_t));
    auto put_pair = [&](size_t b, __m512i w) {  // w: pair b, b + 1 unpacked
      _mm512_storeu_si512(dst + b * kQ8Block, _mm512_add_epi8(q4_pair_elements(L, r, b, w), _mm512_set1_epi8(off)));
    };
    size_t b = 0;
    for (; b + 4 <= nb; b += 4) {  // quad lanes
      const __m512i raw = _mm512_loadu_si512(src + b * 16);
      put_pair(b, q4_unpack_quad(raw, 0));
      put_pair(b + 2, q4_unpack_quad(raw, 1));
    }
    for (; b + 2 <= nb; b += 2)
      put_pair(b, q4_unpack_pair(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(src + b * 16))));
    if (b < nb) {  // GGUF's block: the low nibbles are elements 0-15, the high ones 16-31
      const __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(src + b * 16));
      __m256i w = _mm256_and_si256(_mm256_inserti128_si256(_mm256_castsi128_si256(v), _mm_srli_epi16(v, 4), 1),
                                   _mm256_set1_epi8(15));
      if (L.qh) w = _mm256_mask_add_epi8(w, _cvtu32_mask32(L.qh[r * nb + b]), w, _mm256_set1_epi8(16));
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(dst + b * kQ8Block), _mm256_add_epi8(w, _mm256_set1_epi8(off)));
    }
  }
}

// The 32 unsigned values of block b of row r (in a pair: quad or pair lanes) in element order, by
// the kernel's unpacking and q4_pair_elements. For the exact prefill's widening
// (widen_gguf), which read quad lanes nibble by nibble (q4_block_bytes) at 0.89-0.99x the prompt
// speed of pair lanes.
inline void q4_block_elements(const Q4Layout& L, size_t r, size_t b, uint8_t* w) {
  if (!q4_paired(L.nb, b)) return q4_block_unsigned(L, r, b, w);
  const uint8_t* row = L.qs + r * L.nb * 16;
  const size_t pb = b & ~size_t(1);
  __m512i v = q4_in_quad(L.nb, pb)
                  ? q4_unpack_quad(_mm512_loadu_si512(row + (pb & ~size_t(3)) * 16), int(pb / 2 % 2))
                  : q4_unpack_pair(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(row + pb * 16)));
  v = q4_pair_elements(L, r, pb, v);
  _mm256_storeu_si256(reinterpret_cast<__m256i*>(w),
                      b % 2 ? _mm512_extracti64x4_epi64(v, 1) : _mm512_castsi512_si256(v));
}
#else
constexpr bool kQ4Vnni = false;
inline void q4_block_elements(const Q4Layout& L, size_t r, size_t b, uint8_t* w) { q4_block_unsigned(L, r, b, w); }
#endif

#if defined(FATHOM_KERNELS_AVX2_INT8)
// AVX2 without AVX512-VNNI (quant.hpp's Q8 AVX2 kernel): the header's 16 lanes are two 8-lane
// registers (lo: even blocks, hi: odd blocks), one 32-byte block per step; int32 lane i = block b's
// bytes 4i..4i+3 by vpmaddubsw + vpmaddwd (dot4_u8s8). Q4_1, Q5_1 and Q4_K weights (0..15 / 0..31)
// are the unsigned operand as they are; Q4_0, Q5_0 and Q6_K weights minus their offset (8 / 16 /
// 32) are signed, so their magnitudes are the unsigned operand and their signs move to the
// activations (vpsignb), which makes the int32 q.qx - 8 sum qx (16, 32 sum qx) directly. Same
// integers, same float operations, so the same bits as the portable and VNNI kernels. The scales of 8 blocks are
// multiplied at once into a small array and broadcast per block.
constexpr bool kQ4Avx2 = true;

inline float h2f_avx2(const uint8_t* p) {
  uint16_t h;
  std::memcpy(&h, p, 2);
  return _cvtsh_ss(h);
}

// 16 bytes of nibbles (one Q4 block) -> 32 bytes in element order (low nibbles, then high).
inline __m256i q4_unpack_block(const uint8_t* qs) {
  const __m128i raw = _mm_loadu_si128(reinterpret_cast<const __m128i*>(qs));
  const __m256i t = _mm256_inserti128_si256(_mm256_castsi128_si256(raw), _mm_srli_epi16(raw, 4), 1);
  return _mm256_and_si256(t, _mm256_set1_epi8(15));
}

// acc += block dot (weights w: unsigned as they are, or signed `sw` with magnitudes |sw|) x scale.
inline __m256 q_fma_u(__m256i w, const int8_t* x, __m256 scale, __m256 acc) {
  const __m256i xv = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x));
  return _mm256_fmadd_ps(_mm256_cvtepi32_ps(dot4_u8s8(w, xv)), scale, acc);
}
inline __m256 q_fma_s(__m256i aw, __m256i sw, const int8_t* x, __m256 scale, __m256 acc) {
  const __m256i xv = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x));
  return _mm256_fmadd_ps(_mm256_cvtepi32_ps(dot4_u8s8(aw, _mm256_sign_epi8(xv, sw))), scale, acc);
}

// Bit s of every byte -> 16 or 0 (a Q5 group's bit plane s, kQ5Planes). The 16-bit shifts move
// bits between the bytes of a pair, but the mask keeps only the bit that came from the same byte.
inline __m256i fifth_plane(__m256i planes, int s) {
  const __m256i b = s <= 4 ? _mm256_slli_epi16(planes, 4 - s) : _mm256_srli_epi16(planes, s - 4);
  return _mm256_and_si256(b, _mm256_set1_epi8(16));
}

// 32 bits -> 32 bytes: byte i is 16 where bit i is set, else 0 (a Q5 block's word in element order).
inline __m256i fifth_bits(uint32_t bits) {
  const __m256i spread = _mm256_shuffle_epi8(
      _mm256_set1_epi32(int(bits)),
      _mm256_setr_epi8(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 2, 2, 2, 2, 2, 2, 3, 3, 3, 3, 3, 3, 3, 3));
  const __m256i bit = _mm256_set1_epi64x(int64_t(0x8040201008040201ull));
  return _mm256_and_si256(_mm256_cmpeq_epi8(_mm256_and_si256(spread, bit), bit), _mm256_set1_epi8(16));
}

// The stored values (0..15, 0..31 with fifth bits) of blocks b, b + 1 of a whole group from one
// 32-byte load at qs (their nibbles): lo = elements 0-15 of both, hi = elements 16-31 (Q8Acts::qp's
// order); with `five`, bit planes k and k + 1 of the group's planes (kQ5Planes) added.
inline void q4_pair_values(const uint8_t* qs, bool five, __m256i planes, int k, __m256i& lo, __m256i& hi) {
  const __m256i raw = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(qs)), m0f = _mm256_set1_epi8(15);
  lo = _mm256_and_si256(raw, m0f);
  hi = _mm256_and_si256(_mm256_srli_epi16(raw, 4), m0f);
  if (five) {
    lo = _mm256_or_si256(lo, fifth_plane(planes, k));
    hi = _mm256_or_si256(hi, fifth_plane(planes, k + 1));
  }
}

// The stored values of one block in element order (a block after the last whole group), with its
// GGUF fifth-bit word when qh is not null.
inline __m256i q4_block_values(const uint8_t* qs, const uint32_t* qh) {
  const __m256i w = q4_unpack_block(qs);
  return qh ? _mm256_or_si256(w, fifth_bits(*qh)) : w;
}

// acc += block dot x scale for weights w holding the stored values (0..15 or 0..31): unsigned as
// they are (formats with a minimum), else offset by `bias` into signed values.
inline __m256 q_fma_w(__m256i w, bool has_min, __m256i bias, const int8_t* x, __m256 scale, __m256 acc) {
  if (has_min) return q_fma_u(w, x, scale, acc);
  const __m256i sw = _mm256_sub_epi8(w, bias);
  return q_fma_s(_mm256_sign_epi8(sw, sw), sw, x, scale, acc);
}

// Weight rows r .. r + RW - 1 against RX activation rows (RW * RX <= 4): out[m * RW + w] = row
// r + w . x_m. Q4_0 / Q4_1, and Q5_0 / Q5_1 (Five: the fifth bits added from qh). A pair of blocks
// b, b + 1 is one 32-byte load whose low nibbles are elements 0-15 of both and whose high nibbles
// are elements 16-31: two and/shift results against the activations in the same order
// (Q8Acts::qp). The accumulators then hold lanes [0-3, 8-11] and [4-7, 12-15] of the header's 16
// (each lane still takes its blocks' products in order, with their scales) and are put back in
// order at the end. The whole pairs of a last group of fewer than 8 (Q4 only: Q5's fifth bits are
// laid out per whole group) run the same way with scalar scales; what is left (Q5's partial group,
// an odd last block) runs one block at a time in element order. Each row's lanes see the same
// operations whatever RW, so the bits do not depend on it.
// Decode takes one row per step, except for short rows (gguf_rows_gemv): two rows per step were
// faster on L3-resident matrices (two independent FMA chains), but decode reads its weights from
// DRAM, and there the second row's three more streams (nibbles, scales, minimums) cost more than
// the chains gain on long rows: one row decodes SmolLM2-135M (Q4_1) 1.25x faster at one Zen 3
// thread (docs/benchmarks.md).
template <int RW, int RX, bool Five, bool HasMin>
inline void q4_rows_avx2(const Q4Layout& L, int bias, size_t r, const int8_t* const* xq, const int8_t* const* xp,
                         const float* const* xd, const float* const* sx, float* out) {
  static_assert(RW * RX <= 4);
  const size_t nb = L.nb;
  const uint8_t* qs[RW];   // [nb*16] nibbles
  const uint32_t* qh[RW];  // [nb] fifth bits (Q5)
  const uint16_t* wd[RW];  // [nb] f16 scales
  const uint16_t* wm[RW];  // [nb] f16 minimums (Q4_1, Q5_1)
  for (int w = 0; w < RW; ++w) {
    qs[w] = L.qs + (r + w) * nb * 16;
    qh[w] = Five ? L.qh + (r + w) * nb : nullptr;
    wd[w] = L.d + (r + w) * nb;
    wm[w] = HasMin ? L.m + (r + w) * nb : nullptr;
  }
  __m256 acc[RX][RW][2];
  alignas(32) float macc[RX][RW][16];  // lane b mod 16 (updated once per 8 blocks: kept in memory)
  for (int m = 0; m < RX; ++m)
    for (int w = 0; w < RW; ++w) {
      acc[m][w][0] = acc[m][w][1] = _mm256_setzero_ps();
      if (HasMin) std::fill_n(macc[m][w], 16, 0.f);
    }
  const __m256i vbias = _mm256_set1_epi8(char(bias));
  alignas(32) float sp[RX][RW][4][8];  // pair p of the group: [sc_2p x4, sc_2p+1 x4]
  size_t g = 0;
  for (; g + 8 <= nb; g += 8) {
    for (int w = 0; w < RW; ++w) {
      const __m256 dw = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(wd[w] + g)));
      for (int m = 0; m < RX; ++m) {
        const __m256 sc = _mm256_mul_ps(dw, _mm256_loadu_ps(xd[m] + g));
        for (int p = 0; p < 4; ++p)
          _mm256_store_ps(sp[m][w][p], _mm256_permutevar8x32_ps(sc, _mm256_setr_epi32(2 * p, 2 * p, 2 * p, 2 * p, 2 * p + 1,
                                                                                    2 * p + 1, 2 * p + 1, 2 * p + 1)));
      }
      if (HasMin) {
        const __m256 mw = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(wm[w] + g)));
        for (int m = 0; m < RX; ++m) {
          float* ml = macc[m][w] + (g % 16);
          _mm256_store_ps(ml, _mm256_fmadd_ps(mw, _mm256_loadu_ps(sx[m] + g), _mm256_load_ps(ml)));
        }
      }
      for (size_t k = 0; k < 2; ++k) prefetch_line(uintptr_t(qs[w] + g * 16 + 64 * k + kGgufPrefetchAhead));
      q4_prefetch_scales(wd[w], HasMin ? wm[w] : nullptr, Five ? qh[w] : nullptr, g);
    }
#pragma GCC unroll 4
    for (size_t k = 0; k < 8; k += 2) {  // unrolled: the plane shifts become immediates
      const size_t b = g + k;
      for (int w = 0; w < RW; ++w) {
        // Five: the group's fifth bits (kQ5Planes layout)
        const __m256i planes = Five ? _mm256_loadu_si256(reinterpret_cast<const __m256i*>(qh[w] + g)) : _mm256_setzero_si256();
        __m256i lo, hi;
        q4_pair_values(qs[w] + b * 16, Five, planes, int(k), lo, hi);
        for (int m = 0; m < RX; ++m) {
          const __m256 s = _mm256_load_ps(sp[m][w][k / 2]);
          acc[m][w][0] = q_fma_w(lo, HasMin, vbias, xp[m] + b * 32, s, acc[m][w][0]);
          acc[m][w][1] = q_fma_w(hi, HasMin, vbias, xp[m] + b * 32 + 32, s, acc[m][w][1]);
        }
      }
    }
  }
  if (!Five)
    for (; g + 2 <= nb; g += 2)
      for (int w = 0; w < RW; ++w) {
        __m256i lo, hi;
        q4_pair_values(qs[w] + g * 16, false, _mm256_setzero_si256(), 0, lo, hi);
        const float d0 = _cvtsh_ss(wd[w][g]), d1 = _cvtsh_ss(wd[w][g + 1]);
        for (int m = 0; m < RX; ++m) {
          const __m256 s = _mm256_setr_m128(_mm_set1_ps(d0 * xd[m][g]), _mm_set1_ps(d1 * xd[m][g + 1]));
          acc[m][w][0] = q_fma_w(lo, HasMin, vbias, xp[m] + g * 32, s, acc[m][w][0]);
          acc[m][w][1] = q_fma_w(hi, HasMin, vbias, xp[m] + g * 32 + 32, s, acc[m][w][1]);
          if (HasMin)
            for (size_t b = g; b < g + 2; ++b)
              macc[m][w][b % 16] = std::fma(_cvtsh_ss(wm[w][b]), sx[m][b], macc[m][w][b % 16]);
        }
      }
  for (int w = 0; w < RW; ++w) {
    __m256 a[RX][2];  // back to the header's lanes: [0] = 0-7, [1] = 8-15
    for (int m = 0; m < RX; ++m) {
      a[m][0] = _mm256_permute2f128_ps(acc[m][w][0], acc[m][w][1], 0x20);
      a[m][1] = _mm256_permute2f128_ps(acc[m][w][0], acc[m][w][1], 0x31);
    }
    for (size_t b = g; b < nb; ++b) {
      const __m256i v = q4_block_values(qs[w] + b * 16, Five ? qh[w] + b : nullptr);
      const float dwb = _cvtsh_ss(wd[w][b]);
      for (int m = 0; m < RX; ++m) {
        a[m][b % 2] = q_fma_w(v, HasMin, vbias, xq[m] + b * 32, _mm256_set1_ps(dwb * xd[m][b]), a[m][b % 2]);
        if (HasMin) macc[m][w][b % 16] = std::fma(_cvtsh_ss(wm[w][b]), sx[m][b], macc[m][w][b % 16]);
      }
    }
    for (int m = 0; m < RX; ++m)  // q8_lanes_sum of macc's two halves is q8_tree_sum(macc), in registers
      out[m * RW + w] = HasMin ? q8_lanes_sum(a[m][0], a[m][1]) +
                                     q8_lanes_sum(_mm256_load_ps(macc[m][w]), _mm256_load_ps(macc[m][w] + 8))
                               : q8_lanes_sum(a[m][0], a[m][1]);
  }
}

// One Q4_0 / Q4_1 / Q5_0 / Q5_1 kernel call for rows r .. r + RW - 1: q4_rows_avx2 with the
// format's constants.
template <int RW, int RX>
inline void q4_family_avx2(const MatrixView& W, size_t r, const int8_t* const* xq, const int8_t* const* xp,
                           const float* const* xd, const float* const* sx, float* out) {
  const Q4Layout L = q4_layout(W);
  const int bias = q4_bias(W.dtype);
  switch (W.dtype) {
    case DType::Q4_0: return q4_rows_avx2<RW, RX, false, false>(L, bias, r, xq, xp, xd, sx, out);
    case DType::Q4_1: return q4_rows_avx2<RW, RX, false, true>(L, bias, r, xq, xp, xd, sx, out);
    case DType::Q5_0: return q4_rows_avx2<RW, RX, true, false>(L, bias, r, xq, xp, xd, sx, out);
    default: return q4_rows_avx2<RW, RX, true, true>(L, bias, r, xq, xp, xd, sx, out);
  }
}

// Q4_K: one weight row against RX activation rows (RX <= 4).
template <int RX>
inline void q4k_row_avx2(const uint8_t* row, size_t nsb, const int8_t* const* xq, const float* const* xd,
                         const float* const* sx, float* out) {
  __m256 acc[RX][2];
  alignas(32) float macc[RX][16] = {};  // lane b mod 16: 8 lanes per super-block parity
  for (int m = 0; m < RX; ++m) acc[m][0] = acc[m][1] = _mm256_setzero_ps();
  const __m256i m0f = _mm256_set1_epi8(15);
  alignas(32) float S[RX][8];
  for (size_t s = 0; s < nsb; ++s) {
    const uint8_t* blk = row + s * kQ4KBytes;
    prefetch_line(uintptr_t(blk + kGgufPrefetchAhead));
    prefetch_line(uintptr_t(blk + 64 + kGgufPrefetchAhead));
    prefetch_line(uintptr_t(blk + 128 + kGgufPrefetchAhead));
    const __m128i sm = k4_scales_mins_vec(blk);  // bytes 0-7: the 8 six-bit scales, 8-15: the minimums
    const __m256 dl = _mm256_mul_ps(_mm256_set1_ps(h2f_avx2(blk)), _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(sm)));
    const __m256 ml = _mm256_mul_ps(_mm256_set1_ps(h2f_avx2(blk + 2)),
                                    _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_srli_si128(sm, 8))));
    const size_t b0 = s * 8;
    for (int m = 0; m < RX; ++m) {
      _mm256_store_ps(S[m], _mm256_mul_ps(dl, _mm256_loadu_ps(xd[m] + b0)));
      float* mlanes = macc[m] + 8 * (s % 2);
      _mm256_store_ps(mlanes, _mm256_fmadd_ps(ml, _mm256_loadu_ps(sx[m] + b0), _mm256_load_ps(mlanes)));
    }
    for (int p = 0; p < 4; ++p) {  // groups 2p, 2p+1: the low and high nibbles of 32 bytes
      const __m256i raw = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(blk + 16 + p * 32));
      const __m256i lo = _mm256_and_si256(raw, m0f), hi = _mm256_and_si256(_mm256_srli_epi16(raw, 4), m0f);
      for (int m = 0; m < RX; ++m) {
        const int8_t* x = xq[m] + (b0 + 2 * p) * 32;
        acc[m][0] = q_fma_u(lo, x, _mm256_broadcast_ss(&S[m][2 * p]), acc[m][0]);
        acc[m][1] = q_fma_u(hi, x + 32, _mm256_broadcast_ss(&S[m][2 * p + 1]), acc[m][1]);
      }
    }
  }
  for (int m = 0; m < RX; ++m)  // q8_lanes_sum of macc's halves is q8_tree_sum(macc)
    out[m] = q8_lanes_sum(acc[m][0], acc[m][1]) - q8_lanes_sum(_mm256_load_ps(macc[m]), _mm256_load_ps(macc[m] + 8));
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

// Rows [r0, r0 + P) of a Q4_0 / Q5_0 matrix as Q8 rows (quant.hpp's layout: value + 128, the same
// f16 scale): q - 8 / q - 16 is an int8 value with the block's own scale, so every weight keeps its
// exact value, and quant.hpp's AVX2 tiles compute each lane's exact int32 dot and the same FMA with
// d * dx as q4_rows_avx2 does: the same bits. qs: [P][nb*32], d: [P][nb].
inline void q4_rows_to_q8(const MatrixView& W, size_t r0, size_t P, uint8_t* qs, uint16_t* d) {
  const Q4Layout L = q4_layout(W);
  const size_t nb = L.nb, full = nb / 8 * 8;
  // stored value + (128 - bias) = value - bias + 128
  const __m256i off = _mm256_set1_epi8(char(128 - q4_bias(W.dtype)));
  for (size_t i = 0; i < P; ++i) {
    const size_t r = r0 + i;
    const uint8_t* src = L.qs + r * nb * 16;
    uint8_t* dst = qs + i * nb * kQ8Block;
    std::memcpy(d + i * nb, L.d + r * nb, nb * sizeof(uint16_t));
    for (size_t g = 0; g < full; g += 8) {
      __m256i planes = _mm256_setzero_si256();
      if (L.qh) planes = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(L.qh + r * nb + g));
#pragma GCC unroll 4
      for (size_t k = 0; k < 8; k += 2) {  // blocks g + k, g + k + 1 (lo: elements 0-15 of both)
        __m256i lo, hi;
        q4_pair_values(src + (g + k) * 16, L.qh != nullptr, planes, int(k), lo, hi);
        lo = _mm256_add_epi8(lo, off);
        hi = _mm256_add_epi8(hi, off);
        auto* out = reinterpret_cast<__m256i*>(dst + (g + k) * kQ8Block);
        _mm256_storeu_si256(out, _mm256_permute2x128_si256(lo, hi, 0x20));      // block g + k
        _mm256_storeu_si256(out + 1, _mm256_permute2x128_si256(lo, hi, 0x31));  // block g + k + 1
      }
    }
    for (size_t b = full; b < nb; ++b) {
      const __m256i w = q4_block_values(src + b * 16, L.qh ? L.qh + r * nb + b : nullptr);
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(dst + b * kQ8Block), _mm256_add_epi8(w, off));
    }
  }
}
#else
constexpr bool kQ4Avx2 = false;
#endif

// The fast path compiled in: "AVX512-VNNI", "AVX2" or "portable".
inline const char* gguf_kernel_name() { return kQ4Vnni ? "AVX512-VNNI" : kQ4Avx2 ? "AVX2" : "portable"; }
// Most activation rows a row kernel takes at once (gemm): 8 with AVX-512's 32 registers, 4 with
// AVX2's 16.
constexpr int kGgufMaxRx = kQ4Vnni ? 8 : 4;

// out[m] = row r of W . activation row m, for RX rows; vector kernel when compiled in. xp: the
// activation rows in Q8Acts::qp's order (the Q4_0 / Q4_1 / Q5_0 / Q5_1 vector kernels).
template <int RX>
inline void gguf_row(const MatrixView& W, size_t r, const int8_t* const* xq, const int8_t* const* xp,
                     const float* const* xd, const float* const* sx, float* out) {
  (void)xp;
#if defined(__AVX512VNNI__) && defined(__AVX512BW__)
  switch (W.dtype) {
    case DType::Q4_0: case DType::Q4_1: case DType::Q5_0: case DType::Q5_1:
      return q4_row_vnni<RX>(q4_layout(W), q4_bias(W.dtype), r, xp, xd, sx, out);
    case DType::Q4_K: {
      const size_t nsb = W.cols / kSuperBlock;
      return q4k_row_vnni<RX>(static_cast<const uint8_t*>(W.data) + r * nsb * kQ4KBytes, nsb, xq, xd, sx, out);
    }
    default: {
      const size_t nsb = W.cols / kSuperBlock;
      return q6k_row_vnni<RX>(static_cast<const uint8_t*>(W.data) + r * nsb * kQ6KBytes, nsb, xq, xd, out);
    }
  }
#elif defined(FATHOM_KERNELS_AVX2_INT8)
  if constexpr (RX > 4) {  // 16 registers: two halves
    gguf_row<RX / 2>(W, r, xq, xp, xd, sx, out);
    gguf_row<RX - RX / 2>(W, r, xq + RX / 2, xp + RX / 2, xd + RX / 2, sx + RX / 2, out + RX / 2);
    return;
  } else switch (W.dtype) {
    case DType::Q4_0: case DType::Q4_1: case DType::Q5_0: case DType::Q5_1:
      return q4_family_avx2<1, RX>(W, r, xq, xp, xd, sx, out);
    case DType::Q4_K: {
      const size_t nsb = W.cols / kSuperBlock;
      return q4k_row_avx2<RX>(static_cast<const uint8_t*>(W.data) + r * nsb * kQ4KBytes, nsb, xq, xd, sx, out);
    }
    default: {
      const size_t nsb = W.cols / kSuperBlock;
      return q6k_row_avx2<RX>(static_cast<const uint8_t*>(W.data) + r * nsb * kQ6KBytes, nsb, xq, xd, out);
    }
  }
#else
  for (int m = 0; m < RX; ++m) out[m] = gguf_row_dot_portable(W.dtype, W, r, xq[m], xd[m], sx[m]);
#endif
}

// Rows of at most this many blocks decode two at a time (Q4_0/Q4_1/Q5_0/Q5_1): the second row's
// chain against its streams (nibbles, scales, minimums). AVX512-VNNI on a Zen 5 thread, from DRAM:
// two rows 1.1-1.3x one on rows of 48-160 blocks, 0.64-0.97x on rows of 224-448 (Q4_1 worst);
// AVX2 on a Zen 3 thread: 1536-wide rows (48 blocks) already lose 20-27 %.
constexpr size_t kGgufShortRow = kQ4Vnni ? 160 : 32;
// Q4_0 / Q4_1 / Q5_0 / Q5_1 rows of at most this many blocks decode four at a time with
// AVX512-VNNI, and the rows' nibbles, scales, minimums and fifth bits are prefetched as contiguous
// streams (StreamPrefetch) rather than per group of each row: SmolLM2's 576-wide rows (18 blocks)
// spent more on each row's fixed costs (scales, prefetches, the sums' tree) and on the chain of its
// FMAs than on its 360 bytes. One Zen 5 thread, from DRAM, against two rows with their own
// prefetches: Q4_1 1.10-1.65x on rows of 18-48 blocks (the small matrices most), 0.83x at 80
// blocks and 0.49x at 152, where the per-group prefetches keep ahead better; Q5_0 / Q5_1 (with
// their fifth bits' masks made per group) 1.09-1.44x at 28 blocks (Qwen2.5-0.5B's 896-wide rows),
// 1.04-1.27x at 48, 0.98-1.09x at 64, 0.72-1.03x at 80. docs/benchmarks.md, "Decode streams" and
// "Q5 fifth bits by group".
constexpr size_t kQ4FourRows = kQ4Vnni ? 48 : 0;

// y[r] for r in [r0, r1), one activation row (decode).
inline void gguf_rows_gemv(const MatrixView& W, const Q8Acts& A, size_t r0, size_t r1, float* y) {
  const int8_t* xq[1] = {A.qs.data()};
  const int8_t* xp[1] = {A.qp.data()};
  const float* xd[1] = {A.d.data()};
  const float* sx[1] = {A.sx.data()};
#if defined(FATHOM_KERNELS_AVX2_INT8)
  if (is_q4_family(W.dtype) && A.nb <= kGgufShortRow) {  // short rows: two per step (q4_rows_avx2)
    size_t r = r0;
    for (; r + 2 <= r1; r += 2) q4_family_avx2<2, 1>(W, r, xq, xp, xd, sx, y + r);
    if (r < r1) q4_family_avx2<1, 1>(W, r, xq, xp, xd, sx, y + r);
    return;
  }
#elif defined(__AVX512VNNI__) && defined(__AVX512BW__)
  if (is_q4_family(W.dtype) && A.nb <= kGgufShortRow) {  // short rows: two or four chains per step
    const Q4Layout L = q4_layout(W);
    const int bias = q4_bias(W.dtype);
    const size_t nb = L.nb;
    size_t r = r0;
    if (nb <= kQ4FourRows) {
      const bool l2 = gguf_prefetch_l2();
      StreamPrefetch pq(L.qs + r0 * nb * 16, kGgufPrefetchAhead, l2), pd(L.d + r0 * nb, kGgufPrefetchAhead / 8, l2),
          pm = L.m ? StreamPrefetch(L.m + r0 * nb, kGgufPrefetchAhead / 8, l2) : StreamPrefetch(),
          ph = L.qh ? StreamPrefetch(L.qh + r0 * nb, kGgufPrefetchAhead / 4, l2) : StreamPrefetch();
      auto stream_to = [&](size_t row) {  // the rows before `row`, and kGgufPrefetchAhead beyond
        pq.to(L.qs + row * nb * 16);
        pd.to(L.d + row * nb);
        if (L.m) pm.to(L.m + row * nb);
        if (L.qh) ph.to(L.qh + row * nb);
      };
      with_q4_fmt(W.dtype, [&](auto fmt) {
        for (; r + 4 <= r1; r += 4) {
          stream_to(r + 4);
          q4_rows_vnni<4, 1, false, fmt>(L, bias, r, xp, xd, sx, y + r);
        }
      });
      stream_to(r1);
      for (; r < r1; ++r) q4_rows_vnni<1, 1, false>(L, bias, r, xp, xd, sx, y + r);
      return;
    }
    with_q4_fmt(W.dtype, [&](auto fmt) {
      for (; r + 2 <= r1; r += 2) q4_rows_vnni<2, 1, true, fmt>(L, bias, r, xp, xd, sx, y + r);
    });
    if (r < r1) q4_rows_vnni<1, 1>(L, bias, r, xp, xd, sx, y + r);
    return;
  }
#endif
  for (size_t r = r0; r < r1; ++r) gguf_row<1>(W, r, xq, xp, xd, sx, y + r);
}

// Y[t, r] for t in [0, n), r in [r0, r1): each weight row against kGgufMaxRx (8 / 4), then 4, then
// 1 activation rows at a time (its blocks unpacked once for all of them), token blocks of ~24 KB
// of activations (L1-resident while every row of the range passes; the rows come from L2).
inline void gguf_rows_gemm(const MatrixView& W, const Q8Acts& A, size_t n, size_t r0, size_t r1, float* Y) {
  const size_t nb = A.nb, N = W.rows;
  const size_t tb = std::max<size_t>(8, (size_t(24) << 10) / (nb * kQ8Block) / 8 * 8);
  for (size_t t0 = 0; t0 < n; t0 += tb) {
    const size_t t1 = std::min(n, t0 + tb);
    for (size_t r = r0; r < r1; ++r) {
      size_t t = t0;
      auto run = [&](auto rx) {
        constexpr int RX = decltype(rx)::value;
        const int8_t *xq[RX], *xp[RX];
        const float *xd[RX], *sx[RX];
        for (int m = 0; m < RX; ++m) {
          xq[m] = A.qs.data() + (t + m) * nb * kQ8Block;
          xp[m] = A.qp.data() + (A.qp.empty() ? 0 : (t + m) * nb * kQ8Block);
          xd[m] = A.d.data() + (t + m) * nb;
          sx[m] = A.sx.data() + (t + m) * nb;
        }
        float out[RX];
        gguf_row<RX>(W, r, xq, xp, xd, sx, out);
        for (int m = 0; m < RX; ++m) Y[(t + m) * N + r] = out[m];
      };
      if constexpr (kGgufMaxRx >= 8)
        for (; t + 8 <= t1; t += 8) run(std::integral_constant<int, 8>{});
      for (; t + 4 <= t1; t += 4) run(std::integral_constant<int, 4>{});
      for (; t < t1; ++t) run(std::integral_constant<int, 1>{});
    }
  }
}

// Prompts. Q4_0 / Q5_0 run on quant.hpp's Q8 tiles (4 weight rows x 2 activation rows per step,
// where the native kernel takes one weight row), each band of 64 rows converted to Q8 in a
// per-thread buffer first (q4_rows_to_q8: exact, the same bits as the native kernel). Q5_0
// 896 x 4864 and 4864 x 896 x 512 tokens, one Zen 3 thread (AVX2, bench_gemm): 1.10 / 1.20x Q8's
// time natively, 1.04 / 1.07x converted; a band's conversion costs about one activation row. One
// Zen 5 thread (AVX512-VNNI), 256 tokens: converted 1.37-1.60x native Q5_0, 1.26-1.37x Q4_0.
inline void gemm_gguf_block(const MatrixView& W, const float* X, size_t n, float* Y) {
  thread_local Q8Acts acts;  // [n][nb*32] quantised activations and their block sums
  acts.assign(X, n, W.cols);
  const Q8Acts& A = acts;
  const int threads = worker_count(W.rows * W.cols * n);
#if defined(FATHOM_KERNELS_AVX2_INT8) || (defined(__AVX512VNNI__) && defined(__AVX512BW__))
  if ((W.dtype == DType::Q4_0 || W.dtype == DType::Q5_0) && n >= 8) {  // fewer rows: not worth converting
    constexpr size_t kBand = 64;
    const size_t nb = W.cols / kQ4Block;
    parallel_chunks((W.rows + kBand - 1) / kBand, threads, [&](size_t b, size_t e) {
      thread_local WeightBuffer panel;  // [kBand][nb*32] values + 128, then [kBand][nb] f16 scales
      const size_t need = kBand * nb * (kQ8Block + 2);
      if (panel.size() < need) panel = WeightBuffer(need);
      uint8_t* qs = panel.as<uint8_t>();
      auto* d = reinterpret_cast<uint16_t*>(qs + kBand * nb * kQ8Block);
      for (size_t band = b; band < e; ++band) {
        const size_t r0 = band * kBand, P = std::min(kBand, W.rows - r0);
        q4_rows_to_q8(W, r0, P, qs, d);
        const Q8Layout Lp{qs, d, nb};
        q8_rows(Lp, A, n, W.rows, 0, P, Y + r0);
      }
    });
    return;
  }
#endif
  parallel_chunks(W.rows, threads, [&](size_t b, size_t e) { gguf_rows_gemm(W, A, n, b, e, Y); });
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
// elements GGUF blocks). Q4_0 / Q4_1 / Q5_0 / Q5_1 are re-laid (nibbles, fifth bits, scales and
// minimums apart), Q4_K / Q6_K copied. Throws FormatError naming the row and block of a non-finite
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
  if (t == DType::Q4_K || t == DType::Q6_K) {
    for (size_t r = 0; r < rows; ++r) {
      const auto* row = reinterpret_cast<const uint8_t*>(src(r));
      for (size_t b = 0; b < nb; ++b) {
        const uint8_t* blk = row + b * bb;
        if (t == DType::Q4_K ? !(std::isfinite(detail::h2f(blk)) && std::isfinite(detail::h2f(blk + 2)))
                             : !std::isfinite(detail::h2f(blk + 208)))
          bad(r, b);
      }
      std::memcpy(M.data() + r * nb * bb, row, nb * bb);
    }
    return M;
  }
  // GGUF blocks: f16 d, f16 m (with a minimum), u32 qh (Q5), 16 bytes of nibbles
  const detail::Q4Layout L = detail::q4_layout(M.view());
  auto* qs = const_cast<uint8_t*>(L.qs);   // [rows][nb*16]
  auto* qh = const_cast<uint32_t*>(L.qh);  // [rows][nb] (Q5)
  auto* d = const_cast<uint16_t*>(L.d);    // [rows][nb]
  auto* m = const_cast<uint16_t*>(L.m);    // [rows][nb] (Q4_1, Q5_1)
  const size_t hoff = m ? 4 : 2, qoff = hoff + (qh ? 4 : 0);
  for (size_t r = 0; r < rows; ++r) {
    const auto* row = reinterpret_cast<const uint8_t*>(src(r));
    for (size_t b = 0; b < nb; ++b) {
      const uint8_t* blk = row + b * bb;
      const size_t i = r * nb + b;
      std::memcpy(&d[i], blk, 2);
      if (m) std::memcpy(&m[i], blk + 2, 2);
      if (!std::isfinite(f16_to_f32(d[i])) || (m && !std::isfinite(f16_to_f32(m[i])))) bad(r, b);
      if (qh) std::memcpy(&qh[i], blk + hoff, 4);
      std::memcpy(qs + i * 16, blk + qoff, 16);
    }
    if (qh) detail::q5_to_planes(qh + r * nb, nb);
    detail::q4_to_lanes(qs + r * nb * 16, qh ? qh + r * nb : nullptr, nb);
  }
  return M;
}

}  // namespace fathom::kernels
