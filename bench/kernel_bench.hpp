#pragma once
// Shared helpers of the kernel benchmarks (bench_gemv/gemm/elementwise/attention): random weights in each dtype, rate counters.
#include <benchmark/benchmark.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "fathom/core/dtype.hpp"
#include "fathom/kernels/linear.hpp"
#include "fathom/kernels/quant.hpp"
#include "fathom/kernels/quant4.hpp"
#include "fathom/kernels/weight_buffer.hpp"
#include "fathom/model/random_model.hpp"  // detail::FastNormal

namespace fathom::kbench {

// Random GGUF blocks of a 4/6-bit type (kernels/quant4.hpp): random quants, scales ~0.01 (f16),
// minimums ~-0.08: the kernels' speed does not depend on the values.
inline kernels::BlockMatrix random_block_matrix(DType dt, size_t rows, size_t cols, uint32_t seed) {
  const size_t bb = kernels::gguf_block_bytes(dt), nb = cols / kernels::gguf_block_elems(dt);
  std::vector<uint8_t> row(nb * bb);  // [nb * bb] one row of GGUF blocks
  uint64_t state = seed * 0x9e3779b97f4a7c15ull + 1;
  auto next = [&] {
    state ^= state << 13, state ^= state >> 7, state ^= state << 17;
    return state;
  };
  const uint16_t d = kernels::detail::f32_to_f16(0.01f), m = kernels::detail::f32_to_f16(-0.08f);
  return kernels::block_matrix_from_gguf(dt, rows, cols, [&](size_t) {
    for (size_t i = 0; i < row.size(); i += 8) {
      const uint64_t v = next();
      std::memcpy(row.data() + i, &v, std::min<size_t>(8, row.size() - i));
    }
    for (size_t b = 0; b < nb; ++b) {
      uint8_t* blk = row.data() + b * bb;
      const size_t d_at = dt == DType::Q6_K ? 208 : 0;
      std::memcpy(blk + d_at, &d, 2);
      if (dt == DType::Q4_1 || dt == DType::Q5_1 || dt == DType::Q4_K)
        std::memcpy(blk + 2, dt == DType::Q4_K ? &d : &m, 2);
    }
    return reinterpret_cast<const std::byte*>(row.data());
  });
}

// A random weight matrix in f32, bf16 or Q8 (quantised from the f32 values), or random GGUF
// blocks (Q4_0, Q4_1, Q5_0, Q5_1, Q4_K, Q6_K), owning its bytes in a WeightBuffer (huge pages,
// like the weights fathom converts or quantises at load; ColdMatrices makes them in a
// WeightArena, as loading does). Different seeds give different bytes (identical pages could be
// merged by the host, see bandwidth.hpp).
struct BenchMatrix {
  kernels::WeightBuffer dense;  // F32 or BF16 elements
  kernels::QuantizedMatrix q8;
  kernels::BlockMatrix blocks;
  kernels::MatrixView view;
  size_t bytes = 0;  // weight bytes read by one pass over the matrix
  BenchMatrix(DType dt, size_t rows, size_t cols, uint32_t seed = 7) {
    if (kernels::is_gguf_block(dt)) {
      blocks = random_block_matrix(dt, rows, cols, seed);
      view = blocks.view();
      bytes = blocks.bytes();
      return;
    }
    fathom::detail::FastNormal rng{seed};  // fast: the cold sets hold 256 MiB of weights
    if (dt == DType::F32) {
      dense = kernels::WeightBuffer(rows * cols * sizeof(float));
      float* f = dense.as<float>();
      for (size_t i = 0; i < rows * cols; ++i) f[i] = 0.05f * rng();
      view = {DType::F32, rows, cols, f};
      bytes = rows * cols * 4;
      return;
    }
    std::vector<float> f(rows * cols);  // [rows, cols] the values before rounding (not in the arena)
    for (float& v : f) v = 0.05f * rng();
    if (dt == DType::Q8) {
      q8 = kernels::quantize_q8({DType::F32, rows, cols, f.data()});
      view = q8.view();
      bytes = q8.bytes();
    } else {
      dense = kernels::WeightBuffer(rows * cols * 2);
      uint16_t* h = dense.as<uint16_t>();
      for (size_t i = 0; i < rows * cols; ++i) h[i] = f32_to_bf16(f[i]);
      view = {DType::BF16, rows, cols, h};
      bytes = rows * cols * 2;
    }
  }
};

// Enough different copies of one matrix shape (by default >= 256 MiB, 8x an L3 of 32 MiB) that
// cycling through them reads every weight from DRAM, as decode does: next() returns them in turn.
// (min_bytes 0, min_copies 1: one matrix, repeated, which stays in cache.)
struct ColdMatrices {
  std::vector<std::unique_ptr<BenchMatrix>> copies;
  size_t i = 0;
  ColdMatrices(DType dt, size_t rows, size_t cols, size_t min_bytes = size_t(256) << 20,
               size_t min_copies = 2) {
    kernels::WeightArena arena;  // side by side on huge pages, as a loaded model's matrices
    size_t total = 0;
    for (uint32_t seed = 7; total < min_bytes || copies.size() < min_copies; ++seed) {
      copies.push_back(std::make_unique<BenchMatrix>(dt, rows, cols, seed));
      total += copies.back()->bytes;
    }
  }
  const BenchMatrix& next() { return *copies[i++ % copies.size()]; }
};

inline std::vector<float> bench_vector(size_t n) {
  std::mt19937 rng(3);
  std::normal_distribution<float> nd(0.f, 1.f);
  std::vector<float> v(n);
  for (float& x : v) x = nd(rng);
  return v;
}

// Reports bytes/s (weights read; Google Benchmark's column is in GiB/s, the GB/s counter in
// 10^9 bytes/s as docs/benchmarks.md quotes) and GFLOP/s (2 flops per multiply-add).
inline void report(benchmark::State& state, double bytes_per_iter, double flops_per_iter) {
  state.SetBytesProcessed(int64_t(bytes_per_iter * double(state.iterations())));
  if (bytes_per_iter > 0)
    state.counters["GB/s"] =
        benchmark::Counter(bytes_per_iter * double(state.iterations()) * 1e-9, benchmark::Counter::kIsRate);
  state.counters["GFLOPs"] =
      benchmark::Counter(flops_per_iter * double(state.iterations()) * 1e-9, benchmark::Counter::kIsRate);
}

}  // namespace fathom::kbench
