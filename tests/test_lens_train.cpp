// Tuned-lens training: analytic gradients against central finite differences on a tiny model,
// the optimizer lowers the held-out KL, and a resumed run equals an uninterrupted one; the
// training data: token windows, packing, and the seeded generator of the shuffle.
#include <doctest/doctest.h>

#include <cmath>
#include <filesystem>
#include <random>
#include <vector>

#include "fathom/lens/train.hpp"
#include "fathom/lens/train_data.hpp"
#include <fstream>
#include <set>
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

// A lens with small random translators.
void randomize(TunedLens& lens, unsigned seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> nd(0.f, 0.1f);
  for (auto& w : lens.weights()) w = nd(rng);
  for (auto& b : lens.biases()) b = nd(rng);
}

// Checks `reps` random entries per translator of the analytic gradients gw/gb against central
// differences of total_loss() (every third entry a bias); returns how many were checked.
template <class Loss>
int check_against_finite_differences(TunedLens& lens, const std::vector<float>& gw, const std::vector<float>& gb,
                                     Loss total_loss, int reps, unsigned seed) {
  const size_t L = lens.n_layers(), H = lens.hidden();
  const double eps = 2e-3;
  std::mt19937 rng(seed);
  std::uniform_int_distribution<size_t> pick(0, H - 1);
  int checked = 0;
  for (size_t i = 0; i < L; ++i)
    for (int rep = 0; rep < reps; ++rep) {
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
      CAPTURE(i);
      CAPTURE(bias);
      CHECK(analytic == doctest::Approx((up - down) / (2 * eps)).epsilon(0.02).scale(1e-3));
      ++checked;
    }
  return checked;
}
}  // namespace

TEST_CASE("lens gradients match finite differences") {
  auto model = load_model(kModel);
  const size_t L = model->n_layers(), H = model->hidden();
  TunedLens lens(L, H);
  randomize(lens, 4);
  const auto data = sequences(2, 12, model->vocab(), 9);
  LensTrainer tr(*model, lens, TrainOptions{});
  tr.gradients(spans(data));
  auto total_loss = [&] {
    double s = 0;
    for (double l : tr.evaluate(spans(data))) s += l;
    return s;
  };
  CHECK(check_against_finite_differences(lens, tr.grad_w(), tr.grad_b(), total_loss, 6, 4) == int(6 * L));
}

