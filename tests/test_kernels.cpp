// Every fast kernel against kernels/reference.hpp on odd sizes (not multiples of the vector
// width), each weight dtype, with 1 and 2 threads, plus bit-reproducibility across runs.
// Tolerances are relative to the magnitude of the terms summed (sum |w_c x_c|), which bounds the
// rounding error of any f32 summation order.
#include <doctest/doctest.h>
#include <omp.h>

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include "fathom/kernels/gemv_batch.hpp"
#include "fathom/kernels/linear.hpp"
#include "fathom/kernels/reference.hpp"
#include "fathom/kernels/weight_buffer.hpp"
#include "thread_scope.hpp"

using namespace fathom;
using fathom::kernels::MatrixView;

namespace {

// A random weight matrix stored in `dt`, owning its bytes.
struct TestMatrix {
  std::vector<float> f32;
  std::vector<uint16_t> half;
  MatrixView view;
  TestMatrix(DType dt, size_t rows, size_t cols, std::mt19937& rng) {
    std::normal_distribution<float> nd(0.f, 1.f);
    f32.resize(rows * cols);
    for (float& v : f32) v = nd(rng);
    if (dt == DType::BF16 || dt == DType::F16) {
      half.resize(rows * cols);
      for (size_t i = 0; i < f32.size(); ++i) {
        if (dt == DType::BF16) {
          half[i] = f32_to_bf16(f32[i]);
        } else {  // exact f16 from a value representable in f16: a small integer / 64
          const float q = std::round(f32[i] * 64.f) / 64.f;
          f32[i] = q;
          half[i] = f32_to_f16_exact(q);
        }
      }
    }
    view = MatrixView{dt, rows, cols, half.empty() ? static_cast<const void*>(f32.data()) : half.data()};
  }
  // q = k/64 with |k| < 2^11: exactly representable in f16.
  static uint16_t f32_to_f16_exact(float q) {
    if (q == 0.f) return std::signbit(q) ? 0x8000 : 0;
    const uint16_t sign = q < 0 ? 0x8000 : 0;
    float a = std::fabs(q);
    int e = 0;
    const float m = std::frexp(a, &e);  // a = m * 2^e, m in [0.5, 1)
    const int exp16 = e - 1 + 15;
    const uint16_t mant = uint16_t(std::lround((m * 2.f - 1.f) * 1024.f));
    return uint16_t(sign | (exp16 << 10) | mant);
  }
};

std::vector<float> random_vec(size_t n, std::mt19937& rng, float scale = 1.f) {
  std::normal_distribution<float> nd(0.f, scale);
  std::vector<float> v(n);
  for (float& x : v) x = nd(rng);
  return v;
}

// |y - ref| <= rel * sum_c |W[r,c] x[c]| for every output.
void check_close(const MatrixView& W, const float* X, size_t n, const float* Y, const float* R,
                 double rel) {
  for (size_t t = 0; t < n; ++t)
    for (size_t r = 0; r < W.rows; ++r) {
      double mag = 0;
      for (size_t c = 0; c < W.cols; ++c) mag += std::fabs(double(W.at(r, c)) * X[t * W.cols + c]);
      const double err = std::fabs(double(Y[t * W.rows + r]) - R[t * W.rows + r]);
      if (!(err <= rel * mag + 1e-30)) {
        FAIL_CHECK("row " << r << " token " << t << ": got " << Y[t * W.rows + r] << " want "
                          << R[t * W.rows + r] << " (err " << err << ", bound " << rel * mag << ")");
        return;
      }
    }
}

const size_t kRows[] = {1, 7, 33, 257};
const size_t kCols[] = {1, 3, 17, 65, 1000};
const DType kDense[] = {DType::F32, DType::BF16, DType::F16};

}  // namespace

TEST_CASE("gemv matches the reference for every dense dtype, odd sizes, 1 and 2 threads") {
  std::mt19937 rng(1);
  for (DType dt : kDense)
    for (size_t rows : kRows)
      for (size_t cols : kCols) {
        CAPTURE(dtype_name(dt));
        CAPTURE(rows);
        CAPTURE(cols);
        TestMatrix m(dt, rows, cols, rng);
        const auto x = random_vec(cols, rng);
        std::vector<float> ref(rows), y1(rows), y2(rows), y2b(rows);
        kernels::reference::gemv(m.view, x.data(), ref.data());
        { ThreadScope ts(1); kernels::gemv(m.view, x.data(), y1.data()); }
        {
          ThreadScope ts(2);
          kernels::gemv(m.view, x.data(), y2.data());
          kernels::gemv(m.view, x.data(), y2b.data());
        }
        check_close(m.view, x.data(), 1, y1.data(), ref.data(), 1e-5);
        check_close(m.view, x.data(), 1, y2.data(), ref.data(), 1e-5);
        CHECK(std::memcmp(y2.data(), y2b.data(), rows * 4) == 0);  // run to run
        CHECK(std::memcmp(y1.data(), y2.data(), rows * 4) == 0);   // rows are summed by one thread
        // the prefetch distance changes what is asked for ahead, never the result
        for (size_t ahead : {size_t(0), size_t(64), size_t(16384)}) {
          kernels::set_dense_prefetch(ahead);
          CHECK(kernels::dense_prefetch(dt == DType::F32) == ahead);
          std::vector<float> yp(rows);
          kernels::gemv(m.view, x.data(), yp.data());
          CHECK(std::memcmp(yp.data(), y1.data(), rows * 4) == 0);
        }
        kernels::reset_dense_prefetch();
      }
}

TEST_CASE("gemv on wide dense rows: one-row and four-row tiles, L2 prefetch, the same bits") {
  // 4099 and 6001 columns: one-row tiles on a Zen 4 (x up to 24 KiB; at two threads bf16 only), the
  // bf16 ones prefetched into L2 there (more than 16 KiB of x); 9001: four-row tiles. Elsewhere
  // other tiles.
  std::mt19937 rng(11);
  for (DType dt : kDense)
    for (size_t cols : {size_t(4099), size_t(6001), size_t(9001)}) {
      CAPTURE(dtype_name(dt));
      CAPTURE(cols);
      const size_t rows = 37;
      TestMatrix m(dt, rows, cols, rng);
      const auto x = random_vec(cols, rng);
      std::vector<float> ref(rows), y1(rows), y2(rows), y0(rows);
      kernels::reference::gemv(m.view, x.data(), ref.data());
      { ThreadScope ts(1); kernels::gemv(m.view, x.data(), y1.data()); }
      { ThreadScope ts(2); kernels::gemv(m.view, x.data(), y2.data()); }
      check_close(m.view, x.data(), 1, y1.data(), ref.data(), 1e-5);
      CHECK(std::memcmp(y1.data(), y2.data(), rows * 4) == 0);
      kernels::set_dense_prefetch(0);  // a chosen distance replaces the L2 choice too
      CHECK_FALSE(bool(kernels::detail::dense_tile_prefetch(dt == DType::F32, cols, 1)));
      { ThreadScope ts(1); kernels::gemv(m.view, x.data(), y0.data()); }
      kernels::reset_dense_prefetch();
      CHECK(std::memcmp(y0.data(), y1.data(), rows * 4) == 0);
    }
#if defined(__AVX512F__)
  const bool l2 = kernels::amd_family_19h();  // only there: one bf16 row with > 16 KiB of x
#else
  const bool l2 = false;
#endif
  using kernels::detail::dense_tile_prefetch;
  CHECK(dense_tile_prefetch(/*f32=*/false, 4099, 1).to_l2() == l2);
  CHECK_FALSE(dense_tile_prefetch(/*f32=*/false, 4099, 4).to_l2());
  CHECK_FALSE(dense_tile_prefetch(/*f32=*/false, 1000, 1).to_l2());
  CHECK_FALSE(dense_tile_prefetch(/*f32=*/true, 4099, 1).to_l2());
  // two threads on a Zen 4: one bf16 row up to 24 KiB of x (the rows above), f32 four from 16 KiB
  // (a Zen 5 takes one row of bf16 up to 20 KiB, of f32 up to 12 KiB)
  using kernels::detail::gemv_row_tile;
#if defined(__AVX512F__)
  const bool zen5 = kernels::amd_family_1ah_on();
#else
  const bool zen5 = false;
#endif
  CHECK(gemv_row_tile(4864, 2, /*f32=*/false) == (l2 || zen5 ? 1 : 4));
  CHECK(gemv_row_tile(4864, 2, /*f32=*/true) == 4);
  CHECK(gemv_row_tile(8192, 2, /*f32=*/false) == 4);
  CHECK(gemv_row_tile(896, 2, /*f32=*/false) == 1);
}

