#pragma once
// Y = X . W^T reduced row by row as it is computed, never stored: per row of X the argmax column
// of Y and, for a few target columns per row, how many columns of Y lie strictly above the
// target's value (its rank - 1) and that value. This is what reading every layer of a text out
// through a 49,152-token unembedding needs (lens/batch_readout.hpp): the [rows, vocab] block of
// logits (48 MiB for 256 rows) is the largest thing the readout would write and read back.
//
// Every Y element is gemm_dense's (gemm.hpp), bit for bit: the same packed weights (widened to
// f32 exactly), the same register tiles and K blocks, one multiply-add chain in k order per
// element. A target's value is taken from its own tile, computed by the same calls, so a count
// compares the very values the full product would hold. So the argmax equals lens::top1_id of
// gemm_exact's row (the lowest column among equal maxima) and the counts equal lens::rank_of's,
// for rows without NaN.
//
// Weights come either pre-packed once for many calls (PackedPanels, packed_panels.hpp) or packed
// panel by panel during the call.
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <mutex>
#include <span>
#include <vector>

#include "fathom/core/error.hpp"
#include "fathom/kernels/gemm.hpp"
#include "fathom/kernels/linear.hpp"
#include "fathom/kernels/matrix.hpp"
#include "fathom/kernels/packed_panels.hpp"
#include "fathom/kernels/parallel.hpp"
#include "fathom/kernels/prefetch.hpp"
#include "fathom/kernels/simd.hpp"
#include "fathom/kernels/widen.hpp"

