#pragma once
// Q8: an 8-bit block format for weights (ggml's q8_0 idea, fathom's own layout).
//
// Each row of W[rows, cols] is cut into nb = ceil(cols / 32) blocks of 32 consecutive elements
// (the last one zero padded). A block stores 32 8-bit values q in [-127, 127] and one scale d as
// IEEE half (f16); the element is q * d, with d = max|w| / 127 rounded to f16 and q = round(w / d).
// The values are stored offset by 128 (as uint8 q + 128, so 0 is stored as 128), the form the
// unsigned operand of vpdpbusd takes.
// A half scale keeps the format at 34 bytes per 32 weights (1.0625 B/weight), which is what decode
// speed is made of; its range (6e-8 .. 65504) covers weights, whose block maxima are far from
// either end (a block whose max|w| < 127 * 6e-8 is stored as zeros).
//
// Memory layout of the buffer a Q8 MatrixView's `data` points to (64-byte aligned):
//   uint8  qs[rows][nb * 32]     q + 128, row after row (padding: 128, i.e. q = 0)
//   uint16 d [rows][nb]          the f16 scales, starting right after qs (byte rows * nb * 32)
// Splitting values and scales keeps every row's values 32-byte aligned for vector loads.
//
// The products quantise the activations on the fly to the same blocks (int8 values, f32 scale)
// and sum exact int32 block dot products, scaled in f32:  y[r] = sum_b dw[r,b] dx[b] (qw[r,b] . qx[b]).
// With AVX512-VNNI the block dots use vpdpbusd (unsigned weights q + 128 x signed activations),
// starting from -128 * sum(qx), which is computed once per activation block and shared by every
// weight row; without VNNI a portable integer loop does the same sums.
#include <algorithm>
#include <atomic>
#include <bit>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "fathom/core/dtype.hpp"
#include "fathom/core/error.hpp"
#include "fathom/kernels/convert.hpp"
#include "fathom/kernels/matrix.hpp"
#include "fathom/kernels/parallel.hpp"
#include "fathom/kernels/prefetch.hpp"
#include "fathom/kernels/simd.hpp"
#include "fathom/kernels/weight_buffer.hpp"

// The AVX2 integer kernels (below, and quant4.hpp's) where AVX512-VNNI is not targeted.
#if !(defined(__AVX512VNNI__) && defined(__AVX512BW__)) && defined(__AVX2__) && defined(__FMA__) && defined(__F16C__)
#define FATHOM_KERNELS_AVX2_INT8 1
#endif

namespace fathom::kernels {

constexpr size_t kQ8Block = 32;

inline size_t q8_blocks(size_t cols) { return (cols + kQ8Block - 1) / kQ8Block; }
inline size_t q8_bytes(size_t rows, size_t cols) { return rows * q8_blocks(cols) * (kQ8Block + 2); }

namespace detail {

// f32 -> f16 bits, round to nearest even, overflow to inf, NaN kept (Maratyszcza's FP16 method).
inline uint16_t f32_to_f16(float f) {
  const float scale_to_inf = 0x1.0p+112f, scale_to_zero = 0x1.0p-110f;
  float base = (std::fabs(f) * scale_to_inf) * scale_to_zero;
  const uint32_t w = std::bit_cast<uint32_t>(f);
  const uint32_t shl1_w = w + w, sign = w & 0x80000000u;
  uint32_t bias = shl1_w & 0xff000000u;
  if (bias < 0x71000000u) bias = 0x71000000u;
  base = std::bit_cast<float>((bias >> 1) + 0x07800000u) + base;
  const uint32_t bits = std::bit_cast<uint32_t>(base);
  const uint32_t nonsign = ((bits >> 13) & 0x00007c00u) + (bits & 0x00000fffu);
  return uint16_t((sign >> 16) | (shl1_w > 0xff000000u ? 0x7e00u : nonsign));
}

// Pointers into a Q8 matrix (see the layout above).
struct Q8Layout {
  const uint8_t* qs;   // [rows][nb*32] q + 128
  const uint16_t* d;   // [rows][nb]
  size_t nb;
};
inline Q8Layout q8_layout(const MatrixView& W) {
  const size_t nb = q8_blocks(W.cols);
  const auto* base = static_cast<const uint8_t*>(W.data);
  return {base, reinterpret_cast<const uint16_t*>(base + W.rows * nb * kQ8Block), nb};
}

// Activations quantised per block: qs = q in [-127, 127] (padding 0), d = max|x| / 127 in f32.
struct Q8Acts {
#if defined(__AVX512F__) && defined(__AVX512BW__)
  // n <= 16 whole blocks of a row (x: [n * 32]) with vectors, the scalar loop's arithmetic (the
  // maximum is exact, then x * (1/d) rounded to nearest even and clamped), so the same q. The
  // blocks' maxima are gathered into one register first (a transposing tree of maxima), so that d
  // and 1/d are one division each for all of them. lohi: [2n] the sums of each block's halves.
  // False, nothing written: a block holds inf or NaN (the scalar loop makes it NaN).
  // Decode quantises x before every product, on the calling thread: one block at a time (a
  // vector maximum folded, the values converted and summed in scalar code) took 0.32 us for 576
  // values and 0.85 for 1536 on a Zen 4, this 0.14 and 0.29 (docs/benchmarks.md, "Zen 4:
  // decode's activations quantised 16 blocks at a time").
  static bool assign_blocks16(const float* x, size_t n, int8_t* q, float* d, int32_t* lohi) {
    __m512 a[16];  // block b's |x| folded to 16 lanes
    __mmask16 finite = 0xffff;
    const __m512 largest = _mm512_set1_ps(3.402823466e38f);
    for (size_t b = 0; b < 16; ++b) {
      if (b >= n) {
        a[b] = _mm512_setzero_ps();
        continue;
      }
      const __m512 a0 = _mm512_abs_ps(_mm512_loadu_ps(x + 32 * b)), a1 = _mm512_abs_ps(_mm512_loadu_ps(x + 32 * b + 16));
      // before the maximum, which drops a NaN in its first operand
      finite &= _mm512_cmp_ps_mask(a0, largest, _CMP_LE_OQ) & _mm512_cmp_ps_mask(a1, largest, _CMP_LE_OQ);
      a[b] = _mm512_max_ps(a0, a1);
    }
    if (finite != 0xffff) return false;
    // Four levels, each halving the vectors: 128-bit chunks, then lanes. After them lane 4k + j
    // holds block 4j + k's maximum.
    for (size_t w = 8; w >= 1; w /= 2)
      for (size_t b = 0; b < w; ++b) {
        const __m512 l = a[2 * b], h = a[2 * b + 1];
        a[b] = w == 8 ? _mm512_max_ps(_mm512_shuffle_f32x4(l, h, 0x44), _mm512_shuffle_f32x4(l, h, 0xee))
             : w == 4 ? _mm512_max_ps(_mm512_shuffle_f32x4(l, h, 0x88), _mm512_shuffle_f32x4(l, h, 0xdd))
             : w == 2 ? _mm512_max_ps(_mm512_shuffle_ps(l, h, 0x44), _mm512_shuffle_ps(l, h, 0xee))
                      : _mm512_max_ps(_mm512_shuffle_ps(l, h, 0x88), _mm512_shuffle_ps(l, h, 0xdd));
      }
    const __m512 amax = _mm512_permutexvar_ps(_mm512_set_epi32(15, 11, 7, 3, 14, 10, 6, 2, 13, 9, 5, 1, 12, 8, 4, 0), a[0]);
    const __m512 dx = _mm512_div_ps(amax, _mm512_set1_ps(127.f));
    alignas(64) float id[16];  // 1 / d, or 0 where d is 0
    _mm512_store_ps(id, _mm512_maskz_div_ps(_mm512_cmp_ps_mask(dx, _mm512_setzero_ps(), _CMP_GT_OQ), _mm512_set1_ps(1.f), dx));
    _mm512_mask_storeu_ps(d, __mmask16((1u << n) - 1u), dx);
    auto quantise = [](__m512 v, __m512 s) {  // -> 16 int8 values
      const __m512 r = _mm512_roundscale_ps(_mm512_mul_ps(v, s), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
      return _mm512_cvtepi32_epi8(_mm512_cvtps_epi32(_mm512_min_ps(_mm512_max_ps(r, _mm512_set1_ps(-127.f)), _mm512_set1_ps(127.f))));
    };
    for (size_t b = 0; b < n; ++b) {
      const __m512 s = _mm512_set1_ps(id[b]);
      const __m256i qb = _mm256_set_m128i(quantise(_mm512_loadu_ps(x + 32 * b + 16), s), quantise(_mm512_loadu_ps(x + 32 * b), s));
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(q + 32 * b), qb);
      // the halves' sums: |q + 128| summed by vpsadbw per 8 bytes, less 8 * 128 each
      const __m256i t = _mm256_sad_epu8(_mm256_xor_si256(qb, _mm256_set1_epi8(char(0x80))), _mm256_setzero_si256());
      const __m256i u = _mm256_add_epi64(t, _mm256_shuffle_epi32(t, 0x4e));
      lohi[2 * b] = _mm256_extract_epi32(u, 0) - 2048, lohi[2 * b + 1] = _mm256_extract_epi32(u, 4) - 2048;
    }
    return true;
  }
#else
  static bool assign_blocks16(const float*, size_t, int8_t*, float*, int32_t*) { return false; }
#endif