// One dense row at a time on a Zen 5 asks for the line one line short of a whole number of rows
// ahead (prefetch.hpp): measured 92-98 % of the read bandwidth there, 75-80 % at whole rows.
TEST_CASE("whole_rows_ahead: the fewest whole rows of at least 6 KiB, less one line") {
  using kernels::detail::whole_rows_ahead;
  for (size_t stride : {size_t(128), size_t(1152), size_t(1792), size_t(4096), size_t(6144), size_t(9728), size_t(65536)}) {
    CAPTURE(stride);
    const size_t a = whole_rows_ahead(stride);
    CHECK((a + 64) % stride == 0);
    CHECK(a + 64 >= 6144);
    CHECK(a + 64 < 6144 + stride);
  }
  CHECK(whole_rows_ahead(1792) == 4 * 1792 - 64);
  CHECK(whole_rows_ahead(4096) == 2 * 4096 - 64);
}

TEST_CASE("gemm matches the reference for every dense dtype, odd sizes, 1 and 2 threads") {
  std::mt19937 rng(2);
  const size_t kTokens[] = {2, 5, 13, 29};
  for (DType dt : kDense)
    for (size_t rows : kRows)
      for (size_t cols : kCols)
        for (size_t n : kTokens) {
          if (n == 29 && rows * cols > 10000) continue;  // keep the reference cheap
          CAPTURE(dtype_name(dt));
          CAPTURE(rows);
          CAPTURE(cols);
          CAPTURE(n);
          TestMatrix m(dt, rows, cols, rng);
          const auto X = random_vec(n * cols, rng);
          std::vector<float> ref(n * rows), y1(n * rows), y2(n * rows), y2b(n * rows);
          kernels::reference::gemm(m.view, X.data(), n, ref.data());
          { ThreadScope ts(1); kernels::gemm(m.view, X.data(), n, y1.data()); }
          {
            ThreadScope ts(2);
            kernels::gemm(m.view, X.data(), n, y2.data());
            kernels::gemm(m.view, X.data(), n, y2b.data());
          }
          check_close(m.view, X.data(), n, y1.data(), ref.data(), 1e-5);
          check_close(m.view, X.data(), n, y2.data(), ref.data(), 1e-5);
          CHECK(std::memcmp(y2.data(), y2b.data(), n * rows * 4) == 0);
          CHECK(std::memcmp(y1.data(), y2.data(), n * rows * 4) == 0);
        }
}

TEST_CASE("gemm spans several K and M blocks and threads (larger than one tile)") {
  std::mt19937 rng(3);
  // 97 rows are 7 weight panels: with 2 threads X is packed once up front and shared
  // (kPrepackPanelsPerThread); 2083 rows (131 panels) pack X per thread, block by block.
  const size_t shapes[][2] = {{97, 401}, {2083, 20}};  // rows, tokens
  for (DType dt : {DType::F32, DType::BF16})
  for (const auto& [rows, n] : shapes) {
    const size_t cols = 600;  // > kKC, 401 tokens > AVX2's kMC: ragged edges everywhere
    CAPTURE(rows);
    TestMatrix m(dt, rows, cols, rng);
    const auto X = random_vec(n * cols, rng);
    std::vector<float> ref(n * rows), y1(n * rows), y2(n * rows);
    kernels::reference::gemm(m.view, X.data(), n, ref.data());
    { ThreadScope ts(1); kernels::gemm(m.view, X.data(), n, y1.data()); }
    { ThreadScope ts(2); kernels::gemm(m.view, X.data(), n, y2.data()); }
    check_close(m.view, X.data(), n, y2.data(), ref.data(), 1e-5);
    CHECK(std::memcmp(y1.data(), y2.data(), n * rows * 4) == 0);
  }
}

TEST_CASE("gemm_exact is the f32 gemm of the dequantised matrix, bit for bit, for every dtype") {
  std::mt19937 rng(31);
  // cols 576 is two K blocks of 288 (k_block: AVX2, AVX-512 with a 48 KiB L1d), 1100 three of
  // 280 and one of 260 (blocks starting inside a Q8 block of 32)
  const size_t shapes[][3] = {{33, 17, 5}, {97, 576, 401}, {40, 1100, 13}, {21, 576, 1}};  // rows, cols, n
  for (DType dt : {DType::F32, DType::BF16, DType::F16, DType::Q8})
    for (const auto& [rows, cols, n] : shapes) {
      CAPTURE(dtype_name(dt));
      CAPTURE(cols);
      CAPTURE(n);
      TestMatrix m(dt == DType::Q8 ? DType::F32 : dt, rows, cols, rng);
      kernels::QuantizedMatrix q;
      MatrixView W = m.view;
      if (dt == DType::Q8) q = kernels::quantize_q8(m.view), W = q.view();
      std::vector<float> wide(rows * cols);  // the exact values of W
      for (size_t r = 0; r < rows; ++r)
        for (size_t c = 0; c < cols; ++c) wide[r * cols + c] = W.at(r, c);
      const MatrixView F{DType::F32, rows, cols, wide.data()};
      const auto X = random_vec(n * cols, rng);
      std::vector<float> want(n * rows), y1(n * rows), y2(n * rows);
      { ThreadScope ts(1); kernels::detail::gemm_dense(DType::F32, wide.data(), rows, cols, X.data(), n, want.data()); }
      { ThreadScope ts(1); kernels::gemm_exact(W, X.data(), n, y1.data()); }
      { ThreadScope ts(2); kernels::gemm_exact(W, X.data(), n, y2.data()); }
      CHECK(std::memcmp(want.data(), y1.data(), n * rows * 4) == 0);
      CHECK(std::memcmp(want.data(), y2.data(), n * rows * 4) == 0);
      std::vector<float> ref(n * rows);
      kernels::reference::gemm(F, X.data(), n, ref.data());
      check_close(F, X.data(), n, y1.data(), ref.data(), 1e-5);
    }
  std::vector<float> in(8), out(8);
  CHECK_THROWS_AS(kernels::gemm_exact(MatrixView{DType::Q8, 2, 4, nullptr}, in.data(), 2, out.data()), UsageError);
  CHECK_THROWS_AS(kernels::gemm_exact(MatrixView{DType::I32, 2, 4, in.data()}, in.data(), 2, out.data()), UnsupportedError);
}

