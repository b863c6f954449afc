#pragma once
// AMX tile GEMM for bf16 weights with bf16 activations (issue 14, part 3): Y[M, N] =
// bf16(X)[M, K] . W[N, K]^T by Intel AMX's tdpbf16ps, where the CPU has AMX-BF16 and the OS grants
// the tile state (cpu_features.hpp). It is the bf16-activation mode's prefill kernel on such CPUs
// (bf16dot.hpp dispatches to it), inexact as that mode is: activations rounded to bf16, products
// exact in f32, sums in f32.
//
// Eight tiles of 16 rows x 64 bytes: four f32 accumulators C (a 32 x 32 block of Y), two of
// activations A (16 rows x 16 pairs each) and two of weights B (16 pairs x 16 columns each, the
// panel layout of bf16_pairs.hpp, whose 32-column panels are two B tiles side by side). One step
// is 4 tdpbf16ps = 32 x 32 x 32 multiply-adds:
//
//   C00 += A0 . B0   C01 += A0 . B1        A0 = rows m0..m0+15 of X, pairs k..k+15
//   C10 += A1 . B0   C11 += A1 . B1        A1 = rows m0+16..m0+31;  B0, B1 = panel columns 0-15, 16-31
//
// The activations are rounded once into pairs padded to a multiple of 16 pairs (zeros) and 32 rows
// and stored tile by tile, so each A tile loads 1 KiB straight from them; the weights are packed
// per 32-row panel and K block of 256 pairs (32 KiB, L1-resident), as gemm_bf16dot does. Each Y element is summed by one thread
// in a fixed order (K blocks, then 16-pair steps, then the instruction's own order): the same bits
// for every thread count on a given CPU, not the same bits as vdpbf16ps's order.
//
// The kernel is a template over the tile unit: AmxTiles issues the instructions (inline assembly,
// so no compiler flag is needed; only called where amx() allows), EmulatedTiles carries out the
// architecture's definition of the same operations in C++. Tests run the kernel on EmulatedTiles on
// every machine (the layouts, edges, K blocks and thread splits), and on AmxTiles where the CPU has
// AMX, against the same references. amx_q8.hpp's int8 kernel (tdpbssd) runs on the same two units.
#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "fathom/core/dtype.hpp"
#include "fathom/kernels/bf16_pairs.hpp"
#include "fathom/kernels/cpu_features.hpp"
#include "fathom/kernels/gemm.hpp"
#include "fathom/kernels/parallel.hpp"