  // One whole, finite block with xsimd's vectors (builds without AVX-512, and the blocks of a group
  // holding inf or NaN): the scalar loop's arithmetic, so the same q. False: use the scalar loop.
  static bool assign_block_simd(const float* x, int8_t* q, float& dx) {
    using simd::fvec;
    constexpr size_t W = simd::W;
    if constexpr (kQ8Block % W != 0) {
      return false;
    } else {
      fvec amax(0.f);
      auto finite = fvec(0.f) == fvec(0.f);
      for (size_t i = 0; i < kQ8Block; i += W) {
        const fvec a = xsimd::abs(simd::loadu(x + i));
        finite = finite && (a <= fvec(3.402823466e38f));  // false for inf and NaN
        amax = xsimd::max(amax, a);
      }
      if (!xsimd::all(finite)) return false;  // the scalar path turns the block into NaN
      alignas(64) float lanes[W];
      amax.store_aligned(lanes);
      float m = 0.f;
      for (size_t i = 0; i < W; ++i) m = std::max(m, lanes[i]);
      dx = m / 127.f;
      const float id = dx > 0.f ? 1.f / dx : 0.f;
      alignas(64) float r[kQ8Block];
      for (size_t i = 0; i < kQ8Block; i += W) {
        const fvec v = xsimd::nearbyint(simd::loadu(x + i) * fvec(id));
        xsimd::min(xsimd::max(v, fvec(-127.f)), fvec(127.f)).store_aligned(r + i);
      }
      for (size_t i = 0; i < kQ8Block; ++i) q[i] = int8_t(r[i]);
      return true;
    }
  }

  std::vector<int8_t> qs;   // [n][nb*32]
  std::vector<float> d;     // [n][nb]
  std::vector<float> sx;    // [n][nb] d * sum(qs) of the block (the minimum terms of quant4.hpp)
  std::vector<int32_t> sumq;  // [n][nb] sum(qs) of the block (the offsets of Q4_0 / Q5_0, q4_groups.hpp)
  std::vector<int32_t> sumh;  // [n][2 nb] sums of each block's two halves (Q6_K's offsets, k6_groups.hpp)
  size_t nb = 0;
  // Rows are independent: a prompt's rows are split between the threads (each row's values are
  // the same whoever computes them).
  void assign(const float* X, size_t n, size_t cols) {
    nb = q8_blocks(cols);
    qs.resize(n * nb * kQ8Block);
    d.resize(n * nb);
    sx.resize(n * nb);
    sumq.resize(n * nb);
    sumh.resize(2 * n * nb);
    parallel_chunks(n, worker_count(n * cols * 8), [&](size_t t0, size_t t1) { assign_rows(X, t0, t1, cols); });
  }