TEST_CASE("gemm_fused with Q8 matrices equals gemm per matrix, exact and int8 prompts, 1 and 2 threads") {
  // exact prompts share one packing of X between the matrices (gemm_dense); int8 ones run per matrix
  std::mt19937 rng(41);
  TestMatrix a(DType::F32, 70, 96, rng), b(DType::F32, 24, 96, rng);
  const kernels::QuantizedMatrix qa = kernels::quantize_q8(a.view), qb = kernels::quantize_q8(b.view);
  const MatrixView va = qa.view(), vb = qb.view();
  const size_t n = 7;
  const auto X = random_vec(n * 96, rng);
  for (bool exact : {true, false})
    for (int threads : {1, 2}) {
      CAPTURE(exact);
      CAPTURE(threads);
      PrefillScope prompts(exact);
      ThreadScope ts(threads);
      std::vector<float> ya(n * 70), yb(n * 24), fa(n * 70), fb(n * 24);
      kernels::gemm(va, X.data(), n, ya.data());
      kernels::gemm(vb, X.data(), n, yb.data());
      kernels::gemm_fused({{&va, fa.data()}, {&vb, fb.data()}}, X.data(), n);
      CHECK(std::memcmp(ya.data(), fa.data(), ya.size() * 4) == 0);
      CHECK(std::memcmp(yb.data(), fb.data(), yb.size() * 4) == 0);
    }
}

TEST_CASE("exact prefill (default): Q8 prompts multiply exact values, decode and batched decoding stay int8") {
  std::mt19937 rng(37);
  TestMatrix m(DType::F32, 45, 200, rng);
  const kernels::QuantizedMatrix q = kernels::quantize_q8(m.view);
  const size_t n = 6;
  const auto X = random_vec(n * 200, rng);
  std::vector<float> int8(n * 45), exact(n * 45), prefill(n * 45), batch(n * 45), one(45);
  kernels::gemm_exact(q.view(), X.data(), n, exact.data());
  {
    DecodeBitsPrompts int8_prompts;
    kernels::gemm(q.view(), X.data(), n, int8.data());
  }
  {
    PrefillScope exact_prompts(true);
    kernels::gemm(q.view(), X.data(), n, prefill.data());
    kernels::gemv_batch(q.view(), X.data(), n, batch.data());
    kernels::gemv(q.view(), X.data(), one.data());
  }
  CHECK(std::memcmp(prefill.data(), exact.data(), exact.size() * 4) == 0);
  CHECK(std::memcmp(batch.data(), int8.data(), int8.size() * 4) == 0);
  CHECK(std::memcmp(one.data(), int8.data(), one.size() * 4) == 0);
  CHECK(std::memcmp(int8.data(), exact.data(), exact.size() * 4) != 0);
}

TEST_CASE("gemm with one token is gemv; empty inputs; bad views throw") {
  std::mt19937 rng(4);
  TestMatrix m(DType::BF16, 33, 65, rng);
  const auto x = random_vec(65, rng);
  std::vector<float> a(33), b(33);
  kernels::gemv(m.view, x.data(), a.data());
  kernels::gemm(m.view, x.data(), 1, b.data());
  CHECK(std::memcmp(a.data(), b.data(), 33 * 4) == 0);
  std::vector<float> in(8), out(8);
  CHECK_THROWS_AS(kernels::gemv(MatrixView{DType::F32, 2, 4, nullptr}, in.data(), out.data()), UsageError);
  CHECK_THROWS_AS(kernels::gemm(MatrixView{DType::BF16, 2, 4, nullptr}, in.data(), 2, out.data()), UsageError);
  CHECK_THROWS_AS(kernels::gemv(MatrixView{DType::I32, 2, 4, in.data()}, in.data(), out.data()), UnsupportedError);
  CHECK_THROWS_AS(kernels::gemm(MatrixView{DType::U8, 2, 4, in.data()}, in.data(), 2, out.data()), UnsupportedError);
  TestMatrix z(DType::F32, 5, 0, rng);
  std::vector<float> y(5 * 3, 7.f);
  kernels::gemm(z.view, nullptr, 3, y.data());
  for (float v : y) CHECK(v == 0.f);
}

TEST_CASE("gemv_fused equals one gemv per matrix bit for bit; mixed dtypes and widths") {
  std::mt19937 rng(15);
  for (DType dt : {DType::F32, DType::BF16, DType::F16, DType::Q8})
    for (size_t cols : {size_t(17), size_t(65), size_t(1000)}) {
      CAPTURE(dtype_name(dt));
      CAPTURE(cols);
      const DType src = dt == DType::Q8 ? DType::F32 : dt;
      TestMatrix a(src, 33, cols, rng), b(src, 7, cols, rng), c(src, 2, cols, rng);
      kernels::QuantizedMatrix qa, qb, qc;
      MatrixView va = a.view, vb = b.view, vc = c.view;
      if (dt == DType::Q8) {
        qa = kernels::quantize_q8(va), qb = kernels::quantize_q8(vb), qc = kernels::quantize_q8(vc);
        va = qa.view(), vb = qb.view(), vc = qc.view();
      }
      const auto x = random_vec(cols, rng);
      std::vector<float> ya(33), yb(7), yc(2), fa(33), fb(7), fc(2);
      for (int threads : {1, 2}) {
        ThreadScope ts(threads);
        kernels::gemv(va, x.data(), ya.data());
        kernels::gemv(vb, x.data(), yb.data());
        kernels::gemv(vc, x.data(), yc.data());
        kernels::gemv_fused({{&va, fa.data()}, {&vb, fb.data()}, {&vc, fc.data()}}, x.data());
        CHECK(std::memcmp(ya.data(), fa.data(), 33 * 4) == 0);
        CHECK(std::memcmp(yb.data(), fb.data(), 7 * 4) == 0);
        CHECK(std::memcmp(yc.data(), fc.data(), 2 * 4) == 0);
      }
    }
  // different dtypes / widths in one call: each product still equals its own gemv
  TestMatrix f(DType::F32, 9, 40, rng), h(DType::BF16, 5, 40, rng), w(DType::F32, 3, 41, rng);
  const auto x = random_vec(41, rng);
  std::vector<float> yf(9), yh(5), yw(3), gf(9), gh(5), gw(3);
  kernels::gemv(f.view, x.data(), yf.data());
  kernels::gemv(h.view, x.data(), yh.data());
  kernels::gemv(w.view, x.data(), yw.data());
  kernels::gemv_fused({{&f.view, gf.data()}, {&h.view, gh.data()}, {&w.view, gw.data()}}, x.data());
  CHECK(std::memcmp(yf.data(), gf.data(), 9 * 4) == 0);
  CHECK(std::memcmp(yh.data(), gh.data(), 5 * 4) == 0);
  CHECK(std::memcmp(yw.data(), gw.data(), 3 * 4) == 0);
  // prompts: gemm_fused runs one gemm per matrix
  const auto X = random_vec(3 * 40, rng);
  std::vector<float> Yf(3 * 9), Yh(3 * 5), Gf(3 * 9), Gh(3 * 5);
  kernels::gemm(f.view, X.data(), 3, Yf.data());
  kernels::gemm(h.view, X.data(), 3, Yh.data());
  kernels::gemm_fused({{&f.view, Gf.data()}, {&h.view, Gh.data()}}, X.data(), 3);
  CHECK(std::memcmp(Yf.data(), Gf.data(), Yf.size() * 4) == 0);
  CHECK(std::memcmp(Yh.data(), Gh.data(), Yh.size() * 4) == 0);
  std::vector<float> in(8), out(8);
  const MatrixView null{DType::F32, 2, 4, nullptr};
  CHECK_THROWS_AS(kernels::gemv_fused({{&f.view, gf.data()}, {&null, out.data()}}, in.data()), UsageError);
}

