#pragma once
// Dequantisation of GGUF tensor data to f32, scalar C++. Results equal the reference (PyPI gguf's
// gguf.quants.dequantize, which computes in numpy float32) bit for bit.
//
// Why the order of operations cannot change a result: every scale is an f16 (11 significant bits)
// and every quant and sub-block scale a small integer, so each product below (f16 x 6-bit scale x
// 6-bit quant at most: < 2^24) is exact in f32. The only rounding is the one final add or subtract
// of a block minimum, so grouping the products differently or fusing them into an FMA (as
// -march=native with -ffp-contract=fast may) gives the same floats as numpy's separate ops.
//
// Block layouts (bytes in storage order; "f16" is an IEEE half, little-endian):
//   Q4_0  f16 d | u8 qs[16]                     x = d * (q - 8); q[j] = qs[j] & 15, q[j+16] = qs[j] >> 4
//   Q4_1  f16 d | f16 m | u8 qs[16]             x = d * q + m
//   Q5_0  f16 d | u32 qh | u8 qs[16]            x = d * ((q | bit j of qh << 4) - 16)
//   Q5_1  f16 d | f16 m | u32 qh | u8 qs[16]    x = d * (q | bit j of qh << 4) + m
//   Q8_0  f16 d | i8 qs[32]                     x = d * q
//   Q2_K  u8 scales[16] | u8 qs[64] | f16 d | f16 dmin        (256 elements, 16 groups of 16)
//   Q3_K  u8 hmask[32] | u8 qs[64] | u8 scales[12] | f16 d    (16 groups of 16)
//   Q4_K  f16 d | f16 dmin | u8 scales[12] | u8 qs[128]       (8 groups of 32)
//   Q5_K  f16 d | f16 dmin | u8 scales[12] | u8 qh[32] | u8 qs[128]
//   Q6_K  u8 ql[128] | u8 qh[64] | i8 scales[16] | f16 d      (16 groups of 16)
// (the bit layouts of the K-quants are spelled out in each function).
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "fathom/core/dtype.hpp"
#include "fathom/core/error.hpp"
#include "fathom/io/gguf.hpp"
#include "fathom/io/gguf_types.hpp"