 private:
  void assign_rows(const float* X, size_t t0, size_t t1, size_t cols) {
    const size_t whole = cols / kQ8Block;  // blocks without padding
    for (size_t t = t0; t < t1; ++t)
      for (size_t b = 0; b < nb;) {
        const size_t i = t * nb + b;
        const size_t n = std::min<size_t>(16, whole - std::min(b, whole));  // whole blocks from b on, <= 16
        if (n > 0 && assign_blocks16(X + t * cols + b * kQ8Block, n, qs.data() + i * kQ8Block, d.data() + i,
                                     sumh.data() + 2 * i)) {
          for (size_t k = i; k < i + n; ++k) sumq[k] = sumh[2 * k] + sumh[2 * k + 1], sx[k] = d[k] * float(sumq[k]);
          b += n;
          continue;
        }
        // One block at a time: without AVX-512, a group holding inf or NaN, the row's part block.
        // Summed once all of them are stored: q is stored byte by byte, and reading a block back
        // right away stalls on the stores (the whole pass 1.7x as slow on an AVX2 build).
        const size_t e = b + std::max<size_t>(n, 1);
        for (size_t j = b; j < e; ++j) {
          const size_t k = t * nb + j, len = std::min(kQ8Block, cols - j * kQ8Block);
          const float* x = X + t * cols + j * kQ8Block;
          int8_t* q = qs.data() + k * kQ8Block;
          if (len < kQ8Block || !assign_block_simd(x, q, d[k])) assign_block_scalar(x, len, q, d[k]);
        }
        for (size_t k = t * nb + b; k < t * nb + e; ++k) {
          int32_t lo = 0, hi = 0;
          for (size_t j = 0; j < kQ8Block / 2; ++j) lo += qs[k * kQ8Block + j], hi += qs[k * kQ8Block + kQ8Block / 2 + j];
          sumh[2 * k] = lo, sumh[2 * k + 1] = hi;
          sumq[k] = lo + hi;
          sx[k] = d[k] * float(lo + hi);
        }
        b = e;
      }
  }
  // Any block: `len` values (the rest of the block's 32 are padding, q = 0).
  static void assign_block_scalar(const float* x, size_t len, int8_t* q, float& dx) {
    std::fill(q, q + kQ8Block, int8_t(0));
    float amax = 0.f;
    bool finite = true;
    for (size_t i = 0; i < len; ++i) {
      finite = finite && std::isfinite(x[i]);
      amax = std::max(amax, std::fabs(x[i]));
    }
    if (!finite) {  // inf/NaN activations: the block's products become NaN, as in f32
      dx = NAN;
      return;
    }
    dx = amax / 127.f;
    const float id = dx > 0.f ? 1.f / dx : 0.f;
    for (size_t i = 0; i < len; ++i) q[i] = int8_t(std::clamp(std::nearbyint(x[i] * id), -127.f, 127.f));
  }
};

// Sum of 16 lanes in a fixed tree: halves of 8, then 4, then pairs (lanes 0+2 and 1+3), then the
// two. The VNNI kernel reduces its accumulator in exactly this order (q8_lanes_sum), so that the
// portable and vector kernels give the same bits.
inline float q8_tree_sum(const float* a) {
  float t3[8], t6[4];
  for (int i = 0; i < 8; ++i) t3[i] = a[i] + a[8 + i];
  for (int i = 0; i < 4; ++i) t6[i] = t3[i] + t3[4 + i];
  return (t6[0] + t6[2]) + (t6[1] + t6[3]);
}

// Portable block dot product: sum_b dw[b] * dx[b] * (qw[b] . qx[b]), with the VNNI kernel's
// arithmetic step for step, because a result must not depend on the machine's instruction set
// (the same model, prompt and seed give the same tokens on every CPU): 16 float lanes; lane
// 8 * (b mod 2) + i accumulates, by a fused multiply-add, the exact int32 dot of block b's bytes
// 4i..4i+3 times the block's scale dw * dx; the lanes are summed by q8_tree_sum.
inline float q8_dot_portable(const uint8_t* wq, const uint16_t* wd, const int8_t* xq,
                             const float* xd, size_t nb) {
  float acc[16] = {};
  for (size_t b = 0; b < nb; ++b) {
    const float sc = f16_to_f32(wd[b]) * xd[b];
    const uint8_t* w = wq + b * kQ8Block;
    const int8_t* x = xq + b * kQ8Block;
    float* lane = acc + 8 * (b % 2);
    for (size_t i = 0; i < 8; ++i) {
      // sum (u - 128) x = sum u x - 128 sum x. Written this way on purpose: GCC 12 with
      // AVX512-VNNI vectorises a signed x signed byte dot product into vpdpbusd (unsigned x
      // signed) and gets it wrong; the unsigned x signed form compiles correctly.
      int32_t s = 0, sx = 0;
      for (size_t k = 4 * i; k < 4 * i + 4; ++k) {
        s += int32_t(w[k]) * int32_t(x[k]);
        sx += int32_t(x[k]);
      }
      lane[i] = std::fma(float(s - 128 * sx), sc, lane[i]);
    }
  }
  return q8_tree_sum(acc);
}

#if defined(__AVX512VNNI__) && defined(__AVX512BW__)
constexpr bool kQ8Vnni = true;

// q8_tree_sum on a register (not _mm512_reduce_add_ps, whose order is the compiler's choice).
inline float q8_lanes_sum(__m512 a) {
  const __m256 t3 = _mm256_add_ps(_mm512_castps512_ps256(a),
                                  _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(a), 1)));
  const __m128 t6 = _mm_add_ps(_mm256_castps256_ps128(t3), _mm256_extractf128_ps(t3, 1));
  const __m128 t8 = _mm_add_ps(t6, _mm_movehl_ps(t6, t6));  // lanes 0, 1: t6[0]+t6[2], t6[1]+t6[3]
  return _mm_cvtss_f32(t8) + _mm_cvtss_f32(_mm_shuffle_ps(t8, t8, 1));
}

