#pragma once
// AMX-INT8 tile GEMM for Q8 weights with int8 activations (issue 14, part 3): the int8 prompt
// kernel (`set_exact_prefill(false)`, `--prefill int8`) on a CPU with AMX-INT8 whose OS grants the
// tile state (cpu_features.hpp). The activations are quantised to the Q8 blocks as for the
// AVX512-VNNI kernel (quant.hpp's Q8Acts: 32 int8 values and an f32 scale per block); what differs
// is where the block dot products are made and the order their scaled sums take. The kernel,
// gemm_amx_int8, takes any weights in blocks of 32 values with a scale (and a minimum) each from a
// packing function; amx_gguf.hpp runs the GGUF 4- and 5-bit formats on it.
//
// Per block b of 32 values, tdpbssd computes the exact int32 dot of a weight row's signed values
// with an activation row's, for 16 x 16 (row, column) pairs per instruction; AVX-512 then applies
// the two scales, one chain per output in block order:
//
//   acc = +0;  for b in 0 .. nb-1:  acc = fma(float(dot_b), dw[n, b] * dx[m, b], acc);  Y[m, n] = acc
//
// (the int32 dot, at most 32 x 127 x 127, converts to f32 exactly). The VNNI and portable kernels
// instead sum 16 lanes of 4-byte partial dots (quant.hpp), so on an AMX CPU an int8 prompt's rows
// differ from decode's (still VNNI) by f32 rounding in the order of the sums (tests/test_amx.cpp:
// within 1e-5 of sum |w x|); FATHOM_AMX=off (set_amx_allowed(false)) restores the VNNI kernel and the
// bit equality with decode. Each Y element is summed by one thread in that fixed order: the same
// bits for every thread count on every CPU with AMX-INT8.
//
// Tiles (the configuration amx_int8_tiles()): C 0-3 of 16 x 16 int32, a 32 x 32 block of dots; A
// 4-5 of 16 activation rows x one block (32 bytes, read straight from the quantised rows); B 6-7
// of one block of 16 weight rows, as tdpbssd wants it: 8 rows of 4-byte groups, group k of the 16
// weight rows side by side (64 bytes), packed per 32-row panel and chunk of kAmxQ8Chunk blocks
// with the stored q + 128 turned back into signed q. One block is 4 tdpbssd (32 x 32 x 32
// multiply-adds); the dots go through memory (tilestored) to the AVX-512 rescale into Y.
#include <algorithm>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <vector>

#include "fathom/core/dtype.hpp"
#include "fathom/kernels/amx.hpp"
#include "fathom/kernels/matrix.hpp"
#include "fathom/kernels/parallel.hpp"
#include "fathom/kernels/quant.hpp"
#include "fathom/kernels/simd.hpp"