namespace fathom::io {

namespace detail {

inline float gguf_f16(const std::byte* p) {
  uint16_t h;
  std::memcpy(&h, p, 2);
  return f16_to_f32(h);
}
inline uint8_t gguf_u8(const std::byte* p, size_t i) { return std::to_integer<uint8_t>(p[i]); }

// Q4_0 / Q4_1: the 4-bit value of element j (0..31) of a block whose nibbles start at qs.
inline uint8_t nibble32(const std::byte* qs, int j) {
  return j < 16 ? gguf_u8(qs, size_t(j)) & 15 : gguf_u8(qs, size_t(j - 16)) >> 4;
}

inline void dq_q4_0(const std::byte* b, float* y) {  // b: 18 bytes, y: [32]
  const float d = gguf_f16(b);
  for (int j = 0; j < 32; ++j) y[j] = d * float(int(nibble32(b + 2, j)) - 8);
}
inline void dq_q4_1(const std::byte* b, float* y) {  // b: 20 bytes, y: [32]
  const float d = gguf_f16(b), m = gguf_f16(b + 2);
  for (int j = 0; j < 32; ++j) y[j] = d * float(nibble32(b + 4, j)) + m;
}
inline void dq_q5_0(const std::byte* b, float* y) {  // b: 22 bytes, y: [32]
  const float d = gguf_f16(b);
  uint32_t qh;
  std::memcpy(&qh, b + 2, 4);
  for (int j = 0; j < 32; ++j) {
    const int q = nibble32(b + 6, j) | int((qh >> j) & 1) << 4;
    y[j] = d * float(q - 16);
  }
}
inline void dq_q5_1(const std::byte* b, float* y) {  // b: 24 bytes, y: [32]
  const float d = gguf_f16(b), m = gguf_f16(b + 2);
  uint32_t qh;
  std::memcpy(&qh, b + 4, 4);
  for (int j = 0; j < 32; ++j) {
    const int q = nibble32(b + 8, j) | int((qh >> j) & 1) << 4;
    y[j] = d * float(q) + m;
  }
}
inline void dq_q8_0(const std::byte* b, float* y) {  // b: 34 bytes, y: [32]
  const float d = gguf_f16(b);
  for (int j = 0; j < 32; ++j) y[j] = float(int8_t(gguf_u8(b + 2, size_t(j)))) * d;
}

// Q2_K: element e = (h * 4 + s) * 32 + l (h half 0..1, s shift 0..3, l 0..31) is
// (qs[h * 32 + l] >> 2s) & 3; group g = e / 16 has scale d * (scales[g] & 15) and
// minimum dmin * (scales[g] >> 4).
inline void dq_q2_k(const std::byte* b, float* y) {  // b: 84 bytes, y: [256]
  const std::byte *scales = b, *qs = b + 16;
  const float d = gguf_f16(b + 80), dmin = gguf_f16(b + 82);
  for (int e = 0; e < 256; ++e) {
    const int h = e / 128, s = (e / 32) % 4, l = e % 32, g = e / 16;
    const uint8_t sc = gguf_u8(scales, size_t(g));
    const float dl = d * float(sc & 15), ml = dmin * float(sc >> 4);
    const int q = (gguf_u8(qs, size_t(h * 32 + l)) >> (2 * s)) & 3;
    y[e] = dl * float(q) - ml;
  }
}

// Q3_K: 16 signed 6-bit group scales: low 4 bits of scale i from scales[i % 8] (low nibble for
// i < 8, high for i >= 8), high 2 bits from scales[8 + i % 4] >> (2 * (i / 4)); minus 32.
// Element e = (h * 4 + s) * 32 + l: low 2 bits (qs[h * 32 + l] >> 2s) & 3, and 4 is subtracted
// unless bit e / 32 of hmask[l] is set.
inline void dq_q3_k(const std::byte* b, float* y) {  // b: 110 bytes, y: [256]
  const std::byte *hmask = b, *qs = b + 32, *sc = b + 96;
  const float d = gguf_f16(b + 108);
  float dl[16];
  for (int i = 0; i < 16; ++i) {
    const int lo = (gguf_u8(sc, size_t(i % 8)) >> (i < 8 ? 0 : 4)) & 15;
    const int hi = (gguf_u8(sc, size_t(8 + i % 4)) >> (2 * (i / 4))) & 3;
    dl[i] = d * float((lo | hi << 4) - 32);
  }
  for (int e = 0; e < 256; ++e) {
    const int h = e / 128, s = (e / 32) % 4, l = e % 32;
    const int lo = (gguf_u8(qs, size_t(h * 32 + l)) >> (2 * s)) & 3;
    const int high_set = (gguf_u8(hmask, size_t(l)) >> (e / 32)) & 1;
    y[e] = dl[e / 16] * float(lo - (high_set ? 0 : 4));
  }
}

// Q4_K / Q5_K: 8 unsigned 6-bit scales and minimums packed in 12 bytes. For j < 4:
// scale = s[j] & 63, min = s[j + 4] & 63; for j >= 4: scale = (s[j + 4] & 15) | (s[j - 4] >> 6) << 4,
// min = (s[j + 4] >> 4) | (s[j] >> 6) << 4.
inline void k_scale_min(const std::byte* s, int j, int& sc, int& mn) {
  if (j < 4) {
    sc = gguf_u8(s, size_t(j)) & 63;
    mn = gguf_u8(s, size_t(j + 4)) & 63;
  } else {
    sc = (gguf_u8(s, size_t(j + 4)) & 15) | (gguf_u8(s, size_t(j - 4)) >> 6) << 4;
    mn = (gguf_u8(s, size_t(j + 4)) >> 4) | (gguf_u8(s, size_t(j)) >> 6) << 4;
  }
}

// Q4_K: group j (0..7) of 32: element l is (qs[(j / 2) * 32 + l] >> 4 * (j % 2)) & 15.
inline void dq_q4_k(const std::byte* b, float* y) {  // b: 144 bytes, y: [256]
  const float d = gguf_f16(b), dmin = gguf_f16(b + 2);
  const std::byte *scales = b + 4, *qs = b + 16;
  for (int j = 0; j < 8; ++j) {
    int sc, mn;
    k_scale_min(scales, j, sc, mn);
    const float dl = d * float(sc), ml = dmin * float(mn);
    for (int l = 0; l < 32; ++l) {
      const int q = (gguf_u8(qs, size_t((j / 2) * 32 + l)) >> (4 * (j % 2))) & 15;
      y[j * 32 + l] = dl * float(q) - ml;
    }
  }
}

// Q5_K: as Q4_K plus a fifth bit: bit j of qh[l] for element l of group j.
inline void dq_q5_k(const std::byte* b, float* y) {  // b: 176 bytes, y: [256]
  const float d = gguf_f16(b), dmin = gguf_f16(b + 2);
  const std::byte *scales = b + 4, *qh = b + 16, *qs = b + 48;
  for (int j = 0; j < 8; ++j) {
    int sc, mn;
    k_scale_min(scales, j, sc, mn);
    const float dl = d * float(sc), ml = dmin * float(mn);
    for (int l = 0; l < 32; ++l) {
      const int lo = (gguf_u8(qs, size_t((j / 2) * 32 + l)) >> (4 * (j % 2))) & 15;
      const int hi = (gguf_u8(qh, size_t(l)) >> j) & 1;
      y[j * 32 + l] = dl * float(lo | hi << 4) - ml;
    }
  }
}

// Q6_K: element e = h * 128 + r (h half 0..1, r 0..127): low 4 bits from
// ql[h * 64 + r % 64] >> 4 * (r / 64), high 2 bits (qh[h * 32 + r % 32] >> 2 * (r / 32)) & 3;
// minus 32; group e / 16 scaled by d * scales[e / 16] (signed).
inline void dq_q6_k(const std::byte* b, float* y) {  // b: 210 bytes, y: [256]
  const std::byte *ql = b, *qh = b + 128, *scales = b + 192;
  const float d = gguf_f16(b + 208);
  for (int e = 0; e < 256; ++e) {
    const int h = e / 128, r = e % 128;
    const int lo = (gguf_u8(ql, size_t(h * 64 + r % 64)) >> (4 * (r / 64))) & 15;
    const int hi = (gguf_u8(qh, size_t(h * 32 + r % 32)) >> (2 * (r / 32))) & 3;
    const float dl = d * float(int8_t(gguf_u8(scales, size_t(e / 16))));
    y[e] = dl * float((lo | hi << 4) - 32);
  }
}

}  // namespace detail

// Dequantises n_elems elements of type t starting at src (blocks in storage order) into
// dst[n_elems]. n_elems must be a multiple of the type's block size (UsageError otherwise); types
// outside ggml_type_supported() throw UnsupportedError. src needs no alignment.
inline void dequantize(GgmlType t, const std::byte* src, size_t n_elems, float* dst) {
  const size_t be = ggml_block_elems(t), bb = ggml_block_bytes(t);
  if (n_elems % be != 0)
    throw UsageError("", std::string(ggml_type_name(t)), "dequantize: " + std::to_string(n_elems) +
                                                             " elements is not a multiple of the block of " +
                                                             std::to_string(be));
  const size_t nb = n_elems / be;
  using Fn = void (*)(const std::byte*, float*);
  Fn fn = nullptr;
  switch (t) {
    case GgmlType::F32:
      if (n_elems) std::memcpy(dst, src, n_elems * 4);
      return;
    case GgmlType::F16:
      for (size_t i = 0; i < n_elems; ++i) dst[i] = detail::gguf_f16(src + 2 * i);
      return;
    case GgmlType::BF16:
      for (size_t i = 0; i < n_elems; ++i) {
        uint16_t h;
        std::memcpy(&h, src + 2 * i, 2);
        dst[i] = bf16_to_f32(h);
      }
      return;
    case GgmlType::Q4_0: fn = detail::dq_q4_0; break;
    case GgmlType::Q4_1: fn = detail::dq_q4_1; break;
    case GgmlType::Q5_0: fn = detail::dq_q5_0; break;
    case GgmlType::Q5_1: fn = detail::dq_q5_1; break;
    case GgmlType::Q8_0: fn = detail::dq_q8_0; break;
    case GgmlType::Q2_K: fn = detail::dq_q2_k; break;
    case GgmlType::Q3_K: fn = detail::dq_q3_k; break;
    case GgmlType::Q4_K: fn = detail::dq_q4_k; break;
    case GgmlType::Q5_K: fn = detail::dq_q5_k; break;
    case GgmlType::Q6_K: fn = detail::dq_q6_k; break;
    default:
      throw UnsupportedError("", std::string(ggml_type_name(t)), "dequantize: type not supported");
  }
  for (size_t i = 0; i < nb; ++i) fn(src + i * bb, dst + i * be);
}

// A whole tensor as f32 in ggml order (row after row, ne[0] elements each); names the file and
// tensor when its type is not supported.
inline std::vector<float> dequantize_tensor(const GgufFile& f, const GgufTensor& t) {
  if (!ggml_type_supported(t.type))
    throw UnsupportedError(f.path(), t.name, "tensor type " + std::string(ggml_type_name(t.type)) +
                                                 " is not supported (F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, "
                                                 "Q2_K, Q3_K, Q4_K, Q5_K, Q6_K are)");
  std::vector<float> out(t.numel());
  dequantize(t.type, t.data, out.size(), out.data());
  return out;
}

}  // namespace fathom::io
