// Tuned-lens training: analytic gradients against central finite differences on a tiny model,
// the optimizer lowers the held-out KL, and a resumed run equals an uninterrupted one.
#include <doctest/doctest.h>

#include <cmath>
#include <filesystem>
#include <random>
#include <vector>

#include "fathom/lens/train.hpp"
#include "fathom/model/load.hpp"

using namespace fathom;
using namespace fathom::lens;

namespace {
const std::filesystem::path kModel =
    std::filesystem::path(FATHOM_SOURCE_DIR) / "tests/fixtures/lens/model";

std::vector<std::vector<int32_t>> sequences(size_t count, size_t len, size_t vocab, unsigned seed) {
  std::mt19937 rng(seed);
  std::uniform_int_distribution<int32_t> d(3, int32_t(vocab) - 1);
  std::vector<std::vector<int32_t>> out(count, std::vector<int32_t>(len));
  for (auto& s : out) {
    s[0] = 1;
    for (size_t t = 1; t < len; ++t) s[t] = d(rng);
  }
  return out;
}
std::vector<std::span<const int32_t>> spans(const std::vector<std::vector<int32_t>>& v) {
  return {v.begin(), v.end()};
}
}  // namespace

TEST_CASE("lens gradients match finite differences") {
  auto model = load_model(kModel);
  const size_t L = model->n_layers(), H = model->hidden();
  TunedLens lens(L, H);
  std::mt19937 rng(4);
  std::normal_distribution<float> nd(0.f, 0.1f);
  for (auto& w : lens.weights()) w = nd(rng);
  for (auto& b : lens.biases()) b = nd(rng);
  const auto data = sequences(2, 12, model->vocab(), 9);
  LensTrainer tr(*model, lens, TrainOptions{});
  tr.gradients(spans(data));
  const auto gw = tr.grad_w(), gb = tr.grad_b();
  auto total_loss = [&] {
    double s = 0;
    for (double l : tr.evaluate(spans(data))) s += l;
    return s;
  };
  const double eps = 2e-3;
  std::uniform_int_distribution<size_t> pick(0, H - 1);
  int checked = 0;
  for (size_t i = 0; i < L; ++i) {
    for (int rep = 0; rep < 6; ++rep) {
      const bool bias = rep % 3 == 2;
      const size_t r = pick(rng), c = pick(rng);
      float& p = bias ? lens.bias(i)[r] : lens.weight(i)[r * H + c];
      const float analytic = bias ? gb[i * H + r] : gw[(i * H + r) * H + c];
      const float saved = p;
      p = saved + float(eps);
      const double up = total_loss();
      p = saved - float(eps);
      const double down = total_loss();
      p = saved;
      const double numeric = (up - down) / (2 * eps);
      CAPTURE(i);
      CAPTURE(bias);
      CHECK(analytic == doctest::Approx(numeric).epsilon(0.02).scale(1e-3));
      ++checked;
    }
  }
  CHECK(checked == int(6 * L));
}

TEST_CASE("training lowers held-out KL; resume equals an uninterrupted run") {
  auto model = load_model(kModel);
  const size_t L = model->n_layers(), H = model->hidden();
  const auto train = sequences(8, 24, model->vocab(), 1);
  const auto held = sequences(4, 24, model->vocab(), 2);
  TrainOptions o;
  o.steps = 12;
  o.seqs_per_step = 2;
  auto batch = [&](int step) {
    std::vector<std::span<const int32_t>> b;
    for (size_t j = 0; j < o.seqs_per_step; ++j)
      b.emplace_back(train[(size_t(step) * o.seqs_per_step + j) % train.size()]);
    return b;
  };
  TunedLens a(L, H);
  LensTrainer ta(*model, a, o);
  const auto before = ta.evaluate(spans(held));
  while (ta.step() < o.steps) ta.train_step(batch(ta.step()));
  const auto after = ta.evaluate(spans(held));
  for (size_t i = 0; i < L; ++i) {
    CAPTURE(i);
    CHECK(after[i] < before[i]);
  }
  CHECK(ta.lr() == 0.0);

  const auto dir = std::filesystem::temp_directory_path() / "fathom-lens-train-resume";
  std::filesystem::remove_all(dir);
  TunedLens b(L, H);
  {
    LensTrainer tb(*model, b, o);
    while (tb.step() < 5) tb.train_step(batch(tb.step()));
    tb.save(dir);
  }
  TunedLens c(L, H);
  LensTrainer tc(*model, c, o);
  tc.resume(dir);
  CHECK(tc.step() == 5);
  while (tc.step() < o.steps) tc.train_step(batch(tc.step()));
  CHECK(c.weights() == a.weights());
  CHECK(c.biases() == a.biases());
  TrainOptions other = o;
  other.steps = 13;
  TunedLens d(L, H);
  LensTrainer td(*model, d, other);
  CHECK_THROWS_AS(td.resume(dir), UsageError);
  std::filesystem::remove_all(dir);
}
