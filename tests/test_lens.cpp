// Lens readouts: sites, top-k / rank on hand-made logits, logit lens at the last layer equals the
// model's logits, a zero tuned lens equals the logit lens, lens policies agree with the
// all-layers readout, tuned-lens save/load round trip.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <random>
#include <vector>

#include "fathom/depth/lens_policy.hpp"
#include "fathom/model/load.hpp"

using namespace fathom;
using namespace fathom::lens;

namespace {
std::filesystem::path fixture(const char* name) {
  return std::filesystem::path(FATHOM_SOURCE_DIR) / "tests/fixtures/models" / name;
}
const std::vector<int32_t> kTokens = {1, 17, 99, 3, 250, 42, 7, 128};

void random_lens(TunedLens& t, unsigned seed, float scale) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> nd(0.f, scale);
  for (auto& w : t.weights()) w = nd(rng);
  for (auto& b : t.biases()) b = nd(rng);
}
}  // namespace

TEST_CASE("sites parse and map to hidden_states indices") {
  CHECK(Site::parse("resid_pre[0]", 4) == Site{SiteKind::resid_pre, 0});
  CHECK(Site::parse("resid_post[3]", 4).hidden_index() == 4);
  CHECK(Site::parse("resid_mid[2]", 4).hidden_index() == -1);
  CHECK(Site::parse("resid_pre[2]", 4).name() == "resid_pre[2]");
  CHECK_THROWS_AS(Site::parse("resid_pre[4]", 4), UsageError);
  CHECK_THROWS_AS(Site::parse("resid_foo[1]", 4), UsageError);
  CHECK_THROWS_AS(Site::parse("resid_pre[x]", 4), UsageError);
  CHECK_THROWS_AS(Site::parse("resid_pre", 4), UsageError);
  auto hs = hidden_state_sites(3);
  REQUIRE(hs.size() == 4);
  CHECK(hs[0] == Site{SiteKind::resid_pre, 0});
  CHECK(hs[3] == Site{SiteKind::resid_post, 2});
}

TEST_CASE("rank and top-k on hand-made logits") {
  const std::vector<float> lg = {0.5f, 3.0f, -1.0f, 3.0f, 2.0f, 0.5f};
  CHECK(rank_of(lg, 1) == 1);
  CHECK(rank_of(lg, 3) == 1);  // tie shares the better rank
  CHECK(rank_of(lg, 4) == 3);
  CHECK(rank_of(lg, 0) == 4);
  CHECK(rank_of(lg, 2) == 6);
  CHECK_THROWS_AS(rank_of(lg, 6), UsageError);
  auto top = top_k(lg, 3);
  REQUIRE(top.size() == 3);
  CHECK(top[0].id == 1);
  CHECK(top[1].id == 3);
  CHECK(top[2].id == 4);
  double z = 0;
  for (float v : lg) z += std::exp(double(v));
  CHECK(top[0].prob == doctest::Approx(std::exp(3.0) / z).epsilon(1e-6));
  CHECK(top_k(lg, 10).size() == 6);
  auto p = softmax_top2(lg);
  CHECK(p.p1 == doctest::Approx(std::exp(3.0) / z).epsilon(1e-6));
  CHECK(p.p2 == doctest::Approx(std::exp(3.0) / z).epsilon(1e-6));
  auto st = readout_stats(lg, 2, std::vector<int32_t>{4, 2});
  CHECK(st.target_ranks == std::vector<int64_t>{3, 6});
  CHECK(st.logsumexp == doctest::Approx(std::log(z)));
}

