#pragma once
// Cache-tiled, register-blocked matrix-matrix product Y[M, N] = X[M, K] . W[N, K]^T for dense
// weights (prefill). Layout of the work (GotoBLAS style, vectors along N):
//   for each K block of KC:            pack X[MC, KC] into MR-row panels  Ap[k][MR]
//     for each NR-row panel of W:      widen W to f32 and transpose it    Bp[k][NR] (L1-resident)
//                                      (any format: widen.hpp, exact values)
//       for each MR panel of X:        MR x NR tile of Y in registers, KC rank-1 updates
// Every Y element is summed in the same order (K blocks in order, k in order within a block)
// whatever the thread count, so results are bit-reproducible.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>
#include <unistd.h>  // sysconf: the L1 data cache size (k_block)

#include "fathom/core/dtype.hpp"
#include "fathom/kernels/convert.hpp"
#include "fathom/kernels/parallel.hpp"
#include "fathom/kernels/prefetch.hpp"
#include "fathom/kernels/simd.hpp"
#include "fathom/kernels/widen.hpp"

namespace fathom::kernels::detail {

constexpr size_t kNR = 2 * simd::W;                  // Y columns per tile (two vectors)
constexpr size_t kMR = simd::W >= 16 ? 12 : 6;       // Y rows per tile: 2*MR accumulators
constexpr size_t kKC = 256;                          // K block (about): Bp panel = KC*NR floats
constexpr size_t kMC = kMR * 64;                     // X rows per packed block (768 KiB)
// K is cut into equal blocks of about kKC, at most kc_max(): 576 = 2 x 288 rather than
// 256 + 256 + 64, so Y is loaded and stored once less and no short block pays a tile's fixed
// cost for few k. AVX2's 16-float panels: blocks up to 384 (a 384 x 16 panel is 24 KiB of L1;
// the lens readout's 49,152 x 576 product 1.15-1.19x on a Zen 3). AVX-512's 32-float panels: up
// to 320 (40 KiB) where L1d holds 48 KiB (Zen 5, Intel since Ice Lake; 1.08-1.11x on a Zen 5),
// kKC otherwise (a 32 KiB L1, Zen 4: read at run time). The blocks never change a result: each
// Y element is one chain of FMAs in k order, stored and reloaded exactly.
constexpr size_t kKCMax = simd::W >= 16 ? kKC * 5 / 4 : kKC * 3 / 2;
inline size_t kc_max() {
  if constexpr (simd::W < 16) return kKCMax;
  static const size_t m = sysconf(_SC_LEVEL1_DCACHE_SIZE) >= 48 * 1024 ? kKCMax : kKC;
  return m;
}
inline size_t k_block(size_t K) {
  const size_t n = std::max<size_t>(1, (K + kKC / 2) / kKC);
  return std::min(kc_max(), ((K + n - 1) / n + 7) / 8 * 8);
}

// C[MR, NR] (+)= Ap[kc][MR] . Bp[kc][NR]; C has leading dimension ldc. Rows < kMR: only the
// first `Rows` rows of the panel (a partial last tile; each element's sum is the same chain).
template <size_t Rows = kMR>
inline void gemm_tile(size_t kc, const float* Ap, const float* Bp, float* C, size_t ldc,
                      bool accumulate) {
  using simd::fvec;
  constexpr size_t W = simd::W;
  fvec c0[Rows], c1[Rows];
  for (size_t i = 0; i < Rows; ++i) {
    c0[i] = accumulate ? simd::loadu(C + i * ldc) : fvec(0.f);
    c1[i] = accumulate ? simd::loadu(C + i * ldc + W) : fvec(0.f);
  }
  for (size_t k = 0; k < kc; ++k) {
    const fvec b0 = simd::loadu(Bp + k * kNR), b1 = simd::loadu(Bp + k * kNR + W);
#pragma GCC unroll 16
    for (size_t i = 0; i < Rows; ++i) {
      const fvec a(Ap[k * kMR + i]);
      c0[i] = xsimd::fma(a, b0, c0[i]);
      c1[i] = xsimd::fma(a, b1, c1[i]);
    }
  }
  for (size_t i = 0; i < Rows; ++i) {
    simd::storeu(C + i * ldc, c0[i]);
    simd::storeu(C + i * ldc + W, c1[i]);
  }
}

// The tile for the first mr <= kMR rows of a panel: the kernel for a third, two thirds or all of
// kMR rows, whichever is the smallest that covers mr (a block of 256 rows ends in 4 rows of 12).
// Writes that many rows of C: exactly mr when mr is one of those sizes.
inline size_t tile_rows(size_t mr) {
  constexpr size_t third = kMR % 3 == 0 ? kMR / 3 : kMR;
  return mr <= third ? third : mr <= 2 * third ? std::min(kMR, 2 * third) : kMR;
}
inline void gemm_tile_rows(size_t mr, size_t kc, const float* Ap, const float* Bp, float* C, size_t ldc,
                           bool accumulate) {
  constexpr size_t third = kMR % 3 == 0 ? kMR / 3 : kMR;
  if constexpr (third < kMR) {
    if (mr <= third) return gemm_tile<third>(kc, Ap, Bp, C, ldc, accumulate);
    if (mr <= 2 * third) return gemm_tile<2 * third>(kc, Ap, Bp, C, ldc, accumulate);
  }
  gemm_tile(kc, Ap, Bp, C, ldc, accumulate);
}

#if defined(__AVX512F__)
// dst[i * ld_dst + j] = src[j * ld_src + i] for a 16 x 16 block (AVX-512: xsimd 8 has no
// cross-lane transpose; the portable path below does the same with scalar moves).
inline void transpose16(const float* src, size_t ld_src, float* dst, size_t ld_dst) {
  __m512 r[16], t[16];
  for (int i = 0; i < 16; ++i) r[i] = _mm512_loadu_ps(src + i * ld_src);
  for (int i = 0; i < 16; i += 2) {
    t[i] = _mm512_unpacklo_ps(r[i], r[i + 1]);
    t[i + 1] = _mm512_unpackhi_ps(r[i], r[i + 1]);
  }
  for (int i = 0; i < 16; i += 4) {
    r[i] = _mm512_shuffle_ps(t[i], t[i + 2], 0x44);
    r[i + 1] = _mm512_shuffle_ps(t[i], t[i + 2], 0xee);
    r[i + 2] = _mm512_shuffle_ps(t[i + 1], t[i + 3], 0x44);
    r[i + 3] = _mm512_shuffle_ps(t[i + 1], t[i + 3], 0xee);
  }
  for (int i = 0; i < 4; ++i) {  // 128-bit lanes: rows i, i+4, i+8, i+12 hold lane groups
    t[i] = _mm512_shuffle_f32x4(r[i], r[i + 4], 0x88);
    t[i + 4] = _mm512_shuffle_f32x4(r[i], r[i + 4], 0xdd);
    t[i + 8] = _mm512_shuffle_f32x4(r[i + 8], r[i + 12], 0x88);
    t[i + 12] = _mm512_shuffle_f32x4(r[i + 8], r[i + 12], 0xdd);
  }
  for (int i = 0; i < 4; ++i) {
    r[i] = _mm512_shuffle_f32x4(t[i], t[i + 8], 0x88);
    r[i + 8] = _mm512_shuffle_f32x4(t[i], t[i + 8], 0xdd);
    r[i + 4] = _mm512_shuffle_f32x4(t[i + 4], t[i + 12], 0x88);
    r[i + 12] = _mm512_shuffle_f32x4(t[i + 4], t[i + 12], 0xdd);
  }
  for (int i = 0; i < 16; ++i) _mm512_storeu_ps(dst + i * ld_dst, r[i]);
}
#endif

#if defined(__AVX2__) && !defined(__AVX512F__)
// dst[i * ld_dst + j] = src[j * ld_src + i] for an 8 x 8 block (the AVX2 counterpart of
// transpose16: the 16 columns of a weight panel are two of these per 8 k).
inline void transpose8(const float* src, size_t ld_src, float* dst, size_t ld_dst) {
  __m256 r[8], t[8];
  for (int i = 0; i < 8; ++i) r[i] = _mm256_loadu_ps(src + i * ld_src);
  for (int i = 0; i < 8; i += 2) {
    t[i] = _mm256_unpacklo_ps(r[i], r[i + 1]);
    t[i + 1] = _mm256_unpackhi_ps(r[i], r[i + 1]);
  }
  for (int i = 0; i < 8; i += 4) {
    r[i] = _mm256_shuffle_ps(t[i], t[i + 2], 0x44);
    r[i + 1] = _mm256_shuffle_ps(t[i], t[i + 2], 0xee);
    r[i + 2] = _mm256_shuffle_ps(t[i + 1], t[i + 3], 0x44);
    r[i + 3] = _mm256_shuffle_ps(t[i + 1], t[i + 3], 0xee);
  }
  for (int i = 0; i < 4; ++i) {
    _mm256_storeu_ps(dst + i * ld_dst, _mm256_permute2f128_ps(r[i], r[i + 4], 0x20));
    _mm256_storeu_ps(dst + (i + 4) * ld_dst, _mm256_permute2f128_ps(r[i], r[i + 4], 0x31));
  }
}
#endif

// Bp[k][j] = src[j * ld + k] for j < NR, k < kc: NR rows of a weight panel turned k-major.
inline void transpose_panel(const float* src, size_t ld, size_t kc, float* Bp) {
  size_t k = 0;
#if defined(__AVX512F__)
  for (; k + 16 <= kc; k += 16)
    for (size_t j = 0; j < kNR; j += 16) transpose16(src + j * ld + k, ld, Bp + k * kNR + j, kNR);
#elif defined(__AVX2__)
  for (; k + 8 <= kc; k += 8)
    for (size_t j = 0; j < kNR; j += 8) transpose8(src + j * ld + k, ld, Bp + k * kNR + j, kNR);
#endif
  for (; k < kc; ++k)
    for (size_t j = 0; j < kNR; ++j) Bp[k * kNR + j] = src[j * ld + k];
}

// Widens rows [n0, n0+nr) x cols [k0, k0+kc) of W (any format, exactly: widen.hpp) to f32 and
// stores them transposed and zero padded to NR columns: Bp[k][j] = W[n0+j, k0+k]. rows: scratch
// of NR * kc floats.
inline void pack_weights(const MatrixView& W, size_t n0, size_t nr, size_t k0, size_t kc, float* Bp,
                         float* rows) {
  // 1. the panel's rows as src[j * ld]: a whole f32 panel in place (its rows are K apart), else
  //    widened into rows[j][kc] (contiguous, vectorised conversion) with zero padding rows.
#if defined(FATHOM_KERNELS_Q4_PANEL_WIDEN)  // the tiles' 16 rows are already a panel's lanes
  static_assert(kNR == 2 * kQ4GroupRows);
  if (is_q4_family(W.dtype) && n0 % kQ4GroupRows == 0) return q4_widen_panel(W, n0, nr, k0, kc, Bp);
  if (W.dtype == DType::Q4_K && n0 % kQ4GroupRows == 0) return k4_widen_panel(W, n0, nr, k0, kc, Bp);
  if (W.dtype == DType::Q6_K && n0 % kQ4GroupRows == 0) return k6_widen_panel(W, n0, nr, k0, kc, Bp);
#endif
  const float* src = rows;
  size_t ld = kc;
  if (W.dtype == DType::F32 && nr == kNR) {
    src = static_cast<const float*>(W.data) + n0 * W.cols + k0, ld = W.cols;
  } else {
    for (size_t j = 0; j < kNR; ++j) {
      float* dst = rows + j * kc;
      if (j >= nr) std::fill(dst, dst + kc, 0.f);
      else widen_segment(W, n0 + j, k0, kc, dst);
    }
  }
  transpose_panel(src, ld, kc, Bp);
}

// Ap[p][k][i] = X[m0 + p*MR + i, k0 + k], zero padded past row M. Ap needs 16 floats of slack
// past its end (the vector paths below).
inline void pack_inputs(const float* X, size_t K, size_t M, size_t m0, size_t mc, size_t k0,
                        size_t kc, float* Ap) {
  static const float zeros[16] = {};
  for (size_t p = 0; p * kMR < mc; ++p) {
    float* dst = Ap + p * kMR * kc;
    const float* src[kMR];  // the panel's rows at column k0 (a zero row past M)
    bool zero[kMR];
    for (size_t i = 0; i < kMR; ++i) {
      const size_t m = m0 + p * kMR + i;
      zero[i] = !(m < M && p * kMR + i < mc);
      src[i] = zero[i] ? zeros : X + m * K + k0;
    }
    size_t k = 0;
#if defined(__AVX512F__)
    if constexpr (kMR <= 16) {
      // 16 columns at a time: rows -> a 16x16 block -> transposed, column j stored at
      // dst[(k+j)*MR] as 16 lanes. Lanes MR..15 spill into column j+1's first lanes, which the
      // next store overwrites with the right values (and the last one into the slack).
      for (; k + 16 <= kc; k += 16) {
        alignas(64) float block[16 * 16];
        for (size_t i = 0; i < 16; ++i)
          _mm512_store_ps(block + i * 16, i < kMR && !zero[i] ? _mm512_loadu_ps(src[i] + k) : _mm512_setzero_ps());
        alignas(64) float t[16 * 16];
        transpose16(block, 16, t, 16);
        for (size_t j = 0; j < 16; ++j) _mm512_storeu_ps(dst + (k + j) * kMR, _mm512_load_ps(t + j * 16));
      }
    }
#elif defined(__AVX2__)
    if constexpr (kMR <= 8) {
      // The same with 8 columns: the panel's rows (zero past MR) as an 8x8 block, transposed.
      for (; k + 8 <= kc; k += 8) {
        alignas(32) float block[8 * 8], t[8 * 8];
        for (size_t i = 0; i < 8; ++i)
          _mm256_store_ps(block + i * 8, i < kMR && !zero[i] ? _mm256_loadu_ps(src[i] + k) : _mm256_setzero_ps());
        transpose8(block, 8, t, 8);
        for (size_t j = 0; j < 8; ++j) _mm256_storeu_ps(dst + (k + j) * kMR, _mm256_load_ps(t + j * 8));
      }
    }
#endif
    for (; k < kc; ++k)
      for (size_t i = 0; i < kMR; ++i) dst[k * kMR + i] = zero[i] ? 0.f : src[i][k];
  }
}

struct GemmScratch {
  std::vector<float> a, b, row, tile;
};
// b's packed weight panel starts on a 64-byte boundary: its rows are 64 bytes (AVX2) or 128, so no
// load of the tile then spans two cache lines.
inline float* panel_start(std::vector<float>& b) {
  b.resize(kKCMax * kNR + 16);
  return reinterpret_cast<float*>((reinterpret_cast<uintptr_t>(b.data()) + 63) & ~uintptr_t(63));
}
inline GemmScratch& gemm_scratch() {
  thread_local GemmScratch s;  // OpenMP keeps its threads, so the buffers are reused across calls
  return s;
}

// One product of gemm_dense: Y[M, N] = X . W[N, K]^T.
struct DenseProduct {
  const void* data;  // W [N, K] in the call's dtype (any: widen.hpp)
  size_t N;
  float* Y;          // [M, N]
  // W already widened into panels ([N/NR][K][NR] f32: kernels::PackedPanels), or null to pack each
  // panel's K block here. The same values either way, so the same bits.
  const float* panels = nullptr;
};

// Y_j[M, N_j] = X[M, K] . W_j[N_j, K]^T for products that share X and a dtype (F32, BF16, F16,
// or a quantised format whose exact values are multiplied: gemm_exact):
// each K block of X is packed once for all of them, and the threads split the 32-row panels of
// all the W_j (so small matrices such as k and v are shared too).
// The NR-row panels and multiply-adds of a set of dense products; with K = 0 their outputs are
// zeroed (an empty sum) and the caller has nothing left to do.
struct DenseWork {
  size_t panels = 0, work = 0;
};
inline DenseWork dense_work(size_t K, size_t M, std::span<const DenseProduct> products,
                            size_t panel_cols = kNR) {
  DenseWork w;
  for (const DenseProduct& p : products) {
    if (K == 0) std::fill(p.Y, p.Y + M * p.N, 0.f);
    w.panels += (p.N + panel_cols - 1) / panel_cols;
    w.work += M * p.N * K;
  }
  return w;
}

// With several threads and few weight panels each (a wide K over few rows, such as the lens
// trainer's 576 x 49,152 backward product), every thread would pack the same blocks of X for its
// few panels: at two threads on the Zen 3 that was 13 % of the trainer's step. Then X is packed
// once, all of it, the threads sharing the work, before the products run (the same packed values,
// so the same bits).
constexpr size_t kPrepackPanelsPerThread = 64;

// All of X packed, the threads sharing the blocks: block (m0 / kMC) * kblocks + k0 / KC of
// kMC * KC + 16 floats (pack_inputs' slack) at dst + that index * (kMC * KC + 16).
inline void pack_all_inputs(const float* X, size_t K, size_t M, size_t KC, int threads, float* dst) {
  const size_t kblocks = (K + KC - 1) / KC, mblocks = (M + kMC - 1) / kMC, block = kMC * KC + 16;
  parallel_chunks(mblocks * kblocks, threads, [&](size_t b, size_t e) {
    for (size_t i = b; i < e; ++i) {
      const size_t m0 = i / kblocks * kMC, k0 = i % kblocks * KC;
      pack_inputs(X, K, M, m0, std::min(kMC, M - m0), k0, std::min(KC, K - k0), dst + i * block);
    }
  });
}

inline void gemm_dense(DType dt, size_t K, const float* X, size_t M, std::span<const DenseProduct> products) {
  const DenseWork dw = dense_work(K, M, products);
  const size_t panels = dw.panels, work = dw.work;
  if (K == 0) return;
  const int threads = worker_count(work);
  const size_t KC = k_block(K);
  const size_t kblocks = (K + KC - 1) / KC, mblocks = (M + kMC - 1) / kMC;
  const size_t block = kMC * KC + 16;  // one packed block of X, + slack for pack_inputs
  const bool prepack = threads > 1 && panels <= size_t(threads) * kPrepackPanelsPerThread;
  // [mblocks][kblocks][block] (prepack): the calling thread's buffer, shared with the workers
  // through a pointer (a thread_local named inside the lambdas would be each worker's own).
  thread_local std::vector<float> prepacked;
  float* packed = nullptr;
  if (prepack) {
    prepacked.resize(mblocks * kblocks * block);
    packed = prepacked.data();
    pack_all_inputs(X, K, M, KC, threads, packed);
  }
  parallel_chunks(panels, threads, [&](size_t pb, size_t pe) {
    GemmScratch& s = gemm_scratch();
    if (!prepack) s.a.resize(block);
    float* const Bp = panel_start(s.b);
    s.row.resize(kNR * KC);
    s.tile.resize(kMR * kNR);
    for (size_t m0 = 0; m0 < M; m0 += kMC) {
      const size_t mc = std::min(kMC, M - m0);
      for (size_t k0 = 0; k0 < K; k0 += KC) {
        const size_t kc = std::min(KC, K - k0);
        const bool acc = k0 > 0;
        const float* A = prepack ? packed + (m0 / kMC * kblocks + k0 / KC) * block : s.a.data();
        if (!prepack) pack_inputs(X, K, M, m0, mc, k0, kc, s.a.data());
        size_t j = 0, first = 0;  // product of panel p, and that product's first panel
        for (size_t p = pb; p < pe; ++p) {
          while (p >= first + (products[j].N + kNR - 1) / kNR) first += (products[j++].N + kNR - 1) / kNR;
          const DenseProduct& P = products[j];
          const size_t N = P.N, n0 = (p - first) * kNR, nr = std::min(kNR, N - n0);
          const MatrixView W{dt, N, K, P.data};
          const float* B = Bp;
          if (P.panels) B = P.panels + (p - first) * K * kNR + k0 * kNR;
          else pack_weights(W, n0, nr, k0, kc, Bp, s.row.data());
          // The next panel's weights (NR runs of kc elements, a row apart; pre-packed: one run of
          // kc * NR floats) are fetched a few lines per tile while this panel computes: packing
          // them would otherwise wait on DRAM, as the hardware prefetchers do not follow 16 short
          // runs (1.2-1.3x on a 49,152 x 576 matrix).
          const RowBytes rb = row_bytes(W);
          const size_t row_lines = P.panels ? kc * kNR * sizeof(float) / 64 : (kc * rb.elem + 63) / 64;
          const size_t next_n0 = n0 + kNR, next_rows = p + 1 < pe && next_n0 < N ? std::min(kNR, N - next_n0) : 0;
          const size_t tiles = (mc + kMR - 1) / kMR, next_lines = P.panels ? (next_rows ? row_lines : 0) : next_rows * row_lines;
          const size_t per_tile = (next_lines + tiles - 1) / tiles;
          const uintptr_t next_panel = P.panels ? uintptr_t(B + K * kNR) : 0;
          size_t line = 0;
          for (size_t i0 = 0; i0 < mc; i0 += kMR) {
            for (const size_t end = std::min(line + per_tile, next_lines); line < end; ++line)
              prefetch_line(P.panels ? next_panel + line * 64
                                     : uintptr_t(rb.base + (next_n0 + line / row_lines) * rb.stride + k0 * rb.elem) +
                                           line % row_lines * 64);
            const size_t mr = std::min(kMR, mc - i0);
            const float* Ap = A + (i0 / kMR) * kMR * kc;
            float* C = P.Y + (m0 + i0) * N + n0;
            // The next tile's rows of Y, each in its own page when N is large (a 49,152-token
            // vocabulary): fetched while this tile computes rather than stalling its loads.
            if (i0 + kMR < mc)
              for (size_t i = kMR; i < kMR + std::min(kMR, mc - i0 - kMR); ++i) {
                prefetch_line(uintptr_t(C + i * N));
                prefetch_line(uintptr_t(C + i * N + kNR - 1));
              }
            if (nr == kNR && tile_rows(mr) == mr) {  // a whole tile, or a whole third / two thirds
              gemm_tile_rows(mr, kc, Ap, B, C, N, acc);
              continue;
            }
            // Edge tile: go through a full-size scratch tile, copy the valid part back.
            float* T = s.tile.data();
            for (size_t i = 0; i < kMR; ++i)
              for (size_t jj = 0; jj < kNR; ++jj)
                T[i * kNR + jj] = (acc && i < mr && jj < nr) ? C[i * N + jj] : 0.f;
            gemm_tile_rows(mr, kc, Ap, B, T, kNR, acc);
            for (size_t i = 0; i < mr; ++i)
              for (size_t jj = 0; jj < nr; ++jj) C[i * N + jj] = T[i * kNR + jj];
          }
        }
      }
    }
  });
}

// Y[M, N] = X[M, K] . W[N, K]^T for dtype F32, BF16 or F16.
inline void gemm_dense(DType dt, const void* data, size_t N, size_t K, const float* X, size_t M,
                       float* Y) {
  const DenseProduct p{data, N, Y};
  gemm_dense(dt, K, X, M, std::span<const DenseProduct>(&p, 1));
}

}  // namespace fathom::kernels::detail
