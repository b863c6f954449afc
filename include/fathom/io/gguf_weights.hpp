#pragma once
// GGUF tensors -> the in-memory form fathom computes with, one tensor at a time.
//
// gguf_held_as() is the one place that decides what a ggml type becomes for the WeightFormat the
// user asked for:
//
//   matrix stored as            AsStored             F32     BF16    Q8
//   F32 / F16 / BF16            view (zero-copy; model/ converts matrices as for safetensors)
//   Q8_0                        Q8 (re-laid)         F32     BF16    Q8 (re-laid)
//   Q4_0, Q4_1, Q5_0, Q5_1,
//   Q4_K, Q6_K                  native (kernels/quant4.hpp)  F32  BF16  Q8
//   other quantised             Q8                   F32     BF16    Q8
//
// 1-D tensors (norms, biases: a few KB) are always copied to F32, so that a model whose matrices
// are all converted does not keep the file mapped.
//
// Q8_0 is fathom's own Q8 block format (32 int8 + one f16 scale per block), so it is re-laid into
// kernels/quant.hpp's layout (values and scales apart, values offset by 128) without
// re-quantising: every weight keeps its exact value. Q4_0 / Q4_1 / Q5_0 / Q5_1, Q4_K and Q6_K are
// re-laid in groups of 16 rows (the file's bytes, nothing computed):
// the kernels multiply them directly (issue 14), so memory and bytes read per token stay the
// file's (Q4_1: 0.625 bytes per weight, Q5_0 0.69; as Q8 1.06, as f32 4). Other quantised types
// are dequantised bit-exactly (io/gguf_quants.hpp), then converted; their AsStored form is Q8 so
// that memory stays near the file's size while decode runs on the 8-bit kernels. Conversion goes
// row block by row block: no tensor is ever held in f32 as a whole. (A native embedding matrix is turned into Q8 by the model,
// which reads it row by row: model/model.hpp.)
//
// llama.cpp's converter permutes the rows of Q and K (and their biases) in `llama` files:
// ggml's RoPE for llama rotates interleaved pairs (2i, 2i+1) of each head, transformers rotates
// halves (i, i + d/2). Per head of d rows the file holds row 2i + p where transformers has row
// p * d/2 + i (p = 0, 1): the loader reads rows through that map, exactly as transformers' GGUF
// loader un-permutes (reshape(heads, d/2, 2, cols).swapaxes(1, 2)). A row is a whole number of
// quantisation blocks, so rows move without dequantising.
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "fathom/core/dtype.hpp"
#include "fathom/core/error.hpp"
#include "fathom/core/weight_format.hpp"
#include "fathom/io/gguf.hpp"
#include "fathom/io/gguf_quants.hpp"
#include "fathom/io/tensor_store.hpp"
#include "fathom/kernels/quant.hpp"
#include "fathom/kernels/quant4.hpp"
#include "fathom/kernels/weight_buffer.hpp"

