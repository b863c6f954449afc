#pragma once
// A weight matrix as the kernels see it: W[rows, cols] row-major (torch's Linear layout
// [out_features, in_features]), elements f32, bf16, f16 or the Q8 block format.
#include <cstddef>
#include <cstdint>

#include "fathom/core/dtype.hpp"

namespace fathom::kernels {

struct MatrixView {
  DType dtype = DType::F32;
  size_t rows = 0;            // output features
  size_t cols = 0;            // input features (the reduction dimension)
  const void* data = nullptr; // F32/BF16/F16: rows*cols elements; Q8: see quant.hpp

  // Element (r, c) as f32 (slow path: tests, reference code).
  float at(size_t r, size_t c) const;
};

}  // namespace fathom::kernels