// WeightArena: the buffers below 2 MiB made while one is open lie side by side (64-byte steps)
// from a 2 MiB boundary, zero-filled; larger ones and those made after it closes are their own;
// the memory outlives the arena and the other buffers of its chunk.
TEST_CASE("WeightArena carves small weight buffers side by side from huge-page chunks") {
  using kernels::WeightBuffer;
  const auto addr = [](const WeightBuffer& b) { return reinterpret_cast<uintptr_t>(b.data()); };
  const auto zero = [](const WeightBuffer& b) {
    return std::all_of(b.data(), b.data() + b.size(), [](std::byte v) { return v == std::byte{0}; });
  };
  std::vector<WeightBuffer> small;
  WeightBuffer big, after;
  {
    kernels::WeightArena arena;
    small.emplace_back(100);
    {
      kernels::WeightArena inner;  // nested: the outer arena's chunk
      small.emplace_back(4096);
    }
    big = WeightBuffer(WeightBuffer::kHugePage);
    small.emplace_back(1);
    for (int i = 0; i < 20; ++i) small.emplace_back(size_t(1900) << 10);  // 17 fit in a 32 MiB chunk
  }
  after = WeightBuffer(100);
  CHECK(addr(small[0]) % WeightBuffer::kHugePage == 0);
  CHECK(addr(small[1]) == addr(small[0]) + 128);
  CHECK(addr(small[2]) == addr(small[1]) + 4096);
  CHECK(addr(small[3]) == addr(small[2]) + 64);
  CHECK(addr(big) % WeightBuffer::kHugePage == 0);
  const auto in_chunks = [&](const WeightBuffer& b) {  // where the arena's next buffer would be
    return std::any_of(small.begin(), small.end(),
                       [&](const WeightBuffer& s) { return addr(b) == addr(s) + (s.size() + 63) / 64 * 64; });
  };
  CHECK(!in_chunks(big));
  int new_chunks = 0;
  for (size_t i = 4; i < small.size(); ++i) {
    CHECK(addr(small[i]) % 64 == 0);
    if (addr(small[i]) != addr(small[i - 1]) + (small[i - 1].size() + 63) / 64 * 64) {
      ++new_chunks;
      CHECK(addr(small[i]) % WeightBuffer::kHugePage == 0);
    }
  }
  CHECK(new_chunks == 1);
  CHECK(!in_chunks(after));
  for (const auto& b : small) CHECK(zero(b));
  CHECK(zero(big));
  CHECK(zero(after));
  small.erase(small.begin(), small.begin() + 10);  // the chunk's other buffers gone: the rest stay usable
  for (auto& b : small) std::memset(b.data(), 0x5a, b.size());
  CHECK(small.back().as<uint8_t>()[small.back().size() - 1] == 0x5a);
}

// The gemv kernels read tiles of R rows side by side in 64-byte loads and ask for lines `ahead`
// bytes further (TilePrefetch::tile at the start of every 256-byte step, prime() at the start of
// a range). Replaying that order: every line a kernel reads was asked for before it is
// read (rows of 100 bytes, less than one step, to the 9728-byte rows of bf16 x 4864; row starts
// not on line boundaries).
TEST_CASE("TilePrefetch asks for every line of a range of tiles before the kernel reads it") {
  for (int R : {1, 4})
  for (size_t stride : {size_t(100), size_t(896), size_t(1000), size_t(1792), size_t(9728)})
    for (size_t ahead : {size_t(1024), size_t(4096)}) {
      CAPTURE(R);
      CAPTURE(stride);
      CAPTURE(ahead);
      const size_t tiles = 24, bytes = tiles * size_t(R) * stride;
      const uintptr_t base = uintptr_t(1) << 20;  // a 64-byte aligned fake address, never read
      const kernels::detail::TilePrefetch pf(ahead, stride, size_t(R));
      std::vector<char> asked(bytes / 64 + 2, 0);
      auto ask = [&](uintptr_t a) {
        REQUIRE(a >= base);
        if ((a - base) / 64 < asked.size()) asked[(a - base) / 64] = 1;  // a line reaching into the range
      };
      pf.for_primed(reinterpret_cast<const void*>(base), ask);
      size_t missed = 0;
      for (size_t t = 0; t < tiles; ++t) {
        const auto* first = reinterpret_cast<const void*>(base + t * size_t(R) * stride);
        for (size_t off = 0; off < stride; off += 64) {
          if (off % 256 == 0)
            for (size_t b = 0; b < 256 && off + b < stride; b += 64)  // (past the row end: unused)
              for (int r = 0; r < R; ++r) ask(pf.target(first, off + b) + size_t(r) * stride);
          for (int r = 0; r < R; ++r) {  // the load: bytes [p, p + min(64, row end))
            const size_t p = (t * size_t(R) + size_t(r)) * stride + off;
            const size_t e = std::min(p + 64, (t * size_t(R) + size_t(r) + 1) * stride);
            for (size_t line = p / 64; line <= (e - 1) / 64; ++line) missed += !asked[line];
          }
        }
      }
      CHECK(missed == 0);
    }
  CHECK_FALSE(bool(kernels::detail::TilePrefetch()));
}

// ---------------------------------------------------------------------------------------------
// Q8

TEST_CASE("f32_to_f16 rounds to nearest even and round-trips every finite half") {
  for (uint32_t h = 0; h < 0x10000; ++h) {
    if ((h & 0x7c00u) == 0x7c00u) continue;  // inf / NaN
    REQUIRE(kernels::detail::f32_to_f16(f16_to_f32(uint16_t(h))) == h);
  }
  // halfway between 1 and the next half (1 + 2^-10): ties to even (1.0)
  CHECK(kernels::detail::f32_to_f16(1.f + 0x1p-11f) == 0x3c00);
  CHECK(kernels::detail::f32_to_f16(1.f + 3 * 0x1p-11f) == 0x3c02);
  CHECK(kernels::detail::f32_to_f16(1e6f) == 0x7c00);
}

