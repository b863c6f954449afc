#pragma once
// Matrix-vector products of several activation rows at once, for batched decoding
// (model/batch_session.hpp): Y[t, :] = W x_t for t < n, where every row's result is bit-identical
// to gemv(W, x_t) — what a sequence decoded alone computes — while each weight is read from memory
// once per call instead of once per row.
//
// gemm (prefill) cannot serve here: its dense kernel sums each output by rank-1 updates along K
// (gemm.hpp), gemv by four vector accumulators per row (gemv.hpp); the two orders round
// differently. The dense kernels below repeat gemv's per-row operation sequence exactly (4
// accumulators of W lanes over 4W-element steps, then W (f32) or 2W (bf16) steps, the same
// horizontal sum, then the scalar tail), for a pair of activation rows per weight row: the weight
// vectors are loaded (bf16: split into even/odd lanes) once and used for both rows. Weight rows are
// taken in blocks small enough to stay in L1 while all activation rows pass, so the weights stream
// from DRAM once and the activations are re-read from cache.
//
// Q8 and the GGUF block formats already compute every row of a matrix-matrix product with gemv's
// arithmetic (quant.hpp, quant4.hpp: the same tile per result, weights in L2-resident bands), so
// they run as gemm. bf16 weights under bf16 activations (bf16dot.hpp, opt-in, AVX512_BF16) run one
// gemv per row: exact, not faster.
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <initializer_list>
#include <span>
#include <string>
#include <vector>

#include "fathom/core/dtype.hpp"
#include "fathom/core/error.hpp"
#include "fathom/kernels/convert.hpp"
#include "fathom/kernels/gemv.hpp"
#include "fathom/kernels/linear.hpp"
#include "fathom/kernels/parallel.hpp"
#include "fathom/kernels/simd.hpp"

