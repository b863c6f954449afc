#pragma once
// Shared SIMD vocabulary of the kernels: xsimd batch types for the best instruction set the
// compiler targets, horizontal sums, and bf16 widening without intrinsics.
#include <cmath>
#include <cstddef>
#include <cstdint>

// GCC 12 reports -W(maybe-)uninitialized inside its own AVX-512 headers (the `__Y` of
// _mm512_undefined_*, GCC bug 105593) wherever those intrinsics get inlined. The warning is
// located in the intrinsic headers, so ignoring it while they are first included silences exactly
// that false positive and nothing in fathom's code.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#endif
#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#endif
#include <xsimd/xsimd.hpp>
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif

namespace fathom::kernels::simd {

using fvec = xsimd::batch<float>;     // widest float vector (16 lanes with AVX-512)
using uvec = xsimd::batch<uint32_t>;  // same width, 32-bit lanes
constexpr size_t W = fvec::size;

inline fvec loadu(const float* p) { return fvec::load_unaligned(p); }
inline void storeu(float* p, const fvec& v) { v.store_unaligned(p); }
inline float hsum(const fvec& v) { return xsimd::hadd(v); }

// a * b + c rounded once, as std::fma, whatever the optimisation level. xsimd 8's fma for AVX-512
// is a multiply and an add, fused only where GCC contracts them (at -O2, not at -O1): kernels
// whose results are defined by an FMA (amx_q8.hpp's rescale) use this one.
inline fvec fma_fused(const fvec& a, const fvec& b, const fvec& c) {
#if defined(__AVX512F__)
  static_assert(W == 16);
  return _mm512_fmadd_ps(a, b, c);
#elif defined(__AVX__) && defined(__FMA__)
  static_assert(W == 8);
  return _mm256_fmadd_ps(a, b, c);
#else
  alignas(64) float x[W], y[W], z[W];
  a.store_aligned(x), b.store_aligned(y), c.store_aligned(z);
  for (size_t i = 0; i < W; ++i) x[i] = std::fma(x[i], y[i], z[i]);
  return fvec::load_aligned(x);
#endif
}

// Lane j of the result = sum of the lanes of rows[j], for W rows. (xsimd 8.1's haddp returns
// the AVX-512 sums in a permuted lane order, so it is not used.)
inline fvec hsum_rows(const fvec* rows) {
#if defined(__AVX512F__)
  if constexpr (W == 16) {
    __m512 t[8], u[4];
    for (int k = 0; k < 8; ++k) {  // per 128-bit lane: [a0+a2, b0+b2, a1+a3, b1+b3]
      const __m512 a = rows[2 * k], b = rows[2 * k + 1];
      t[k] = _mm512_add_ps(_mm512_unpacklo_ps(a, b), _mm512_unpackhi_ps(a, b));
    }
    for (int k = 0; k < 4; ++k)  // per 128-bit lane: partial sums of rows 4k .. 4k+3
      u[k] = _mm512_add_ps(_mm512_shuffle_ps(t[2 * k], t[2 * k + 1], 0x44),
                           _mm512_shuffle_ps(t[2 * k], t[2 * k + 1], 0xee));
    const __m512 w01 = _mm512_add_ps(_mm512_shuffle_f32x4(u[0], u[1], 0x88), _mm512_shuffle_f32x4(u[0], u[1], 0xdd));
    const __m512 w23 = _mm512_add_ps(_mm512_shuffle_f32x4(u[2], u[3], 0x88), _mm512_shuffle_f32x4(u[2], u[3], 0xdd));
    return _mm512_add_ps(_mm512_shuffle_f32x4(w01, w23, 0x88), _mm512_shuffle_f32x4(w01, w23, 0xdd));
  }
#endif
  alignas(64) float out[W];
  for (size_t j = 0; j < W; ++j) out[j] = hsum(rows[j]);
  return fvec::load_aligned(out);
}

// 2*W consecutive bf16 values read as W 32-bit words: word i holds element 2i in its low half and
// element 2i+1 in its high half (little endian). A bf16 is the top half of an f32, so shifting or
// masking gives the even and the odd elements as exact f32 vectors.
inline void bf16_split(const uint16_t* p, fvec& even, fvec& odd) {
  const uvec u = uvec::load_unaligned(reinterpret_cast<const uint32_t*>(p));
  even = xsimd::bitwise_cast<fvec>(u << 16);
  odd = xsimd::bitwise_cast<fvec>(u & uvec(0xffff0000u));
}

// Rounds each f32 to bf16 (nearest even, NaN kept quiet) and returns the bits in the high half
// of each 32-bit lane (low half zero), matching fathom::f32_to_bf16.
inline uvec bf16_round_high(const fvec& f) {
  const uvec u = xsimd::bitwise_cast<uvec>(f);
  const uvec rounded = (u + uvec(0x7fffu) + ((u >> 16) & uvec(1u))) & uvec(0xffff0000u);
  const uvec quiet = (u | uvec(0x00400000u)) & uvec(0xffff0000u);
  // select on floats: xsimd 8's uint32 select does not compile for AVX-512BW without -O.
  return xsimd::bitwise_cast<uvec>(xsimd::select(xsimd::isnan(f), xsimd::bitwise_cast<fvec>(quiet),
                                                 xsimd::bitwise_cast<fvec>(rounded)));
}

}  // namespace fathom::kernels::simd
