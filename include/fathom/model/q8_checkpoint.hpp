#pragma once
// Q8 matrices in a safetensors checkpoint. A matrix W [rows, cols] quantised to Q8 (see
// kernels/quant.hpp) is stored as two tensors, so that any safetensors reader can dequantise it:
//
//   <name>        I8  [rows, cols]       q in [-127, 127]
//   <name>_scale  F16 [rows, ceil(cols/32)]   d >= 0, one per block of 32 columns
//
//   W[r, c] = q[r, c] * d[r, c / 32]        (numpy: q * np.repeat(d, 32, axis=1)[:, :cols])
//
// (the `weight` / `weight_scale` naming of int8 group-quantised checkpoints). Reading checks every
// value and scale, so a damaged or hostile file is a FormatError naming the tensor, never a matrix
// that computes garbage silently.
#include <cmath>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "fathom/core/error.hpp"
#include "fathom/io/safetensors.hpp"
#include "fathom/io/tensor_store.hpp"
#include "fathom/kernels/quant.hpp"

namespace fathom {

inline constexpr const char* kQ8ScaleSuffix = "_scale";

// The Q8 matrix stored as `values` (I8) and `scales` (F16), as described above.
inline kernels::QuantizedMatrix q8_from_tensors(const io::TensorView& values, const io::TensorView& scales) {
  auto bad = [](const io::TensorView& t, const std::string& why) { throw FormatError(t.file, t.name, why); };
  if (values.dtype != DType::I8 || values.shape.size() != 2)
    bad(values, "a Q8 matrix must be a 2-D I8 tensor, got " + std::string(dtype_name(values.dtype)) + " " +
                    io::shape_string(values.shape));
  const size_t rows = size_t(values.shape[0]), cols = size_t(values.shape[1]), nb = kernels::q8_blocks(cols);
  // An empty matrix has no bytes to bound its other dimension ([2^62, 0] would walk 2^62 empty
  // rows unless the optimiser drops the loop), and no weight matrix is empty.
  if (rows == 0 || cols == 0) bad(values, "a Q8 matrix must not be empty, got " + io::shape_string(values.shape));
  if (scales.dtype != DType::F16 || scales.shape != std::vector<int64_t>{int64_t(rows), int64_t(nb)})
    bad(scales, "expected F16 [" + std::to_string(rows) + ", " + std::to_string(nb) + "] block scales of " +
                    values.name + ", got " + std::string(dtype_name(scales.dtype)) + " " + io::shape_string(scales.shape));
  kernels::QuantizedMatrix Q(rows, cols);
  const auto* q = reinterpret_cast<const int8_t*>(values.data);
  uint8_t* qs = Q.values();
  for (size_t r = 0; r < rows; ++r)
    for (size_t c = 0; c < cols; ++c) {
      const int8_t v = q[r * cols + c];
      if (v == -128)
        bad(values, "value -128 at [" + std::to_string(r) + ", " + std::to_string(c) + "] (Q8 values are in [-127, 127])");
      qs[r * nb * kernels::kQ8Block + c] = uint8_t(int(v) + 128);
    }
  uint16_t* d = Q.scales();
  std::memcpy(d, scales.data, rows * nb * sizeof(uint16_t));
  for (size_t i = 0; i < rows * nb; ++i) {
    const float f = f16_to_f32(d[i]);
    if (!std::isfinite(f) || f < 0.f)
      bad(scales, "scale " + std::to_string(f) + " at [" + std::to_string(i / nb) + ", " + std::to_string(i % nb) +
                      "] (block scales are finite and >= 0)");
  }
  return Q;
}

// The two tensors of a Q8 matrix `m`, written row by row (no copy of the matrix in memory).
inline std::vector<io::TensorSource> q8_tensor_sources(const std::string& name, const kernels::MatrixView& m) {
  const kernels::detail::Q8Layout L = kernels::detail::q8_layout(m);
  const size_t rows = m.rows, cols = m.cols, nb = L.nb;
  io::TensorSource values{name, DType::I8, {int64_t(rows), int64_t(cols)}, rows * cols,
                          [L, rows, cols](std::ostream& o) {
                            std::vector<char> row(cols);  // [cols] q of one row
                            for (size_t r = 0; r < rows; ++r) {
                              for (size_t c = 0; c < cols; ++c)
                                row[c] = char(int(L.qs[r * L.nb * kernels::kQ8Block + c]) - 128);
                              o.write(row.data(), std::streamsize(cols));
                            }
                          }};
  io::TensorSource scales{name + kQ8ScaleSuffix, DType::F16, {int64_t(rows), int64_t(nb)}, rows * nb * 2,
                          [L, rows, nb](std::ostream& o) {
                            o.write(reinterpret_cast<const char*>(L.d), std::streamsize(rows * nb * 2));
                          }};
  return {std::move(values), std::move(scales)};
}

}  // namespace fathom