TEST_CASE("quantize_q8 stores each weight within half a step of its block scale") {
  std::mt19937 rng(5);
  for (DType dt : kDense)
    for (size_t cols : {size_t(1), size_t(31), size_t(33), size_t(100)}) {
      TestMatrix m(dt, 7, cols, rng);
      const auto q = kernels::quantize_q8(m.view);
      const MatrixView v = q.view();
      REQUIRE(v.dtype == DType::Q8);
      REQUIRE(q.bytes() == 7 * kernels::q8_blocks(cols) * 34);
      for (size_t r = 0; r < 7; ++r)
        for (size_t b = 0; b * 32 < cols; ++b) {
          float amax = 0.f;
          for (size_t c = b * 32; c < std::min(cols, b * 32 + 32); ++c)
            amax = std::max(amax, std::fabs(m.view.at(r, c)));
          const float step = amax / 127.f;
          for (size_t c = b * 32; c < std::min(cols, b * 32 + 32); ++c)
            REQUIRE(std::fabs(v.at(r, c) - m.view.at(r, c)) <= 0.5f * step * 1.002f + 1e-12f);
        }
    }
  std::vector<float> bad = {1.f, NAN};
  CHECK_THROWS_AS(kernels::quantize_q8(MatrixView{DType::F32, 1, 2, bad.data()}), FormatError);
  CHECK_THROWS_AS(kernels::quantize_q8(MatrixView{DType::I32, 1, 2, bad.data()}), UnsupportedError);
}

namespace {
// |y_q8 - y_f32| bound from the two quantisation errors (|dw| <= step_w/2, |dx| <= step_x/2).
double q8_error_bound(const MatrixView& W, const float* x, size_t r) {
  const auto xq = kernels::reference::q8_activations(x, W.cols);
  double bound = 0;
  for (size_t b = 0; b * 32 < W.cols; ++b) {
    float aw = 0.f, ax = 0.f;
    const size_t e = std::min(W.cols, b * 32 + 32);
    for (size_t c = b * 32; c < e; ++c) {
      aw = std::max(aw, std::fabs(W.at(r, c)));
      ax = std::max(ax, std::fabs(x[c]));
    }
    for (size_t c = b * 32; c < e; ++c)
      bound += 0.5 * aw / 127 * 1.002 * std::fabs(xq[c]) + 0.5 * ax / 127 * std::fabs(W.at(r, c));
  }
  return bound * 1.01 + 1e-6;
}
}  // namespace

TEST_CASE("Q8 gemv/gemm match the dequantised reference, and f32 within the quantisation bound") {
  DecodeBitsPrompts int8_prompts;  // gemm's int8 kernel (the default prompt path is gemm_exact)
  std::mt19937 rng(6);
  const size_t kTokens[] = {1, 2, 5, 9};
  for (DType dt : {DType::F32, DType::BF16})
    for (size_t rows : kRows)
      for (size_t cols : kCols)
        for (size_t n : kTokens) {
          CAPTURE(rows);
          CAPTURE(cols);
          CAPTURE(n);
          TestMatrix m(dt, rows, cols, rng);
          const auto q = kernels::quantize_q8(m.view);
          const MatrixView W = q.view();
          const auto X = random_vec(n * cols, rng);
          std::vector<float> Xq;  // [n, cols] the activations as quantised
          for (size_t t = 0; t < n; ++t) {
            const auto v = kernels::reference::q8_activations(X.data() + t * cols, cols);
            Xq.insert(Xq.end(), v.begin(), v.end());
          }
          std::vector<float> ref(n * rows), y1(n * rows), y2(n * rows), y2b(n * rows), yf(n * rows);
          kernels::reference::gemm(W, Xq.data(), n, ref.data());
          kernels::reference::gemm(m.view, X.data(), n, yf.data());
          { ThreadScope ts(1); kernels::gemm(W, X.data(), n, y1.data()); }
          {
            ThreadScope ts(2);
            kernels::gemm(W, X.data(), n, y2.data());
            kernels::gemm(W, X.data(), n, y2b.data());
          }
          check_close(W, Xq.data(), n, y1.data(), ref.data(), 1e-5);
          check_close(W, Xq.data(), n, y2.data(), ref.data(), 1e-5);
          CHECK(std::memcmp(y2.data(), y2b.data(), n * rows * 4) == 0);
          CHECK(std::memcmp(y1.data(), y2.data(), n * rows * 4) == 0);
          for (size_t t = 0; t < n; ++t) {
            std::vector<float> g(rows);  // gemm rows are gemv results bit for bit
            kernels::gemv(W, X.data() + t * cols, g.data());
            CHECK(std::memcmp(g.data(), y2.data() + t * rows, rows * 4) == 0);
            for (size_t r = 0; r < rows; ++r)
              REQUIRE(std::fabs(double(y2[t * rows + r]) - yf[t * rows + r]) <=
                      q8_error_bound(m.view, X.data() + t * cols, r));
          }
        }
}

TEST_CASE("Q8 decode rows of 1536-5152 values: streamed or prefetched into L2, the reference's values, any threads") {
  std::mt19937 rng(23);
  for (size_t cols : {size_t(1536), size_t(2048), size_t(5152)})
    for (size_t rows : {size_t(1), size_t(67)}) {
      CAPTURE(cols);
      CAPTURE(rows);
      TestMatrix m(DType::F32, rows, cols, rng);
      const auto q = kernels::quantize_q8(m.view);
      const MatrixView W = q.view();
      const auto x = random_vec(cols, rng);
      const auto xq = kernels::reference::q8_activations(x.data(), cols);
      std::vector<float> ref(rows), y1(rows), y2(rows);
      kernels::reference::gemm(W, xq.data(), 1, ref.data());
      { ThreadScope ts(1); kernels::gemv(W, x.data(), y1.data()); }
      { ThreadScope ts(2); kernels::gemv(W, x.data(), y2.data()); }
      check_close(W, xq.data(), 1, y1.data(), ref.data(), 1e-5);
      CHECK(std::memcmp(y1.data(), y2.data(), rows * 4) == 0);
    }
  // the choice: with AVX512-VNNI rows stream 8 KiB ahead (on a Zen 4 on two levels), except rows of
  // 2048 values or more (1536 on a Zen 4: the tile's prefetches); other builds take the tile's
  using kernels::detail::Q8DecodePrefetch;
  using kernels::detail::q8_decode_prefetch;
#if defined(__AVX512VNNI__) && defined(__AVX512BW__)
  CHECK(q8_decode_prefetch(1024) ==
        (kernels::amd_family_19h() ? Q8DecodePrefetch::stream_two_level : Q8DecodePrefetch::stream));
  CHECK(q8_decode_prefetch(1536) == (kernels::amd_family_19h() ? Q8DecodePrefetch::tile_l2 : Q8DecodePrefetch::stream));
  CHECK(q8_decode_prefetch(2048) == Q8DecodePrefetch::tile_l2);
#else
  CHECK(q8_decode_prefetch(1536) == Q8DecodePrefetch::tile);
  CHECK(q8_decode_prefetch(2048) == Q8DecodePrefetch::tile);
#endif
}

