#pragma once
// Shared helpers of the kernel benchmarks (bench_gemv/gemm/elementwise/attention): random weights in each dtype, rate counters.
#include <benchmark/benchmark.h>

#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "fathom/core/dtype.hpp"
#include "fathom/kernels/linear.hpp"
#include "fathom/kernels/quant.hpp"

namespace fathom::kbench {

// A random weight matrix in f32, bf16 or Q8 (quantised from the f32 values), owning its bytes.
struct BenchMatrix {
  std::vector<float> f32;
  std::vector<uint16_t> bf16;
  kernels::QuantizedMatrix q8;
  kernels::MatrixView view;
  size_t bytes = 0;  // weight bytes read by one pass over the matrix
  BenchMatrix(DType dt, size_t rows, size_t cols) {
    std::mt19937 rng(7);
    std::normal_distribution<float> nd(0.f, 0.05f);
    f32.resize(rows * cols);
    for (float& v : f32) v = nd(rng);
    view = kernels::MatrixView{DType::F32, rows, cols, f32.data()};
    bytes = rows * cols * 4;
    if (dt == DType::BF16) {
      bf16.resize(rows * cols);
      for (size_t i = 0; i < f32.size(); ++i) bf16[i] = f32_to_bf16(f32[i]);
      view = kernels::MatrixView{DType::BF16, rows, cols, bf16.data()};
      bytes = rows * cols * 2;
    } else if (dt == DType::Q8) {
      q8 = kernels::quantize_q8(view);
      view = q8.view();
      bytes = q8.bytes();
    }
    if (dt != DType::F32) std::vector<float>().swap(f32);  // don't hold the f32 copy
  }
};

inline std::vector<float> bench_vector(size_t n) {
  std::mt19937 rng(3);
  std::normal_distribution<float> nd(0.f, 1.f);
  std::vector<float> v(n);
  for (float& x : v) x = nd(rng);
  return v;
}

// Reports bytes/s (weights read) and GFLOP/s (2 flops per multiply-add) for `iters` passes.
inline void report(benchmark::State& state, double bytes_per_iter, double flops_per_iter) {
  state.SetBytesProcessed(int64_t(bytes_per_iter * double(state.iterations())));
  state.counters["GFLOPs"] =
      benchmark::Counter(flops_per_iter * double(state.iterations()) * 1e-9, benchmark::Counter::kIsRate);
}

}  // namespace fathom::kbench