namespace fathom::kernels {

namespace detail {
inline std::atomic<bool>& amx_allowed_flag() {
  static std::atomic<bool> on = [] {
    const char* e = std::getenv("FATHOM_AMX");
    return !(e && (std::string_view(e) == "0" || std::string_view(e) == "off"));
  }();
  return on;
}
}  // namespace detail

// AMX kernels are used where the CPU and the OS allow them, unless switched off here or by
// FATHOM_AMX=off (or 0) in the environment (read once): the AVX-512 kernels then run, for A/B
// comparisons on one machine.
inline void set_amx_allowed(bool on) { detail::amx_allowed_flag().store(on); }
inline bool amx_bf16_active() {
  return detail::amx_allowed_flag().load(std::memory_order_relaxed) && amx().usable() && amx().bf16;
}

namespace detail {

constexpr size_t kAmxRows = 16;           // rows of a full tile
constexpr size_t kAmxPairs = 16;          // bf16 pairs per A row / B row (64 bytes)
constexpr size_t kAmxBlockRows = 32;      // rows of Y per step (two A tiles)
constexpr size_t kAmxNR = 32;             // columns of Y per weight panel (two B tiles)
constexpr size_t kAmxKC2 = 256;           // pairs per K block: a packed B panel of 32 KiB
constexpr size_t kAmxTile = kAmxRows * kAmxPairs;  // pairs per A tile (1 KiB)

// ldtilecfg's 64-byte operand: palette 1, tiles 0-7 of rows[t] rows x colsb[t] bytes; by default
// all of 16 rows x 64 bytes (the bf16 kernel's; amx_q8.hpp configures narrower ones).
struct alignas(64) TileConfig {
  uint8_t palette = 1, start_row = 0;
  uint8_t reserved[14] = {};
  uint16_t colsb[16] = {64, 64, 64, 64, 64, 64, 64, 64};
  uint8_t rows[16] = {16, 16, 16, 16, 16, 16, 16, 16};
};
static_assert(sizeof(TileConfig) == 64);
inline const TileConfig& amx_full_tiles() {
  static const TileConfig cfg;
  return cfg;
}

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
// The instructions themselves. "memory" on loads too: the tile reads memory the compiler must
// have written by then (GCC's _tile_loadd declares no memory operand).
struct AmxTiles {
  static void configure(const TileConfig& cfg = amx_full_tiles()) { asm volatile("ldtilecfg %0" ::"m"(cfg)); }
  static void release() { asm volatile("tilerelease" ::: "memory"); }
  template <int T> static void zero() { asm volatile("tilezero %%tmm%c0" ::"n"(T)); }
  template <int T> static void load(const void* p, size_t stride) {
    asm volatile("tileloadd (%0,%1,1), %%tmm%c2" ::"r"(p), "r"(stride), "n"(T) : "memory");
  }
  template <int T> static void store(void* p, size_t stride) {
    asm volatile("tilestored %%tmm%c2, (%0,%1,1)" ::"r"(p), "r"(stride), "n"(T) : "memory");
  }
  template <int C, int A, int B> static void dpbf16ps() {
    asm volatile("tdpbf16ps %%tmm%c2, %%tmm%c1, %%tmm%c0" ::"n"(C), "n"(A), "n"(B));
  }
  template <int C, int A, int B> static void dpbssd() {
    asm volatile("tdpbssd %%tmm%c2, %%tmm%c1, %%tmm%c0" ::"n"(C), "n"(A), "n"(B));
  }
};
#endif

// The same operations in C++, by the architecture's definitions. Loads and stores move rows[t]
// rows of colsb[t] bytes (the configuration's; the rest of a tile reads as zero). tdpbf16ps: per
// row m of C, the even and the odd products of the 16 pairs are summed apart in k order (f32
// fused multiply-add, round to nearest even), then C[m][n] += even[n] + odd[n]; bf16 inputs below
// the normal range read as zero and subnormal results are flushed to zero. tdpbssd: C[m][n] (int32)
// += the products of A's signed bytes 4k..4k+3 of row m with B's signed bytes 4n..4n+3 of row k,
// for every 4-byte group k of A's rows (exact; int32 wraps). Each thread has its own tiles.
struct EmulatedTiles {
  struct State {
    alignas(64) uint8_t t[8][kAmxRows * 64];
    TileConfig cfg;
  };
  static State& state() {
    thread_local State s;
    return s;
  }
  static float daz(uint16_t b) { return (b & 0x7f80u) ? bf16_to_f32(b) : 0.f; }
  static float ftz(float v) { return std::fabs(v) < 0x1p-126f ? std::copysign(0.f, v) : v; }
  static void configure(const TileConfig& cfg = amx_full_tiles()) {
    std::memset(state().t, 0, sizeof state().t);
    state().cfg = cfg;
  }
  static void release() { std::memset(state().t, 0, sizeof state().t); }
  template <int T> static void zero() { std::memset(state().t[T], 0, kAmxRows * 64); }
  template <int T> static void load(const void* p, size_t stride) {
    State& s = state();
    std::memset(s.t[T], 0, kAmxRows * 64);
    for (size_t r = 0; r < s.cfg.rows[T]; ++r)
      std::memcpy(s.t[T] + r * 64, static_cast<const char*>(p) + r * stride, s.cfg.colsb[T]);
  }
  template <int T> static void store(void* p, size_t stride) {
    const State& s = state();
    for (size_t r = 0; r < s.cfg.rows[T]; ++r)
      std::memcpy(static_cast<char*>(p) + r * stride, s.t[T] + r * 64, s.cfg.colsb[T]);
  }
  // The shapes the instructions require of their tiles (the CPU faults otherwise): C's rows are A's,
  // A's row of 4-byte groups is B's rows, B's row length is C's.
  template <int C, int A, int B> static void check_shapes(const char* what) {
    const TileConfig& g = state().cfg;
    if (g.rows[C] != g.rows[A] || g.colsb[A] / 4 != g.rows[B] || g.colsb[B] != g.colsb[C])
      throw std::logic_error(std::string(what) + ": tile shapes that do not fit (the instruction would fault)");
  }
  template <int C, int A, int B> static void dpbf16ps() {
    check_shapes<C, A, B>("tdpbf16ps");
    State& s = state();
    float c[kAmxRows][16];
    uint16_t a[kAmxRows][32], b[kAmxPairs][32];
    std::memcpy(c, s.t[C], sizeof c);
    std::memcpy(a, s.t[A], sizeof a);
    std::memcpy(b, s.t[B], sizeof b);
    for (size_t m = 0; m < kAmxRows; ++m) {
      float even[16] = {}, odd[16] = {};
      for (size_t k = 0; k < kAmxPairs; ++k)
        for (size_t n = 0; n < 16; ++n) {
          even[n] = ftz(std::fma(daz(a[m][2 * k]), daz(b[k][2 * n]), even[n]));
          odd[n] = ftz(std::fma(daz(a[m][2 * k + 1]), daz(b[k][2 * n + 1]), odd[n]));
        }
      for (size_t n = 0; n < 16; ++n) c[m][n] = ftz(c[m][n] + ftz(even[n] + odd[n]));
    }
    std::memcpy(s.t[C], c, sizeof c);
  }
  template <int C, int A, int B> static void dpbssd() {
    check_shapes<C, A, B>("tdpbssd");
    State& s = state();
    int32_t c[kAmxRows][16];
    int8_t a[kAmxRows][64], b[kAmxRows][64];
    std::memcpy(c, s.t[C], sizeof c);
    std::memcpy(a, s.t[A], sizeof a);
    std::memcpy(b, s.t[B], sizeof b);
    const size_t groups = s.cfg.colsb[A] / 4;
    // As unsigned x signed, a . b = (a + 128) . b - 128 sum b: GCC 12 turns signed x signed byte
    // reductions into vpdpbusd (unsigned x signed) and gets them wrong (docs/kernels.md, "Compiler notes").
    for (size_t m = 0; m < s.cfg.rows[C]; ++m)
      for (size_t n = 0; n < size_t(s.cfg.colsb[C] / 4); ++n) {
        int32_t ub = 0, sb = 0;
        for (size_t k = 0; k < groups; ++k)
          for (size_t j = 0; j < 4; ++j) {
            ub += int32_t(uint8_t(a[m][4 * k + j] + 128)) * b[k][4 * n + j];
            sb += b[k][4 * n + j];
          }
        c[m][n] = int32_t(uint32_t(c[m][n]) + uint32_t(ub - 128 * sb));  // int32 arithmetic wraps
      }
    std::memcpy(s.t[C], c, sizeof c);
  }
};

// Y_j[M, N_j] = bf16(X)[M, K] . W_j[N_j, K]^T for bf16 W_j on the tile unit Tiles (the products
// share X; the threads split the 32-row panels of all the W_j, as gemm_dense does).
// Two choices, measured on an Intel Xeon (family 6 model 207, one core; docs/benchmarks.md)
// against loading all four input tiles before the four products and storing X row by row: each
// tile load sits just before the first tdpbf16ps that reads it (tiles are not renamed, so a load
// waits for the instructions still reading its tile), and X's rounded pairs are stored tile by
// tile (16 rows x 16 pairs, 1 KiB contiguous, not 16 rows a row's length apart): together
// 1.1-1.9x on the FFN shapes of Qwen2.5-0.5B and Llama-8B.
template <class Tiles>
inline void gemm_amx_bf16(size_t K, const float* X, size_t M, std::span<const DenseProduct> products) {
  const DenseWork dw = dense_work(K, M, products, kAmxNR);
  if (K == 0 || M == 0) return;
  const size_t K2 = (K + 1) / 2;                                         // pairs per row
  const size_t K2p = (K2 + kAmxPairs - 1) / kAmxPairs * kAmxPairs;       // padded with zero pairs
  const size_t Mp = (M + kAmxBlockRows - 1) / kAmxBlockRows * kAmxBlockRows;  // zero rows past M
  const size_t ktiles = K2p / kAmxPairs;
  const int threads = worker_count(dw.work);
  thread_local std::vector<uint32_t> xr;  // [Mp/16][K2p/16][16][16] X rounded to bf16 pairs, tile by tile
  xr.resize(Mp * K2p);
  uint32_t* xrp = xr.data();
  parallel_chunks(Mp, threads, [&](size_t b, size_t e) {
    thread_local std::vector<uint32_t> row_buf;
    row_buf.resize(K2p);
    for (size_t m = b; m < e; ++m) {
      uint32_t* row = row_buf.data();
      size_t done = 0;
      if (m < M) round_pairs(X + m * K, K, row), done = K2;
      std::fill(row + done, row + K2p, 0u);
      for (size_t t = 0; t < ktiles; ++t)
        std::memcpy(xrp + ((m / kAmxRows) * ktiles + t) * kAmxTile + (m % kAmxRows) * kAmxPairs,
                    row + t * kAmxPairs, kAmxPairs * 4);
    }
  });
  // the A tile of rows m..m+15 (m a multiple of 16) and pairs k..k+15: 64-byte rows, contiguous
  const auto a_tile = [&](size_t m, size_t k) { return xrp + ((m / kAmxRows) * ktiles + k / kAmxPairs) * kAmxTile; };
  parallel_chunks(dw.panels, threads, [&](size_t pb, size_t pe) {
    thread_local std::vector<uint32_t> bpanel;  // [kc2][NR] weight pairs (+ room to align to 64 bytes)
    bpanel.resize(kAmxKC2 * kAmxNR + 16);
    uint32_t* const Bp = reinterpret_cast<uint32_t*>((reinterpret_cast<uintptr_t>(bpanel.data()) + 63) & ~uintptr_t(63));
    alignas(64) float edge[kAmxBlockRows * kAmxNR];  // a block of Y past row M or column N
    Tiles::configure();
    for (size_t mo = 0; mo < Mp; mo += kMC) {  // kMC rows of xr per K block stay in L2
      const size_t mend = std::min(Mp, mo + kMC);
      for (size_t k0 = 0; k0 < K2p; k0 += kAmxKC2) {
        const size_t kc2 = std::min(kAmxKC2, K2p - k0), e0 = 2 * k0, elems = std::min(K - e0, 2 * kc2);
        const bool acc = k0 > 0;
        size_t j = 0, first = 0;  // product of panel p, and that product's first panel
        for (size_t p = pb; p < pe; ++p) {
          while (p >= first + (products[j].N + kAmxNR - 1) / kAmxNR) first += (products[j++].N + kAmxNR - 1) / kAmxNR;
          const DenseProduct& P = products[j];
          const size_t N = P.N, n0 = (p - first) * kAmxNR, nr = std::min(kAmxNR, N - n0);
          pack_pair_panel<kAmxNR>(static_cast<const uint16_t*>(P.data), K, n0, nr, e0, elems, kc2, Bp);
          for (size_t m0 = mo; m0 < mend; m0 += kAmxBlockRows) {
            const bool whole = m0 + kAmxBlockRows <= M && nr == kAmxNR;
            float* C = whole ? P.Y + m0 * N + n0 : edge;
            const size_t ldc = whole ? N : kAmxNR;  // floats
            if (!whole && acc)
              for (size_t i = 0; i < kAmxBlockRows; ++i)
                for (size_t jj = 0; jj < kAmxNR; ++jj)
                  edge[i * kAmxNR + jj] = m0 + i < M && jj < nr ? P.Y[(m0 + i) * N + n0 + jj] : 0.f;
            if (acc) {
              Tiles::template load<0>(C, ldc * 4);
              Tiles::template load<1>(C + 16, ldc * 4);
              Tiles::template load<2>(C + 16 * ldc, ldc * 4);
              Tiles::template load<3>(C + 16 * ldc + 16, ldc * 4);
            } else {
              Tiles::template zero<0>();
              Tiles::template zero<1>();
              Tiles::template zero<2>();
              Tiles::template zero<3>();
            }
            for (size_t k = 0; k < kc2; k += kAmxPairs) {
              const uint32_t *A0 = a_tile(m0, k0 + k), *A1 = a_tile(m0 + kAmxRows, k0 + k);
              const uint32_t *B0 = Bp + k * kAmxNR, *B1 = B0 + 16;
              Tiles::template load<4>(A0, 64);
              Tiles::template load<6>(B0, kAmxNR * 4);
              Tiles::template dpbf16ps<0, 4, 6>();
              Tiles::template load<7>(B1, kAmxNR * 4);
              Tiles::template dpbf16ps<1, 4, 7>();
              Tiles::template load<5>(A1, 64);
              Tiles::template dpbf16ps<2, 5, 6>();
              Tiles::template dpbf16ps<3, 5, 7>();
            }
            Tiles::template store<0>(C, ldc * 4);
            Tiles::template store<1>(C + 16, ldc * 4);
            Tiles::template store<2>(C + 16 * ldc, ldc * 4);
            Tiles::template store<3>(C + 16 * ldc + 16, ldc * 4);
            if (!whole)
              for (size_t i = 0; i < kAmxBlockRows && m0 + i < M; ++i)
                for (size_t jj = 0; jj < nr; ++jj) P.Y[(m0 + i) * N + n0 + jj] = edge[i * kAmxNR + jj];
          }
        }
      }
    }
    Tiles::release();
  }, /*grain=*/2);
}

}  // namespace detail
}  // namespace fathom::kernels
