// kernels::gemm_rank, gemm_rank_screened and gemm_packed against gemm_exact: the full product
// scanned row by row gives argmax (lowest column among equal maxima), target values bit for bit and
// counts strictly above; with pre-packed and per-call packed weights, the integer screen, 1-3
// threads, partial panels and tiles, several K blocks, exact and near ties, zero and NaN rows.
#include <doctest/doctest.h>

#include <cstring>
#include <random>
#include <vector>

#include "fathom/kernels/gemm_rank.hpp"
#include "fathom/kernels/linear.hpp"
#include "fathom/kernels/rank_screen.hpp"
#include "thread_scope.hpp"

using namespace fathom;
using fathom::kernels::MatrixView;

namespace {

std::vector<float> random_floats(size_t n, std::mt19937& rng) {
  std::normal_distribution<float> nd(0.f, 1.f);
  std::vector<float> v(n);
  for (float& x : v) x = nd(rng);
  return v;
}

// A random [N, K] matrix stored as F32, BF16 or Q8, owning its bytes.
struct RandomWeights {
  std::vector<float> w;
  std::vector<uint16_t> half;
  kernels::QuantizedMatrix q;
  MatrixView view;
  RandomWeights(DType dt, size_t N, size_t K, std::mt19937& rng) : w(random_floats(N * K, rng)) {
    view = MatrixView{DType::F32, N, K, w.data()};
    if (dt == DType::BF16) {
      half.resize(w.size());
      for (size_t i = 0; i < w.size(); ++i) half[i] = f32_to_bf16(w[i]);
      view = MatrixView{DType::BF16, N, K, half.data()};
    } else if (dt == DType::Q8) {
      q = kernels::quantize_q8(view), view = q.view();
    }
  }
  void spoil() {  // the F32 / BF16 values NaN (a Q8 view reads q, which stays)
    std::fill(w.begin(), w.end(), NAN);
    std::fill(half.begin(), half.end(), uint16_t(0x7fc0));
  }
};

struct Expected {
  std::vector<int32_t> argmax;
  std::vector<float> value;
  std::vector<int64_t> above;
};

// The statistics read off the stored product Y [M, N].
Expected scan(const std::vector<float>& Y, size_t M, size_t N, const std::vector<int32_t>& targets, size_t T) {
  Expected e{std::vector<int32_t>(M), std::vector<float>(M * T, NAN), std::vector<int64_t>(M * T)};
  for (size_t m = 0; m < M; ++m) {
    const float* y = Y.data() + m * N;
    size_t best = 0;
    for (size_t n = 1; n < N; ++n)
      if (y[n] > y[best]) best = n;
    e.argmax[m] = int32_t(best);
    for (size_t t = 0; t < T; ++t) {
      const int32_t id = targets[m * T + t];
      if (id < 0) continue;
      e.value[m * T + t] = y[id];
      for (size_t n = 0; n < N; ++n) e.above[m * T + t] += y[n] > y[id];
    }
  }
  return e;
}

void check_equal(const kernels::RankStats& got, const Expected& want, const std::vector<int32_t>& targets) {
  CHECK(got.argmax == want.argmax);
  CHECK(got.above == want.above);
  REQUIRE(got.value.size() == want.value.size());
  for (size_t i = 0; i < got.value.size(); ++i)
    if (targets[i] >= 0) CHECK(std::memcmp(&got.value[i], &want.value[i], 4) == 0);
}

}  // namespace

TEST_CASE("gemm_rank and gemm_rank_screened equal the scanned gemm_exact product, 1-3 threads") {
  std::mt19937 rng(7);
  // N, K, M: partial last panels (N % 32), partial tiles (M % 12), K in 1-3 blocks
  const size_t shapes[][3] = {{33, 17, 5}, {1000, 576, 40}, {257, 1100, 13}, {64, 65, 1}, {3000, 96, 30}};
  int64_t rechecked = 0;
  for (DType dt : {DType::F32, DType::BF16, DType::Q8})  // the screen: Q8 exactly, the others rounded
    for (const auto& [N, K, M] : shapes) {
      CAPTURE(dtype_name(dt));
      CAPTURE(N);
      CAPTURE(K);
      RandomWeights rw(dt, N, K, rng);
      const MatrixView W = rw.view;
      auto X = random_floats(M * K, rng);
      for (size_t m = 0; m < M; m += 3) X[m * K + m % K] *= 40.f;  // outliers widen the int16 steps
      const size_t T = 3;
      std::vector<int32_t> targets(M * T);
      std::uniform_int_distribution<int32_t> id(0, int32_t(N - 1));
      for (size_t i = 0; i < targets.size(); ++i) targets[i] = i % 5 == 4 ? -1 : id(rng);
      std::vector<float> Y(M * N);
      kernels::gemm_exact(W, X.data(), M, Y.data());
      for (size_t m = 0; m < M; ++m) {  // a target at the row's maximum: nothing above it
        size_t best = 0;
        for (size_t n = 1; n < N; ++n)
          if (Y[m * N + n] > Y[m * N + best]) best = n;
        targets[m * T] = int32_t(best);
      }
      const Expected want = scan(Y, M, N, targets, T);
      const kernels::PackedPanels packed(W);
      const kernels::RankScreen screen(W);
      for (int threads : {1, 2, 3}) {
        CAPTURE(threads);
        ThreadScope ts(threads);
        check_equal(kernels::gemm_rank(W, &packed, X.data(), M, targets, T), want, targets);
        check_equal(kernels::gemm_rank(W, nullptr, X.data(), M, targets, T), want, targets);
        const kernels::RankStats got = kernels::gemm_rank_screened(screen, X.data(), M, targets, T);
        check_equal(got, want, targets);
        rechecked += got.rechecked;
      }
      CHECK(kernels::gemm_rank(W, &packed, X.data(), M, {}, 0).argmax == want.argmax);  // argmax only
      CHECK(kernels::gemm_rank_screened(screen, X.data(), M, {}, 0).argmax == want.argmax);
    }
  if (kernels::kRankScreen) CHECK(rechecked > 0);  // the exact recheck ran (the targets at least)
}

