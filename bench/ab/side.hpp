#pragma once
// Two builds of the kernels in one program (ab.sh): each translation unit (side.cpp, compiled
// once with the old headers and once with the working tree's, fathom renamed per side) exposes
// the same four calls, so main.cpp can run both on the same shapes, interleaved.
#include <cstddef>

namespace side {
struct Set;  // copies of one random matrix: >= 256 MiB of them (cold) or one (hot)
struct Api {
  Set* (*make)(int dtype, size_t rows, size_t cols, bool hot);
  size_t (*count)(Set*);
  double (*bytes)(Set*);  // bytes of one copy as held
  void (*gemv)(Set*, size_t copy, const float* x, float* y);
  void (*gemm)(Set*, size_t copy, const float* X, size_t n, float* Y);
};
Api old_api();
Api new_api();
}  // namespace side
