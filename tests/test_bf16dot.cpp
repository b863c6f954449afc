// bf16 activations (kernels/bf16dot.hpp, opt-in): with the mode on, gemv/gemm with bf16 weights
// equal the reference on bf16-rounded activations (to f32 summation error), stay within the
// activation rounding of the exact product, give the same bits for 1-3 threads, and the mode off
// (or a CPU without AVX512_BF16) leaves the exact kernels' results untouched.
#include <doctest/doctest.h>
#include <omp.h>

#include <cmath>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "fathom/kernels/linear.hpp"
#include "thread_scope.hpp"

using namespace fathom;
namespace kk = fathom::kernels;

namespace {
struct ModeScope {
  bool saved = kk::bf16_activations_requested();
  explicit ModeScope(bool on) { kk::set_bf16_activations(on); }
  ~ModeScope() { kk::set_bf16_activations(saved); }
};
}  // namespace

TEST_CASE("bf16 activations: products against the bf16-rounded reference, any thread count") {
  std::mt19937 rng(11);
  std::normal_distribution<float> nd(0.f, 1.f);
  // 70 rows: two full 32-row panels (packed by word transposes when K is even) and a partial one;
  // 1088 columns: three K blocks of pairs (256 + 256 + 32), every one transposed
  for (size_t rows : {size_t(1), size_t(7), size_t(70)})
    for (size_t cols : {size_t(1), size_t(3), size_t(64), size_t(1001), size_t(1088)})
      for (size_t n : {size_t(1), size_t(2), size_t(30)}) {
        CAPTURE(rows);
        CAPTURE(cols);
        CAPTURE(n);
        std::vector<uint16_t> w(rows * cols);  // W [rows, cols] bf16
        std::vector<float> X(n * cols);        // X [n, cols]
        for (auto& v : w) v = f32_to_bf16(nd(rng));
        for (auto& v : X) v = nd(rng);
        const kk::MatrixView W{DType::BF16, rows, cols, w.data()};
        std::vector<float> exact(n * rows), Y1(n * rows);
        kk::gemm(W, X.data(), n, exact.data());  // the default: exact
        {
          ModeScope on(true);
          ThreadScope one(1);
          kk::gemm(W, X.data(), n, Y1.data());
        }
        for (size_t t = 0; t < n; ++t)
          for (size_t r = 0; r < rows; ++r) {
            double ref = 0, mag = 0, ex = 0;
            for (size_t c = 0; c < cols; ++c) {
              const double wv = bf16_to_f32(w[r * cols + c]), xb = bf16_to_f32(f32_to_bf16(X[t * cols + c]));
              ref += wv * xb;
              mag += std::fabs(wv * X[t * cols + c]);
              ex += wv * X[t * cols + c];
            }
            const double got = Y1[t * rows + r];
            if (kk::kBf16Dot) REQUIRE(std::fabs(got - ref) <= 1e-5 * mag + 1e-30);
            else REQUIRE(got == exact[t * rows + r]);  // no AVX512_BF16: the setting is ignored
            REQUIRE(std::fabs(got - ex) <= mag * std::ldexp(1.0, -8) + 1e-5 * mag);
          }
        ModeScope on(true);
        for (int threads = 2; threads <= 3; ++threads) {
          ThreadScope ts(threads);
          std::vector<float> Y(n * rows);
          kk::gemm(W, X.data(), n, Y.data());
          CHECK(std::memcmp(Y.data(), Y1.data(), Y.size() * 4) == 0);
        }
      }
  MESSAGE("bf16-activation kernels: " << std::string(kk::kBf16Dot ? "AVX512_BF16 vdpbf16ps" : "absent (exact path)"));
}

TEST_CASE("bf16 activations: gemv_fused equals gemv per matrix; off restores the exact bits") {
  std::mt19937 rng(12);
  std::normal_distribution<float> nd(0.f, 1.f);
  const size_t cols = 577;
  std::vector<uint16_t> a(300 * cols), b(40 * cols);
  for (auto& v : a) v = f32_to_bf16(nd(rng));
  for (auto& v : b) v = f32_to_bf16(nd(rng));
  std::vector<float> x(cols);
  for (auto& v : x) v = nd(rng);
  const kk::MatrixView A{DType::BF16, 300, cols, a.data()}, B{DType::BF16, 40, cols, b.data()};
  std::vector<float> ya(300), yb(40), fa(300), fb(40), exact(300), again(300);
  kk::gemv(A, x.data(), exact.data());
  {
    ModeScope on(true);
    kk::gemv(A, x.data(), ya.data());
    kk::gemv(B, x.data(), yb.data());
    kk::gemv_fused({{&A, fa.data()}, {&B, fb.data()}}, x.data());
    CHECK(std::memcmp(ya.data(), fa.data(), ya.size() * 4) == 0);
    CHECK(std::memcmp(yb.data(), fb.data(), yb.size() * 4) == 0);
  }
  kk::gemv(A, x.data(), again.data());
  CHECK(std::memcmp(exact.data(), again.data(), exact.size() * 4) == 0);
}