namespace fathom::io {

// What a GGUF tensor is held as in memory.
enum class GgufHeld : uint8_t { View, F32, BF16, Q8, Native };

// The DType a GGUF block type is held as natively (kernels/quant4.hpp), or F32 when it has none.
constexpr DType gguf_native_dtype(GgmlType t) {
  switch (t) {
    case GgmlType::Q4_0: return DType::Q4_0;
    case GgmlType::Q4_1: return DType::Q4_1;
    case GgmlType::Q4_K: return DType::Q4_K;
    case GgmlType::Q6_K: return DType::Q6_K;
    case GgmlType::Q5_0: return DType::Q5_0;
    case GgmlType::Q5_1: return DType::Q5_1;
    default: return DType::F32;
  }
}

// The decision table above. `matrix`: a 2-D weight (else a norm or bias).
constexpr GgufHeld gguf_held_as(GgmlType t, WeightFormat want, bool matrix) {
  if (!matrix) return GgufHeld::F32;
  if (t == GgmlType::F32 || t == GgmlType::F16 || t == GgmlType::BF16) return GgufHeld::View;
  switch (want) {
    case WeightFormat::F32: return GgufHeld::F32;
    case WeightFormat::BF16: return GgufHeld::BF16;
    case WeightFormat::AsStored: return gguf_native_dtype(t) != DType::F32 ? GgufHeld::Native : GgufHeld::Q8;
    case WeightFormat::Q8: return GgufHeld::Q8;
  }
  return GgufHeld::F32;
}

// HF row r of a Q or K projection (heads of head_dim rows) -> the row of the llama.cpp file that
// holds it (see the top of this file).
constexpr size_t llama_qk_file_row(size_t r, size_t head_dim) {
  const size_t half = head_dim / 2, h = r / head_dim, j = r % head_dim;
  return h * head_dim + 2 * (j % half) + j / half;
}

namespace detail {

// Which file row feeds output row r (identity unless Q/K of a llama file).
using RowMap = std::function<size_t(size_t)>;

inline DType plain_dtype(GgmlType t) {
  return t == GgmlType::F32 ? DType::F32 : t == GgmlType::F16 ? DType::F16 : DType::BF16;
}

struct Rows {  // a tensor seen as rows of ne[0] elements
  size_t rows, cols, row_bytes;
};
inline Rows gguf_rows(const GgufFile& f, const GgufTensor& t) {
  if (!ggml_type_supported(t.type))
    throw UnsupportedError(f.path(), t.name, "ggml type " + std::string(ggml_type_name(t.type)) + " is not supported");
  const size_t cols = size_t(t.ne.at(0)), be = ggml_block_elems(t.type);
  if (cols % be != 0)
    throw FormatError(f.path(), t.name, "row length " + std::to_string(cols) + " is not a multiple of the " +
                                            std::string(ggml_type_name(t.type)) + " block (" + std::to_string(be) + ")");
  const size_t rows = cols ? t.numel() / cols : 0;
  return {rows, cols, cols / be * ggml_block_bytes(t.type)};
}

// Dequantises file rows [src(r0), ...) of rows r0..r0+n into out[n][cols].
inline void dequantize_rows(const GgufTensor& t, const Rows& R, const RowMap& src, size_t r0, size_t n, float* out) {
  for (size_t i = 0; i < n; ++i)
    dequantize(t.type, t.data + src(r0 + i) * R.row_bytes, R.cols, out + i * R.cols);
}

// Q8_0 rows re-laid into a QuantizedMatrix (values + 128, scales apart): no arithmetic on values.
inline std::shared_ptr<kernels::QuantizedMatrix> relay_q8_0(const GgufFile& f, const GgufTensor& t, const Rows& R,
                                                            const RowMap& src) {
  auto Q = std::make_shared<kernels::QuantizedMatrix>(R.rows, R.cols);
  const size_t nb = R.cols / kernels::kQ8Block;  // Q8_0 rows are whole blocks
  uint8_t* qs = Q->values();   // [rows][nb*32]
  uint16_t* ds = Q->scales();  // [rows][nb]
  for (size_t r = 0; r < R.rows; ++r) {
    const std::byte* row = t.data + src(r) * R.row_bytes;  // nb x (f16 d | int8 q[32])
    for (size_t b = 0; b < nb; ++b) {
      const std::byte* blk = row + b * (2 + kernels::kQ8Block);
      uint16_t d;
      std::memcpy(&d, blk, 2);
      if (!std::isfinite(f16_to_f32(d)))
        throw FormatError(f.path(), t.name, "non-finite Q8_0 scale in row " + std::to_string(src(r)) + ", block " +
                                                std::to_string(b));
      ds[r * nb + b] = d;
      // q = -128 is stored as 0: the kernels compute (u - 128) * x, exact for it too.
      uint8_t* q = qs + (r * nb + b) * kernels::kQ8Block;
      for (size_t i = 0; i < kernels::kQ8Block; ++i) q[i] = uint8_t(std::to_integer<uint8_t>(blk[2 + i]) ^ 0x80u);
    }
  }
  return Q;
}

// Any supported type -> Q8 by kernels::quantize_q8's arithmetic on the exact f32 rows: the same Q8
// as loading the f32 weights and asking for q8.
inline std::shared_ptr<kernels::QuantizedMatrix> quantize_rows(const GgufFile& f, const GgufTensor& t, const Rows& R,
                                                               const RowMap& src) {
  try {
    return std::make_shared<kernels::QuantizedMatrix>(kernels::quantize_q8_rows(
        R.rows, R.cols, [&](size_t r, float* out) { dequantize_rows(t, R, src, r, 1, out); }));
  } catch (const FormatError& e) {  // a non-finite weight
    throw FormatError(f.path(), t.name, e.field() + ": " + e.reason());
  }
}

}  // namespace detail

// Converts GGUF tensor `t` to the form `held` (View only for F32/F16/BF16) under HF name `name`
// with torch shape `shape`, reading output row r from file row src(r), and adds it to `store`.
// Returns true when the result is a view into the file (the store must then keep the mapping).
inline bool add_gguf_tensor(TensorStore& store, const GgufFile& f, const GgufTensor& t, const std::string& name,
                            std::vector<int64_t> shape, GgufHeld held, const detail::RowMap& src) {
  const detail::Rows R = detail::gguf_rows(f, t);
  if (shape.size() == 1) {  // a norm or bias: f32, its elements through src
    if (held != GgufHeld::F32) throw UsageError(f.path(), t.name, "1-D tensors are held as F32");
    const size_t n = t.numel();
    std::vector<float> v(n);  // [n] as in the file
    dequantize(t.type, t.data, n, v.data());
    auto buf = std::make_shared<std::vector<float>>(n);  // [n] in HF order
    for (size_t i = 0; i < n; ++i) (*buf)[i] = v[src(i)];
    store.add(TensorView{name, DType::F32, std::move(shape), reinterpret_cast<const std::byte*>(buf->data()),
                         n * sizeof(float), f.path()});
    store.keep_alive(std::move(buf));
    return false;
  }
  const bool permuted = [&] {
    for (size_t r = 0; r < R.rows; ++r)
      if (src(r) != r) return true;
    return false;
  }();
  switch (held) {
    case GgufHeld::View: {
      const DType dt = detail::plain_dtype(t.type);
      if (!permuted) {
        store.add(TensorView{name, dt, std::move(shape), t.data, t.nbytes, f.path(), /*mapped=*/true});
        return true;
      }
      auto buf = std::make_shared<kernels::WeightBuffer>(t.nbytes);  // [rows][row_bytes], rows in HF order
      for (size_t r = 0; r < R.rows; ++r)
        std::memcpy(buf->data() + r * R.row_bytes, t.data + src(r) * R.row_bytes, R.row_bytes);
      store.add(TensorView{name, dt, std::move(shape), buf->data(), t.nbytes, f.path()});
      store.keep_alive(std::move(buf));
      return false;
    }
    case GgufHeld::F32:
    case GgufHeld::BF16: {
      const size_t n = R.rows * R.cols, esize = held == GgufHeld::F32 ? 4 : 2;
      auto buf = std::make_shared<kernels::WeightBuffer>(n * esize);  // [rows, cols]
      if (held == GgufHeld::F32) {
        detail::dequantize_rows(t, R, src, 0, R.rows, buf->as<float>());
      } else {
        std::vector<float> row(R.cols);  // [cols]
        uint16_t* out = buf->as<uint16_t>();
        for (size_t r = 0; r < R.rows; ++r) {
          detail::dequantize_rows(t, R, src, r, 1, row.data());
          for (size_t c = 0; c < R.cols; ++c) out[r * R.cols + c] = f32_to_bf16(row[c]);
        }
      }
      store.add(TensorView{name, held == GgufHeld::F32 ? DType::F32 : DType::BF16, std::move(shape), buf->data(),
                           n * esize, f.path()});
      store.keep_alive(std::move(buf));
      return false;
    }
    case GgufHeld::Native: {
      const DType dt = gguf_native_dtype(t.type);
      if (shape.size() != 2 || dt == DType::F32)
        throw UsageError(f.path(), t.name, "only Q4_0, Q4_1, Q5_0, Q5_1, Q4_K and Q6_K matrices are held natively");
      std::shared_ptr<kernels::BlockMatrix> M;
      try {
        M = std::make_shared<kernels::BlockMatrix>(kernels::block_matrix_from_gguf(
            dt, R.rows, R.cols, [&](size_t r) { return t.data + src(r) * R.row_bytes; }));
      } catch (const FormatError& e) {
        throw FormatError(f.path(), t.name, e.field() + ": " + e.reason());
      }
      store.add(TensorView{name, dt, std::move(shape), M->data(), M->bytes(), f.path()});
      store.keep_alive(std::move(M));
      return false;
    }
    case GgufHeld::Q8: {
      if (shape.size() != 2) throw UsageError(f.path(), t.name, "only matrices are held as Q8");
      auto Q = t.type == GgmlType::Q8_0 ? detail::relay_q8_0(f, t, R, src) : detail::quantize_rows(f, t, R, src);
      store.add(TensorView{name, DType::Q8, std::move(shape), reinterpret_cast<const std::byte*>(Q->view().data),
                           Q->bytes(), f.path()});
      store.keep_alive(std::move(Q));
      return false;
    }
  }
  return false;
}

}  // namespace fathom::io
