#pragma once
// Native 4-, 5- and 6-bit weights: GGUF's Q4_0, Q4_1, Q5_0, Q5_1, Q4_K and Q6_K kept in their
// block format in memory and multiplied directly (issue 14, part 1), with the activations
// quantised to 8 bits per block of 32 as for Q8 (quant.hpp's Q8Acts), as llama.cpp does.
//
// Memory layout (MatrixView::data; cols a multiple of the block): every format in groups of 16
// rows, each a run of tiles (tile b: block or super-block b of the group's 16 rows), the file's
// bytes re-laid at load (no arithmetic on any value), so that a vector lane can take each row:
//   Q4_0, Q4_1, Q5_0, Q5_1  q4_groups.hpp (blocks of 32)
//   Q4_K                    k4_groups.hpp (super-blocks of 256)
//   Q6_K                    k6_groups.hpp (super-blocks of 256)
// (llama.cpp's Q4_K_M falls back to Q5_0 for matrices whose rows are not whole 256-blocks, such as
// Qwen2.5-0.5B's 896.) Those headers hold the kernels and define each format's order of
// operations: exact int32 dots per block (or group of 16), then one FMA each in a fixed order per
// row, the same on every CPU, for every thread count (a row is summed by one thread) and any
// number of activation rows (decode, prompts, batched decoding).
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
#include "fathom/kernels/k4_groups.hpp"
#include "fathom/kernels/k6_groups.hpp"
#include "fathom/kernels/matrix.hpp"
#include "fathom/kernels/parallel.hpp"
#include "fathom/kernels/prefetch.hpp"
#include "fathom/kernels/q4_groups.hpp"
#include "fathom/kernels/quant.hpp"
#include "fathom/kernels/weight_buffer.hpp"

