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
    activations(x, n, g, u, how);
    project_down(g, n, out, how);
  }

  // g = silu(gate · x) ⊙ (up · x): [n, intermediate], the hidden activations; u: scratch of g's size.
  void activations(const float* x, size_t n, float* g, float* u, kernels::Rows how = kernels::Rows::Gemm) const {
    kernels::fused_products(how, {{&gate, g}, {&up, u}}, x, n);
    if (how == kernels::Rows::AsGemv) {  // row by row: where the vector body ends (and the
      const size_t I = intermediate();   // scalar exp of the tail begins) as for one row
      for (size_t r = 0; r < n; ++r) kernels::swiglu(g + r * I, u + r * I, g + r * I, I);
    } else {
      kernels::swiglu(g, u, g, n * intermediate());
    }
  }

  // out = down · act: [n, intermediate] -> [n, hidden].
  void project_down(const float* act, size_t n, float* out, kernels::Rows how = kernels::Rows::Gemm) const {
    kernels::product(how, down, act, n, out);
  }
};

}  // namespace fathom::blocks