TEST_CASE("gemm_rank ties: the lowest column wins, equal values are not above, across thread chunks") {
  std::mt19937 rng(11);
  std::normal_distribution<float> nd(0.f, 1.f);
  const size_t N = 4000, K = 64, M = 24;
  std::vector<float> w(N * K);
  for (float& v : w) v = nd(rng) * 0.1f;
  // Rows 70, 2500 and 3900 are equal and far larger than the others; rows 10 and 3000 equal.
  for (size_t k = 0; k < K; ++k) {
    w[70 * K + k] = w[2500 * K + k] = w[3900 * K + k] = 3.f + float(k % 7);
    w[3000 * K + k] = w[10 * K + k];
  }
  std::vector<float> X(M * K);
  for (float& v : X) v = 0.5f + std::abs(nd(rng));  // positive: rows 70/2500/3900 win
  const MatrixView W{DType::F32, N, K, w.data()};
  const size_t T = 2;
  std::vector<int32_t> targets(M * T);
  for (size_t m = 0; m < M; ++m) targets[m * T] = 3000, targets[m * T + 1] = 2500;
  std::vector<float> Y(M * N);
  kernels::gemm_exact(W, X.data(), M, Y.data());
  const Expected want = scan(Y, M, N, targets, T);
  for (size_t m = 0; m < M; ++m) {
    CHECK(want.argmax[m] == 70);
    CHECK(want.above[m * T + 1] == 0);  // its equals are not above it
  }
  const kernels::PackedPanels packed(W);
  for (int threads : {1, 2, 3}) {
    ThreadScope ts(threads);
    check_equal(kernels::gemm_rank(W, &packed, X.data(), M, targets, T), want, targets);
    check_equal(kernels::gemm_rank(W, nullptr, X.data(), M, targets, T), want, targets);
  }
}

TEST_CASE("gemm_packed (pre-packed panels) is gemm_exact bit for bit, also after the source is gone") {
  std::mt19937 rng(13);
  const size_t shapes[][3] = {{33, 17, 5}, {1000, 576, 40}, {70, 1100, 13}, {576, 3000, 9}};  // N, K, M
  for (DType dt : {DType::F32, DType::BF16, DType::Q8})
    for (const auto& [N, K, M] : shapes) {
      CAPTURE(dtype_name(dt));
      CAPTURE(N);
      CAPTURE(K);
      RandomWeights rw(dt, N, K, rng);
      const MatrixView W = rw.view;
      const auto X = random_floats(M * K, rng);
      std::vector<float> want(M * N), got(M * N);
      kernels::gemm_exact(W, X.data(), M, want.data());
      const kernels::PackedPanels packed(W);
      rw.spoil();  // the panels hold their own values
      for (int threads : {1, 2}) {
        ThreadScope ts(threads);
        std::fill(got.begin(), got.end(), 0.f);
        kernels::gemm_packed(packed, X.data(), M, got.data());
        CHECK(std::memcmp(got.data(), want.data(), got.size() * 4) == 0);
      }
    }
}

TEST_CASE("gemm_rank rejects wrong target counts, ids outside the matrix, another matrix's panels") {
  std::vector<float> w(40 * 8, 1.f), w2(40 * 8, 1.f), x(2 * 8, 1.f);
  const MatrixView W{DType::F32, 40, 8, w.data()}, W2{DType::F32, 40, 8, w2.data()};
  const std::vector<int32_t> one{1}, two{1, 40};
  CHECK_THROWS_AS(kernels::gemm_rank(W, nullptr, x.data(), 2, one, 1), UsageError);
  CHECK_THROWS_AS(kernels::gemm_rank(W, nullptr, x.data(), 2, two, 1), UsageError);
  const kernels::PackedPanels other(W2);
  CHECK_THROWS_AS(kernels::gemm_rank(W, &other, x.data(), 2, {}, 0), UsageError);
  CHECK(kernels::gemm_rank(W, nullptr, x.data(), 0, {}, 0).argmax.empty());
}

