// Native GGUF block weights (kernels/quant4.hpp): Q4_0, Q4_1, Q5_0, Q5_1, Q4_K and Q6_K matrices built from
// random GGUF blocks. Elements equal io::dequantize bit for bit; gemv/gemm equal the
// dequantise-then-f32 reference on the same 8-bit activations (and f32 activations within the
// activation quantisation bound); the vector kernel gives the portable kernel's bits; results are
// bit-identical for 1-3 threads and between gemv and each row of gemm.
#include <doctest/doctest.h>
#include <omp.h>

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstring>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "fathom/io/gguf_quants.hpp"
#include "fathom/kernels/gemv_batch.hpp"
#include "fathom/kernels/linear.hpp"
#include "fathom/kernels/quant4.hpp"
#include "gguf_cases.hpp"
#include "thread_scope.hpp"

using namespace fathom;
namespace kk = fathom::kernels;
namespace kd = fathom::kernels::detail;

namespace {

using gguf_test::Case;
using gguf_test::ggml_of;
using gguf_test::make_case;
using gguf_test::put_f16;
using gguf_test::random_gguf;

std::vector<float> random_acts(size_t n, std::mt19937& rng) {
  std::normal_distribution<float> nd(0.f, 1.f);
  std::vector<float> v(n);
  for (float& x : v) x = nd(rng);
  return v;
}

const DType kTypes[] = {DType::Q4_0, DType::Q4_1, DType::Q5_0, DType::Q5_1, DType::Q4_K, DType::Q6_K};

}  // namespace

TEST_CASE("GGUF block matrices: every element equals io::dequantize bit for bit") {
  std::mt19937 rng(3);
  for (DType t : kTypes)
    for (size_t cols : {size_t(512), size_t(2304)}) {  // 2304: Q4_K's and Q6_K's rows in two column slices
      CAPTURE(dtype_name(t));
      CAPTURE(cols);
      const Case c = make_case(t, 5, cols, rng);
      const kk::MatrixView W = c.M.view();
      // the file's bytes in whole groups of 16 rows (the 11 padding rows zero)
      CHECK(c.M.bytes() == c.raw.size() / 5 * 16);
      size_t bad = 0;
      for (size_t r = 0; r < c.rows; ++r)
        for (size_t k = 0; k < c.cols; ++k)
          bad += std::bit_cast<uint32_t>(W.at(r, k)) != std::bit_cast<uint32_t>(c.dq[r * c.cols + k]);
      CHECK(bad == 0);
    }
}

TEST_CASE("Q4_K and Q6_K column slices: their widths, every tile once, the padding rows zero") {
  // at most 8 super-blocks (2048 columns) a slice, as even as whole super-blocks allow
  const std::pair<size_t, size_t> widths[] = {{1, 1}, {8, 8}, {9, 5}, {12, 6}, {16, 8}, {19, 7}, {32, 8}, {56, 8}};
  for (auto [nsb, ws] : widths) {
    CAPTURE(nsb);
    CHECK(kd::k4_slice_width(nsb) == ws);
  }
  // tile_index maps (group, super-block) onto every tile of the matrix exactly once, each slice a
  // run of its groups' parts in group order
  for (size_t nsb : {size_t(3), size_t(9), size_t(19), size_t(32)})
    for (size_t rows : {size_t(16), size_t(67)}) {
      CAPTURE(nsb);
      CAPTURE(rows);
      const kd::K4Layout L = kd::k4_layout(nullptr, rows, nsb * kk::kSuperBlock);
      std::vector<int> seen(L.groups * nsb, 0);
      for (size_t g = 0; g < L.groups; ++g)
        for (size_t s = 0; s < nsb; ++s) {
          const size_t i = L.tile_index(g, s);
          REQUIRE(i < seen.size());
          ++seen[i];
          if (s + 1 < L.slice_end(s)) CHECK(L.tile_index(g, s + 1) == i + 1);
          else if (g + 1 < L.groups) CHECK(L.tile_index(g + 1, s / L.ws * L.ws) == i + 1);
        }
      CHECK(std::count(seen.begin(), seen.end(), 1) == long(seen.size()));
    }
  // the 13 padding rows of a matrix of 2304 columns (two slices) are zero in every tile
  std::mt19937 rng(4);
  const Case c = make_case(DType::Q4_K, 3, 2304, rng);
  const kd::K4Layout L = kd::k4_layout(c.M.view());
  const Case c6 = make_case(DType::Q6_K, 3, 2304, rng);
  const kd::K6Layout L6 = kd::k6_layout(c6.M.view());
  CHECK(L6.ws == L.ws);
  size_t nonzero = 0;
  for (size_t r = 3; r < 16; ++r)
    for (size_t s = 0; s < L.nsb; ++s) {
      uint8_t q[32];
      float scale, min;
      for (int j = 0; j < 8; ++j) {
        kd::k4_subblock(L, r, s, j, q, scale, min);
        nonzero += scale != 0.f || min != 0.f || std::count(q, q + 32, uint8_t(0)) != 32;
        kd::k6_subblock(L6, r, s, j, q, scale, min);  // (Q6_K: the two groups' scales)
        nonzero += scale != 0.f || min != 0.f || std::count(q, q + 32, uint8_t(0)) != 32;
      }
    }
  CHECK(nonzero == 0);
}