TEST_CASE("Q8 decode rows give the same bits under every prefetch plan") {
  // Each plan has its own loop (q8_rows_plan); prefetches must never change a result.
  std::mt19937 rng(16);
  for (size_t cols : {size_t(70), size_t(576), size_t(1536), size_t(2080)}) {
    TestMatrix m(DType::F32, 37, cols, rng);
    const auto q = kernels::quantize_q8(m.view);
    const auto x = random_vec(cols, rng);
    std::vector<float> ref(37), y(37);
    kernels::gemv(q.view(), x.data(), ref.data());
    using Plan = kernels::detail::Q8DecodePrefetch;
    for (Plan plan : {Plan::stream, Plan::tile_l2, Plan::tile, Plan::stream_two_level, Plan(7)}) {  // 7: out of range
      CAPTURE(cols);
      CAPTURE(int(plan));
      kernels::detail::q8_decode_prefetch_forced().store(int(plan));
      std::fill(y.begin(), y.end(), -1.f);
      kernels::gemv(q.view(), x.data(), y.data());
      kernels::detail::q8_decode_prefetch_forced().store(-1);
      CHECK(std::memcmp(y.data(), ref.data(), y.size() * sizeof(float)) == 0);
    }
  }
}

TEST_CASE("Q8 activation quantisation (vector path) equals the reference rounding exactly") {
  std::mt19937 rng(14);
  for (size_t n : {size_t(1), size_t(31), size_t(32), size_t(100), size_t(4096)}) {
    auto x = random_vec(n, rng, 2.f);
    if (n >= 32) std::fill(x.begin(), x.begin() + 32, 0.f);  // an all-zero block
    kernels::detail::Q8Acts a;
    a.assign(x.data(), 1, n);
    const auto ref = kernels::reference::q8_activations(x.data(), n);
    for (size_t i = 0; i < n; ++i) REQUIRE(float(a.qs[i]) * a.d[i / 32] == ref[i]);
  }
}

TEST_CASE("Q8 activation quantisation: 16-block vector groups give the scalar rule's values and scales") {
  // d = max|x| / 127, q = clamp(nearbyint(x * (1 / d))) per block of 32; the vector path takes up to
  // 16 whole blocks at once, so the sizes straddle 16-block groups and end in part blocks.
  std::mt19937 rng(16);
  for (size_t n : {size_t(31), size_t(512), size_t(544), size_t(576), size_t(1000), size_t(1536)}) {
    auto x = random_vec(n, rng, 2.f);
    if (n >= 256) {  // block 7: d = 1 exactly, so ties x / d = k + 0.5 round to even
      const float ties[] = {127.f, 2.5f, -3.5f, 0.5f, -0.5f, 126.5f, -125.5f};
      std::copy(std::begin(ties), std::end(ties), x.begin() + 224);
      for (size_t i = 231; i < 256; ++i) x[i] = std::clamp(x[i], -126.f, 126.f);
    }
    if (n >= 100) std::fill(x.begin() + 64, x.begin() + 96, 0.f);                           // an all-zero block
    if (n >= 200) x[130] = 3e38f, x[131] = -2e38f;                                         // near the largest floats
    if (n >= 300) for (size_t i = 160; i < 192; ++i) x[i] *= 1e-30f;                       // tiny, still normal
    for (int nonfinite = 0; nonfinite < 3; ++nonfinite) {
      CAPTURE(n);
      CAPTURE(nonfinite);
      if (nonfinite == 1 && n >= 544) x[520] = NAN;       // block 16: the second group falls back
      if (nonfinite == 2 && n >= 544) x[300] = -INFINITY;  // block 9: the first group falls back
      kernels::detail::Q8Acts a;
      a.assign(x.data(), 1, n);
      for (size_t b = 0; b < a.nb; ++b) {
        const size_t e = std::min(n, 32 * b + 32);
        float amax = 0.f;
        bool finite = true;
        for (size_t i = 32 * b; i < e; ++i) amax = std::max(amax, std::fabs(x[i])), finite = finite && std::isfinite(x[i]);
        CAPTURE(b);
        if (!finite) {
          CHECK(std::isnan(a.d[b]));
          for (size_t i = 32 * b; i < 32 * b + 32; ++i) CHECK(a.qs[i] == 0);
          continue;
        }
        const float d = amax / 127.f, id = d > 0.f ? 1.f / d : 0.f;
        REQUIRE(std::bit_cast<uint32_t>(a.d[b]) == std::bit_cast<uint32_t>(d));
        for (size_t i = 32 * b; i < 32 * b + 32; ++i) {
          const float want = i < e ? std::clamp(std::nearbyint(x[i] * id), -127.f, 127.f) : 0.f;
          REQUIRE(float(a.qs[i]) == want);
        }
      }
    }
  }
}

TEST_CASE("Q8 activation block sums equal the sums of the quantised values") {
  // The GGUF kernels' offsets (sumq, sx) and Q6_K's (sumh) are made of them.
  std::mt19937 rng(15);
  for (size_t n : {size_t(20), size_t(96), size_t(100), size_t(1536)}) {
    auto x = random_vec(2 * n, rng, 3.f);
    if (n >= 64) x[40] = NAN;  // a non-finite block (row 0, block 1): values 0, sums 0
    kernels::detail::Q8Acts a;
    a.assign(x.data(), 2, n);
    for (size_t i = 0; i < 2 * a.nb; ++i) {
      int32_t h[2] = {0, 0};
      for (size_t k = 0; k < 32; ++k) h[k / 16] += a.qs[i * 32 + k];
      CAPTURE(n);
      CAPTURE(i);
      CHECK(a.sumh[2 * i] == h[0]);
      CHECK(a.sumh[2 * i + 1] == h[1]);
      CHECK(a.sumq[i] == h[0] + h[1]);
      const float sx = a.d[i] * float(h[0] + h[1]);
      CHECK(std::bit_cast<uint32_t>(a.sx[i]) == std::bit_cast<uint32_t>(sx));
    }
  }
}

TEST_CASE("Q8 products of non-finite activations are NaN (no undefined conversion)") {
  std::mt19937 rng(13);
  TestMatrix m(DType::F32, 9, 70, rng);
  const auto q = kernels::quantize_q8(m.view);
  auto x = random_vec(70, rng);
  x[40] = INFINITY;
  std::vector<float> y(9);
  kernels::gemv(q.view(), x.data(), y.data());
  for (float v : y) CHECK(std::isnan(v));
  x[40] = NAN;
  kernels::gemv(q.view(), x.data(), y.data());
  for (float v : y) CHECK(std::isnan(v));
}