TEST_CASE("gemm_rank_screened: exact and near ties decided by the exact values, zero and NaN rows") {
  std::mt19937 rng(19);
  std::normal_distribution<float> nd(0.f, 1.f);
  const size_t N = 2000, K = 100, M = 16;
  std::vector<float> w(N * K);
  for (float& v : w) v = nd(rng) * 0.1f;
  // Rows 5, 900 and 1999 equal and the largest; row 700 = row 40; row 41 = row 40 but one element
  // one Q8 step away, on the column where X is tiny: far inside the screen's bound.
  for (size_t k = 0; k < K; ++k) {
    w[5 * K + k] = w[900 * K + k] = w[1999 * K + k] = 0.5f + 0.25f * float(k % 3);
    w[700 * K + k] = w[41 * K + k] = w[40 * K + k];
  }
  // Q8: row 41 one step (of its block's scale) away; F32: one ulp.
  kernels::QuantizedMatrix q = kernels::quantize_q8(MatrixView{DType::F32, N, K, w.data()});
  const kernels::detail::Q8Layout L = kernels::detail::q8_layout(q.view());
  const_cast<uint8_t*>(L.qs)[41 * L.nb * kernels::kQ8Block + 7] += 1;
  std::vector<float> wf = w;
  wf[41 * K + 7] = std::nextafter(wf[41 * K + 7], 1.f);
  std::vector<float> X(M * K);
  for (float& v : X) v = 0.5f + std::abs(nd(rng));
  for (size_t m = 0; m < M; ++m) X[m * K + 7] = 1e-6f * float(m + 1);
  std::fill_n(X.begin() + 3 * K, K, 0.f);  // every value 0: all tie, column 0 wins
  const size_t T = 3;
  std::vector<int32_t> targets(M * T);
  for (size_t m = 0; m < M; ++m) targets[m * T] = 40, targets[m * T + 1] = 900, targets[m * T + 2] = 41;
  for (const MatrixView W : {q.view(), MatrixView{DType::F32, N, K, wf.data()}}) {
    CAPTURE(dtype_name(W.dtype));
    std::vector<float> Y(M * N);
    kernels::gemm_exact(W, X.data(), M, Y.data());
    const Expected want = scan(Y, M, N, targets, T);
    CHECK(want.argmax[0] == 5);
    CHECK(want.argmax[3] == 0);
    const kernels::RankScreen screen(W);
    for (int threads : {1, 2, 3}) {
      ThreadScope ts(threads);
      const kernels::RankStats got = kernels::gemm_rank_screened(screen, X.data(), M, targets, T);
      check_equal(got, want, targets);
      if (kernels::kRankScreen) CHECK(got.rechecked >= int64_t(N));  // the zero row: every column
    }
    std::vector<float> Xn = X;
    Xn[5 * K + 2] = NAN;  // a NaN row: gemm_rank's exact pass, whatever it makes of it
    const auto exact = kernels::gemm_rank(W, nullptr, Xn.data(), M, targets, T);
    const auto screened = kernels::gemm_rank_screened(screen, Xn.data(), M, targets, T);
    CHECK(screened.argmax == exact.argmax);
    CHECK(screened.above == exact.above);
  }
}

TEST_CASE("gemm_rank_screened: a non-finite weight takes the exact pass; targets are checked") {
  std::vector<float> w(40 * 8, 1.f), x(2 * 8, 1.f);
  for (size_t i = 0; i < w.size(); ++i) w[i] = float(i % 7) - 3.f;
  const MatrixView F{DType::F32, 40, 8, w.data()};
  const std::vector<int32_t> one{1}, two{1, 40}, ok{3, 5};
  const kernels::RankScreen screen(F);
  CHECK(screen.finite());
  CHECK_THROWS_AS(kernels::gemm_rank_screened(screen, x.data(), 2, one, 1), UsageError);
  CHECK_THROWS_AS(kernels::gemm_rank_screened(screen, x.data(), 2, two, 1), UsageError);
  CHECK(kernels::gemm_rank_screened(screen, x.data(), 0, {}, 0).argmax.empty());
  w[17] = INFINITY;
  const kernels::RankScreen spoilt(F);
  CHECK_FALSE(spoilt.finite());
  const auto exact = kernels::gemm_rank(F, nullptr, x.data(), 2, ok, 1);
  const auto screened = kernels::gemm_rank_screened(spoilt, x.data(), 2, ok, 1);
  CHECK(screened.argmax == exact.argmax);
  CHECK(screened.above == exact.above);
  CHECK(screened.rechecked == 0);
}
