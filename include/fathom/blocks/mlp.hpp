#pragma once
// SwiGLU MLP: down(silu(gate(x)) ⊙ up(x)).
#include <cstddef>

#include "fathom/kernels/elementwise.hpp"
#include "fathom/kernels/gemv_batch.hpp"
#include "fathom/kernels/linear.hpp"

namespace fathom::blocks {

struct SwiGLU {
  kernels::MatrixView gate, up;  // [intermediate, hidden] each
  kernels::MatrixView down;      // [hidden, intermediate]

  size_t intermediate() const { return gate.rows; }

  // x: [n, hidden] -> out: [n, hidden]; g, u: scratch [n, intermediate] each. `how`: as
  // Attention::project.
  void operator()(const float* x, size_t n, float* out, float* g, float* u,
                  kernels::Rows how = kernels::Rows::Gemm) const {
    kernels::fused_products(how, {{&gate, g}, {&up, u}}, x, n);
    kernels::swiglu(g, u, g, n * intermediate());
    kernels::product(how, down, g, n, out);
  }
};

}  // namespace fathom::blocks
