#pragma once
// Matrix-vector (decode) and matrix-matrix (prefill) products with a weight matrix in any
// supported dtype. Accumulation is in f32; work is split statically over OpenMP threads so
// results are bit-reproducible for a given thread count.
#include <cstddef>
#include <cstring>

#include "fathom/core/dtype.hpp"
#include "fathom/core/error.hpp"
#include "fathom/kernels/matrix.hpp"

namespace fathom::kernels {

inline float MatrixView::at(size_t r, size_t c) const {
  const size_t i = r * cols + c;
  switch (dtype) {
    case DType::F32: return static_cast<const float*>(data)[i];
    case DType::BF16: return bf16_to_f32(static_cast<const uint16_t*>(data)[i]);
    case DType::F16: return f16_to_f32(static_cast<const uint16_t*>(data)[i]);
    default: throw UnsupportedError("", std::string(dtype_name(dtype)), "MatrixView::at");
  }
}

namespace detail {
template <class Load>
inline float dot_row(Load load, size_t r, size_t cols, const float* x) {
  float acc = 0.f;
  for (size_t c = 0; c < cols; ++c) acc += load(r * cols + c) * x[c];
  return acc;
}
}  // namespace detail

// y[r] = sum_c W[r,c] x[c]
inline void gemv(const MatrixView& W, const float* x, float* y) {
  const long rows = long(W.rows);
  const size_t cols = W.cols;
  switch (W.dtype) {
    case DType::F32: {
      const float* w = static_cast<const float*>(W.data);
#pragma omp parallel for schedule(static) if (W.rows * W.cols > 65536)
      for (long r = 0; r < rows; ++r)
        y[r] = detail::dot_row([w](size_t i) { return w[i]; }, size_t(r), cols, x);
      return;
    }
    case DType::BF16: {
      const uint16_t* w = static_cast<const uint16_t*>(W.data);
#pragma omp parallel for schedule(static) if (W.rows * W.cols > 65536)
      for (long r = 0; r < rows; ++r)
        y[r] = detail::dot_row([w](size_t i) { return bf16_to_f32(w[i]); }, size_t(r), cols, x);
      return;
    }
    case DType::F16: {
      const uint16_t* w = static_cast<const uint16_t*>(W.data);
#pragma omp parallel for schedule(static) if (W.rows * W.cols > 65536)
      for (long r = 0; r < rows; ++r)
        y[r] = detail::dot_row([w](size_t i) { return f16_to_f32(w[i]); }, size_t(r), cols, x);
      return;
    }
    default: throw UnsupportedError("", std::string(dtype_name(W.dtype)), "gemv: weight dtype");
  }
}

// Y[t, r] = sum_c X[t, c] W[r, c]; X: [n, W.cols] and Y: [n, W.rows], row-major, contiguous.
inline void gemm(const MatrixView& W, const float* X, size_t n, float* Y) {
  for (size_t t = 0; t < n; ++t) gemv(W, X + t * W.cols, Y + t * W.rows);
}

}  // namespace fathom::kernels