TEST_CASE("GGUF block gemv/gemm: the dequantised reference, the portable kernel's bits, any thread count") {
  DecodeBitsPrompts int8_prompts;  // gemm's int8 kernels with decode's bits (the default prompt path is gemm_exact)
  std::mt19937 rng(5);
  for (DType t : kTypes)
    for (size_t cols : {size_t(96), size_t(256), size_t(576), size_t(768), size_t(800), size_t(1056), size_t(1792),
                        size_t(2304), size_t(4864), size_t(5152)})
      for (size_t rows : {size_t(1), size_t(7), size_t(67)}) {
        // 96, 576 (SmolLM2's width), 800, 1056, 5152: 3, 18, 25, 33, 161 blocks of 32; 2304 and 4864
        // (Qwen2.5-0.5B's intermediate): Q4_K's and Q6_K's rows in 2 and 3 column slices; rows 1, 7 and 67: part
        // of a group of 16, and 4 groups and 3 rows
        if (cols % kk::gguf_block_elems(t) != 0) continue;
        CAPTURE(dtype_name(t));
        CAPTURE(cols);
        CAPTURE(rows);
        const Case c = make_case(t, rows, cols, rng);
        const kk::MatrixView W = c.M.view();
        const size_t n = 13;  // gemm tiles of 8, 4 and 1 activation rows
        const std::vector<float> X = random_acts(n * cols, rng);  // [n, cols]
        kd::Q8Acts A;
        A.assign(X.data(), n, cols);
        // reference: dequantised weights . dequantised activations, in double
        std::vector<float> Y1(n * rows), y(rows);
        {
          ThreadScope ts(1);
          kk::gemm(W, X.data(), n, Y1.data());
        }
        for (size_t tt = 0; tt < n; ++tt)
          for (size_t r = 0; r < rows; ++r) {
            double ref = 0, mag = 0, exact = 0, qbound = 0;
            for (size_t k = 0; k < cols; ++k) {
              const double w = c.dq[r * cols + k], dx = A.d[tt * A.nb + k / 32];
              const double xq = double(A.qs[tt * A.nb * 32 + k]) * dx;
              ref += w * xq;
              mag += std::fabs(w * xq);
              exact += w * X[tt * cols + k];
              qbound += std::fabs(w) * dx * 0.5;
            }
            const double got = Y1[tt * rows + r];
            REQUIRE(std::fabs(got - ref) <= 1e-5 * mag + 1e-30);
            REQUIRE(std::fabs(got - exact) <= qbound + 1e-5 * mag);
            // the portable kernel: the same bits
            const float p = kd::gguf_row_dot_portable(W, r, A, tt);
            REQUIRE(std::bit_cast<uint32_t>(p) == std::bit_cast<uint32_t>(Y1[tt * rows + r]));
          }
        for (int threads = 1; threads <= 3; ++threads) {
          ThreadScope ts(threads);
          std::vector<float> Y(n * rows);
          kk::gemm(W, X.data(), n, Y.data());
          CHECK(std::memcmp(Y.data(), Y1.data(), Y.size() * sizeof(float)) == 0);
          for (size_t tt = 0; tt < n; ++tt) {
            kk::gemv(W, X.data() + tt * cols, y.data());
            CHECK(std::memcmp(y.data(), Y1.data() + tt * rows, rows * sizeof(float)) == 0);
          }
        }
      }
  MESSAGE("GGUF block fast path: " << std::string(kd::gguf_kernel_name()));
  // Q6_K's quarters ask for their own lines with AVX512-VNNI on a Zen 4 (k6_groups.hpp), every
  // other format (and Q6_K elsewhere) for lines ahead
  CHECK(kd::k6_prefetch_own_lines() == (kd::kQ4Vnni && kk::amd_family_19h()));
}