TEST_CASE("Q8 portable block dot: the fast path's bits, the reference's value") {
  // Bit equality is what lets a run on a CPU without AVX512-VNNI reproduce one with it.
  DecodeBitsPrompts int8_prompts;
  std::mt19937 rng(7);
  for (size_t cols : {size_t(1), size_t(3), size_t(65), size_t(549), size_t(1000)}) {  // 1..32 blocks
    TestMatrix m(DType::F32, 5, cols, rng);
    const auto q = kernels::quantize_q8(m.view);
    const size_t n = 3;  // gemm rows: the 4 x 2 tiles and the 1-row remainder
    const auto x = random_vec(n * cols, rng);
    const auto xq = kernels::reference::q8_activations(x.data(), cols);
    kernels::detail::Q8Acts acts;
    acts.assign(x.data(), n, cols);
    const auto L = kernels::detail::q8_layout(q.view());
    std::vector<float> ref(5), fast(5), fast_n(n * 5);
    kernels::reference::gemv(q.view(), xq.data(), ref.data());
    kernels::gemv(q.view(), x.data(), fast.data());
    kernels::gemm(q.view(), x.data(), n, fast_n.data());
    for (size_t r = 0; r < 5; ++r) {
      const float p = kernels::detail::q8_dot_portable(L.qs + r * L.nb * 32, L.d + r * L.nb,
                                                       acts.qs.data(), acts.d.data(), L.nb);
      double mag = 0;
      for (size_t c = 0; c < cols; ++c) mag += std::fabs(double(q.view().at(r, c)) * xq[c]);
      CHECK(std::fabs(p - ref[r]) <= 1e-5 * mag + 1e-30);
      CHECK(std::bit_cast<uint32_t>(p) == std::bit_cast<uint32_t>(fast[r]));
      for (size_t t = 0; t < n; ++t) {
        const float pt = kernels::detail::q8_dot_portable(
            L.qs + r * L.nb * 32, L.d + r * L.nb, acts.qs.data() + t * L.nb * 32,
            acts.d.data() + t * L.nb, L.nb);
        CHECK(std::bit_cast<uint32_t>(pt) == std::bit_cast<uint32_t>(fast_n[t * 5 + r]));
      }
    }
  }
  MESSAGE("Q8 fast path: " << std::string(kernels::detail::q8_kernel_name()));
}