namespace fathom::kernels {
namespace detail {

// out[t] = w . x[t] for T activation rows, each with dot_f32_rows' operation sequence.
template <int T>
inline void f32_row_xs(const float* w, const float* const* x, size_t n, float* out) {
  using simd::fvec;
  constexpr size_t W = simd::W;
  fvec a[T][4];
  for (int t = 0; t < T; ++t) a[t][0] = a[t][1] = a[t][2] = a[t][3] = fvec(0.f);
  size_t c = 0;
  for (; c + 4 * W <= n; c += 4 * W) {
    const fvec w0 = simd::loadu(w + c), w1 = simd::loadu(w + c + W);
    const fvec w2 = simd::loadu(w + c + 2 * W), w3 = simd::loadu(w + c + 3 * W);
    for (int t = 0; t < T; ++t) {
      const float* xt = x[t] + c;
      a[t][0] = xsimd::fma(w0, simd::loadu(xt), a[t][0]);
      a[t][1] = xsimd::fma(w1, simd::loadu(xt + W), a[t][1]);
      a[t][2] = xsimd::fma(w2, simd::loadu(xt + 2 * W), a[t][2]);
      a[t][3] = xsimd::fma(w3, simd::loadu(xt + 3 * W), a[t][3]);
    }
  }
  for (; c + W <= n; c += W) {
    const fvec w0 = simd::loadu(w + c);
    for (int t = 0; t < T; ++t) a[t][0] = xsimd::fma(w0, simd::loadu(x[t] + c), a[t][0]);
  }
  for (int t = 0; t < T; ++t) {
    float s = simd::hsum((a[t][0] + a[t][1]) + (a[t][2] + a[t][3]));
    for (size_t k = c; k < n; ++k) s = std::fma(w[k], x[t][k], s);
    out[t] = s;
  }
}

// out[t] = bf16 w . x[t] (xe/xo: x[t] split, SplitVector) with dot_bf16_rows' operation sequence.
template <int T>
inline void bf16_row_xs(const uint16_t* w, const float* const* xe, const float* const* xo,
                        const float* const* x, size_t n, float* out) {
  using simd::fvec;
  constexpr size_t W = simd::W;
  fvec a[T][4];
  for (int t = 0; t < T; ++t) a[t][0] = a[t][1] = a[t][2] = a[t][3] = fvec(0.f);
  size_t c = 0;
  for (; c + 4 * W <= n; c += 4 * W) {
    fvec e0, o0, e1, o1;
    simd::bf16_split(w + c, e0, o0);
    simd::bf16_split(w + c + 2 * W, e1, o1);
    const size_t h = c / 2;
    for (int t = 0; t < T; ++t) {
      a[t][0] = xsimd::fma(e0, simd::loadu(xe[t] + h), a[t][0]);
      a[t][1] = xsimd::fma(o0, simd::loadu(xo[t] + h), a[t][1]);
      a[t][2] = xsimd::fma(e1, simd::loadu(xe[t] + h + W), a[t][2]);
      a[t][3] = xsimd::fma(o1, simd::loadu(xo[t] + h + W), a[t][3]);
    }
  }
  for (; c + 2 * W <= n; c += 2 * W) {
    fvec e0, o0;
    simd::bf16_split(w + c, e0, o0);
    for (int t = 0; t < T; ++t) {
      a[t][0] = xsimd::fma(e0, simd::loadu(xe[t] + c / 2), a[t][0]);
      a[t][1] = xsimd::fma(o0, simd::loadu(xo[t] + c / 2), a[t][1]);
    }
  }
  for (int t = 0; t < T; ++t) {
    float s = simd::hsum((a[t][0] + a[t][1]) + (a[t][2] + a[t][3]));
    for (size_t k = c; k < n; ++k) s = std::fma(bf16_to_f32(w[k]), x[t][k], s);
    out[t] = s;
  }
}

// The activation rows of one call in the form the dense row kernels read: each row copied to a
// 64-byte aligned place (x) and, for bf16 weights, split into its even and odd elements (xe, xo:
// SplitVector's values). Aligned rows matter once the product is compute-bound: an unaligned
// 32-byte load that crosses a cache line costs two (10-20 % of the kernel's rate, measured).
struct BatchInput {
  std::vector<float> buf;               // [n, stride] rows: x | even | odd, each padded to 16 floats
  std::vector<const float*> x, xe, xo;  // [n]
  void assign(DType dt, const float* X, size_t n, size_t cols) {
    const size_t full = (cols + 15) / 16 * 16, half = (cols / 2 + 15) / 16 * 16;
    const size_t stride = dt == DType::BF16 ? full + 2 * half : full;
    buf.resize(n * stride + 16);
    float* base = buf.data();
    base += (16 - (reinterpret_cast<uintptr_t>(base) / sizeof(float)) % 16) % 16;  // 64-byte boundary
    x.resize(n), xe.resize(n), xo.resize(n);
    for (size_t t = 0; t < n; ++t) {
      float* r = base + t * stride;
      const float* src = X + t * cols;
      std::copy_n(src, cols, r);
      x[t] = r;
      if (dt != DType::BF16) continue;
      float* e = r + full;
      float* o = e + half;
      for (size_t i = 0; 2 * i + 1 < cols; ++i) e[i] = src[2 * i], o[i] = src[2 * i + 1];
      xe[t] = e, xo[t] = o;
    }
  }
};
inline BatchInput& batch_input() {
  thread_local BatchInput in;  // the calling thread prepares, the workers only read it
  return in;
}

// Y[t, r] for r in [r0, r1), t < n (Y: [n, ldy]); f32, bf16 or f16 weights. Weight rows in blocks
// of ~8 KiB, each block against all activation rows, two at a time.
inline void dense_batch_rows(const MatrixView& Wm, const BatchInput& in, size_t n, size_t r0, size_t r1,
                             float* Y, size_t ldy) {
  const size_t cols = Wm.cols;
  const size_t row_bytes = std::max<size_t>(1, cols * (Wm.dtype == DType::F32 ? 4 : 2));
  const size_t block = std::clamp<size_t>((size_t(8) << 10) / row_bytes, 1, 16);
  thread_local std::vector<float> widened;  // F16: [block, cols] rows widened to f32
  for (size_t b0 = r0; b0 < r1; b0 += block) {
    const size_t b1 = std::min(r1, b0 + block);
    if (Wm.dtype == DType::F16) {
      widened.resize(block * cols);
      for (size_t r = b0; r < b1; ++r)
        f16_to_f32_n(static_cast<const uint16_t*>(Wm.data) + r * cols, widened.data() + (r - b0) * cols, cols);
    }
    size_t t = 0;
    auto rows = [&](auto tn) {
      constexpr int T = decltype(tn)::value;
      float out[T];
      for (size_t r = b0; r < b1; ++r) {
        if (Wm.dtype == DType::BF16)
          bf16_row_xs<T>(static_cast<const uint16_t*>(Wm.data) + r * cols, in.xe.data() + t, in.xo.data() + t,
                         in.x.data() + t, cols, out);
        else if (Wm.dtype == DType::F32)
          f32_row_xs<T>(static_cast<const float*>(Wm.data) + r * cols, in.x.data() + t, cols, out);
        else
          f32_row_xs<T>(widened.data() + (r - b0) * cols, in.x.data() + t, cols, out);
        for (int k = 0; k < T; ++k) Y[(t + size_t(k)) * ldy + r] = out[k];
      }
    };
    for (; t + 2 <= n; t += 2) rows(std::integral_constant<int, 2>{});
    for (; t < n; ++t) rows(std::integral_constant<int, 1>{});
  }
}

inline bool batch_dense(DType dt) {
  if (dt == DType::BF16) return !bf16_activations();
  return dt == DType::F32 || dt == DType::F16;
}

}  // namespace detail

// Y_i[t, :] = W_i x_t for matrices reading the same X: [n, cols]; Product::y is [n, W->rows].
// Every row equals gemv(W_i, X[t]) bit for bit (n == 1 is gemv_fused). Dense matrices of one dtype
// and width share one parallel region (4-row tiles of all of them split between the threads).
inline void gemv_batch_fused(std::span<const Product> products, const float* X, size_t n) {
  if (n == 0 || products.empty()) return;
  if (n == 1) return gemv_fused(products, X);
  const MatrixView& W0 = *products[0].W;
  bool uniform = true;
  size_t tiles = 0, work = 0;
  for (const Product& p : products) {
    detail::check_matrix(*p.W, "gemv_batch");
    uniform = uniform && p.W->dtype == W0.dtype && p.W->cols == W0.cols;
    tiles += (p.W->rows + 3) / 4;
    work += p.W->rows * p.W->cols * n;
  }
  if (!uniform || !detail::batch_dense(W0.dtype)) {
    for (const Product& p : products) {
      if (detail::batch_dense(p.W->dtype)) {
        gemv_batch_fused(std::span<const Product>(&p, 1), X, n);
      } else if (p.W->dtype == DType::BF16) {  // bf16 activations: one gemv per row
        for (size_t t = 0; t < n; ++t) gemv(*p.W, X + t * p.W->cols, p.y + t * p.W->rows);
      } else {
        // Q8, GGUF blocks: their int8 gemm rows are gemv's (called directly: whatever
        // exact_prefill() says)
        if (p.W->dtype == DType::Q8) detail::gemm_q8(*p.W, X, n, p.y);
        else detail::gemm_gguf_block(*p.W, X, n, p.y);
      }
    }
    return;
  }
  detail::BatchInput& in = detail::batch_input();
  in.assign(W0.dtype, X, n, W0.cols);
  detail::parallel_chunks(tiles, detail::worker_count(work), [&](size_t b, size_t e) {
    size_t first = 0;  // tile index of products[i]'s first tile
    for (const Product& p : products) {
      const size_t nt = (p.W->rows + 3) / 4;
      const size_t lo = std::max(b, first), hi = std::min(e, first + nt);
      if (lo < hi)
        detail::dense_batch_rows(*p.W, in, n, (lo - first) * 4, std::min(p.W->rows, (hi - first) * 4), p.y,
                                 p.W->rows);
      first += nt;
    }
  });
}
inline void gemv_batch_fused(std::initializer_list<Product> products, const float* X, size_t n) {
  gemv_batch_fused(std::span<const Product>(products.begin(), products.size()), X, n);
}

// Y[t, :] = W X[t, :] for t < n; X: [n, W.cols], Y: [n, W.rows]; each row as gemv computes it.
inline void gemv_batch(const MatrixView& W, const float* X, size_t n, float* Y) {
  gemv_batch_fused({{&W, Y}}, X, n);
}

}  // namespace fathom::kernels

namespace fathom::kernels {

// How a block multiplies its n rows by a weight matrix: Gemm (prompt processing: the fastest
// matrix-matrix kernels, their own summation order), AsGemv (batched decoding: every row
// exactly as a single-row decode step computes it, gemv_batch) or Exact (the weights' exact
// values times unquantised activations, gemm_exact: Gemm's bits for f32/bf16/f16 weights; for
// Q8 and the GGUF blocks, whose Gemm quantises the activations to int8 blocks, the f32 product).
enum class Rows : uint8_t { Gemm, AsGemv, Exact };

inline void fused_products(Rows how, std::initializer_list<Product> products, const float* X, size_t n) {
  if (how == Rows::AsGemv) gemv_batch_fused(products, X, n);
  else if (how == Rows::Exact) for (const Product& p : products) gemm_exact(*p.W, X, n, p.y);
  else gemm_fused(products, X, n);
}
inline void product(Rows how, const MatrixView& W, const float* X, size_t n, float* Y) {
  if (how == Rows::AsGemv) gemv_batch(W, X, n, Y);
  else if (how == Rows::Exact) gemm_exact(W, X, n, Y);
  else gemm(W, X, n, Y);
}

}  // namespace fathom::kernels
