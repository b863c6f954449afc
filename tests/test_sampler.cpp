// Next-token sampling: greedy ties, the nucleus against a full-sort reference, seeded
// reproducibility and bad options.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <random>
#include <vector>

#include "fathom/core/error.hpp"
#include "fathom/model/sampler.hpp"

using namespace fathom;

namespace {

// The nucleus as its definition reads: every token sorted by probability (ties by id), kept
// until the mass reaches top_p, one uniform draw over the kept mass.
int32_t reference_draw(const std::vector<float>& logits, float temperature, float top_p,
                       std::mt19937_64& rng) {
  const size_t V = logits.size();
  std::vector<double> p(V);
  const float mx = *std::max_element(logits.begin(), logits.end());
  double sum = 0;
  for (size_t i = 0; i < V; ++i) sum += p[i] = std::exp(double(logits[i] - mx) / temperature);
  std::vector<int32_t> order(V);
  std::iota(order.begin(), order.end(), 0);
  std::sort(order.begin(), order.end(),
            [&](int32_t a, int32_t b) { return p[a] != p[b] ? p[a] > p[b] : a < b; });
  size_t keep = V;
  if (top_p < 1.f) {
    double acc = 0;
    for (size_t i = 0; i < V; ++i)
      if ((acc += p[order[i]] / sum) >= top_p) { keep = i + 1; break; }
  }
  double kept = 0;
  for (size_t i = 0; i < keep; ++i) kept += p[order[i]];
  const double u = std::uniform_real_distribution<double>(0.0, kept)(rng);
  double acc = 0;
  for (size_t i = 0; i < keep; ++i)
    if (u < (acc += p[order[i]])) return order[i];
  return order[keep - 1];
}

}  // namespace

TEST_CASE("sampler: greedy picks the lowest id among equal maxima") {
  Sampler s;
  const std::vector<float> l = {0.f, 3.f, 1.f, 3.f};
  CHECK(s(l) == 1);
}

TEST_CASE("sampler: the nucleus draws exactly what a full sort draws") {
  // Peaked and flat distributions (short and long heads, the latter past the first partial
  // sort), repeated logits (ties), a vocabulary the size of SmolLM2's.
  std::mt19937 gen(7);
  for (int trial = 0; trial < 12; ++trial) {
    const size_t V = trial < 6 ? 49152 : 301;
    const float spread = trial % 3 == 0 ? 12.f : trial % 3 == 1 ? 2.f : 0.05f;
    std::normal_distribution<float> nd(0.f, spread);
    std::vector<float> logits(V);
    for (auto& x : logits) x = std::round(nd(gen) * 8.f) / 8.f;  // coarse values: many ties
    for (float top_p : {0.1f, 0.9f, 0.999f, 1.f}) {
      const SamplingOptions o{0.6f, top_p, uint64_t(100 + trial)};
      Sampler s(o);
      std::mt19937_64 rng(o.seed);
      for (int draw = 0; draw < 20; ++draw)
        REQUIRE(s(logits) == reference_draw(logits, o.temperature, o.top_p, rng));
    }
  }
}

TEST_CASE("sampler: the same seed gives the same tokens, another seed other tokens") {
  std::vector<float> logits(1000);
  for (size_t i = 0; i < logits.size(); ++i) logits[i] = float(i % 17) * 0.1f;
  auto run = [&](uint64_t seed) {
    Sampler s({1.f, 0.95f, seed});
    std::vector<int32_t> t;
    for (int i = 0; i < 50; ++i) t.push_back(s(logits));
    return t;
  };
  CHECK(run(3) == run(3));
  CHECK(run(3) != run(4));
}

TEST_CASE("sampler: bad options are usage errors") {
  CHECK_THROWS_AS(Sampler({-1.f, 0.9f, 0}), UsageError);
  CHECK_THROWS_AS(Sampler({0.6f, 0.f, 0}), UsageError);
  CHECK_THROWS_AS(Sampler({0.6f, 1.5f, 0}), UsageError);
}
