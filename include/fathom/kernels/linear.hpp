#pragma once
// Matrix-vector (decode) and matrix-matrix (prefill) products with a weight matrix in any
// supported dtype. Accumulation is in f32; work is split statically over OpenMP threads so
// results are bit-reproducible for a given thread count (in fact for any thread count: each
// output element is summed by one thread in a fixed order).
#include <atomic>
#include <cstddef>
#include <cstdlib>
#include <cstring>
#include <initializer_list>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "fathom/core/dtype.hpp"
#include "fathom/core/error.hpp"
#include "fathom/kernels/amx_gguf.hpp"
#include "fathom/kernels/amx_q8.hpp"
#include "fathom/kernels/bf16dot.hpp"
#include "fathom/kernels/cpu_features.hpp"
#include "fathom/kernels/gemm.hpp"
#include "fathom/kernels/gemv.hpp"
#include "fathom/kernels/matrix.hpp"
#include "fathom/kernels/parallel.hpp"
#include "fathom/kernels/quant.hpp"
#include "fathom/kernels/quant4.hpp"

namespace fathom::kernels {

inline float MatrixView::at(size_t r, size_t c) const {
  const size_t i = r * cols + c;
  switch (dtype) {
    case DType::F32: return static_cast<const float*>(data)[i];
    case DType::BF16: return bf16_to_f32(static_cast<const uint16_t*>(data)[i]);
    case DType::F16: return f16_to_f32(static_cast<const uint16_t*>(data)[i]);
    case DType::Q8:  // dequantise: q * d of the element's block (Q8), the GGUF blocks' reference
    case DType::Q4_0: case DType::Q4_1: case DType::Q4_K: case DType::Q6_K: case DType::Q5_0: case DType::Q5_1: {
      float v = 0.f;  // written by widen_segment (GCC cannot see it through the switch)
      detail::widen_segment(*this, r, c, 1, &v);
      return v;
    }
    default: throw UnsupportedError("", std::string(dtype_name(dtype)), "MatrixView::at");
  }
}

namespace detail {
inline void check_matrix(const MatrixView& W, const char* who) {
  if (W.rows && W.cols && !W.data) throw UsageError("", "MatrixView.data", std::string(who) + ": null data");
  if (is_gguf_block(W.dtype)) check_gguf_block(W, who);
}

// The input vector x in the form W's row kernels read it, made once per call and shared by all
// matrices of a fused product: bf16 weights read x split into even/odd elements, Q8 and the GGUF
// block formats (quant4.hpp) read x quantised to int8 blocks.
struct PreparedInput {
  const float* x = nullptr;           // [cols]
  const SplitVector* split = nullptr; // BF16
  const uint32_t* xb = nullptr;       // BF16 with bf16 activations (bf16dot.hpp): [ceil(cols/2)] pairs
  const Q8Acts* q8 = nullptr;         // Q8
};
inline PreparedInput prepare_input(DType dt, const float* x, size_t cols) {
  PreparedInput in{x};
  if (dt == DType::BF16 && bf16_activations()) {
    thread_local std::vector<uint32_t> xb;  // [ceil(cols/2)] x rounded to bf16 pairs
    xb.resize(cols / 2 + 1);
    round_pairs(x, cols, xb.data());
    in.xb = xb.data();
  } else if (dt == DType::BF16) {
    thread_local SplitVector xs;  // [cols/2] even and odd elements of x
    xs.assign(x, cols);
    in.split = &xs;
  } else if (dt == DType::Q8 || is_gguf_block(dt)) {
    thread_local Q8Acts acts;     // [nb*32] int8 values, [nb] scales and block sums
    acts.assign(x, 1, cols);
    in.q8 = &acts;
  }
  return in;
}

// Rows per tile of the dense gemv kernels. Several rows side by side share the loads of x, which
// matters once x no longer fits L1; below that one row at a time makes each thread read a single
// stream, which the memory system serves faster. Measured on this machine class
// (docs/benchmarks.md): 2 threads, one row +10-20 % on 896- to 4096-wide rows, four rows +15-60 %
// on 4864- and 14336-wide ones. On a Zen 5 (AMD family 1Ah), with one row prefetched a whole
// number of rows ahead less a line (prefetch.hpp, whole_rows_ahead), one row at any thread count:
// bf16 up to 4864 wide (20 KiB of x; 1.10-1.22x at 1 thread, 5632 wide equal, 8192 0.75x), f32 up
// to 3072 wide (1.09-1.22x; 4096 0.94x at 1 thread, four rows 1.08x at 2). 1 thread with AVX-512
// elsewhere: four rows (the Intel Xeons: not yet measured the Zen 5 way), except on a Zen 4 (AMD
// family 19h), where one row streamed 2.1-2.2x as fast from DRAM on 896-wide rows (bf16 and f32,
// the LM head too), and, once the rows streamed without software prefetch there (prefetch.hpp),
// 1.12x on 4864-wide bf16 rows (19 KiB of x; f32 1.0x) but 0.6x on 14336-wide ones (56 KiB: x no
// longer stays in L1 beside the row), so there one thread takes one row up to 24 KiB of x. With
// 16 vector registers (AVX2) four rows' 16 accumulators and x spill to the stack: on an AMD Zen 3,
// 1 thread, one row streamed 20-35 % faster on 288-wide rows (llama2.c's 15M shape), as fast on
// 768- to 896-wide ones, and four rows were faster from 2048 wide (docs/benchmarks.md, "llama2.c
// run.c"). On a Zen 4 two threads take one bf16 row up to 24 KiB of x as well (one row is then
// prefetched 8 KiB ahead into L2, prefetch.hpp): 896 x 4864 (Qwen2.5-0.5B's down projection)
// streamed 1.40-1.48x as fast while the VM read 55-63 GB/s (60 % -> 86-89 % of the read),
// 1.03-1.16x while it read 33-37; f32 rows there were 0.87-0.91x / 0.97x, so keep four rows
// (docs/benchmarks.md, "Zen 4: bf16 rows at two threads"). Results do not depend on the choice.
inline int gemv_row_tile(size_t cols, int threads, bool f32) {
  const size_t x_bytes = cols * sizeof(float);
#if defined(__AVX512F__)
  if (amd_family_1ah_on()) return x_bytes <= (size_t(f32 ? 12 : 20) << 10) ? 1 : 4;
  const bool zen4 = amd_family_19h();
  const size_t kOneRowMax1 = zen4 ? size_t(24) << 10 : 0;  // else 1 thread: always four rows
  const size_t kOneRowMax2 = zen4 && !f32 ? size_t(24) << 10 : size_t(16) << 10;
#else
  (void)f32;
  constexpr size_t kOneRowMax1 = size_t(4) << 10, kOneRowMax2 = size_t(16) << 10;
#endif
  return x_bytes <= (threads >= 2 ? kOneRowMax2 : kOneRowMax1) ? 1 : 4;
}

// f32 rows [r0, r1), flattened (the row kernel inlined; GCC 12 called it out of line once a row),
// as the quantised decode loops are: on a Zen 4 one thread streamed 1.06-1.29x as fast from DRAM
// while the VM read 27-29 GB/s (768 x 2048 1.29x, 2048 x 2048 1.14x, 2048 x 768 1.10x), 0.99-1.03x
// while it read 31-32 (both at 97-105 % of the read); two threads 1.02-1.08x; the same bits. bf16
// rows flattened were 0.93-1.00x, so they keep the call (docs/benchmarks.md, "Zen 4: the peers on
// every suite again, llama2.c `run.c`").
template <int R>
[[gnu::flatten]] inline void f32_rows(const float* w, size_t cols, const float* x, size_t r0, size_t r1, float* y) {
  const TilePrefetch pf = dense_tile_prefetch(/*f32=*/true, cols, R);
  pf.prime(w + r0 * cols);
  size_t r = r0;
  for (; r + R <= r1; r += R) dot_f32_rows<R>(w + r * cols, cols, x, cols, y + r, pf);
  for (; r < r1; ++r) y[r] = dot_f32(w + r * cols, x, cols);
}

template <int R>
inline void dense_rows(const MatrixView& W, const PreparedInput& in, size_t r0, size_t r1, float* y) {
  const size_t cols = W.cols;
  if (W.dtype == DType::F32) {
    f32_rows<R>(static_cast<const float*>(W.data), cols, in.x, r0, r1, y);
  } else {
    const uint16_t* w = static_cast<const uint16_t*>(W.data);
    const TilePrefetch pf = dense_tile_prefetch(/*f32=*/false, cols, R);
    pf.prime(w + r0 * cols);
    size_t r = r0;
    for (; r + R <= r1; r += R) dot_bf16_rows<R>(w + r * cols, cols, *in.split, in.x, cols, y + r, pf);
    for (; r < r1; ++r) y[r] = dot_bf16(w + r * cols, *in.split, in.x, cols);
  }
}

// y[r] = W[r,:] . x for r in [r0, r1), rows prefetched ahead (prefetch.hpp) from the first one on.
inline void gemv_rows(const MatrixView& W, const PreparedInput& in, size_t r0, size_t r1, float* y,
                      int threads) {
  const size_t cols = W.cols;
  switch (W.dtype) {
    case DType::F32:
    case DType::BF16:
#if defined(__AVX512BF16__) && defined(__AVX512BW__)
      if (in.xb) return bf16dot_rows(static_cast<const uint16_t*>(W.data), cols, in.xb, r0, r1, y);
#endif
      return gemv_row_tile(cols, threads, W.dtype == DType::F32) == 1 ? dense_rows<1>(W, in, r0, r1, y)
                                                                      : dense_rows<4>(W, in, r0, r1, y);
    case DType::F16: {
      const uint16_t* w = static_cast<const uint16_t*>(W.data);
      thread_local std::vector<float> row;  // [cols] one widened weight row
      row.resize(cols);
      for (size_t r = r0; r < r1; ++r) {
        f16_to_f32_n(w + r * cols, row.data(), cols);
        y[r] = dot_f32(row.data(), in.x, cols);
      }
      return;
    }
    case DType::Q8: return q8_rows_gemv(q8_layout(W), *in.q8, r0, r1, y);
    case DType::Q4_0: case DType::Q4_1: case DType::Q4_K: case DType::Q6_K: case DType::Q5_0: case DType::Q5_1:
      return gguf_rows_gemv(W, *in.q8, r0, r1, y);
    default: throw UnsupportedError("", std::string(dtype_name(W.dtype)), "gemv: weight dtype");
  }
}
}  // namespace detail

// One matrix-vector product of a fused call: y = W x.
struct Product {
  const MatrixView* W;
  float* y;  // [W->rows]
};

// y_i = W_i x for several matrices that read the same x (a layer's q/k/v, gate/up), in one
// parallel region: the threads fork and join once, split the 4-row tiles of all matrices between
// them, and even a matrix too small to split alone is shared. Each y_i equals gemv(W_i, x)
// bit for bit. Matrices of different dtype or width are run one after the other.
inline void gemv_fused(std::span<const Product> products, const float* x) {
  if (products.empty()) return;
  const MatrixView& W0 = *products[0].W;
  // Rows per tile: 4, or the 16 rows of a GGUF block format's group (quant4.hpp).
  const size_t tile = is_gguf_block(W0.dtype) ? kQ4GroupRows : 4;
  size_t tiles = 0, work = 0;
  bool uniform = true;
  for (const Product& p : products) {
    detail::check_matrix(*p.W, "gemv");
    uniform = uniform && p.W->dtype == W0.dtype && p.W->cols == W0.cols;
    tiles += (p.W->rows + tile - 1) / tile;
    work += p.W->rows * p.W->cols;
  }
  if (!uniform) {
    for (const Product& p : products) gemv_fused(std::span<const Product>(&p, 1), x);
    return;
  }
  switch (W0.dtype) {
    case DType::F32: case DType::BF16: case DType::F16: case DType::Q8: break;
    case DType::Q4_0: case DType::Q4_1: case DType::Q4_K: case DType::Q6_K: case DType::Q5_0: case DType::Q5_1: break;
    default: throw UnsupportedError("", std::string(dtype_name(W0.dtype)), "gemv: weight dtype");
  }
  const detail::PreparedInput in = detail::prepare_input(W0.dtype, x, W0.cols);
  const int threads = detail::worker_count(work);
  // Q4_K / Q6_K rows in column slices: a chunk is a run in each slice (quant4.hpp gguf_rows_gemv),
  // each starting cold, so a thread's range goes in two chunks, not eight (two threads, Q4_K 2048 x
  // 8192 and 896 x 4864: 1.04x as fast; docs/benchmarks.md, "Zen 4: long Q4_K rows in column slices")
  const bool sliced = detail::in_column_slices(W0);
  detail::parallel_chunks(tiles, threads, [&](size_t b, size_t e) {
    size_t first = 0;  // tile index of products[i]'s first tile
    for (const Product& p : products) {
      const size_t n = (p.W->rows + tile - 1) / tile;
      const size_t lo = std::max(b, first), hi = std::min(e, first + n);
      if (lo < hi)
        detail::gemv_rows(*p.W, in, (lo - first) * tile, std::min(p.W->rows, (hi - first) * tile), p.y, threads);
      first += n;
    }
  }, sliced ? 2 : 8);
}
inline void gemv_fused(std::initializer_list<Product> products, const float* x) {
  gemv_fused(std::span<const Product>(products.begin(), products.size()), x);
}

// y[r] = sum_c W[r,c] x[c]
inline void gemv(const MatrixView& W, const float* x, float* y) { gemv_fused({{&W, y}}, x); }

// Exact prefill (the default): gemm with Q8 or GGUF block weights and n > 1 multiplies the
// weights' exact values with f32 activations (gemm_exact), so a prompt's products are those of
// the dequantised f32 model, bit for bit, on every machine. Against the int8 kernels it was faster
// or within 7 % on the CPUs measured (docs/benchmarks.md: Zen 3 without VNNI 1.1-1.56x; Zen 5
// with AVX512-VNNI Q8 0.93-0.97x); since the GGUF formats' 16-row tiles (quant4.hpp) their int8
// prompts run 1.5-2.9x the exact ones (Zen 5; SmolLM2's Q4_1 end to end 2.1x), which stay the
// default for their exactness. Decode (gemv) and batched
// decoding keep the int8 kernels (activations quantised to int8 blocks, as llama.cpp does), so a
// prompt's products differ from decode's for the same rows by that rounding.
// set_exact_prefill(false), or FATHOM_PREFILL=int8 in the environment (read once), runs prompts
// through the int8 kernels too: prompt rows then equal decode rows bit for bit (Q8 on a CPU with
// AMX-INT8: within f32 rounding, amx_q8.hpp; FATHOM_AMX=off makes them equal there too).
namespace detail {
inline std::atomic<bool>& exact_prefill_flag() {
  static std::atomic<bool> on = [] {
    const char* e = std::getenv("FATHOM_PREFILL");
    return !(e && std::string_view(e) == "int8");
  }();
  return on;
}
}  // namespace detail
inline void set_exact_prefill(bool on) { detail::exact_prefill_flag().store(on); }
inline bool exact_prefill() { return detail::exact_prefill_flag().load(std::memory_order_relaxed); }

// Y[t, r] = sum_c X[t, c] W[r, c]; X: [n, W.cols] and Y: [n, W.rows], row-major, contiguous.
// n == 1 is the matrix-vector product (same result as gemv). For Q8 weights each row of X is
// quantised to int8 blocks first (quant.hpp) and every row's result equals gemv's bit for bit
// (except on a CPU with AMX-INT8, whose tiles sum in another order: amx_q8.hpp); so for the GGUF
// block formats (quant4.hpp; their AMX tiles sum in decode's order, amx_gguf.hpp) -- when
// !exact_prefill() (above; by default those formats run gemm_exact).
inline void gemm(const MatrixView& W, const float* X, size_t n, float* Y) {
  if (n == 0) return;
  if (n == 1) return gemv(W, X, Y);
  detail::check_matrix(W, "gemm");
  switch (W.dtype) {
    case DType::F32: case DType::BF16: case DType::F16: {
#if defined(__AVX512BF16__) && defined(__AVX512BW__)
      if (W.dtype == DType::BF16 && bf16_activations()) {
        const detail::DenseProduct p{W.data, W.rows, Y};
        return detail::gemm_bf16dot(W.cols, X, n, std::span<const detail::DenseProduct>(&p, 1));
      }
#endif
      return detail::gemm_dense(W.dtype, W.data, W.rows, W.cols, X, n, Y);
    }
    case DType::Q8:
      if (exact_prefill()) return detail::gemm_dense(W.dtype, W.data, W.rows, W.cols, X, n, Y);
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
      if (amx_int8_active() && n >= detail::kAmxQ8MinRows) return detail::gemm_amx_q8<detail::AmxTiles>(W, X, n, Y);
#endif
      return detail::gemm_q8(W, X, n, Y);
    case DType::Q4_0: case DType::Q4_1: case DType::Q4_K: case DType::Q6_K: case DType::Q5_0: case DType::Q5_1:
      if (exact_prefill()) return detail::gemm_dense(W.dtype, W.data, W.rows, W.cols, X, n, Y);
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
      if (amx_int8_active() && detail::amx_gguf_format(W.dtype) && n >= detail::kAmxQ8MinRows)
        return detail::gemm_amx_gguf<detail::AmxTiles>(W, X, n, Y);
#endif
      return detail::gemm_gguf_block(W, X, n, Y);
    default: throw UnsupportedError("", std::string(dtype_name(W.dtype)), "gemm: weight dtype");
  }
}

// Y = X W^T with W's exact values and unquantised f32 activations, whatever W's format: Q8 and
// the GGUF blocks are widened in the dense gemm's packing step (widen.hpp), so Y equals gemm of
// the dequantised f32 matrix bit for bit (any n, any thread count) at the f32 kernel's rate.
// gemm does the same for those formats unless set_exact_prefill(false); this is the lens
// trainer's arithmetic (lens/train.hpp), which the batched lens readouts use (batch_readout.hpp).
inline void gemm_exact(const MatrixView& W, const float* X, size_t n, float* Y) {
  if (n == 0) return;
  detail::check_matrix(W, "gemm_exact");
  detail::gemm_dense(W.dtype, W.data, W.rows, W.cols, X, n, Y);
}

// Y_i = X W_i^T for matrices that read the same X: [n, cols]; Product::y is then [n, W->rows].
// A single token (decode) runs as one gemv_fused; a prompt with dense weights (or quantised ones
// under exact prefill) as one gemm that packs X once for all matrices and splits all their panels
// between the threads (int8 prompts and mixed dtypes: one gemm per matrix). Every Y_i equals
// gemm(W_i, X) bit for bit.
inline void gemm_fused(std::span<const Product> products, const float* X, size_t n) {
  if (n == 1) return gemv_fused(products, X);
  if (n == 0 || products.empty()) return;
  const MatrixView& W0 = *products[0].W;
  // dense: the f32 gemm's formats, and Q8 / the GGUF blocks under exact prefill (gemm runs them
  // through gemm_dense too), so X is packed once for all matrices of one format
  bool dense = W0.dtype == DType::F32 || W0.dtype == DType::BF16 || W0.dtype == DType::F16 ||
               ((W0.dtype == DType::Q8 || is_gguf_block(W0.dtype)) && exact_prefill());
  std::vector<detail::DenseProduct> dp;
  for (const Product& p : products) {
    detail::check_matrix(*p.W, "gemm");
    dense = dense && p.W->dtype == W0.dtype && p.W->cols == W0.cols;
    dp.push_back({p.W->data, p.W->rows, p.y});
  }
#if defined(__AVX512BF16__) && defined(__AVX512BW__)
  if (dense && W0.dtype == DType::BF16 && bf16_activations()) return detail::gemm_bf16dot(W0.cols, X, n, dp);
#endif
  if (dense) return detail::gemm_dense(W0.dtype, W0.cols, X, n, dp);
  for (const Product& p : products) gemm(*p.W, X, n, p.y);
}
inline void gemm_fused(std::initializer_list<Product> products, const float* X, size_t n) {
  gemm_fused(std::span<const Product>(products.begin(), products.size()), X, n);
}

}  // namespace fathom::kernels
