#pragma once
// ggml tensor types as stored in GGUF files: numeric ids (ggml.h's enum ggml_type) and block
// layouts. A block of `block_elems` consecutive elements of a row takes `block_bytes` bytes; plain
// types are blocks of one element. Dequantisation is in gguf_quants.hpp.
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "fathom/core/error.hpp"

namespace fathom::io {

enum class GgmlType : uint32_t {
  F32 = 0, F16 = 1, Q4_0 = 2, Q4_1 = 3, Q5_0 = 6, Q5_1 = 7, Q8_0 = 8, Q8_1 = 9,
  Q2_K = 10, Q3_K = 11, Q4_K = 12, Q5_K = 13, Q6_K = 14, Q8_K = 15,
  IQ2_XXS = 16, IQ2_XS = 17, IQ3_XXS = 18, IQ1_S = 19, IQ4_NL = 20, IQ3_S = 21, IQ2_S = 22, IQ4_XS = 23,
  I8 = 24, I16 = 25, I32 = 26, I64 = 27, F64 = 28, IQ1_M = 29, BF16 = 30,
  TQ1_0 = 34, TQ2_0 = 35, MXFP4 = 39, NVFP4 = 40, Q1_0 = 41,
};

namespace detail {

struct GgmlLayout {
  std::string_view name;
  size_t block_elems;
  size_t block_bytes;
};

// Every type id a current ggml writes (ids 4, 5 and 31-33, 36-38 were removed from ggml and
// have no layout). K-quant super-blocks are 256 elements.
inline std::optional<GgmlLayout> ggml_layout(uint32_t id) {
  constexpr size_t K = 256;
  switch (GgmlType(id)) {
    case GgmlType::F32: return GgmlLayout{"F32", 1, 4};
    case GgmlType::F16: return GgmlLayout{"F16", 1, 2};
    case GgmlType::Q4_0: return GgmlLayout{"Q4_0", 32, 2 + 16};
    case GgmlType::Q4_1: return GgmlLayout{"Q4_1", 32, 2 + 2 + 16};
    case GgmlType::Q5_0: return GgmlLayout{"Q5_0", 32, 2 + 4 + 16};
    case GgmlType::Q5_1: return GgmlLayout{"Q5_1", 32, 2 + 2 + 4 + 16};
    case GgmlType::Q8_0: return GgmlLayout{"Q8_0", 32, 2 + 32};
    case GgmlType::Q8_1: return GgmlLayout{"Q8_1", 32, 4 + 4 + 32};
    case GgmlType::Q2_K: return GgmlLayout{"Q2_K", K, 2 + 2 + K / 16 + K / 4};
    case GgmlType::Q3_K: return GgmlLayout{"Q3_K", K, 2 + K / 4 + K / 8 + 12};
    case GgmlType::Q4_K: return GgmlLayout{"Q4_K", K, 2 + 2 + K / 2 + 12};
    case GgmlType::Q5_K: return GgmlLayout{"Q5_K", K, 2 + 2 + K / 2 + K / 8 + 12};
    case GgmlType::Q6_K: return GgmlLayout{"Q6_K", K, 2 + K / 2 + K / 4 + K / 16};
    case GgmlType::Q8_K: return GgmlLayout{"Q8_K", K, 4 + K + K / 8};
    case GgmlType::IQ2_XXS: return GgmlLayout{"IQ2_XXS", K, 2 + K / 4};
    case GgmlType::IQ2_XS: return GgmlLayout{"IQ2_XS", K, 2 + K / 4 + K / 32};
    case GgmlType::IQ3_XXS: return GgmlLayout{"IQ3_XXS", K, 2 + K / 4 + K / 8};
    case GgmlType::IQ1_S: return GgmlLayout{"IQ1_S", K, 2 + K / 8 + K / 16};
    case GgmlType::IQ4_NL: return GgmlLayout{"IQ4_NL", 32, 2 + 16};
    case GgmlType::IQ3_S: return GgmlLayout{"IQ3_S", K, 2 + K / 4 + K / 8 + K / 32 + 4};
    case GgmlType::IQ2_S: return GgmlLayout{"IQ2_S", K, 2 + K / 4 + K / 16};
    case GgmlType::IQ4_XS: return GgmlLayout{"IQ4_XS", K, 2 + 2 + K / 2 + K / 64};
    case GgmlType::I8: return GgmlLayout{"I8", 1, 1};
    case GgmlType::I16: return GgmlLayout{"I16", 1, 2};
    case GgmlType::I32: return GgmlLayout{"I32", 1, 4};
    case GgmlType::I64: return GgmlLayout{"I64", 1, 8};
    case GgmlType::F64: return GgmlLayout{"F64", 1, 8};
    case GgmlType::IQ1_M: return GgmlLayout{"IQ1_M", K, K / 8 + K / 16 + K / 32};
    case GgmlType::BF16: return GgmlLayout{"BF16", 1, 2};
    case GgmlType::TQ1_0: return GgmlLayout{"TQ1_0", K, 2 + 4 * 13};
    case GgmlType::TQ2_0: return GgmlLayout{"TQ2_0", K, 2 + 64};
    case GgmlType::MXFP4: return GgmlLayout{"MXFP4", 32, 1 + 16};
    case GgmlType::NVFP4: return GgmlLayout{"NVFP4", 64, 4 + 32};
    case GgmlType::Q1_0: return GgmlLayout{"Q1_0", 128, 2 + 16};
  }
  return std::nullopt;
}

}  // namespace detail

// "Q4_K", or "unknown ggml type" for an id ggml does not define.
inline std::string_view ggml_type_name(GgmlType t) {
  if (auto l = detail::ggml_layout(uint32_t(t))) return l->name;
  return "unknown ggml type";
}

// True for the types gguf_quants.hpp dequantises: F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q5_0, Q5_1,
// Q2_K, Q3_K, Q4_K, Q5_K, Q6_K.
constexpr bool ggml_type_supported(GgmlType t) {
  switch (t) {
    case GgmlType::F32: case GgmlType::F16: case GgmlType::BF16: case GgmlType::Q8_0:
    case GgmlType::Q4_0: case GgmlType::Q4_1: case GgmlType::Q5_0: case GgmlType::Q5_1:
    case GgmlType::Q2_K: case GgmlType::Q3_K: case GgmlType::Q4_K: case GgmlType::Q5_K: case GgmlType::Q6_K:
      return true;
    default: return false;
  }
}

// Elements per block and bytes per block of a type fathom reads (ggml_type_supported); other
// types throw UnsupportedError (the GGUF reader itself still sizes every ggml type).
inline size_t ggml_block_elems(GgmlType t) {
  if (!ggml_type_supported(t))
    throw UnsupportedError("", std::string(ggml_type_name(t)), "ggml type is not supported by fathom");
  return detail::ggml_layout(uint32_t(t))->block_elems;
}
inline size_t ggml_block_bytes(GgmlType t) {
  if (!ggml_type_supported(t))
    throw UnsupportedError("", std::string(ggml_type_name(t)), "ggml type is not supported by fathom");
  return detail::ggml_layout(uint32_t(t))->block_bytes;
}

}  // namespace fathom::io
