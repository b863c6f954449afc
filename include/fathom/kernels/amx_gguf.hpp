#pragma once
// AMX-INT8 tile GEMM for the GGUF 4- and 5-bit formats with int8 activations (issue 14, part 3):
// int8 prompts (`set_exact_prefill(false)`, `--prefill int8`) with Q4_0, Q4_1, Q5_0, Q5_1 or Q4_K
// weights on a CPU with AMX-INT8 whose OS grants the tile state. Each of these formats is blocks of
// 32 values with one scale (and a minimum), so the Q8 tile kernel (amx_q8.hpp, gemm_amx_int8) runs
// them once their blocks are unpacked into its weight panels:
//
//   Q4_0, Q5_0   value q - 8 / q - 16 (signed), scale d                  weight = d (q - bias)
//   Q4_1, Q5_1   value q (0..15 / 0..31), scale d, minimum m            weight = d q + m
//   Q4_K         block j of a super-block: value q (0..15), scale d sc_j, minimum -(dmin mn_j)
//
// (d sc_j and dmin mn_j are exact in f32: an f16 times a 6-bit integer.) Per output, in block order:
//
//   acc = fma(float(q_b . qx_b), scale_b dx_b, acc);   with a minimum:  acc = fma(min_b, sx_b, acc)
//
// where qx_b, dx_b and sx_b = dx_b sum qx_b are the activations' block (quant.hpp's Q8Acts): the
// order of the VNNI, AVX2 and portable kernels of these formats too (q4_groups.hpp, k4_groups.hpp),
// so an AMX CPU's int8 prompt rows equal decode's bit for bit (tests/test_amx.cpp). Q6_K (16-value
// groups with a scale each) stays on its VNNI kernel.
//
// The unpacking costs a block's 32 values once per 32-row panel, chunk of 64 blocks and pass of
// 512 activation rows, against 32 x 32 x 32 multiply-adds per step of 32 rows.
#include <cstddef>
#include <cstdint>

#include "fathom/core/dtype.hpp"
#include "fathom/kernels/amx_q8.hpp"
#include "fathom/kernels/matrix.hpp"
#include "fathom/kernels/quant4.hpp"

namespace fathom::kernels {
namespace detail {

// Whether gemm runs int8 prompts of W's format on the tiles (given amx_int8_active()).
inline bool amx_gguf_format(DType t) { return is_q4_family(t) || t == DType::Q4_K; }

// Blocks [c0, c0 + cb) of Q4_0 / Q4_1 / Q5_0 / Q5_1 rows [n0, n0 + nr): signed values q - bias,
// scales d and (Q4_1, Q5_1) minimums m as f32.
inline void pack_q4_panel(const MatrixView& W, size_t n0, size_t nr, size_t c0, size_t cb, uint32_t* Bp, float* dw,
                          float* mw) {
  const Q4Layout L = q4_layout(W);
  const uint8_t bias = uint8_t(q4_bias(W.dtype));
  clear_panel(nr, cb, Bp, dw, mw);
  for (size_t j = 0; j < nr; ++j) {
    const size_t r = n0 + j;
    for (size_t blk = 0; blk < cb; ++blk) {
      const size_t b = c0 + blk;
      uint8_t v[kQ4Block];  // the block's values, then as signed bytes
      q4_block_elements(L, r, b, v);
      for (size_t e = 0; e < kQ4Block; ++e) v[e] = uint8_t(v[e] - bias);
      put_block_groups(v, 0, blk, j, Bp);
      dw[blk * kAmxQ8Cols + j] = f16_to_f32(q4_scale_bits(L, r, b));
      if (q4_has_min(L.fmt)) mw[blk * kAmxQ8Cols + j] = f16_to_f32(q4_min_bits(L, r, b));
    }
  }
}

// Blocks [c0, c0 + cb) of Q4_K rows [n0, n0 + nr) (block b: sub-block b % 8 of super-block b / 8,
// k4_groups.hpp): values q, scales d sc_j, minimums -(dmin mn_j).
inline void pack_q4k_panel(const MatrixView& W, size_t n0, size_t nr, size_t c0, size_t cb, uint32_t* Bp, float* dw,
                           float* mw) {
  const K4Layout L = k4_layout(W);
  clear_panel(nr, cb, Bp, dw, mw);
  for (size_t j = 0; j < nr; ++j)
    for (size_t blk = 0; blk < cb; ++blk) {
      const size_t b = c0 + blk;
      uint8_t v[kQ4Block];
      float scale, min;
      k4_subblock(L, n0 + j, b / 8, int(b % 8), v, scale, min);
      put_block_groups(v, 0, blk, j, Bp);
      dw[blk * kAmxQ8Cols + j] = scale;
      mw[blk * kAmxQ8Cols + j] = -min;
    }
}

// Y[M, N] = X[M, K] . W^T for W in one of the amx_gguf_format formats, int8 activations.
template <class Tiles, size_t G = kAmxQ8Group>
inline void gemm_amx_gguf(const MatrixView& W, const float* X, size_t M, float* Y) {
  const auto pack_with = [&](auto packer) {
    return [&W, packer](size_t n0, size_t nr, size_t c0, size_t cb, uint32_t* Bp, float* dw, float* mw) {
      packer(W, n0, nr, c0, cb, Bp, dw, mw);
    };
  };
  if (W.dtype == DType::Q4_K)
    return gemm_amx_int8<Tiles, /*Min=*/true, G>(W.rows, W.cols, X, M, Y, pack_with(pack_q4k_panel));
  if (q4_has_min(W.dtype))
    return gemm_amx_int8<Tiles, /*Min=*/true, G>(W.rows, W.cols, X, M, Y, pack_with(pack_q4_panel));
  gemm_amx_int8<Tiles, /*Min=*/false, G>(W.rows, W.cols, X, M, Y, pack_with(pack_q4_panel));
}

}  // namespace detail
}  // namespace fathom::kernels
