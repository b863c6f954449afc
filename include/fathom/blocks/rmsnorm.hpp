#pragma once
// RMSNorm block (transformers' LlamaRMSNorm / Qwen2RMSNorm / Qwen3RMSNorm):
//   y = w ⊙ x / sqrt(mean(x²) + eps), computed in f32.
#include <cstddef>
#include <vector>

#include "fathom/kernels/elementwise.hpp"

namespace fathom::blocks {

struct RMSNorm {
  std::vector<float> weight;  // [dim]
  float eps = 1e-6f;

  size_t dim() const { return weight.size(); }

  // x, y: [rows, dim]; y may alias x.
  void operator()(const float* x, float* y, size_t rows = 1) const {
    const size_t d = dim();
    for (size_t r = 0; r < rows; ++r) kernels::rmsnorm(x + r * d, weight.data(), y + r * d, d, eps);
  }
};

}  // namespace fathom::blocks