TEST_CASE("frequency-weighted loss: weights scale each token's KL; gradients match finite differences") {
  auto model = load_model(kModel);
  const size_t L = model->n_layers(), H = model->hidden(), V = model->vocab();
  // frequency_weights: frequent tokens weigh less, corpus-mean weight 1, β = 0 is all ones.
  std::vector<int64_t> counts(V, 0);
  for (size_t v = 0; v < V; ++v) counts[v] = int64_t((v * 37) % 50);
  const auto w = frequency_weights(counts, 0.5);
  double mean = 0, n = 0;
  for (size_t v = 0; v < V; ++v) mean += double(counts[v]) * w[v], n += double(counts[v]);
  CHECK(mean / n == doctest::Approx(1.0).epsilon(1e-6));
  CHECK(w[1] < w[0]);  // counts 37 vs 0
  for (float x : frequency_weights(counts, 0.0)) CHECK(x == 1.f);
  CHECK_THROWS_AS(frequency_weights(std::vector<int64_t>(V, 0), 0.5), UsageError);

  TunedLens lens(L, H);
  randomize(lens, 5);
  std::mt19937 rng(5);
  const auto data = sequences(2, 12, V, 11);
  // All-ones weights: bit-identical to the unweighted run.
  TrainOptions ones;
  ones.target_weight.assign(V, 1.f);
  LensTrainer plain(*model, lens, TrainOptions{}), unit(*model, lens, ones);
  CHECK(plain.gradients(spans(data)) == unit.gradients(spans(data)));
  CHECK(plain.grad_w() == unit.grad_w());
  // Random weights: the weighted loss's gradient against central differences of that loss.
  TrainOptions wo;
  std::uniform_real_distribution<float> ud(0.2f, 3.f);
  for (size_t v = 0; v < V; ++v) wo.target_weight.push_back(ud(rng));
  LensTrainer tr(*model, lens, wo);
  const auto weighted = tr.gradients(spans(data));
  const auto gw = tr.grad_w(), gb = tr.grad_b();
  CHECK(weighted != plain.gradients(spans(data)));
  auto total_loss = [&] {  // the weighted loss: gradients() returns it (evaluate() is unweighted)
    double s = 0;
    for (double l : tr.gradients(spans(data))) s += l;
    return s;
  };
  CHECK(check_against_finite_differences(lens, gw, gb, total_loss, 4, 5) == int(4 * L));
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

namespace {
// A tokenizer stand-in: every character is a token (ids = byte values).
struct CharTokenizer {
  std::vector<int32_t> encode(const std::string& s, bool) const {
    return std::vector<int32_t>(s.begin(), s.end());
  }
};
}  // namespace

TEST_CASE("training data: documents joined with eos, held-out tail, seeded shuffle") {
  const auto path = std::filesystem::temp_directory_path() / "fathom-lens-train-data.txt";
  {
    std::ofstream o(path);
    o << "abcdefg\n\n  \nhijklmn\r\nopqrstu\nvwxyzAB\n";  // 4 documents of 7 characters
  }
  DataOptions o;
  o.seq_len = 5;
  o.bos = 1;
  o.eos = 2;
  o.eval_fraction = 0.25;
  o.seed = 7;
  const auto d = load_train_data(CharTokenizer{}, path, o);
  CHECK(d.documents == 4);
  CHECK(d.stream_tokens == 32);  // (7 + eos) x 4
  // 32 tokens / 4 per sequence (BOS + 4) = 8 sequences: 2 held out (the stream's end), 6 train.
  REQUIRE(d.train.size() == 6);
  REQUIRE(d.eval.size() == 2);
  CHECK(std::vector<int32_t>(d.eval[0].begin(), d.eval[0].end()) ==
        std::vector<int32_t>{1, 'v', 'w', 'x', 'y'});
  CHECK(std::vector<int32_t>(d.eval[1].begin(), d.eval[1].end()) ==
        std::vector<int32_t>{1, 'z', 'A', 'B', 2});
  // The training sequences are a permutation of the stream's first 6, fixed by the seed.
  std::set<std::vector<int32_t>> got, want;
  for (size_t i = 0; i < 6; ++i) {
    got.insert(std::vector<int32_t>(d.train[i].begin(), d.train[i].end()));
    CHECK(d.train[i][0] == 1);
  }
  const std::string stream = "abcdefg\x02hijklmn\x02opqrstu\x02";
  for (size_t k = 0; k < 6; ++k) {
    std::vector<int32_t> s = {1};
    for (size_t j = 0; j < 4; ++j) s.push_back(stream[k * 4 + j]);
    want.insert(s);
  }
  CHECK(got == want);
  const auto again = load_train_data(CharTokenizer{}, path, o);
  CHECK(again.train.ids == d.train.ids);
  o.seed = 8;
  CHECK(load_train_data(CharTokenizer{}, path, o).train.ids != d.train.ids);
  std::filesystem::remove(path);
}

TEST_CASE("training data: bad options and texts are typed errors") {
  const auto path = std::filesystem::temp_directory_path() / "fathom-lens-train-short.txt";
  {
    std::ofstream o(path);
    o << "abc\n";
  }
  DataOptions o;
  o.seq_len = 4;
  CHECK_THROWS_AS(load_train_data(CharTokenizer{}, path, o), DataError);  // 1 sequence only
  CHECK_THROWS_AS(load_train_data(CharTokenizer{}, path.string() + ".missing", o), IoError);
  o.seq_len = 1;
  CHECK_THROWS_AS(load_train_data(CharTokenizer{}, path, o), UsageError);
  o.seq_len = 2;
  o.eval_fraction = 1.0;
  CHECK_THROWS_AS(load_train_data(CharTokenizer{}, path, o), UsageError);
  std::filesystem::remove(path);
}

TEST_CASE("token windows: BOS first, whole windows or with the tail, as pack_stream cuts") {
  const std::vector<int32_t> stream = {10, 11, 12, 13, 14, 15, 16};
  const TokenWindows with_bos{stream, 4, 1};  // 3 stream tokens a window
  CHECK(with_bos.body() == 3);
  CHECK(with_bos.count(false) == 2);
  CHECK(with_bos.count(true) == 3);
  CHECK(with_bos[0] == std::vector<int32_t>{1, 10, 11, 12});
  CHECK(with_bos[1] == std::vector<int32_t>{1, 13, 14, 15});
  CHECK(with_bos[2] == std::vector<int32_t>{1, 16});  // the tail
  CHECK(with_bos.end(0) == 3);
  CHECK(with_bos.end(2) == 7);
  const TokenWindows no_bos{stream, 4};
  CHECK(no_bos.count(false) == 1);
  CHECK(no_bos.count(true) == 2);
  CHECK(no_bos[1] == std::vector<int32_t>{14, 15, 16});
  CHECK(TokenWindows{std::span<const int32_t>(stream.data(), 6), 4, 1}.count(true) == 2);  // no empty tail
  CHECK_THROWS_AS(TokenWindows({stream, 1, 1}).body(), UsageError);  // room for BOS only

  // pack_stream's sequences are the whole windows, in stream order before the shuffle.
  DataOptions o;
  o.seq_len = 4, o.bos = 1, o.eval_fraction = 0.5;
  const std::vector<int32_t> longer = {10, 11, 12, 13, 14, 15, 16, 17, 18, 19};
  const auto d = pack_stream(longer, 1, o, "stream");
  const TokenWindows w{longer, 4, 1};
  REQUIRE(d.eval.size() == 2);
  CHECK(std::vector<int32_t>(d.eval[0].begin(), d.eval[0].end()) == w[1]);
  CHECK(std::vector<int32_t>(d.eval[1].begin(), d.eval[1].end()) == w[2]);
  CHECK(std::vector<int32_t>(d.train[0].begin(), d.train[0].end()) == w[0]);
}

TEST_CASE("splitmix64 gives the reference generator's outputs") {
  // splitmix64.c (Vigna) seeded with 0 and with 1234567.
  SplitMix64 a{0};
  CHECK(a.next() == 0xE220A8397B1DCDAFull);
  CHECK(a.next() == 0x6E789E6AA1B965F4ull);
  CHECK(a.next() == 0x06C45D188009454Full);
  SplitMix64 b{1234567};
  CHECK(b.next() == 6457827717110365317ull);
  CHECK(b.next() == 3203168211198807973ull);
  CHECK(b.next() == 9817491932198370423ull);
  static_assert(splitmix64(0) == 0xE220A8397B1DCDAFull);  // the hash is the generator's first step
}

TEST_CASE("block size changes no result beyond summation order") {
  auto model = load_model(kModel);
  const size_t L = model->n_layers(), H = model->hidden();
  const auto data = sequences(3, 20, model->vocab(), 5);
  TunedLens lens(L, H);
  std::mt19937 rng(2);
  std::normal_distribution<float> nd(0.f, 0.1f);
  for (auto& w : lens.weights()) w = nd(rng);
  TrainOptions a, b;
  a.rows_per_block = 256;  // all three sequences in one block
  b.rows_per_block = 7;    // one sequence per micro-batch, ragged blocks
  LensTrainer ta(*model, lens, a), tb(*model, lens, b);
  const auto la = ta.gradients(spans(data)), lb = tb.gradients(spans(data));
  for (size_t i = 0; i < L; ++i) CHECK(la[i] == doctest::Approx(lb[i]).epsilon(1e-5));
  double worst = 0, scale = 0;
  for (size_t k = 0; k < ta.grad_w().size(); ++k) {
    worst = std::max(worst, double(std::abs(ta.grad_w()[k] - tb.grad_w()[k])));
    scale = std::max(scale, double(std::abs(ta.grad_w()[k])));
  }
  CHECK(worst <= 1e-5 * scale);
}

TEST_CASE("bf16 products: losses and gradients within bf16 rounding of the f32 ones; the switch is restored") {
  auto model = load_model(kModel);
  const size_t L = model->n_layers(), H = model->hidden();
  TunedLens lens(L, H);
  randomize(lens, 6);
  const auto data = sequences(2, 12, model->vocab(), 13);
  TrainOptions bo;
  bo.bf16_products = true;
  LensTrainer exact(*model, lens, TrainOptions{}), fast(*model, lens, bo);
  const auto le = exact.gradients(spans(data)), lf = fast.gradients(spans(data));
  CHECK_FALSE(kernels::bf16_activations_requested());  // on only inside the lens products
  if (!kernels::kBf16Dot) {  // ignored: the exact path, bit for bit
    CHECK(le == lf);
    CHECK(exact.grad_w() == fast.grad_w());
    return;
  }
  for (size_t i = 0; i < L; ++i) CHECK(lf[i] == doctest::Approx(le[i]).epsilon(1e-2));
  double num = 0, den = 0;
  for (size_t k = 0; k < exact.grad_w().size(); ++k) {
    const double d = double(fast.grad_w()[k]) - exact.grad_w()[k];
    num += d * d, den += double(exact.grad_w()[k]) * exact.grad_w()[k];
  }
  CHECK(num > 0);                            // the bf16 path ran
  CHECK(std::sqrt(num / den) < 3e-2);        // and stays within bf16's 8 significant bits
}