TEST_CASE("logit lens at the last layer equals the model's logits; zero tuned lens = logit lens") {
  for (const char* name : {"llama_f32", "qwen2_bf16", "qwen3_bf16_tied"}) {
    CAPTURE(name);
    auto model = load_model(fixture(name));
    const size_t L = model->n_layers(), V = model->vocab();
    Session ref(*model);
    std::vector<std::vector<float>> final_logits;
    for (size_t t = 0; t < kTokens.size(); ++t) {
      auto lg = ref.forward(std::span(kTokens).subspan(t, 1), Phase::PP);
      final_logits.emplace_back(lg.begin(), lg.end());
    }
    // [tokens, L+1, vocab]
    auto collect = [&](const auto& lens) {
      Session s(*model);
      std::vector<float> all(kTokens.size() * (L + 1) * V);
      read_all_layers(s, kTokens, lens, [&](uint32_t slot, size_t i, std::span<const float> lg) {
        std::copy(lg.begin(), lg.end(), all.begin() + long((slot * (L + 1) + i) * V));
      });
      return all;
    };
    auto logit = collect(LogitLens{L});
    TunedLens zero(L, model->hidden());
    auto tuned0 = collect(zero);
    CHECK(logit == tuned0);  // bit for bit
    // The lens reads out blocks of rows (gemm), the session one row (gemv): the same terms summed
    // in another order, so a logit near 0 keeps an absolute error of the size of the row's large
    // logits times the rounding unit (on an AVX2 build 1.5e-5 at a logit of 0.006), not of its own.
    for (size_t t = 0; t < kTokens.size(); ++t) {
      double row_scale = 1.0;
      for (float x : final_logits[t]) row_scale = std::max(row_scale, double(std::abs(x)));
      for (size_t v = 0; v < V; ++v)
        REQUIRE(logit[(t * (L + 1) + L) * V + v] ==
                doctest::Approx(final_logits[t][v]).epsilon(1e-5).scale(row_scale));
    }
    // Early layers differ from the final readout (the lens sees something else).
    double diff = 0;
    for (size_t v = 0; v < V; ++v) diff += std::abs(logit[v] - final_logits[0][v]);
    CHECK(diff > 1e-3);
    // A non-zero lens changes every layer but the last.
    TunedLens rnd(L, model->hidden());
    random_lens(rnd, 5, 0.05f);
    auto tuned = collect(rnd);
    for (size_t i = 0; i <= L; ++i) {
      double d = 0;
      for (size_t v = 0; v < V; ++v) d += std::abs(tuned[i * V + v] - logit[i * V + v]);
      if (i == L) CHECK(d == 0.0);
      else CHECK(d > 1e-4);
    }
  }
}

TEST_CASE("LensReadout policy reads out hidden_states[i] like the all-layers loop") {
  auto model = load_model(fixture("mistral_f32"));
  const size_t L = model->n_layers(), H = model->hidden(), V = model->vocab();
  TunedLens lens(L, H);
  random_lens(lens, 11, 0.03f);
  std::vector<float> all(kTokens.size() * (L + 1) * V);
  {
    Session s(*model);
    read_all_layers(s, kTokens, lens, [&](uint32_t slot, size_t i, std::span<const float> lg) {
      std::copy(lg.begin(), lg.end(), all.begin() + long((slot * (L + 1) + i) * V));
    });
  }
  for (size_t i = 0; i <= L; ++i) {
    CAPTURE(i);
    // Exact K/V: later positions see the unmodified stream, so every position's readout of
    // hidden_states[i] is the lens readout of the full run.
    Session s(*model, SessionOptions{0, KvStrategy::Exact});
    Trace trace(L);
    s.set_trace(&trace);
    LensReadout<TunedLens> pol(lens, L, i);
    auto lg = s.forward(kTokens, Phase::PP, pol, Logits::All);
    for (size_t t = 0; t < kTokens.size(); ++t)
      for (size_t v = 0; v < V; ++v)
        REQUIRE(lg[t * V + v] ==
                doctest::Approx(all[(t * (L + 1) + i) * V + v]).epsilon(1e-4).scale(1.0));
    REQUIRE(trace.records().size() == kTokens.size());
    CHECK(trace.records()[0].exit_layer == (i < L ? int(i) : -1));
    CHECK(trace.records()[0].readout_layer == int(i) - 1);
  }
  CHECK_THROWS_AS(LensReadout<TunedLens>(lens, L, L + 1), UsageError);
  // WithLens puts the tuned lens behind an exit-style policy: logit-lens exit at i + tuned lens
  // = tuned-lens readout at i.
  for (size_t i : {size_t(1), L}) {
    LogitLens ll{L};
    LensReadout<LogitLens> inner(ll, L, i);
    WithLens<LensReadout<LogitLens>, TunedLens> wrapped(inner, lens, L);
    Session a(*model, SessionOptions{0, KvStrategy::Exact});
    auto got = a.forward(kTokens, Phase::PP, wrapped, Logits::All);
    const std::vector<float> g(got.begin(), got.end());
    LensReadout<TunedLens> direct(lens, L, i);
    Session b(*model, SessionOptions{0, KvStrategy::Exact});
    auto want = b.forward(kTokens, Phase::PP, direct, Logits::All);
    CHECK(g == std::vector<float>(want.begin(), want.end()));
  }
}