// q8_lanes_sum of four registers at once, the sums in lanes 0-3: every level of the tree adds the
// same pairs of lanes as q8_lanes_sum (the same bits), four rows per instruction. A short decode
// row (SmolLM2's 576 values: nine pairs of blocks) spent on its own tree about what two of its
// pairs cost.
inline __m128 q8_lanes_sum4(__m512 a0, __m512 a1, __m512 a2, __m512 a3) {
  // halves: 128-bit chunks [a0 lanes 0-3 + 8-11, a0 4-7 + 12-15, a1 .., a1 ..]
  const __m512 h01 = _mm512_add_ps(_mm512_shuffle_f32x4(a0, a1, _MM_SHUFFLE(1, 0, 1, 0)),
                                   _mm512_shuffle_f32x4(a0, a1, _MM_SHUFFLE(3, 2, 3, 2)));
  const __m512 h23 = _mm512_add_ps(_mm512_shuffle_f32x4(a2, a3, _MM_SHUFFLE(1, 0, 1, 0)),
                                   _mm512_shuffle_f32x4(a2, a3, _MM_SHUFFLE(3, 2, 3, 2)));
  // quarters: chunk r holds row r's four (t6)
  const __m512 q = _mm512_add_ps(_mm512_shuffle_f32x4(h01, h23, _MM_SHUFFLE(2, 0, 2, 0)),
                                 _mm512_shuffle_f32x4(h01, h23, _MM_SHUFFLE(3, 1, 3, 1)));
  const __m512 p = _mm512_add_ps(q, _mm512_permute_ps(q, _MM_SHUFFLE(1, 0, 3, 2)));  // t6[0]+t6[2], t6[1]+t6[3]
  const __m512 s = _mm512_add_ps(p, _mm512_permute_ps(p, _MM_SHUFFLE(2, 3, 0, 1)));  // lane 4r: row r's sum
  return _mm512_castps512_ps128(_mm512_permutexvar_ps(_mm512_set_epi32(0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 12, 8, 4, 0), s));
}

// v, pinned to a vector register. Depending on what a kernel is inlined into (a benchmark, a
// user's file), GCC 12 stored the activations each step uses twice (offset_corr and the product) to
// the stack and read them back as vpdpbusd's memory operand, every step: a 64-byte store forwarded
// to a load costs a Zen 4 ~3 cycles (two pairs' products: 10.1 against 4.0 cycles in a loop), and the
// Q8 decode step then ran 1.2-1.46x slower from L2/L3 (docs/benchmarks.md, "Zen 4: quad lanes").
inline __m512i in_register(__m512i v) {
  __asm__("" : "+v"(v));
  return v;
}

// -bias * sum x per 4 bytes of activations x: the offset of weights stored as value + bias (Q8: 128,
// the GGUF 4- and 5-bit formats: 8 or 16, Q6_K: 32), or zero.
inline __m512i offset_corr(int bias, __m512i x) {
  if (bias == 0) return _mm512_setzero_si512();
  return _mm512_sub_epi32(_mm512_setzero_si512(),
                          _mm512_dpbusd_epi32(_mm512_setzero_si512(), _mm512_set1_epi8(char(bias)), x));
}
// The 64 bytes of a pair of blocks at p, or (`two` false: a row's last block alone) its 32, zero above.
inline __m512i q8_load_pair(const void* p, bool two) {
  return two ? _mm512_loadu_si512(p) : _mm512_zextsi256_si512(_mm256_loadu_si256(static_cast<const __m256i*>(p)));
}

// RW weight rows x RX activation rows; each of the RW*RX results has its own accumulator and
// the same sequence of operations, so a result does not depend on the tile it was computed in.
// Two blocks (64 bytes) per step: int32 lanes 0-7 belong to the first, 8-15 to the second. Per
// 16 blocks the two scales are multiplied once (sc = dw * dx); per step and result: one
// vpdpbusd, one conversion, one permute of sc, one FMA. pf / pfd prefetch the values / scales of
// the rows ahead (prefetch.hpp; the RW rows of a tile are one row stride apart). A whole group's
// eight steps are unrolled without masks (a masked loop took ~35 instructions per pair, so one
// decode row - a single chain of FMAs - filled the reorder window): at one Zen 4 thread, decode rows
// of 576 and 896 values ran 1.15-1.22x faster from L2/L3, rows of 4864 and 14336 values 1.27-1.34x
// from DRAM (docs/benchmarks.md, "Zen 4: Q8 rows unrolled").
template <int RW, int RX>
inline void q8_tile_vnni(const uint8_t* const* wq, const uint16_t* const* wd,
                         const int8_t* const* xq, const float* const* xd, size_t nb, float* out,
                         const TilePrefetch& pf, const TilePrefetch& pfd) {
  __m512 acc[RX][RW];
  for (int m = 0; m < RX; ++m)
    for (int r = 0; r < RW; ++r) acc[m][r] = _mm512_setzero_ps();
  const __m512i pair_idx = _mm512_set_epi32(1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0);
  for (size_t g = 0; g < nb; g += 16) {
    const size_t gb = std::min<size_t>(16, nb - g);  // blocks in this group of 16
    const __mmask16 bm = __mmask16(gb == 16 ? 0xffffu : (1u << gb) - 1u);
    __m512 sc[RX][RW];
    for (int m = 0; m < RX; ++m) {
      const __m512 sx = _mm512_maskz_loadu_ps(bm, xd[m] + g);
      for (int r = 0; r < RW; ++r)
        sc[m][r] = _mm512_mul_ps(_mm512_cvtph_ps(_mm256_maskz_loadu_epi16(bm, wd[r] + g)), sx);
    }
    pfd.tile<RW>(wd[0], g * sizeof(uint16_t), 64);
    // pair j of the group: blocks g + 2j, g + 2j + 1 (`two` false: g + 2j is the row's last block)
    auto step = [&](size_t j, bool two) {
      if (j % 4 == 0) pf.tile<RW>(wq[0], (g + 2 * j) * kQ8Block, 4 * 2 * kQ8Block);  // 4 pairs ahead (prefetch.hpp)
      const size_t off = (g + 2 * j) * kQ8Block;
      const __m512i idx = _mm512_add_epi32(pair_idx, _mm512_set1_epi32(int(2 * j)));
      __m512i x[RX], corr[RX];
      for (int m = 0; m < RX; ++m) {
        x[m] = in_register(q8_load_pair(xq[m] + off, two));
        corr[m] = offset_corr(128, x[m]);
      }
      for (int r = 0; r < RW; ++r) {
        const __m512i w = q8_load_pair(wq[r] + off, two);
        for (int m = 0; m < RX; ++m) {
          const __m512i s = _mm512_dpbusd_epi32(corr[m], w, x[m]);  // exact block dots
          acc[m][r] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(s), _mm512_permutexvar_ps(idx, sc[m][r]), acc[m][r]);
        }
      }
    };
    if (gb == 16) {  // a whole group: unrolled, no masks
#pragma GCC unroll 8
      for (size_t j = 0; j < 8; ++j) step(j, true);
    } else {
      for (size_t j = 0; 2 * j < gb; ++j) step(j, 2 * j + 1 < gb);
    }
  }
  for (int m = 0; m < RX; ++m)
    for (int r = 0; r < RW; ++r) out[m * RW + r] = q8_lanes_sum(acc[m][r]);
}
#else
constexpr bool kQ8Vnni = false;
#endif

