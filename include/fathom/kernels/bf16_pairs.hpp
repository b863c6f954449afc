#pragma once
// bf16 values as 32-bit words of pairs: the operand layout of vdpbf16ps (bf16dot.hpp) and of AMX's
// tdpbf16ps (amx.hpp). Both multiply pair k of an activation row with pair k of a weight row, so
// activations are rounded into rows of pairs and weights packed into panels of pairs, k-major.
#include <algorithm>
#include <cstddef>
#include <cstdint>

#include "fathom/core/dtype.hpp"
#include "fathom/kernels/gemm.hpp"

namespace fathom::kernels::detail {

// x rounded to bf16, as 32-bit words of pairs: word i = bf16(x[2i]) | bf16(x[2i+1]) << 16
// (the odd tail element paired with 0).
inline void round_pairs(const float* x, size_t n, uint32_t* out) {
  for (size_t i = 0; 2 * i < n; ++i) {
    const uint32_t lo = f32_to_bf16(x[2 * i]), hi = 2 * i + 1 < n ? f32_to_bf16(x[2 * i + 1]) : 0u;
    out[i] = lo | hi << 16;
  }
}

// Bp[k][j] = pair k of elements [e0, e0 + elems) of row n0 + j of W [N, K] (bf16), for k < kc2 and
// j < NR: zero past row n0 + nr and past the elems elements (a tail pair's high half too). NR is
// the kernel's panel width: gemm's kNR for vdpbf16ps, two 16-column B tiles for AMX (whatever
// vector width the build has).
template <size_t NR = kNR>
inline void pack_pair_panel(const uint16_t* W, size_t K, size_t n0, size_t nr, size_t e0, size_t elems,
                            size_t kc2, uint32_t* Bp) {
#if defined(__AVX512F__)
  // A full panel of whole pairs is a 32 x kc2 transpose of 32-bit words: moved by transpose16's
  // shuffles (bit moves, no arithmetic) rather than word by word.
  if (nr == NR && K % 2 == 0 && elems == 2 * kc2 && kc2 % 16 == 0 && NR % 16 == 0) {
    for (size_t k = 0; k < kc2; k += 16)
      for (size_t j = 0; j < NR; j += 16)
        transpose16(reinterpret_cast<const float*>(W + (n0 + j) * K + e0 + 2 * k), K / 2,
                    reinterpret_cast<float*>(Bp + k * NR + j), NR);
    return;
  }
#endif
  for (size_t j = 0; j < NR; ++j) {
    const uint16_t* wr = j < nr ? W + (n0 + j) * K + e0 : nullptr;
    for (size_t k = 0; k < kc2; ++k) {
      uint32_t v = 0;
      if (wr && 2 * k < elems) {
        const uint32_t lo = wr[2 * k], hi = 2 * k + 1 < elems ? wr[2 * k + 1] : 0u;
        v = lo | hi << 16;
      }
      Bp[k * NR + j] = v;
    }
  }
}

}  // namespace fathom::kernels::detail