TEST_CASE("SiteRecorder records named sites of running tokens") {
  auto model = load_model(fixture("llama_f32"));
  const size_t H = model->hidden();
  SiteRecorder rec({Site::parse("resid_mid[1]", 4), Site::parse("resid_post[0]", 4),
                    Site::parse("resid_pre[1]", 4)},
                   H);
  Session s(*model);
  FullDepth full;
  s.forward(kTokens, Phase::PP, full, rec);
  REQUIRE(rec.tokens() == kTokens.size());
  // resid_post[0] is resid_pre[1].
  for (uint32_t t = 0; t < kTokens.size(); ++t) {
    auto a = rec.get(1, t), b = rec.get(2, t);
    CHECK(std::equal(a.begin(), a.end(), b.begin()));
  }
  // read_sites: resid_post[L-1] is the model's output; resid_mid[1] reads out what the recorder
  // holds.
  const std::vector<Site> sites = {Site::parse("resid_mid[1]", 4), Site::parse("resid_post[3]", 4)};
  Session s2(*model);
  Session ref(*model);
  auto final_lg = ref.forward(kTokens, Phase::PP, Logits::All);
  const std::vector<float> fin(final_lg.begin(), final_lg.end());
  Reader reader(*model);
  const size_t V = model->vocab();
  size_t calls = 0;
  read_sites(s2, kTokens, sites, [&](uint32_t slot, size_t k, std::span<const float> lg) {
    ++calls;
    if (k == 0) {
      auto want = reader.logits(rec.get(0, slot));
      CHECK(std::equal(lg.begin(), lg.end(), want.begin()));
    } else {
      for (size_t v = 0; v < V; ++v)
        REQUIRE(lg[v] == doctest::Approx(fin[slot * V + v]).epsilon(1e-5).scale(1.0));
    }
  });
  CHECK(calls == 2 * kTokens.size());
  rec.clear();
  CHECK_FALSE(rec.has(0, 0));
  CHECK_THROWS_AS(rec.get(0, 0), UsageError);
}

TEST_CASE("tuned lens save/load round trip and bad files") {
  const auto dir = std::filesystem::temp_directory_path() / "fathom-lens-roundtrip";
  std::filesystem::remove_all(dir);
  TunedLens lens(3, 8);
  random_lens(lens, 3, 1.0f);
  lens.save(dir, "test-model");
  auto back = TunedLens::load(dir);
  CHECK(back.n_layers() == 3);
  CHECK(back.hidden() == 8);
  CHECK(back.weights() == lens.weights());
  CHECK(back.biases() == lens.biases());
  auto model = load_model(fixture("llama_f32"));
  CHECK_THROWS_AS(back.check_fits(*model), ConfigError);
  // Missing parameters.
  std::filesystem::remove(dir / "params.safetensors");
  CHECK_THROWS_AS(TunedLens::load(dir), IoError);
  std::filesystem::remove_all(dir);
  CHECK_THROWS_AS(TunedLens::load(dir), IoError);
}

TEST_CASE("BlockOutputAxis: readout i goes through translator i-1; embeddings and output untranslated") {
  const size_t L = 3, H = 4;
  TunedLens tl(L, H);
  for (size_t k = 0; k < tl.weights().size(); ++k) tl.weights()[k] = 0.01f * float(k % 7) - 0.02f;
  for (size_t k = 0; k < tl.biases().size(); ++k) tl.biases()[k] = 0.1f * float(k);
  const BlockOutputAxis<TunedLens> axis{&tl};
  CHECK(axis.n_layers() == L);
  CHECK(axis.identity(0));
  CHECK(axis.identity(L));
  CHECK_FALSE(axis.identity(1));
  const std::vector<float> h = {1, -2, 3, 0.5f, 0, 1, 2, 3};  // 2 rows
  for (size_t i = 0; i <= L; ++i) {
    std::vector<float> got(h.size()), want(h.size());
    axis.translate(i, h.data(), got.data(), 2, H);
    if (i == 0 || i == L) want = h;
    else tl.translate(i - 1, h.data(), want.data(), 2, H);
    CHECK(got == want);
  }
}