namespace fathom::kernels {

// Whether int8 prompts with Q8 weights run on the tiles (the CPU, the OS and set_amx_allowed).
inline bool amx_int8_active() {
  return detail::amx_allowed_flag().load(std::memory_order_relaxed) && amx().usable() && amx().int8;
}

namespace detail {

constexpr size_t kAmxQ8Chunk = 64;   // blocks per packed weight panel: 32 rows x 2048 values (64 KiB)
constexpr size_t kAmxQ8MC = 512;     // activation rows per pass over a chunk (1 MiB: L2-resident)
constexpr size_t kAmxQ8Rows = 32;    // rows of Y per step (two A tiles)
constexpr size_t kAmxQ8Cols = 32;    // columns of Y per panel (two B tiles)
constexpr size_t kAmxQ8BTile = 8 * 16;  // 4-byte words per B tile (8 groups x 16 weight rows)
// Blocks rescaled together (gemm_amx_q8). One Intel Xeon core (family 6 model 207), Gop/s on
// 896 x 4864 / 4864 x 896 / 4096 x 14336 x 512 rows: 1 block 228 / 233 / 139, 2 blocks 291 / 280 /
// 228, 4 blocks 279 / 340 / 294 (docs/benchmarks.md, "AMX-INT8").
constexpr size_t kAmxQ8Group = 4;
// Prompts of fewer rows stay on the VNNI kernel: the tiles always compute 32 rows. On that Xeon
// (one core, 4864 x 896) the tiles took 1179 / 1118 / 1165 / 1424 us for 8 / 12 / 16 / 32 rows,
// VNNI 998 / 1427 / 1250 / 2411.
constexpr size_t kAmxQ8MinRows = 12;

inline const TileConfig& amx_int8_tiles() {
  static const TileConfig cfg = [] {
    TileConfig c;
    c.colsb[4] = c.colsb[5] = 32;  // A: 16 rows x one block
    c.rows[6] = c.rows[7] = 8;     // B: 8 groups of 4 bytes x 16 weight rows
    return c;
  }();
  return cfg;
}

// The B tiles of a panel chunk: block blk of panel row j (0 <= j < 32) as 8 groups of 4 bytes,
// Bp[blk][j / 16][g][j % 16] = bytes 4g..4g+3 of v, each group XOR flip (0x80808080: stored q + 128
// back to signed q).
inline void put_block_groups(const uint8_t* v, uint32_t flip, size_t blk, size_t j, uint32_t* Bp) {
  uint32_t* dst = Bp + blk * 2 * kAmxQ8BTile + (j / 16) * kAmxQ8BTile + j % 16;
  for (size_t g = 0; g < 8; ++g) {
    uint32_t w;
    std::memcpy(&w, v + 4 * g, 4);
    dst[g * 16] = w ^ flip;
  }
}
// A panel of nr < 32 rows: the missing rows' values and scales (and minimums) zero.
inline void clear_panel(size_t nr, size_t cb, uint32_t* Bp, float* dw, float* mw) {
  if (nr == kAmxQ8Cols) return;
  std::memset(Bp, 0, cb * 2 * kAmxQ8BTile * 4);
  std::fill(dw, dw + cb * kAmxQ8Cols, 0.f);
  if (mw) std::fill(mw, mw + cb * kAmxQ8Cols, 0.f);
}

// Packs blocks [c0, c0 + cb) of Q8 weight rows [n0, n0 + nr) (nr <= 32): their signed values into
// Bp (put_block_groups) and dw[blk][j] = the f16 scale of row n0 + j as f32 (0 past nr).
inline void pack_q8_panel(const Q8Layout& L, size_t n0, size_t nr, size_t c0, size_t cb, uint32_t* Bp, float* dw) {
  clear_panel(nr, cb, Bp, dw, nullptr);
  for (size_t j = 0; j < nr; ++j) {
    const uint8_t* row = L.qs + (n0 + j) * L.nb * kQ8Block + c0 * kQ8Block;
    const uint16_t* d = L.d + (n0 + j) * L.nb + c0;
    for (size_t blk = 0; blk < cb; ++blk) {
      put_block_groups(row + blk * kQ8Block, 0x80808080u, blk, j, Bp);
      dw[blk * kAmxQ8Cols + j] = f16_to_f32(d[blk]);
    }
  }
}

// C[i][j] = fma(float(dots_k[i][j]), dw_k[j] * dx[i][k], C[i][j]), then with Min
// C[i][j] = fma(mw_k[j], sx[i][k], C[i][j]), for blocks k = 0 .. G-1 in turn, i < rows, j < 32 (C:
// ldc floats; dots_k: 32 x 32 int32, 4 KiB apart; dw_k, mw_k: 32 floats apart; dx[i][k] and
// sx[i][k] at i * x_stride + k). The G blocks' scales (and minimums) are held in registers for all
// rows; each C row is loaded and stored once per G blocks.
template <size_t G, bool Min>
inline void amx_rescale(const int32_t* dots, const float* dw, const float* mw, const float* dx, const float* sx,
                        size_t x_stride, size_t rows, float* C, size_t ldc) {
  using simd::fvec;
  using ivec = xsimd::batch<int32_t>;
  constexpr size_t kDots = kAmxQ8Rows * kAmxQ8Cols, kV = kAmxQ8Cols / simd::W;
  fvec w[G][kV], m[Min ? G : 1][kV];
  for (size_t k = 0; k < G; ++k)
    for (size_t v = 0; v < kV; ++v) {
      w[k][v] = simd::loadu(dw + k * kAmxQ8Cols + v * simd::W);
      if constexpr (Min) m[k][v] = simd::loadu(mw + k * kAmxQ8Cols + v * simd::W);
    }
  for (size_t i = 0; i < rows; ++i) {
    fvec x[G], s[G];
    for (size_t k = 0; k < G; ++k) {
      x[k] = fvec(dx[i * x_stride + k]);
      if constexpr (Min) s[k] = fvec(sx[i * x_stride + k]);
    }
    for (size_t v = 0; v < kV; ++v) {
      const size_t j = v * simd::W;
      fvec acc = simd::loadu(C + i * ldc + j);
      for (size_t k = 0; k < G; ++k) {
        const fvec d = xsimd::to_float(ivec::load_aligned(dots + k * kDots + i * kAmxQ8Cols + j));
        acc = simd::fma_fused(d, w[k][v] * x[k], acc);
        if constexpr (Min) acc = simd::fma_fused(m[k][v], s[k], acc);
      }
      simd::storeu(C + i * ldc + j, acc);
    }
  }
}

// Y[M, N] = X[M, K] . W^T on the tile unit Tiles for weights in blocks of 32 values with an f32
// scale each (and, with Min, a minimum: weight = scale * q + minimum), int8 activations. The
// weights come from pack(n0, nr, c0, cb, Bp, dw, mw), which fills blocks [c0, c0 + cb) of rows
// [n0, n0 + nr) of a 32-row panel: Bp as put_block_groups lays it out, dw[blk][j] the scales and,
// with Min, mw[blk][j] the minimums (zero past nr). The threads split the 32-row panels.
//
// The dots of G blocks are rescaled together (each C row read and written once per G blocks), and
// the tiles run one group ahead of the rescale: the products of group g + 1 are issued, in program
// order, before the rescale of group g, into the other half of a double buffer. On an Intel Xeon
// (family 6 model 207, one core, Q8) one block at a time in the plain order - products, tile stores,
// the rescale loading them - ran at 146-260 Gop/s (6-11 % of the unit's int8 peak with these tile
// shapes, 2.4 Top/s); four blocks per rescale, a group ahead, at 279-340 (docs/benchmarks.md,
// "AMX-INT8"). Each block's four products start from zeroed tiles and end in tile stores, and
// each of its 1024 dots then takes a conversion, a multiply and an FMA in AVX-512 (two FMAs with a
// minimum: Q4_1 ran at 0.78-0.83x Q4_0's rate there, so the rescale is a good part of the time;
// holding the group's scales in registers instead of loading them per row was 1.09-1.26x at one
// core, docs/benchmarks.md, "AMX-INT8 for the GGUF 4/5-bit formats").
template <class Tiles, bool Min, size_t G, class Pack>
inline void gemm_amx_int8(size_t N, size_t K, const float* X, size_t M, float* Y, const Pack& pack) {
  if (M == 0 || N == 0) return;
  const size_t nb = q8_blocks(K), stride = nb * kQ8Block;
  thread_local Q8Acts acts;  // [M][nb*32] int8 values, [M][nb] scales and block sums
  acts.assign(X, M, K);
  const size_t Mp = (M + kAmxQ8Rows - 1) / kAmxQ8Rows * kAmxQ8Rows;
  thread_local std::vector<int8_t> padded;  // [Mp][nb*32] the values with zero rows past M (whole A tiles)
  const int8_t* xq = acts.qs.data();
  if (Mp != M) {
    padded.assign(Mp * stride, 0);
    std::copy(acts.qs.begin(), acts.qs.begin() + M * stride, padded.begin());
    xq = padded.data();
  }
  const float* xd = acts.d.data();
  const float* xs = acts.sx.data();
  const size_t panels = (N + kAmxQ8Cols - 1) / kAmxQ8Cols;
  const int threads = worker_count(N * K * M);
  constexpr size_t kDots = kAmxQ8Rows * kAmxQ8Cols;
  parallel_chunks(panels, threads, [&](size_t pb, size_t pe) {
    thread_local std::vector<uint32_t> bpanel;  // [chunk][2][8][16] weight groups (+ room to align to 64 bytes)
    thread_local std::vector<float> dwp, mwp;   // [chunk][32] weight scales, minimums (Min)
    thread_local std::vector<int32_t> dots_buf;  // [2][G][32][32] two groups of blocks' dots (+ alignment)
    bpanel.resize(kAmxQ8Chunk * 2 * kAmxQ8BTile + 16);
    dwp.resize(kAmxQ8Chunk * kAmxQ8Cols);
    mwp.resize(Min ? kAmxQ8Chunk * kAmxQ8Cols : 0);
    dots_buf.resize(2 * G * kDots + 16);
    const auto align64 = [](auto* p) {
      return reinterpret_cast<decltype(p)>((reinterpret_cast<uintptr_t>(p) + 63) & ~uintptr_t(63));
    };
    uint32_t* const Bp = align64(bpanel.data());
    int32_t* const dots = align64(dots_buf.data());
    float* const mw = Min ? mwp.data() : nullptr;
    alignas(64) float edge[kAmxQ8Rows * kAmxQ8Cols];  // a block of Y past row M or column N
    Tiles::configure(amx_int8_tiles());
    for (size_t mo = 0; mo < Mp; mo += kAmxQ8MC) {
      const size_t mend = std::min(Mp, mo + kAmxQ8MC);
      for (size_t c0 = 0; c0 < nb; c0 += kAmxQ8Chunk) {
        const size_t cb = std::min(kAmxQ8Chunk, nb - c0), groups = (cb + G - 1) / G;
        for (size_t p = pb; p < pe; ++p) {
          const size_t n0 = p * kAmxQ8Cols, nr = std::min(kAmxQ8Cols, N - n0);
          pack(n0, nr, c0, cb, Bp, dwp.data(), mw);
          for (size_t m0 = mo; m0 < mend; m0 += kAmxQ8Rows) {
            const size_t rows = std::min(kAmxQ8Rows, M - std::min(M, m0));  // rows of Y here
            if (rows == 0) break;
            const bool whole = rows == kAmxQ8Rows && nr == kAmxQ8Cols;
            float* C = whole ? Y + m0 * N + n0 : edge;
            const size_t ldc = whole ? N : kAmxQ8Cols;
            // the accumulators: zero for the first chunk; an edge block carries Y's sums over
            const bool fresh = c0 == 0;
            if (fresh || !whole)
              for (size_t i = 0; i < kAmxQ8Rows; ++i)
                for (size_t j = 0; j < kAmxQ8Cols; ++j)
                  C[i * ldc + j] = !fresh && i < rows && j < nr ? Y[(m0 + i) * N + n0 + j] : 0.f;
            const int8_t* A0 = xq + m0 * stride + c0 * kQ8Block;
            const int8_t* A1 = A0 + 16 * stride;
            const auto products = [&](size_t g) {  // group g's dots into dots[g % 2]
              for (size_t blk = g * G; blk < std::min(cb, g * G + G); ++blk) {
                const uint32_t* B0 = Bp + blk * 2 * kAmxQ8BTile;
                int32_t* D = dots + ((g % 2) * G + blk - g * G) * kDots;
                Tiles::template zero<0>();
                Tiles::template zero<1>();
                Tiles::template zero<2>();
                Tiles::template zero<3>();
                Tiles::template load<4>(A0 + blk * kQ8Block, stride);
                Tiles::template load<6>(B0, 64);
                Tiles::template dpbssd<0, 4, 6>();
                Tiles::template load<7>(B0 + kAmxQ8BTile, 64);
                Tiles::template dpbssd<1, 4, 7>();
                Tiles::template load<5>(A1 + blk * kQ8Block, stride);
                Tiles::template dpbssd<2, 5, 6>();
                Tiles::template dpbssd<3, 5, 7>();
                Tiles::template store<0>(D, kAmxQ8Cols * 4);
                Tiles::template store<1>(D + 16, kAmxQ8Cols * 4);
                Tiles::template store<2>(D + 16 * kAmxQ8Cols, kAmxQ8Cols * 4);
                Tiles::template store<3>(D + 16 * kAmxQ8Cols + 16, kAmxQ8Cols * 4);
              }
            };
            const auto rescale = [&](size_t g) {
              const size_t b = g * G, count = std::min(G, cb - b);
              const int32_t* D = dots + (g % 2) * G * kDots;
              const size_t x0 = m0 * nb + c0 + b;
              const float* dwb = dwp.data() + b * kAmxQ8Cols;
              const float* mwb = Min ? mw + b * kAmxQ8Cols : nullptr;
              if (count == G) return amx_rescale<G, Min>(D, dwb, mwb, xd + x0, xs + x0, nb, rows, C, ldc);
              for (size_t k = 0; k < count; ++k)  // a chunk's last, partial group
                amx_rescale<1, Min>(D + k * kDots, dwb + k * kAmxQ8Cols, Min ? mwb + k * kAmxQ8Cols : nullptr,
                                    xd + x0 + k, xs + x0 + k, nb, rows, C, ldc);
            };
            products(0);
            for (size_t g = 1; g < groups; ++g) {
              products(g);
              rescale(g - 1);
            }
            rescale(groups - 1);
            if (!whole)
              for (size_t i = 0; i < rows; ++i)
                for (size_t j = 0; j < nr; ++j) Y[(m0 + i) * N + n0 + j] = edge[i * kAmxQ8Cols + j];
          }
        }
      }
    }
    Tiles::release();
  }, /*grain=*/1);
}

// The Q8 instance: Y[M, N] = X[M, K] . W^T for a Q8 W [N, K], int8 activations.
template <class Tiles, size_t G = kAmxQ8Group>
inline void gemm_amx_q8(const MatrixView& W, const float* X, size_t M, float* Y) {
  const Q8Layout L = q8_layout(W);
  gemm_amx_int8<Tiles, /*Min=*/false, G>(W.rows, W.cols, X, M, Y,
      [&](size_t n0, size_t nr, size_t c0, size_t cb, uint32_t* Bp, float* dw, float*) {
        pack_q8_panel(L, n0, nr, c0, cb, Bp, dw);
      });
}

}  // namespace detail
}  // namespace fathom::kernels