TEST_CASE("Q8 products at the ends of the int8 range: no saturation, the portable bits") {
  // Every |q| = 127 in weights and activations with equal signs (the largest pair sums, 2 x 127^2,
  // the limit of AVX2's vpmaddubsw), and stored bytes 0 (q = -128, which quantize_q8 never makes
  // but a Q8 checkpoint may hold).
  std::mt19937 rng(21);
  for (size_t cols : {size_t(32), size_t(288), size_t(1000)}) {
    const size_t rows = 6, n = 3, nb = kernels::q8_blocks(cols);
    std::vector<float> w(rows * cols), x(n * cols);
    for (size_t i = 0; i < w.size(); ++i) w[i] = (rng() & 1) ? 0.5f : -0.5f;
    for (size_t t = 0; t < n; ++t)
      for (size_t c = 0; c < cols; ++c) x[t * cols + c] = w[(t % rows) * cols + c] > 0 ? 2.f : -2.f;
    auto q = kernels::quantize_q8({DType::F32, rows, cols, w.data()});
    for (size_t c = 0; c < cols; c += 3) q.values()[5 * nb * 32 + c] = 0;  // row 5: q = -128
    const MatrixView W = q.view();
    const auto L = kernels::detail::q8_layout(W);
    kernels::detail::Q8Acts acts;
    acts.assign(x.data(), n, cols);
    std::vector<float> Y(n * rows), y(rows);
    kernels::gemm(W, x.data(), n, Y.data());
    for (size_t t = 0; t < n; ++t) {
      kernels::gemv(W, x.data() + t * cols, y.data());
      for (size_t r = 0; r < rows; ++r) {
        CAPTURE(cols);
        CAPTURE(r);
        const float p = kernels::detail::q8_dot_portable(L.qs + r * nb * 32, L.d + r * nb,
                                                         acts.qs.data() + t * nb * 32, acts.d.data() + t * nb, nb);
        double ref = 0;
        for (size_t c = 0; c < cols; ++c) ref += double(W.at(r, c)) * double(acts.qs[t * nb * 32 + c]) * acts.d[t * nb + c / 32];
        CHECK(std::fabs(p - ref) <= 1e-5 * std::fabs(ref) + 1e-6);
        CHECK(std::bit_cast<uint32_t>(p) == std::bit_cast<uint32_t>(y[r]));
        CHECK(std::bit_cast<uint32_t>(p) == std::bit_cast<uint32_t>(Y[t * rows + r]));
      }
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Vector kernels and attention

#include "fathom/kernels/attention.hpp"
#include "fathom/kernels/elementwise.hpp"

namespace {
const size_t kLens[] = {1, 3, 17, 33, 64, 65, 896, 1000};

// max_i |a_i - b_i| <= rel * max_i |b_i| (+ abs)
void check_vec(const float* a, const float* b, size_t n, double rel, double abs = 0) {
  double mag = 0;
  for (size_t i = 0; i < n; ++i) mag = std::max(mag, std::fabs(double(b[i])));
  for (size_t i = 0; i < n; ++i)
    if (!(std::fabs(double(a[i]) - b[i]) <= rel * mag + abs)) {
      FAIL_CHECK("element " << i << " of " << n << ": got " << a[i] << " want " << b[i]);
      return;
    }
}
}  // namespace

TEST_CASE("rmsnorm, swiglu, softmax, add, dot, l2_norm match the reference on odd lengths") {
  std::mt19937 rng(8);
  for (size_t n : kLens) {
    CAPTURE(n);
    const auto x = random_vec(n, rng, 3.f), w = random_vec(n, rng), u = random_vec(n, rng);
    std::vector<float> y(n), r(n);
    kernels::rmsnorm(x.data(), w.data(), y.data(), n, 1e-6f);
    kernels::reference::rmsnorm(x.data(), w.data(), r.data(), n, 1e-6f);
    check_vec(y.data(), r.data(), n, 2e-6);
    std::vector<float> xa = x;  // in place (y aliases x)
    kernels::rmsnorm(xa.data(), w.data(), xa.data(), n, 1e-6f);
    CHECK(std::memcmp(xa.data(), y.data(), n * 4) == 0);

    kernels::swiglu(x.data(), u.data(), y.data(), n);
    kernels::reference::swiglu(x.data(), u.data(), r.data(), n);
    check_vec(y.data(), r.data(), n, 1e-6, 1e-7);

    std::vector<float> s = x, sr = x;
    kernels::softmax(s.data(), n);
    kernels::reference::softmax(sr.data(), n);
    check_vec(s.data(), sr.data(), n, 1e-6, 1e-9);

    std::vector<float> a = x;
    kernels::add_inplace(a.data(), u.data(), n);
    for (size_t i = 0; i < n; ++i) REQUIRE(a[i] == x[i] + u[i]);

    double d = 0, mag = 0, ss = 0;
    for (size_t i = 0; i < n; ++i) {
      d += double(x[i]) * u[i];
      mag += std::fabs(double(x[i]) * u[i]);
      ss += double(x[i]) * x[i];
    }
    CHECK(std::fabs(kernels::dot(x.data(), u.data(), n) - d) <= 1e-6 * mag);
    CHECK(kernels::l2_norm(x.data(), n) == float(std::sqrt(ss)));  // double accumulation: exact
  }
  // softmax with -inf entries (masked scores)
  std::vector<float> m = {-INFINITY, 0.f, 1.f, -INFINITY, 2.f, 0.5f, 0.25f, -1.f, 3.f, 0.f, 0.f, 0.f,
                          1.f, 1.f, 1.f, 1.f, -INFINITY, 2.f};
  std::vector<float> mr = m;
  kernels::softmax(m.data(), m.size());
  kernels::reference::softmax(mr.data(), mr.size());
  check_vec(m.data(), mr.data(), m.size(), 1e-6, 1e-9);
  CHECK(m[0] == 0.f);
}

TEST_CASE("rope_rotate_half matches the reference for odd head sizes") {
  std::mt19937 rng(9);
  for (size_t hd : {size_t(2), size_t(6), size_t(34), size_t(64), size_t(128), size_t(130)}) {
    auto v = random_vec(hd, rng), vr = v;
    std::vector<float> c(hd / 2), s(hd / 2);
    for (size_t i = 0; i < hd / 2; ++i) {
      c[i] = std::cos(0.3f * float(i + 1));
      s[i] = std::sin(0.3f * float(i + 1));
    }
    kernels::rope_rotate_half(v.data(), c.data(), s.data(), hd);
    kernels::reference::rope_rotate_half(vr.data(), c.data(), s.data(), hd);
    check_vec(v.data(), vr.data(), hd, 1e-6);
  }
}

TEST_CASE("attend and attend_bf16 match the reference, with and without a mask") {
  std::mt19937 rng(10);
  for (size_t hd : {size_t(3), size_t(33), size_t(64), size_t(80)})
    for (size_t T : {size_t(0), size_t(1), size_t(7), size_t(300)})
      for (int masked = 0; masked < 3; ++masked) {
        CAPTURE(hd);
        CAPTURE(T);
        CAPTURE(masked);
        const size_t stride = 2 * hd + 5;  // two kv heads side by side plus padding
        const auto q = random_vec(hd, rng);
        const auto K = random_vec(T * stride + 1, rng), V = random_vec(T * stride + 1, rng);
        std::vector<uint16_t> Kb(K.size()), Vb(V.size());
        for (size_t i = 0; i < K.size(); ++i) { Kb[i] = f32_to_bf16(K[i]); Vb[i] = f32_to_bf16(V[i]); }
        std::vector<uint8_t> mask(T);
        for (size_t t = 0; t < T; ++t) mask[t] = masked == 2 ? 0 : uint8_t((t * 7 + 3) % 3 != 0);
        const uint8_t* mk = masked ? mask.data() : nullptr;
        const float scale = 1.f / std::sqrt(float(hd));
        const size_t off = hd + 2;  // second kv head
        std::vector<float> scores(T), out(hd, 9.f), ref(hd), outb(hd, 9.f), refb(hd);
        kernels::attend(q.data(), K.data() + off, V.data() + off, T, stride, hd, scale, mk,
                        scores.data(), out.data());
        kernels::reference::attend(
            q.data(), [&](size_t t, size_t i) { return double(K[off + t * stride + i]); },
            [&](size_t t, size_t i) { return double(V[off + t * stride + i]); }, T, hd, scale, mk,
            ref.data());
        check_vec(out.data(), ref.data(), hd, 1e-5, 1e-6);
        kernels::attend_bf16(q.data(), Kb.data() + off, Vb.data() + off, T, stride, hd, scale, mk,
                             scores.data(), outb.data());
        kernels::reference::attend(
            q.data(), [&](size_t t, size_t i) { return double(bf16_to_f32(Kb[off + t * stride + i])); },
            [&](size_t t, size_t i) { return double(bf16_to_f32(Vb[off + t * stride + i])); }, T, hd,
            scale, mk, refb.data());
        check_vec(outb.data(), refb.data(), hd, 1e-5, 1e-6);
        if (T == 0 || masked == 2)
          for (size_t i = 0; i < hd; ++i) REQUIRE((out[i] == 0.f && outb[i] == 0.f));
      }
}

TEST_CASE("simd::hsum_rows puts row j's sum in lane j") {
  using kernels::simd::fvec;
  constexpr size_t W = kernels::simd::W;
  fvec rows[W];
  float want[W];
  for (size_t j = 0; j < W; ++j) {
    float lanes[W];
    want[j] = 0.f;
    for (size_t l = 0; l < W; ++l) want[j] += (lanes[l] = float(j * 100 + l * l));
    rows[j] = fvec::load_unaligned(lanes);
  }
  float got[W];
  kernels::simd::hsum_rows(rows).store_unaligned(got);
  for (size_t j = 0; j < W; ++j) CHECK(got[j] == want[j]);
}

TEST_CASE("attend_group(_bf16) equals attend(_bf16) on every head of the group, bit for bit") {
  std::mt19937 rng(12);
  // With and without the cache rows asked for ahead (off on a Zen 4 by default): the same bits.
  for (int ahead : {0, 1})
    for (size_t hd : {size_t(32), size_t(33), size_t(64), size_t(128)})
      for (size_t G : {size_t(1), size_t(5), size_t(7)})
        for (size_t T : {size_t(1), size_t(17), size_t(300)})
          for (int masked = 0; masked < 3; ++masked) {
            CAPTURE(hd);
            CAPTURE(G);
            CAPTURE(T);
            CAPTURE(masked);
            CAPTURE(ahead);
            kernels::detail::attend_prefetch_forced() = ahead;
            const size_t stride = 2 * hd;
            const auto q = random_vec(G * (hd + 3), rng);
            const auto K = random_vec(T * stride, rng), V = random_vec(T * stride, rng);
            std::vector<uint8_t> mask(T);
            for (size_t t = 0; t < T; ++t) mask[t] = masked == 2 ? 0 : uint8_t(t % 4 != 1);
            const uint8_t* mk = masked ? mask.data() : nullptr;
            const float scale = 0.125f;
            std::vector<float> scores(G * T), out(G * (hd + 1), 5.f), one(hd), s1(T);
            kernels::attend_group(q.data(), hd + 3, G, K.data() + hd, V.data() + hd, T, stride, hd,
                                  scale, mk, scores.data(), out.data(), hd + 1);
            for (size_t g = 0; g < G; ++g) {
              kernels::attend(q.data() + g * (hd + 3), K.data() + hd, V.data() + hd, T, stride, hd,
                              scale, mk, s1.data(), one.data());
              CHECK(std::memcmp(one.data(), out.data() + g * (hd + 1), hd * 4) == 0);
            }
            std::vector<uint16_t> Kb(K.size()), Vb(V.size());
            for (size_t i = 0; i < K.size(); ++i) { Kb[i] = f32_to_bf16(K[i]); Vb[i] = f32_to_bf16(V[i]); }
            kernels::attend_group_bf16(q.data(), hd + 3, G, Kb.data() + hd, Vb.data() + hd, T, stride,
                                       hd, scale, mk, scores.data(), out.data(), hd + 1);
            for (size_t g = 0; g < G; ++g) {
              kernels::attend_bf16(q.data() + g * (hd + 3), Kb.data() + hd, Vb.data() + hd, T, stride,
                                   hd, scale, mk, s1.data(), one.data());
              CHECK(std::memcmp(one.data(), out.data() + g * (hd + 1), hd * 4) == 0);
            }
          }
  kernels::detail::attend_prefetch_forced() = -1;
}