namespace fathom::kernels {

// Per row m of X: argmax[m] (lowest column among equal maxima; 0 when no value is above -inf, as
// lens::top1_id), and for each target t of the row (targets[m * T + t]; negative = none) value[m*T+t]
// = Y[m, target] and above[m*T+t] = #{n : Y[m, n] > value}.
struct RankStats {
  std::vector<int32_t> argmax;  // [M]
  std::vector<float> value;     // [M, T]
  std::vector<int64_t> above;   // [M, T]
  int64_t rechecked = 0;        // columns computed exactly after a screen (rank_screen.hpp)
};

namespace detail {

// The checks every rank product makes: a valid matrix, T targets per row, ids inside it.
inline void check_rank_args(const MatrixView& W, const char* what, size_t M, std::span<const int32_t> targets,
                            size_t T) {
  check_matrix(W, what);
  if (targets.size() != M * T)
    throw UsageError("", "targets", std::to_string(targets.size()) + " ids for " + std::to_string(M) +
                                        " rows x " + std::to_string(T) + " targets");
  for (const int32_t id : targets)
    if (id >= 0 && size_t(id) >= W.rows)
      throw UsageError("", "targets", "column " + std::to_string(id) + " of a " + std::to_string(W.rows) +
                                          "-row matrix");
}

// X [M, K] packed once for every panel, as gemm_dense's prepack: [mblocks][kblocks][block].
struct PackedRows {
  size_t K, KC, kblocks, block;
  std::vector<float> A;
  PackedRows(const float* X, size_t K_, size_t M, int threads)
      : K(K_), KC(k_block(K_)), kblocks((K_ + KC - 1) / KC), block(kMC * KC + 16),
        A((M + kMC - 1) / kMC * kblocks * block) {
    pack_all_inputs(X, K, M, KC, threads, A.data());
  }
  // Row tile t's packed rows (kMR of them) of K block kb: [kc][kMR].
  const float* tile(size_t t, size_t kb) const {
    const size_t i0 = t * kMR, kc = std::min(KC, K - kb * KC);
    return A.data() + (i0 / kMC * kblocks + kb) * block + (i0 % kMC / kMR) * kMR * kc;
  }
};

// One thread's running statistics over its columns.
struct RankPartial {
  std::vector<float> best;      // [M] the best value so far
  std::vector<int32_t> best_id; // [M]
  std::vector<int64_t> above;   // [M, T]
  void reset(size_t M, size_t T) {
    best.assign(M, -INFINITY);
    best_id.assign(M, -1);
    above.assign(M * T, 0);
  }
};

// Folds tile rows (Tt: [MR][NR], columns n0 .. n0+nr-1, rows m0 .. m0+mr-1) into the partial.
inline void fold_tile(const float* Tt, size_t m0, size_t mr, size_t n0, size_t nr, size_t T,
                      const float* value, const int32_t* targets, RankPartial& r) {
  using simd::fvec;
  constexpr size_t W = simd::W;
  for (size_t i = 0; i < mr; ++i) {
    const size_t m = m0 + i;
    const float* row = Tt + i * kNR;
    if (nr == kNR) {
      const fvec a = simd::loadu(row), b = simd::loadu(row + W);
      const fvec best(r.best[m]);
      // A new maximum is rare once a row is under way: scan the columns only then, in order.
      if (xsimd::any(a > best) || xsimd::any(b > best))
        for (size_t j = 0; j < kNR; ++j)
          if (row[j] > r.best[m]) r.best[m] = row[j], r.best_id[m] = int32_t(n0 + j);
      for (size_t t = 0; t < T; ++t) {
        if (targets[m * T + t] < 0) continue;
        const fvec y(value[m * T + t]), one(1.f), zero(0.f);
        r.above[m * T + t] += int64_t(simd::hsum(xsimd::select(a > y, one, zero) + xsimd::select(b > y, one, zero)));
      }
      continue;
    }
    for (size_t j = 0; j < nr; ++j) {  // the last, partial panel
      if (row[j] > r.best[m]) r.best[m] = row[j], r.best_id[m] = int32_t(n0 + j);
      for (size_t t = 0; t < T; ++t)
        if (targets[m * T + t] >= 0) r.above[m * T + t] += row[j] > value[m * T + t];
    }
  }
}

}  // namespace detail

// RankStats of Y = X[M, K] . W[N, K]^T (see the top of this file). `packed`: W pre-packed
// (PackedPanels(W)), or null to pack each panel during the call. T targets per row.
inline RankStats gemm_rank(const MatrixView& W, const PackedPanels* packed, const float* X, size_t M,
                           std::span<const int32_t> targets, size_t T) {
  using namespace detail;
  check_rank_args(W, "gemm_rank", M, targets, T);
  if (packed && (packed->matrix().data != W.data || packed->matrix().rows != W.rows ||
                 packed->matrix().cols != W.cols))
    throw UsageError("", "packed", "packed panels of another matrix");
  const size_t N = W.rows, K = W.cols;
  RankStats out;
  out.argmax.assign(M, -1);
  out.value.assign(M * T, NAN);
  out.above.assign(M * T, 0);
  if (M == 0) return out;
  if (K == 0) {  // every Y element is an empty sum, 0
    for (size_t m = 0; m < M; ++m) out.argmax[m] = N ? 0 : -1;
    return out;
  }

  const int threads = worker_count(M * N * K);
  const PackedRows A(X, K, M, threads);
  const size_t KC = A.KC, kblocks = A.kblocks, tiles = (M + kMR - 1) / kMR, P = (N + kNR - 1) / kNR;
  const auto Ap = [&](size_t t, size_t kb) { return A.tile(t, kb); };
  // Panel p's weights: the pre-packed panel, or packed into `own` (kNR * K + 16 floats).
  const auto panel = [&](size_t p, std::vector<float>& own, std::vector<float>& rows) -> const float* {
    if (packed) return packed->panel(p);
    own.resize(K * kNR + 16);
    rows.resize(kNR * K);
    float* Bp = align64(own);
    pack_weights(W, p * kNR, std::min(kNR, N - p * kNR), 0, K, Bp, rows.data());
    return Bp;
  };

  // The targets' values: their tiles computed as the pass below computes them (the same packed
  // rows and weights, the same gemm_tile calls), so each is bit for bit the value it is compared
  // with. One tile per (target panel, row tile): a few hundred against the pass's thousands.
  {
    std::vector<std::pair<size_t, size_t>> need;  // (panel, index m*T+t), in panel order
    for (size_t i = 0; i < M * T; ++i)
      if (targets[i] >= 0) need.emplace_back(size_t(targets[i]) / kNR, i);
    std::sort(need.begin(), need.end());
    std::vector<float> own, rows, C(kMR * kNR);
    for (size_t a = 0; a < need.size();) {
      const size_t p = need[a].first;
      const float* Bp = panel(p, own, rows);
      size_t done = SIZE_MAX;  // the row tile in C
      for (; a < need.size() && need[a].first == p; ++a) {
        const size_t m = need[a].second / T, t = m / kMR;
        if (t != done) {
          done = t;
          for (size_t kb = 0; kb < kblocks; ++kb)
            gemm_tile_rows(std::min(kMR, M - t * kMR), std::min(KC, K - kb * KC), Ap(t, kb),
                           Bp + kb * KC * kNR, C.data(), kNR, kb > 0);
        }
        out.value[need[a].second] = C[(m % kMR) * kNR + size_t(targets[need[a].second]) % kNR];
      }
    }
  }

  RankPartial total;
  total.reset(M, T);
  std::mutex merge;
  parallel_chunks(P, threads, [&](size_t pb, size_t pe) {
    RankPartial r;
    r.reset(M, T);
    std::vector<float> C(tiles * kMR * kNR);  // [tiles][MR][NR] this panel's Y
    std::vector<float> own, rows;            // a panel packed here when W is not pre-packed
    for (size_t p = pb; p < pe; ++p) {
      const size_t n0 = p * kNR, nr = std::min(kNR, N - n0);
      const float* Bp = panel(p, own, rows);
      // The next pre-packed panel (contiguous, K*NR floats) is fetched a few lines per tile.
      const size_t next_lines = packed && p + 1 < pe ? K * kNR * sizeof(float) / 64 : 0;
      const size_t per_tile = (next_lines + tiles * kblocks - 1) / (tiles * kblocks);
      const uintptr_t next = packed && p + 1 < pe ? uintptr_t(packed->panel(p + 1)) : 0;
      size_t line = 0;
      for (size_t kb = 0; kb < kblocks; ++kb) {
        const size_t k0 = kb * KC, kc = std::min(KC, K - k0);
        for (size_t t = 0; t < tiles; ++t) {
          for (const size_t end = std::min(line + per_tile, next_lines); line < end; ++line)
            prefetch_line(next + line * 64);
          gemm_tile_rows(std::min(kMR, M - t * kMR), kc, Ap(t, kb), Bp + k0 * kNR, C.data() + t * kMR * kNR, kNR,
                         kb > 0);
        }
      }
      for (size_t t = 0; t < tiles; ++t)
        fold_tile(C.data() + t * kMR * kNR, t * kMR, std::min(kMR, M - t * kMR), n0, nr, T,
                  out.value.data(), targets.data(), r);
    }
    // Merge: the larger value, the lower column on a tie, whatever order the chunks end in.
    std::lock_guard<std::mutex> lock(merge);
    for (size_t m = 0; m < M; ++m) {
      if (r.best_id[m] >= 0 && (total.best_id[m] < 0 || r.best[m] > total.best[m] ||
                                (r.best[m] == total.best[m] && r.best_id[m] < total.best_id[m])))
        total.best[m] = r.best[m], total.best_id[m] = r.best_id[m];
    }
    for (size_t i = 0; i < M * T; ++i) total.above[i] += r.above[i];
  });
  for (size_t m = 0; m < M; ++m) out.argmax[m] = std::max(total.best_id[m], 0);
  out.above = std::move(total.above);
  return out;
}

}  // namespace fathom::kernels