TEST_CASE("GGUF block gemm_exact: the f32 gemm of io::dequantize's values, bit for bit; exact prefill") {
  std::mt19937 rng(17);
  for (DType t : kTypes) {
    CAPTURE(dtype_name(t));
    // 1120 columns (Q4/Q5; K blocks of 280 where k_block cuts 4 x 280: every segment starts mid-block),
    // 2304 (Q4_K and Q6_K: two column slices)
    const size_t cols = kk::gguf_block_elems(t) == 32 ? 1120 : 2304;
    const Case c = make_case(t, 19, cols, rng);
    // widen_segment on ragged runs: every element as W.at (io::dequantize) gives it
    std::uniform_int_distribution<size_t> pick(0, cols - 1);
    std::vector<float> seg(cols);
    size_t bad = 0;
    for (int k = 0; k < 200; ++k) {
      const size_t r = size_t(k) % c.rows, a = pick(rng), b = pick(rng), c0 = std::min(a, b), n = std::max(a, b) - c0 + 1;
      kk::detail::widen_segment(c.M.view(), r, c0, n, seg.data());
      for (size_t j = 0; j < n; ++j)
        bad += std::bit_cast<uint32_t>(seg[j]) != std::bit_cast<uint32_t>(c.dq[r * cols + c0 + j]);
    }
    CHECK(bad == 0);
    const size_t n = 9;
    const auto X = random_acts(n * c.cols, rng);
    std::vector<float> want(n * c.rows), got(n * c.rows);
    kk::detail::gemm_dense(DType::F32, c.dq.data(), c.rows, c.cols, X.data(), n, want.data());
    { ThreadScope ts(2); kk::gemm_exact(c.M.view(), X.data(), n, got.data()); }
    CHECK(std::memcmp(want.data(), got.data(), want.size() * 4) == 0);
    // exact prefill: gemm becomes gemm_exact; batched decoding keeps gemv's int8 rows
    std::vector<float> int8(n * c.rows), prefill(n * c.rows), batch(n * c.rows), one(c.rows);
    {
      DecodeBitsPrompts int8_prompts;
      kk::gemm(c.M.view(), X.data(), n, int8.data());
    }
    {
      PrefillScope exact_prompts(true);
      kk::gemm(c.M.view(), X.data(), n, prefill.data());
      kk::gemv_batch(c.M.view(), X.data(), n, batch.data());
      kk::gemv(c.M.view(), X.data() + (n - 1) * cols, one.data());
    }
    CHECK(std::memcmp(want.data(), prefill.data(), want.size() * 4) == 0);
    CHECK(std::memcmp(int8.data(), batch.data(), int8.size() * 4) == 0);
    CHECK(std::memcmp(int8.data() + (n - 1) * c.rows, one.data(), c.rows * 4) == 0);
  }
}

