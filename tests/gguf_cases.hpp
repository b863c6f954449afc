#pragma once
// Random GGUF block matrices for the kernel tests (test_quant4, test_amx): raw blocks in the file
// layout with scales of either sign and minimums in a realistic range, the matrix fathom keeps in
// memory (block_matrix_from_gguf), and io::dequantize's values of the same bytes.
#include <cstdint>
#include <cstring>
#include <random>
#include <vector>

#include "fathom/io/gguf_quants.hpp"
#include "fathom/kernels/quant4.hpp"

namespace gguf_test {
using namespace fathom;
namespace kk = fathom::kernels;
namespace kd = fathom::kernels::detail;

inline io::GgmlType ggml_of(DType t) {
  switch (t) {
    case DType::Q4_0: return io::GgmlType::Q4_0;
    case DType::Q4_1: return io::GgmlType::Q4_1;
    case DType::Q5_0: return io::GgmlType::Q5_0;
    case DType::Q5_1: return io::GgmlType::Q5_1;
    case DType::Q4_K: return io::GgmlType::Q4_K;
    default: return io::GgmlType::Q6_K;
  }
}

inline void put_f16(uint8_t* p, float v) {
  const uint16_t h = kd::f32_to_f16(v);
  std::memcpy(p, &h, 2);
}

// rows x cols of random GGUF blocks of type t (file layout, row after row).
inline std::vector<uint8_t> random_gguf(DType t, size_t rows, size_t cols, std::mt19937& rng) {
  const size_t bb = kk::gguf_block_bytes(t), nb = cols / kk::gguf_block_elems(t);
  std::vector<uint8_t> raw(rows * nb * bb);
  std::uniform_int_distribution<int> byte(0, 255);
  std::uniform_real_distribution<float> u(0.002f, 0.05f);
  for (auto& b : raw) b = uint8_t(byte(rng));
  for (size_t i = 0; i < rows * nb; ++i) {
    uint8_t* blk = raw.data() + i * bb;
    const float sign = byte(rng) & 1 ? 1.f : -1.f;
    switch (t) {
      case DType::Q4_0: case DType::Q5_0: put_f16(blk, sign * u(rng)); break;
      case DType::Q4_1: put_f16(blk, u(rng)); put_f16(blk + 2, -8.f * u(rng)); break;
      case DType::Q5_1: put_f16(blk, u(rng)); put_f16(blk + 2, -16.f * u(rng)); break;
      case DType::Q4_K: put_f16(blk, u(rng) / 8); put_f16(blk + 2, u(rng) / 8); break;
      default: put_f16(blk + 208, sign * u(rng) / 16); break;
    }
  }
  return raw;
}

struct Case {
  DType t;
  size_t rows, cols;
  std::vector<uint8_t> raw;
  kk::BlockMatrix M;
  std::vector<float> dq;  // [rows, cols] io::dequantize of raw
};

inline Case make_case(DType t, size_t rows, size_t cols, std::mt19937& rng) {
  Case c{t, rows, cols, random_gguf(t, rows, cols, rng), {}, {}};
  const size_t row_bytes = cols / kk::gguf_block_elems(t) * kk::gguf_block_bytes(t);
  c.M = kk::block_matrix_from_gguf(t, rows, cols, [&](size_t r) {
    return reinterpret_cast<const std::byte*>(c.raw.data() + r * row_bytes);
  });
  c.dq.resize(rows * cols);
  io::dequantize(ggml_of(t), reinterpret_cast<const std::byte*>(c.raw.data()), rows * cols, c.dq.data());
  return c;
}

}  // namespace gguf_test