#if defined(FATHOM_KERNELS_AVX2_INT8)
// AVX2 without AVX512-VNNI (e.g. AMD Zen 2/3, Intel Haswell-Skylake): the same arithmetic on
// 8-lane registers. The 16 lanes of the header are two registers, lanes 0-7 taking the even blocks
// and lanes 8-15 the odd ones, and the exact int32 dots of 4 bytes come from vpmaddubsw (u8 x s8
// pairs -> s16, exact while no pair sum exceeds 32767) and vpmaddwd with ones, as llama.cpp's AVX2
// kernels do.
constexpr bool kQ8Avx2 = true;

// q8_tree_sum of the 16 lanes lo (0-7) and hi (8-15).
inline float q8_lanes_sum(__m256 lo, __m256 hi) {
  const __m256 t3 = _mm256_add_ps(lo, hi);
  const __m128 t6 = _mm_add_ps(_mm256_castps256_ps128(t3), _mm256_extractf128_ps(t3, 1));
  const __m128 t8 = _mm_add_ps(t6, _mm_movehl_ps(t6, t6));  // lanes 0, 1: t6[0]+t6[2], t6[1]+t6[3]
  return _mm_cvtss_f32(t8) + _mm_cvtss_f32(_mm_shuffle_ps(t8, t8, 1));
}

// int32 lane i = sum over bytes 4i..4i+3 of u * s (u unsigned, s signed; exact when every pair
// |u0 s0 + u1 s1| <= 32767).
inline __m256i dot4_u8s8(__m256i u, __m256i s) {
  return _mm256_madd_epi16(_mm256_maddubs_epi16(u, s), _mm256_set1_epi16(1));
}

// RW weight rows x RX activation rows (RW * RX <= 4: 2 accumulators per result in 16 registers).
// Per block and result: vpsignb (the weights' signs moved to the activations, so that |q| is
// the unsigned operand: q = stored ^ 0x80 in [-127, 127], |q| <= 128 for any byte), vpmaddubsw,
// vpmaddwd, a conversion and an FMA with the block's scale dw * dx (multiplied 8 blocks at a time
// and broadcast from memory). The weights' prefetch is the VNNI kernel's: 256 bytes of each row
// per 8 blocks, the scales' 64 bytes per 16 blocks.
template <int RW, int RX>
inline void q8_tile_avx2(const uint8_t* const* wq, const uint16_t* const* wd, const int8_t* const* xq,
                         const float* const* xd, size_t nb, float* out, const TilePrefetch& pf,
                         const TilePrefetch& pfd) {
  static_assert(RW * RX <= 4);
  __m256 acc[RX][RW][2];
  for (int m = 0; m < RX; ++m)
    for (int r = 0; r < RW; ++r) acc[m][r][0] = acc[m][r][1] = _mm256_setzero_ps();
  const __m256i flip = _mm256_set1_epi8(char(0x80));
  alignas(32) float sc[RX][RW][8];
  for (size_t g = 0; g < nb; g += 8) {
    const size_t gb = std::min<size_t>(8, nb - g);  // blocks in this group of 8
    if (gb == 8) {
      for (int m = 0; m < RX; ++m) {
        const __m256 sx = _mm256_loadu_ps(xd[m] + g);
        for (int r = 0; r < RW; ++r)
          _mm256_store_ps(sc[m][r], _mm256_mul_ps(_mm256_cvtph_ps(_mm_loadu_si128(
                                                      reinterpret_cast<const __m128i*>(wd[r] + g))), sx));
      }
    } else {
      for (int m = 0; m < RX; ++m)
        for (int r = 0; r < RW; ++r)
          for (size_t k = 0; k < gb; ++k) sc[m][r][k] = _cvtsh_ss(wd[r][g + k]) * xd[m][g + k];
    }
    if (g % 16 == 0) pfd.tile<RW>(wd[0], g * sizeof(uint16_t), 64);
    pf.tile<RW>(wq[0], g * kQ8Block, 8 * kQ8Block);
    auto step = [&](size_t k, int h) {  // block g + k, accumulator half h = (g + k) % 2
      const size_t off = (g + k) * kQ8Block;
      __m256i x[RX];
      for (int m = 0; m < RX; ++m) x[m] = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(xq[m] + off));
      for (int r = 0; r < RW; ++r) {
        const __m256i q = _mm256_xor_si256(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(wq[r] + off)), flip);
        const __m256i a = _mm256_sign_epi8(q, q);
        for (int m = 0; m < RX; ++m) {
          const __m256i s = dot4_u8s8(a, _mm256_sign_epi8(x[m], q));
          acc[m][r][h] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(s), _mm256_broadcast_ss(&sc[m][r][k]), acc[m][r][h]);
        }
      }
    };
    size_t k = 0;
    for (; k + 2 <= gb; k += 2) {
      step(k, 0);
      step(k + 1, 1);
    }
    if (k < gb) step(k, 0);
  }
  for (int m = 0; m < RX; ++m)
    for (int r = 0; r < RW; ++r) out[m * RW + r] = q8_lanes_sum(acc[m][r][0], acc[m][r][1]);
}
#else
constexpr bool kQ8Avx2 = false;
#endif

