#pragma once
// Widening of weight elements (bf16, f16) to f32, for packing and for the slow paths.
#include <bit>
#include <cstddef>
#include <cstdint>

#include "fathom/core/dtype.hpp"
#include "fathom/kernels/simd.hpp"  // brings <immintrin.h> on x86

namespace fathom::kernels::detail {

// out[i] = bf16 in[i] widened (exact). A plain loop: compilers vectorise it (zero-extend, shift).
inline void bf16_to_f32_n(const uint16_t* in, float* out, size_t n) {
  for (size_t i = 0; i < n; ++i) out[i] = std::bit_cast<float>(uint32_t(in[i]) << 16);
}

// out[i] = f16 in[i] widened (exact). xsimd 8 has no half-precision type: use the hardware
// conversion where the compiler targets it, fathom::f16_to_f32 otherwise.
inline void f16_to_f32_n(const uint16_t* in, float* out, size_t n) {
  size_t i = 0;
#if defined(__AVX512F__)
  for (; i + 16 <= n; i += 16)
    _mm512_storeu_ps(out + i, _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(in + i))));
#elif defined(__F16C__)
  for (; i + 8 <= n; i += 8)
    _mm256_storeu_ps(out + i, _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(in + i))));
#endif
  for (; i < n; ++i) out[i] = f16_to_f32(in[i]);
}

}  // namespace fathom::kernels::detail
