#pragma once
// bf16 activations (issue 14, part 2; opt-in, inexact): with bf16 weights, round the activations
// to bf16 too and multiply pairs with AVX512_BF16's vdpbf16ps, as llama.cpp and torch do. Each
// instruction does 32 bf16 x bf16 products (exact in f32) into 16 f32 lanes: twice the
// multiply-adds of an f32 FMA, and no widening of the weights. The exact path (f32 activations,
// bf16 weights widened exactly) stays the default; the logit error of this mode against it is in
// docs/kernels.md.
//
// On: set_bf16_activations(true), or FATHOM_ACTIVATIONS=bf16 in the environment (read once).
// Where the compiler does not target AVX512_BF16 (kBf16Dot false) the setting is ignored and the
// exact kernels run. Prompts on a CPU with AMX-BF16 run on its tiles instead (amx.hpp).
// Results are bit-reproducible for every thread count (each output summed by
// one thread in a fixed order), not between this mode and the exact one.
#include <algorithm>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <span>
#include <string_view>
#include <vector>

#include "fathom/core/dtype.hpp"
#include "fathom/kernels/amx.hpp"
#include "fathom/kernels/bf16_pairs.hpp"
#include "fathom/kernels/gemm.hpp"
#include "fathom/kernels/parallel.hpp"
#include "fathom/kernels/prefetch.hpp"

namespace fathom::kernels {

#if defined(__AVX512BF16__) && defined(__AVX512BW__)
constexpr bool kBf16Dot = true;
#else
constexpr bool kBf16Dot = false;
#endif

namespace detail {
inline std::atomic<bool>& bf16_activations_flag() {
  static std::atomic<bool> on = [] {
    const char* e = std::getenv("FATHOM_ACTIVATIONS");
    return e && std::string_view(e) == "bf16";
  }();
  return on;
}
}  // namespace detail

// The mode (process-wide; change it between products, not during one).
inline void set_bf16_activations(bool on) { detail::bf16_activations_flag().store(on); }
inline bool bf16_activations_requested() { return detail::bf16_activations_flag().load(std::memory_order_relaxed); }
// True when products with bf16 weights use the bf16-activation kernels now.
inline bool bf16_activations() { return kBf16Dot && bf16_activations_requested(); }

namespace detail {

#if defined(__AVX512BF16__) && defined(__AVX512BW__)
inline __m512bh as_bh(__m512i v) { return (__m512bh)v; }

// y[r] = sum_c bf16 W[r, c] * bf16(x[c]) for r in [r0, r1); xb: round_pairs(x) (cols/2 rounded up
// words). 4 accumulators of 16 lanes per row, summed in a fixed tree.
inline void bf16dot_rows(const uint16_t* W, size_t cols, const uint32_t* xb, size_t r0, size_t r1, float* y) {
  const size_t words = cols / 2;  // whole pairs of the row
  const size_t ahead = dense_prefetch(/*f32=*/false);
  for (size_t r = r0; r < r1; ++r) {
    const uint32_t* w = reinterpret_cast<const uint32_t*>(W + r * cols);  // pairs of row r (unaligned)
    __m512 a0 = _mm512_setzero_ps(), a1 = _mm512_setzero_ps(), a2 = _mm512_setzero_ps(), a3 = _mm512_setzero_ps();
    size_t i = 0;
    for (; i + 64 <= words; i += 64) {
      if (ahead)
        for (size_t k = 0; k < 256; k += 64) prefetch_line(uintptr_t(w + i) + ahead + k);
      a0 = _mm512_dpbf16_ps(a0, as_bh(_mm512_loadu_si512(w + i)), as_bh(_mm512_loadu_si512(xb + i)));
      a1 = _mm512_dpbf16_ps(a1, as_bh(_mm512_loadu_si512(w + i + 16)), as_bh(_mm512_loadu_si512(xb + i + 16)));
      a2 = _mm512_dpbf16_ps(a2, as_bh(_mm512_loadu_si512(w + i + 32)), as_bh(_mm512_loadu_si512(xb + i + 32)));
      a3 = _mm512_dpbf16_ps(a3, as_bh(_mm512_loadu_si512(w + i + 48)), as_bh(_mm512_loadu_si512(xb + i + 48)));
    }
    for (; i < words; i += 16) {
      const __mmask16 m = __mmask16(words - i >= 16 ? 0xffffu : (1u << (words - i)) - 1u);
      a0 = _mm512_dpbf16_ps(a0, as_bh(_mm512_maskz_loadu_epi32(m, w + i)), as_bh(_mm512_maskz_loadu_epi32(m, xb + i)));
    }
    float s = _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(a0, a1), _mm512_add_ps(a2, a3)));
    if (cols % 2) s += bf16_to_f32(W[r * cols + cols - 1]) * bf16_to_f32(uint16_t(xb[words]));
    y[r] = s;
  }
}

// C[MR, NR] (+)= Ap[k2][MR] . Bp[k2][NR] over kc2 pairs, by vdpbf16ps: Ap holds pairs of
// activations, Bp pairs of weights, both as 32-bit words.
inline void bf16dot_tile(size_t kc2, const uint32_t* Ap, const uint32_t* Bp, float* C, size_t ldc, bool accumulate) {
  __m512 c0[kMR], c1[kMR];
  for (size_t i = 0; i < kMR; ++i) {
    c0[i] = accumulate ? _mm512_loadu_ps(C + i * ldc) : _mm512_setzero_ps();
    c1[i] = accumulate ? _mm512_loadu_ps(C + i * ldc + 16) : _mm512_setzero_ps();
  }
  for (size_t k = 0; k < kc2; ++k) {
    const __m512bh b0 = as_bh(_mm512_loadu_si512(Bp + k * kNR)), b1 = as_bh(_mm512_loadu_si512(Bp + k * kNR + 16));
#pragma GCC unroll 16
    for (size_t i = 0; i < kMR; ++i) {
      const __m512bh a = as_bh(_mm512_set1_epi32(int(Ap[k * kMR + i])));
      c0[i] = _mm512_dpbf16_ps(c0[i], a, b0);
      c1[i] = _mm512_dpbf16_ps(c1[i], a, b1);
    }
  }
  for (size_t i = 0; i < kMR; ++i) {
    _mm512_storeu_ps(C + i * ldc, c0[i]);
    _mm512_storeu_ps(C + i * ldc + 16, c1[i]);
  }
}