TEST_CASE("GGUF block products at the ends of the ranges: largest weights and activations, the portable bits") {
  // Weights at their largest magnitudes (Q4: 0 and 15; Q5: 0 and 31; Q6_K: 0 and 63) and activations of equal
  // magnitude in every element (|qx| = 127): the largest pair sums of vpmaddubsw (AVX2).
  DecodeBitsPrompts int8_prompts;  // gemm's int8 kernels with decode's bits (the default prompt path is gemm_exact)
  std::mt19937 rng(17);
  for (DType t : kTypes) {
    CAPTURE(dtype_name(t));
    const size_t rows = 3, cols = 512, n = 5;
    Case c = make_case(t, rows, cols, rng);
    // all quant bytes to 0x00 or 0xff, then rebuild the matrix and the reference
    const size_t bb = kk::gguf_block_bytes(t), nb = cols / kk::gguf_block_elems(t);
    for (size_t i = 0; i < rows * nb; ++i) {
      uint8_t* blk = c.raw.data() + i * bb;
      auto fill = [&](size_t from, size_t to) { for (size_t k = from; k < to; ++k) blk[k] = (rng() & 1) ? 0xff : 0x00; };
      switch (t) {
        case DType::Q4_0: fill(2, 18); break;
        case DType::Q4_1: fill(4, 20); break;
        case DType::Q5_0: fill(2, 22); break;
        case DType::Q5_1: fill(4, 24); break;
        case DType::Q4_K: fill(16, 144); break;
        default: fill(0, 192); break;
      }
    }
    const size_t row_bytes = nb * bb;
    c.M = kk::block_matrix_from_gguf(t, rows, cols, [&](size_t r) {
      return reinterpret_cast<const std::byte*>(c.raw.data() + r * row_bytes);
    });
    io::dequantize(ggml_of(t), reinterpret_cast<const std::byte*>(c.raw.data()), rows * cols, c.dq.data());
    std::vector<float> X(n * cols);
    for (size_t i = 0; i < X.size(); ++i) X[i] = (rng() & 1) ? 1.5f : -1.5f;
    for (size_t k = 0; k < cols; ++k) X[k] = c.dq[k] >= 0 ? 1.5f : -1.5f;  // row 0: signs of weight row 0
    kd::Q8Acts A;
    A.assign(X.data(), n, cols);
    const kk::MatrixView W = c.M.view();
    std::vector<float> Y(n * rows), y(rows);
    kk::gemm(W, X.data(), n, Y.data());
    for (size_t tt = 0; tt < n; ++tt) {
      kk::gemv(W, X.data() + tt * cols, y.data());
      for (size_t r = 0; r < rows; ++r) {
        double ref = 0, mag = 0;
        for (size_t k = 0; k < cols; ++k) {
          const double v = double(c.dq[r * cols + k]) * double(A.qs[tt * A.nb * 32 + k]) * A.d[tt * A.nb + k / 32];
          ref += v;
          mag += std::fabs(v);
        }
        const float p = kd::gguf_row_dot_portable(W, r, A, tt);
        CHECK(std::fabs(p - ref) <= 1e-5 * mag + 1e-30);
        CHECK(std::bit_cast<uint32_t>(p) == std::bit_cast<uint32_t>(y[r]));
        CHECK(std::bit_cast<uint32_t>(p) == std::bit_cast<uint32_t>(Y[tt * rows + r]));
      }
    }
  }
}

TEST_CASE("GGUF block gemv_fused equals one gemv per matrix; quantize_q8_blocks; errors") {
  std::mt19937 rng(9);
  const Case a = make_case(DType::Q4_1, 300, 512, rng), b = make_case(DType::Q4_1, 40, 512, rng);
  const std::vector<float> x = random_acts(512, rng);
  std::vector<float> ya(300), yb(40), fa(300), fb(40);
  kk::gemv(a.M.view(), x.data(), ya.data());
  kk::gemv(b.M.view(), x.data(), yb.data());
  const kk::MatrixView va = a.M.view(), vb = b.M.view();
  kk::gemv_fused({{&va, fa.data()}, {&vb, fb.data()}}, x.data());
  CHECK(std::memcmp(ya.data(), fa.data(), ya.size() * 4) == 0);
  CHECK(std::memcmp(yb.data(), fb.data(), yb.size() * 4) == 0);

  // Q8 from blocks equals Q8 from the dequantised f32 matrix
  const kk::QuantizedMatrix q1 = kk::quantize_q8_blocks(vb);
  const kk::QuantizedMatrix q2 = kk::quantize_q8({DType::F32, 40, 512, b.dq.data()});
  CHECK(std::memcmp(q1.view().data, q2.view().data, q1.bytes()) == 0);

  // non-finite activations give NaN, not garbage
  std::vector<float> xn = x;
  xn[3] = INFINITY;
  kk::gemv(vb, xn.data(), yb.data());
  CHECK(std::isnan(yb[0]));

  // columns that are not whole blocks, a non-finite scale
  const kk::MatrixView bad{DType::Q4_K, 2, 300, a.M.view().data};
  CHECK_THROWS_AS(kk::gemv(bad, x.data(), yb.data()), UsageError);
  std::vector<uint8_t> raw = random_gguf(DType::Q4_0, 2, 64, rng);
  put_f16(raw.data() + 18, INFINITY);
  CHECK_THROWS_AS(kk::block_matrix_from_gguf(DType::Q4_0, 2, 64,
                                             [&](size_t r) { return reinterpret_cast<const std::byte*>(raw.data() + r * 36); }),
                  FormatError);
}
