#pragma once
// Matrix-vector (decode) and matrix-matrix (prefill) products with a weight matrix in any
// supported dtype. Accumulation is in f32; work is split statically over OpenMP threads so
// results are bit-reproducible for a given thread count (in fact for any thread count: each
// output element is summed by one thread in a fixed order).
#include <cstddef>
#include <cstring>
#include <string>
#include <vector>

#include "fathom/core/dtype.hpp"
#include "fathom/core/error.hpp"
#include "fathom/kernels/gemm.hpp"
#include "fathom/kernels/gemv.hpp"
#include "fathom/kernels/matrix.hpp"
#include "fathom/kernels/parallel.hpp"
#include "fathom/kernels/quant.hpp"

namespace fathom::kernels {

inline float MatrixView::at(size_t r, size_t c) const {
  const size_t i = r * cols + c;
  switch (dtype) {
    case DType::F32: return static_cast<const float*>(data)[i];
    case DType::BF16: return bf16_to_f32(static_cast<const uint16_t*>(data)[i]);
    case DType::F16: return f16_to_f32(static_cast<const uint16_t*>(data)[i]);
    case DType::Q8: {  // dequantise: q * d of the element's block
      const detail::Q8Layout L = detail::q8_layout(*this);
      const size_t b = c / kQ8Block;
      return float(int(L.qs[r * L.nb * kQ8Block + c]) - 128) * f16_to_f32(L.d[r * L.nb + b]);
    }
    default: throw UnsupportedError("", std::string(dtype_name(dtype)), "MatrixView::at");
  }
}

namespace detail {
inline void check_matrix(const MatrixView& W, const char* who) {
  if (W.rows && W.cols && !W.data) throw UsageError("", "MatrixView.data", std::string(who) + ": null data");
}
}  // namespace detail

// y[r] = sum_c W[r,c] x[c]
inline void gemv(const MatrixView& W, const float* x, float* y) {
  detail::check_matrix(W, "gemv");
  const size_t rows = W.rows, cols = W.cols;
  const int threads = detail::worker_count(rows * cols);
  switch (W.dtype) {
    case DType::F32: {
      const float* w = static_cast<const float*>(W.data);
      detail::parallel_chunks(rows, threads, [&](size_t b, size_t e) {
        size_t r = b;
        for (; r + 4 <= e; r += 4) detail::dot_f32_rows<4>(w + r * cols, cols, x, cols, y + r);
        for (; r < e; ++r) y[r] = detail::dot_f32(w + r * cols, x, cols);
      });
      return;
    }
    case DType::BF16: {
      const uint16_t* w = static_cast<const uint16_t*>(W.data);
      thread_local detail::SplitVector xs;  // [cols/2] even and odd elements of x
      xs.assign(x, cols);
      const detail::SplitVector& xsr = xs;
      detail::parallel_chunks(rows, threads, [&](size_t b, size_t e) {
        size_t r = b;
        for (; r + 4 <= e; r += 4) detail::dot_bf16_rows<4>(w + r * cols, cols, xsr, x, cols, y + r);
        for (; r < e; ++r) y[r] = detail::dot_bf16(w + r * cols, xsr, x, cols);
      });
      return;
    }
    case DType::F16: {
      const uint16_t* w = static_cast<const uint16_t*>(W.data);
      detail::parallel_chunks(rows, threads, [&](size_t b, size_t e) {
        thread_local std::vector<float> row;  // [cols] one widened weight row
        row.resize(cols);
        for (size_t r = b; r < e; ++r) {
          detail::f16_to_f32_n(w + r * cols, row.data(), cols);
          y[r] = detail::dot_f32(row.data(), x, cols);
        }
      });
      return;
    }
    case DType::Q8: return detail::gemm_q8(W, x, 1, y);
    default: throw UnsupportedError("", std::string(dtype_name(W.dtype)), "gemv: weight dtype");
  }
}

// Y[t, r] = sum_c X[t, c] W[r, c]; X: [n, W.cols] and Y: [n, W.rows], row-major, contiguous.
// n == 1 is the matrix-vector product (same result as gemv). For Q8 weights each row of X is
// quantised to int8 blocks first (quant.hpp) and every row's result equals gemv's bit for bit.
inline void gemm(const MatrixView& W, const float* X, size_t n, float* Y) {
  if (n == 0) return;
  if (n == 1) return gemv(W, X, Y);
  detail::check_matrix(W, "gemm");
  switch (W.dtype) {
    case DType::F32: case DType::BF16: case DType::F16:
      return detail::gemm_dense(W.dtype, W.data, W.rows, W.cols, X, n, Y);
    case DType::Q8: return detail::gemm_q8(W, X, n, Y);
    default: throw UnsupportedError("", std::string(dtype_name(W.dtype)), "gemm: weight dtype");
  }
}

}  // namespace fathom::kernels