// The fast path compiled in: "AVX512-VNNI", "AVX2" or "portable".
inline const char* q8_kernel_name() { return kQ8Vnni ? "AVX512-VNNI" : kQ8Avx2 ? "AVX2" : "portable"; }

// out[m*RW + r] for an RW x RX tile: VNNI or AVX2 when compiled in, portable otherwise (the same
// bits on every path).
template <int RW, int RX>
inline void q8_tile(const uint8_t* const* wq, const uint16_t* const* wd, const int8_t* const* xq,
                    const float* const* xd, size_t nb, float* out, const TilePrefetch& pf = {},
                    const TilePrefetch& pfd = {}) {
#if defined(__AVX512VNNI__) && defined(__AVX512BW__)
  q8_tile_vnni<RW, RX>(wq, wd, xq, xd, nb, out, pf, pfd);
#elif defined(FATHOM_KERNELS_AVX2_INT8)
  if constexpr (RW * RX > 4 && RW % 2 == 0) {  // 16 registers: two half tiles (gemm only)
    float o[2][RW / 2 * RX];
    q8_tile_avx2<RW / 2, RX>(wq, wd, xq, xd, nb, o[0], pf, pfd);
    q8_tile_avx2<RW / 2, RX>(wq + RW / 2, wd + RW / 2, xq, xd, nb, o[1], {}, {});
    for (int m = 0; m < RX; ++m)
      for (int r = 0; r < RW; ++r) out[m * RW + r] = o[r / (RW / 2)][m * (RW / 2) + r % (RW / 2)];
  } else {
    q8_tile_avx2<RW, RX>(wq, wd, xq, xd, nb, out, pf, pfd);
  }
#else
  (void)pf, (void)pfd;
  for (int m = 0; m < RX; ++m)
    for (int r = 0; r < RW; ++r) out[m * RW + r] = q8_dot_portable(wq[r], wd[r], xq[m], xd[m], nb);
#endif
}