namespace fathom::kernels {

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
// Bytes of a rows x cols matrix in one of these formats as held (cols a multiple of the block;
// whole groups of 16 rows).
inline size_t gguf_block_matrix_bytes(DType t, size_t rows, size_t cols) {
  if (is_q4_family(t)) return detail::q4_matrix_bytes(t, rows, cols);
  return t == DType::Q4_K ? detail::k4_matrix_bytes(rows, cols) : detail::k6_matrix_bytes(rows, cols);
}

namespace detail {

inline float h2f(const uint8_t* p) {
  uint16_t h;
  std::memcpy(&h, p, 2);
  return f16_to_f32(h);
}

// Row r of W . activation row t of A: the portable kernels, the reference every vector kernel
// equals bit for bit.
inline float gguf_row_dot_portable(const MatrixView& W, size_t r, const Q8Acts& A, size_t t) {
  const int8_t* xq = A.qs.data() + t * A.nb * kQ8Block;
  const float* xd = A.d.data() + t * A.nb;
  if (is_q4_family(W.dtype)) return q4_row_dot_portable(q4_layout(W), r, xq, xd, A.sx.data() + t * A.nb);
  if (W.dtype == DType::Q4_K) return k4_row_dot_portable(k4_layout(W), r, xq, xd, A.sx.data() + t * A.nb);
  return k6_row_dot_portable(k6_layout(W), r, xq, xd, A.sumh.data() + 2 * t * A.nb);
}

// The fast path compiled in: "AVX512-VNNI", "AVX2" or "portable".
inline const char* gguf_kernel_name() { return kQ4Vnni ? "AVX512-VNNI" : kQ4Avx2 ? "AVX2" : "portable"; }
// Most activation rows a group kernel takes at once (gemm): 8 with AVX-512's 32 registers, 4 with
// AVX2's 16 (in pairs).
constexpr int kGgufMaxRx = kQ4Vnni ? 8 : 4;

// Activation rows t .. t + RX - 1 of A for the group kernels.
template <int RX>
inline Q4Acts<RX> q4_acts(const Q8Acts& A, size_t t) {
  Q4Acts<RX> a;
  for (int m = 0; m < RX; ++m) {
    a.xq[m] = A.qs.data() + (t + m) * A.nb * kQ8Block;
    a.xd[m] = A.d.data() + (t + m) * A.nb;
    a.sx[m] = A.sx.data() + (t + m) * A.nb;
    a.sumq[m] = A.sumq.data() + (t + m) * A.nb;
    a.sumh[m] = A.sumh.data() + 2 * (t + m) * A.nb;
  }
  return a;
}

// Calls run(std::integral_constant<int, RX>{}, t) for activation rows t .. t + RX - 1 covering
// [t0, t1): RX = kGgufMaxRx, then 4, then 1.
template <class Run>
inline void in_activation_steps(size_t t0, size_t t1, Run&& run) {
  size_t t = t0;
  if constexpr (kGgufMaxRx >= 8)
    for (; t + 8 <= t1; t += 8) run(std::integral_constant<int, 8>{}, t);
  for (; t + 4 <= t1; t += 4) run(std::integral_constant<int, 4>{}, t);
  for (; t < t1; ++t) run(std::integral_constant<int, 1>{}, t);
}

// Whether W's rows are held in column slices (Q4_K and Q6_K rows of more than 2048 columns,
// k4_groups.hpp): their products go slice by slice. Both formats slice alike (the same widths), so
// k4_layout(W) gives either's slices.
inline bool in_column_slices(const MatrixView& W) {
  return (W.dtype == DType::Q4_K || W.dtype == DType::Q6_K) && k4_layout(W).sliced();
}
// A Q4_K or Q6_K matrix's tiles, for super_block_group.
struct SuperBlockMatrix {
  DType dtype;
  K4Layout k4;  // (Q4_K)
  K6Layout k6;  // (Q6_K)
};
inline SuperBlockMatrix super_block_matrix(const MatrixView& W) { return {W.dtype, k4_layout(W), k6_layout(W)}; }
// The group kernel of a Q4_K or Q6_K matrix over part of its super-blocks.
template <int RX>
inline void super_block_group(const SuperBlockMatrix& M, size_t g, const Q4Acts<RX>& a, float* out, GroupPart part) {
  if (M.dtype == DType::Q4_K) k4_group<RX>(M.k4, g, a, out, part);
  else k6_group<RX>(M.k6, g, a, out, part);
}

// Y[t * ldy + r] for rows r in [r0, r1) and activation rows t in [0, n): each group of 16 rows
// overlapping the range against RX activation rows at a time (its tiles unpacked once for all of
// them), in token blocks of ~24 KB of activations (L1-resident while the group's tiles pass). Only
// the range's rows are written.
inline void group_rows(const MatrixView& W, const Q8Acts& A, size_t n, size_t r0, size_t r1, float* Y, size_t ldy) {
  if (r0 >= r1) return;
  const size_t tb = n == 1 ? 1 : std::max<size_t>(8, (size_t(24) << 10) / (A.nb * kQ8Block) / 8 * 8);
  if (in_column_slices(W)) {  // slice by slice, as gguf_rows_gemv
    const SuperBlockMatrix M = super_block_matrix(W);
    const size_t g0 = r0 / kQ4GroupRows, g1 = (r1 + kQ4GroupRows - 1) / kQ4GroupRows;
    thread_local std::vector<float> sums;  // [g1 - g0][tb][16] the groups' sums so far
    sums.resize((g1 - g0) * tb * kQ4GroupRows);
    for (size_t t0 = 0; t0 < n; t0 += tb) {
      const size_t t1 = std::min(n, t0 + tb);
      for_column_slices(M.k4, [&](size_t first, size_t last) {
        for (size_t g = g0; g < g1; ++g)
          in_activation_steps(t0, t1, [&](auto rx, size_t t) {
            super_block_group<decltype(rx)::value>(M, g, q4_acts<decltype(rx)::value>(A, t),
                                                   sums.data() + ((g - g0) * tb + (t - t0)) * kQ4GroupRows,
                                                   GroupPart{first, last, first > 0});
          });
      });
      for (size_t g = g0; g < g1; ++g)
        for (size_t t = t0; t < t1; ++t)
          for (size_t r = std::max(r0, g * kQ4GroupRows); r < std::min(r1, (g + 1) * kQ4GroupRows); ++r)
            Y[t * ldy + r] = sums[((g - g0) * tb + (t - t0)) * kQ4GroupRows + r % kQ4GroupRows];
    }
    return;
  }
  for (size_t t0 = 0; t0 < n; t0 += tb)
    for (size_t g = r0 / kQ4GroupRows; g * kQ4GroupRows < r1; ++g) {
      const size_t lo = std::max(r0, g * kQ4GroupRows), hi = std::min(r1, (g + 1) * kQ4GroupRows);
      in_activation_steps(t0, std::min(n, t0 + tb), [&](auto rx, size_t t) {
        constexpr int RX = decltype(rx)::value;
        float out[kQ4GroupRows * RX];  // [RX][16]
        if (W.dtype == DType::Q4_K) k4_group<RX>(k4_layout(W), g, q4_acts<RX>(A, t), out);
        else if (W.dtype == DType::Q6_K) k6_group<RX>(k6_layout(W), g, q4_acts<RX>(A, t), out);
        else q4_group<RX>(q4_layout(W), g, q4_acts<RX>(A, t), out);
        for (int m = 0; m < RX; ++m)
          for (size_t r = lo; r < hi; ++r) Y[(t + m) * ldy + r] = out[16 * m + r % kQ4GroupRows];
      });
    }
}

// y[r] for r in [r0, r1), one activation row (decode): group_rows' steps for one activation row,
// flattened (the group kernel inlined, as q8_rows_plan in quant.hpp). Through group_rows, GCC 12
// called Q4_K's kernel out of line and kept every activation-row count's path; one Zen 4 thread
// then decoded SmolLM2's Q4_1 at 85.6 % of the bound against 87.2 % this way, the same bits
// (docs/benchmarks.md, "Zen 4: Q8 rows on two prefetch levels; the decode loops flattened").
//
// Q4_K and Q6_K rows held in column slices (k4_groups.hpp) go slice by slice: every group of the
// range over one slice's tiles (one run in memory), then over the next slice's, each group's sums
// carried from one slice to the next (the same operations in the same order per row: the same
// bits).
[[gnu::flatten]] inline void gguf_rows_gemv(const MatrixView& W, const Q8Acts& A, size_t r0, size_t r1, float* y) {
  if (r0 >= r1) return;
  const Q4Acts<1> a = q4_acts<1>(A, 0);
  const size_t g0 = r0 / kQ4GroupRows, g1 = (r1 + kQ4GroupRows - 1) / kQ4GroupRows;
  const auto store = [&](size_t g, const float* out) {
    for (size_t r = std::max(r0, g * kQ4GroupRows); r < std::min(r1, (g + 1) * kQ4GroupRows); ++r)
      y[r] = out[r % kQ4GroupRows];
  };
  if (in_column_slices(W)) {
    const SuperBlockMatrix M = super_block_matrix(W);
    // A group's sums between slices: in y itself where it holds all 16 rows (in cache: decode
    // writes the same y every layer), else in edge (the range's first and last groups).
    float edge[2][kQ4GroupRows];
    const auto whole = [&](size_t g) { return g * kQ4GroupRows >= r0 && (g + 1) * kQ4GroupRows <= r1; };
    const auto sums = [&](size_t g) { return whole(g) ? y + g * kQ4GroupRows : edge[g == g0 ? 0 : 1]; };
    for_column_slices(M.k4, [&](size_t first, size_t last) {  // (Q6_K's slices are the same)
      for (size_t g = g0; g < g1; ++g) super_block_group<1>(M, g, a, sums(g), GroupPart{first, last, first > 0});
    });
    if (!whole(g0)) store(g0, sums(g0));
    if (g1 - 1 != g0 && !whole(g1 - 1)) store(g1 - 1, sums(g1 - 1));
    return;
  }
  for (size_t g = g0; g < g1; ++g) {
    float out[kQ4GroupRows];
    if (W.dtype == DType::Q4_K) k4_group<1>(k4_layout(W), g, a, out);
    else if (W.dtype == DType::Q6_K) k6_group<1>(k6_layout(W), g, a, out);
    else q4_group<1>(q4_layout(W), g, a, out);
    store(g, out);
  }
}

// Prompts through the int8 kernels: the threads split whole groups of 16 rows.
inline void gemm_gguf_block(const MatrixView& W, const float* X, size_t n, float* Y) {
  thread_local Q8Acts acts;  // [n][nb*32] quantised activations and their block sums
  acts.assign(X, n, W.cols);
  const Q8Acts& A = acts;
  parallel_chunks(q4_groups(W.rows), worker_count(W.rows * W.cols * n), [&](size_t b, size_t e) {
    group_rows(W, A, n, b * kQ4GroupRows, std::min(W.rows, e * kQ4GroupRows), Y, W.rows);
  });
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
// elements GGUF blocks), re-laid in groups of 16 rows (q4_groups.hpp, k4_groups.hpp,
// k6_groups.hpp). Throws FormatError naming the row and block of a non-finite
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
  auto* base = reinterpret_cast<uint8_t*>(M.data());
  if (t == DType::Q4_K || t == DType::Q6_K) {
    const bool k4 = t == DType::Q4_K;
    const detail::K4Layout L4 = detail::k4_layout(base, rows, cols);
    const detail::K6Layout L6 = detail::k6_layout(base, rows, cols);
    if (rows % kQ4GroupRows != 0) {  // the padding rows: zero (the last group's tiles)
      const size_t g = rows / kQ4GroupRows, tile = k4 ? detail::kK4Tile : detail::kK6Tile;
      for (size_t b = 0; b < nb; ++b) std::memset(base + (k4 ? L4.tile_index(g, b) : L6.tile_index(g, b)) * tile, 0, tile);
    }
    for (size_t r = 0; r < rows; ++r) {
      const auto* row = reinterpret_cast<const uint8_t*>(src(r));
      for (size_t b = 0; b < nb; ++b) {
        const uint8_t* blk = row + b * bb;
        if (k4 ? !(std::isfinite(detail::h2f(blk)) && std::isfinite(detail::h2f(blk + 2)))
               : !std::isfinite(detail::h2f(blk + 208)))
          bad(r, b);
        if (k4) detail::k4_put_superblock(L4, r, b, blk);
        else detail::k6_put_superblock(L6, r, b, blk);
      }
    }
    return M;
  }
  // GGUF blocks: f16 d, f16 m (with a minimum), u32 qh (Q5), 16 bytes of nibbles -> tiles
  const detail::Q4Fmt f = detail::q4_fmt(t);
  const size_t group_bytes = nb * detail::q4_tile_bytes(f);
  for (size_t r = 0; r < rows; ++r) {
    if (r % kQ4GroupRows == 0)  // the fifth bits are or-ed in, the padding rows stay zero
      std::memset(base + r / kQ4GroupRows * group_bytes, 0, group_bytes);
    const auto* row = reinterpret_cast<const uint8_t*>(src(r));
    for (size_t b = 0; b < nb; ++b) {
      const uint8_t* blk = row + b * bb;
      if (!std::isfinite(detail::h2f(blk)) || (detail::q4_has_min(f) && !std::isfinite(detail::h2f(blk + 2)))) bad(r, b);
      detail::q4_put_block(base, f, nb, r, b, blk);
    }
  }
  return M;
}

}  // namespace fathom::kernels