// Y_j[M, N_j] = bf16(X)[M, K] . W_j[N_j, K]^T for bf16 W_j (gemm_dense's structure: K blocks of
// 2*kKC, X rounded and packed once per block and thread, the threads split the NR-row panels).
// On a CPU with AMX-BF16 (granted by the OS, not switched off): the tile kernel of amx.hpp
// instead, from one row of X on (on an Intel Xeon, family 6 model 207, one core, it beat vdpbf16ps
// at every M from 1 to 64 on Qwen2.5-0.5B's 4864 x 896 matrix, 1.45-5.9x, though a tile step
// multiplies 32 rows whatever M is: that CPU's vdpbf16ps is slow).
inline void gemm_bf16dot(size_t K, const float* X, size_t M, std::span<const DenseProduct> products) {
  static_assert(kNR == 32, "two 16-lane vectors per tile row");
  if (amx_bf16_active()) return gemm_amx_bf16<AmxTiles>(K, X, M, products);
  // Pairs per K block: 2 * kKC (1024 elements; Qwen2.5-0.5B's 896 in one block, Y stored once).
  // On a Zen 4 (32 KiB L1d) against kKC pairs: 1.03-1.12x at 32-256 rows of X, 1 and 2 threads,
  // the same bits (each Y element is one chain of vdpbf16ps in k order); kKC / 2 was 0.87-0.96x.
  constexpr size_t kKC2 = 2 * kKC;
  const DenseWork dw = dense_work(K, M, products);
  const size_t panels = dw.panels, work = dw.work;
  if (K == 0) return;
  const size_t K2 = (K + 1) / 2;  // pairs per row (the odd tail paired with 0)
  const int threads = worker_count(work);
  thread_local std::vector<uint32_t> xr;  // [M][K2] X rounded to bf16 pairs, once for all panels
  xr.resize(M * K2);
  uint32_t* xrp = xr.data();
  parallel_chunks(M, threads, [&](size_t b, size_t e) {
    for (size_t m = b; m < e; ++m) round_pairs(X + m * K, K, xrp + m * K2);
  });
  parallel_chunks(panels, threads, [&](size_t pb, size_t pe) {
    thread_local std::vector<uint32_t> a, b;
    a.resize(kMC * kKC2);  // [MC/MR][kc2][MR] activation pairs
    b.resize(kKC2 * kNR);  // [kc2][NR] weight pairs
    std::vector<float>& tile = gemm_scratch().tile;
    tile.resize(kMR * kNR);
    for (size_t m0 = 0; m0 < M; m0 += kMC) {
      const size_t mc = std::min(kMC, M - m0);
      for (size_t k0 = 0; k0 < K2; k0 += kKC2) {
        const size_t kc2 = std::min(kKC2, K2 - k0), e0 = 2 * k0, elems = std::min(K - e0, 2 * kc2);
        // activations: Ap[p][k][i] = pair k0 + k of row m0 + p*MR + i (zero rows past mc)
        for (size_t p = 0; p * kMR < mc; ++p)
          for (size_t k = 0; k < kc2; ++k)
            for (size_t i = 0; i < kMR; ++i) {
              const size_t m = p * kMR + i;
              a[(p * kc2 + k) * kMR + i] = m < mc ? xrp[(m0 + m) * K2 + k0 + k] : 0u;
            }
        size_t j = 0, first = 0;
        for (size_t p = pb; p < pe; ++p) {
          while (p >= first + (products[j].N + kNR - 1) / kNR) first += (products[j++].N + kNR - 1) / kNR;
          const DenseProduct& P = products[j];
          const size_t N = P.N, n0 = (p - first) * kNR, nr = std::min(kNR, N - n0);
          // weights: Bp[k][jj] = pair k of row n0 + jj in this block (zero rows past N, zero tail)
          pack_pair_panel(static_cast<const uint16_t*>(P.data), K, n0, nr, e0, elems, kc2, b.data());
          for (size_t i0 = 0; i0 < mc; i0 += kMR) {
            const size_t mr = std::min(kMR, mc - i0);
            const uint32_t* Ap = a.data() + (i0 / kMR) * kMR * kc2;
            float* C = P.Y + (m0 + i0) * N + n0;
            const bool acc = k0 > 0;
            if (mr == kMR && nr == kNR) {
              bf16dot_tile(kc2, Ap, b.data(), C, N, acc);
              continue;
            }
            float* T = tile.data();
            for (size_t i = 0; i < kMR; ++i)
              for (size_t jj = 0; jj < kNR; ++jj) T[i * kNR + jj] = (acc && i < mr && jj < nr) ? C[i * N + jj] : 0.f;
            bf16dot_tile(kc2, Ap, b.data(), T, kNR, acc);
            for (size_t i = 0; i < mr; ++i)
              for (size_t jj = 0; jj < nr; ++jj) C[i * N + jj] = T[i * kNR + jj];
          }
        }
      }
    }
  }, /*grain=*/2);
}
#endif

}  // namespace detail
}  // namespace fathom::kernels