// Y[r] for r in [r0, r1) and one activation row (decode): one weight row at a time, each a single
// prefetched stream. Measured against 4-row tiles on the decode shapes: 46-48 GB/s instead of
// 31-35 with 2 threads, at the read bandwidth (docs/benchmarks.md); the extra per-row work (the
// activations' offset correction) is hidden behind memory. The AVX2 kernel too: two rows side by
// side were faster on L3-resident matrices (independent FMA chains) but slower from DRAM, where
// decode reads (SmolLM2-135M with --weights q8: one row decodes 1.19x / 1.28x faster at 1 / 2 Zen 3
// threads, docs/benchmarks.md).
//
// The prefetches: with AVX512-VNNI the rows [r0, r1), one contiguous run of values and one of
// scales, are streamed kQ8PrefetchAhead (8 KiB) ahead of each row (StreamPrefetch): at one Zen 5
// thread, from DRAM, 1.19-2.05x the tile's own prefetches 2 KiB ahead (28-40 GB/s where those
// reached 16-24; SmolLM2's 49,152 x 576 unembedding 2.0x; docs/benchmarks.md, "Q8 decode rows
// streamed"). But the stream only suits short rows: it asks for a whole row's lines at once before
// each row, and rows of 2048 values or more (a burst of 32+ lines) stream faster on the tile's
// prefetches 8 KiB ahead into L2 (prefetcht1, 4 lines per 256 bytes read): on a Zen 4 (AMD family
// 19h) 22-24 GB/s at one thread against 12-21 (1.13-1.88x; two threads 1.08-1.54x;
// docs/benchmarks.md, "Zen 4: quantised decode prefetches"), and on a Zen 5 (family 1Ah) 1.11-1.34x
// at one thread (Llama-8B's 14336-wide FFN rows 27 -> 35 GB/s) and 1.05-1.76x at two ("Zen 5: Q8
// decode rows of 2048 values or more"); on both AMD CPUs those lines now go into L1 a whole number
// of rows ahead (q8_rows_gemv). Shorter rows keep the stream (the tile's into L2 were 0.86-0.95x
// on the Zen 4, 0.85-1.08x on the Zen 5), except 1536-value rows on the Zen 4, which streamed
// 1.07-1.11x as fast a whole number of rows ahead into L1 at one thread (576 x 1536 to 1536 x 1536;
// 1.00-1.03x at two) and SmolLM2's 576 x 1536 FFN-down 1.16-1.22x among a decode's products, while
// 1024-wide rows were 0.93x and 576-wide ones 0.85x that way (docs/benchmarks.md, "Zen 4, one
// thread: where decode's time goes"). On an Intel Xeon (family 6 model 207) the
// same choice holds for the long rows: the tile's into L2 1.19-1.28x the stream at one thread,
// 1.13-1.33x at two (85-92 % and 92-105 % of the read bandwidth); 896-value rows were 0.93x at one
// thread and 1.15x at two there (docs/benchmarks.md, "AMX-INT8 for the GGUF 4/5-bit formats"). The
// AVX2 and portable builds keep the tile's prefetches kPrefetchAhead (2 KiB) ahead (not measured
// with the stream).
//
// On a Zen 4 the rows shorter than 1536 values stream on two levels instead (stream_two_level):
// 16 KiB ahead into L2 (prefetcht1) and 2 KiB ahead into L1. With that and each plan's loop
// compiled on its own with the row kernel inlined (q8_rows_plan), one thread read matrices of 576
// values a row (192 to 49,152 rows) at 81-103 % of the read bandwidth instead of 68-87 %
// (1.13-1.25x), 896- and 1024-wide rows 1.11-1.15x, and SmolLM2's decode as Q8 went from 79 % to
// 89-90 % of its bound; two threads 1.00-1.06x while the VM read 35 GB/s, 1.20-1.53x while it read
// 58-64. The two levels alone (both loops inlined): 1.06x among a token's products in decode's
// order; 1536-wide rows 0.8x that way, so those keep the tile's (docs/benchmarks.md, "Zen 4: Q8
// rows on two prefetch levels; the decode loops flattened").
constexpr size_t kQ8PrefetchAhead = 8192;
constexpr size_t kQ8PrefetchFar = size_t(16) << 10, kQ8PrefetchNear = size_t(2) << 10;  // stream_two_level
// How q8_rows_gemv prefetches rows of `cols` values on this build and CPU (above).
enum class Q8DecodePrefetch { stream, tile_l2, tile, stream_two_level };
// A plan forced for every row length (bench_gemv's BM_gemv_q8_prefetch compares them on one CPU);
// -1: the choice below. Results do not depend on it.
inline std::atomic<int>& q8_decode_prefetch_forced() {
  static std::atomic<int> plan{-1};
  return plan;
}
inline Q8DecodePrefetch q8_decode_prefetch(size_t cols) {
  if (const int f = q8_decode_prefetch_forced().load(std::memory_order_relaxed); f >= 0) return Q8DecodePrefetch(f);
#if defined(__AVX512VNNI__) && defined(__AVX512BW__)
  if (amd_family_19h()) return cols >= 1536 ? Q8DecodePrefetch::tile_l2 : Q8DecodePrefetch::stream_two_level;
  return cols >= 2048 ? Q8DecodePrefetch::tile_l2 : Q8DecodePrefetch::stream;
#else
  (void)cols;
  return Q8DecodePrefetch::tile;
#endif
}
// q8_rows_gemv's loop for one plan. Flattened: the row kernel inlined with the plan's prefetches
// known to the compiler. Called out of line, as GCC 12 compiled it from one loop for every plan,
// the same rows streamed ~10 % slower from DRAM at one Zen 4 thread, though no slower from cache.
template <Q8DecodePrefetch How>
[[gnu::flatten]] inline void q8_rows_plan(const Q8Layout& L, const Q8Acts& A, size_t r0, size_t r1, float* y) {
  const size_t nb = L.nb, stride = nb * kQ8Block;
  const int8_t* xq[1] = {A.qs.data()};
  const float* xd[1] = {A.d.data()};
  StreamPrefetch pq, pd, nq, nd;  // the streams' far and near (stream_two_level) prefetches
  TilePrefetch pf, pfd;
  if constexpr (How == Q8DecodePrefetch::stream) {
    pq = StreamPrefetch(L.qs + r0 * stride, kQ8PrefetchAhead);
    pd = StreamPrefetch(L.d + r0 * nb, kQ8PrefetchAhead / 16);  // 2 scale bytes per 32 values
  } else if constexpr (How == Q8DecodePrefetch::stream_two_level) {
    pq = StreamPrefetch(L.qs + r0 * stride, kQ8PrefetchFar, /*l2=*/true);
    pd = StreamPrefetch(L.d + r0 * nb, kQ8PrefetchFar / 16, /*l2=*/true);
    nq = StreamPrefetch(L.qs + r0 * stride, kQ8PrefetchNear);
    nd = StreamPrefetch(L.d + r0 * nb, kQ8PrefetchNear / 16);
  } else if constexpr (How == Q8DecodePrefetch::tile_l2) {
    // On AMD's Zen 4 and Zen 5 into L1, one line short of a whole number of rows (prefetch.hpp):
    // on a Zen 5 1.04-1.12x on 2048- to 14336-wide rows at one thread (docs/benchmarks.md, "Dense
    // decode rows a whole number of rows ahead"), on a Zen 4 1.18-1.25x at one thread and 1.12x
    // at two on 2048 x 8192 and 8192 x 2048 ("Zen 4: GGUF prefetches into L1 again").
    const bool whole = amd_family_1ah_on() || amd_family_19h();
    pf = TilePrefetch(whole ? whole_rows_ahead(stride, kQ8PrefetchAhead) : kQ8PrefetchAhead, stride, 1, /*l2=*/!whole);
    pfd = TilePrefetch(kQ8PrefetchAhead / 16, nb * sizeof(uint16_t), 1, /*l2=*/true);
  } else {
    pf = TilePrefetch(kPrefetchAhead, stride, 1);
    pfd = TilePrefetch(kPrefetchAhead / 16, nb * sizeof(uint16_t), 1);
  }
  pf.prime(L.qs + r0 * stride);
  pfd.prime(L.d + r0 * nb);
  for (size_t r = r0; r < r1; ++r) {
    pq.to(L.qs + (r + 1) * stride);
    pd.to(L.d + (r + 1) * nb);
    nq.to(L.qs + (r + 1) * stride);
    nd.to(L.d + (r + 1) * nb);
    const uint8_t* wq[1] = {L.qs + r * stride};
    const uint16_t* wd[1] = {L.d + r * nb};
    q8_tile<1, 1>(wq, wd, xq, xd, nb, y + r, pf, pfd);
  }
}
inline void q8_rows_gemv(const Q8Layout& L, const Q8Acts& A, size_t r0, size_t r1, float* y) {
  if (r0 >= r1) return;
  switch (q8_decode_prefetch(L.nb * kQ8Block)) {
    case Q8DecodePrefetch::stream_two_level: return q8_rows_plan<Q8DecodePrefetch::stream_two_level>(L, A, r0, r1, y);
    case Q8DecodePrefetch::tile_l2: return q8_rows_plan<Q8DecodePrefetch::tile_l2>(L, A, r0, r1, y);
    case Q8DecodePrefetch::tile: return q8_rows_plan<Q8DecodePrefetch::tile>(L, A, r0, r1, y);
    case Q8DecodePrefetch::stream:
    default: return q8_rows_plan<Q8DecodePrefetch::stream>(L, A, r0, r1, y);  // (a forced plan out of range)
  }
}

// Y[t, r] for t in [0, n), r in [r0, r1): tiles of 4 weight rows x 2 activation rows, weight rows
// in bands of 64 (~1 MB at 14336 columns, L2-resident while every activation row passes). Prompts;
// a single activation row (decode) goes through q8_rows_gemv.
inline void q8_rows(const Q8Layout& L, const Q8Acts& A, size_t n, size_t N, size_t r0, size_t r1,
                    float* Y) {
  constexpr size_t kBand = 64;
  const size_t nb = L.nb, stride = nb * kQ8Block;
  for (size_t b0 = r0; b0 < r1; b0 += kBand) {
    const size_t b1 = std::min(r1, b0 + kBand);
    size_t t = 0;
    auto run = [&](auto rx) {
      constexpr int RX = decltype(rx)::value;
      const int8_t* xq[RX];
      const float* xd[RX];
      for (int m = 0; m < RX; ++m) {
        xq[m] = A.qs.data() + (t + m) * stride;
        xd[m] = A.d.data() + (t + m) * nb;
      }
      size_t r = b0;
      for (; r + 4 <= b1; r += 4) {
        const uint8_t* wq[4] = {L.qs + r * stride, L.qs + (r + 1) * stride, L.qs + (r + 2) * stride,
                               L.qs + (r + 3) * stride};
        const uint16_t* wd[4] = {L.d + r * nb, L.d + (r + 1) * nb, L.d + (r + 2) * nb, L.d + (r + 3) * nb};
        float out[4 * RX];
        q8_tile<4, RX>(wq, wd, xq, xd, nb, out);
        for (int m = 0; m < RX; ++m)
          for (int k = 0; k < 4; ++k) Y[(t + m) * N + r + k] = out[m * 4 + k];
      }
      for (; r < b1; ++r) {
        const uint8_t* wq[1] = {L.qs + r * stride};
        const uint16_t* wd[1] = {L.d + r * nb};
        float out[RX];
        q8_tile<1, RX>(wq, wd, xq, xd, nb, out);
        for (int m = 0; m < RX; ++m) Y[(t + m) * N + r] = out[m];
      }
    };
    for (; t + 2 <= n; t += 2) run(std::integral_constant<int, 2>{});
    for (; t < n; ++t) run(std::integral_constant<int, 1>{});
  }
}

// Y[n, rows] = X[n, cols] . W^T for a Q8 W (gemm; gemv runs q8_rows_gemv).
inline void gemm_q8(const MatrixView& W, const float* X, size_t n, float* Y) {
  thread_local Q8Acts acts;  // [n][nb*32] quantised activations, reused across calls
  acts.assign(X, n, W.cols);
  const Q8Layout L = q8_layout(W);
  const Q8Acts& A = acts;
  const size_t groups = (W.rows + 3) / 4;  // partition in whole 4-row tiles
  const int threads = worker_count(W.rows * W.cols * n);
  parallel_chunks(groups, threads, [&](size_t gb, size_t ge) {
    q8_rows(L, A, n, W.rows, gb * 4, std::min(W.rows, ge * 4), Y);
  });
}

}  // namespace detail

// An owning Q8 matrix (layout above). view() is what gemv/gemm take.
class QuantizedMatrix {
 public:
  QuantizedMatrix() = default;
  QuantizedMatrix(size_t rows, size_t cols) : rows_(rows), cols_(cols), buf_(q8_bytes(rows, cols)) {
    std::fill(values(), values() + rows * q8_blocks(cols) * kQ8Block, uint8_t(128));  // q = 0
  }

  MatrixView view() const { return MatrixView{DType::Q8, rows_, cols_, buf_.data()}; }
  size_t rows() const { return rows_; }
  size_t cols() const { return cols_; }
  size_t bytes() const { return q8_bytes(rows_, cols_); }
  uint8_t* values() { return buf_.as<uint8_t>(); }  // [rows][nb*32] q + 128
  uint16_t* scales() {                               // [rows][nb]
    return reinterpret_cast<uint16_t*>(values() + rows_ * q8_blocks(cols_) * kQ8Block);
  }

 private:
  size_t rows_ = 0, cols_ = 0;
  WeightBuffer buf_;
};

// Quantises a rows x cols matrix to Q8 (see the format at the top of this file); widen(r, out)
// writes row r as f32 into out[cols].
template <class Widen>
inline QuantizedMatrix quantize_q8_rows(size_t rows, size_t cols, Widen&& widen) {
  QuantizedMatrix Q(rows, cols);
  const size_t nb = q8_blocks(cols);
  uint8_t* qs = Q.values();
  uint16_t* ds = Q.scales();
  std::vector<float> row(nb * kQ8Block, 0.f);  // [nb*32] one widened, zero-padded row
  for (size_t r = 0; r < rows; ++r) {
    widen(r, row.data());
    for (size_t b = 0; b < nb; ++b) {
      const float* x = row.data() + b * kQ8Block;
      float amax = 0.f;
      bool finite = true;
      for (size_t i = 0; i < kQ8Block; ++i) {
        finite = finite && std::isfinite(x[i]);
        amax = std::max(amax, std::fabs(x[i]));
      }
      if (!finite)
        throw FormatError("", "row " + std::to_string(r), "quantize_q8: non-finite weight");
      const uint16_t dh = detail::f32_to_f16(amax / 127.f);
      const float d = f16_to_f32(dh), id = d > 0.f ? 1.f / d : 0.f;
      ds[r * nb + b] = d > 0.f ? dh : 0;
      uint8_t* q = qs + (r * nb + b) * kQ8Block;
      for (size_t i = 0; i < kQ8Block; ++i)
        q[i] = uint8_t(int(std::clamp(std::nearbyint(x[i] * id), -127.f, 127.f)) + 128);
    }
  }
  return Q;
}

// Quantises an F32, BF16 or F16 matrix to Q8 (widen.hpp's quantize_q8_blocks does the GGUF
// block formats).
inline QuantizedMatrix quantize_q8(const MatrixView& W) {
  if (W.dtype != DType::F32 && W.dtype != DType::BF16 && W.dtype != DType::F16)
    throw UnsupportedError("", std::string(dtype_name(W.dtype)), "quantize_q8: source dtype");
  return quantize_q8_rows(W.rows, W.cols, [&](size_t r, float* out) {
    const size_t off = r * W.cols;
    switch (W.dtype) {
      case DType::F32: std::copy_n(static_cast<const float*>(W.data) + off, W.cols, out); break;
      case DType::BF16: detail::bf16_to_f32_n(static_cast<const uint16_t*>(W.data) + off, out, W.cols); break;
      default: detail::f16_to_f32_n(static_cast<const uint16_t*>(W.data) + off, out, W.cols); break;
    }
  });
}

}  // namespace fathom::kernels
