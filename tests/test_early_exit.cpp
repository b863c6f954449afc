// Early exit (CALM-style): an impossible threshold equals FullDepth bit for bit; threshold 0
// exits at min_exit; the decayed threshold; confidences against direct computations; readouts of
// exited tokens come from the stream they stopped at, under every KV strategy.
#include <doctest/doctest.h>

#include <cmath>
#include <filesystem>
#include <vector>

#include "fathom/depth/early_exit.hpp"
#include "fathom/depth/lens_policy.hpp"
#include "fathom/model/generate.hpp"
#include "fathom/model/load.hpp"

using namespace fathom;

namespace {
std::filesystem::path fixture(const char* name) {
  return std::filesystem::path(FATHOM_SOURCE_DIR) / "tests/fixtures/models" / name;
}
const std::vector<int32_t> kPrompt = {1, 17, 99, 3, 250, 42};
const std::vector<int32_t> kNext = {7, 128, 64};

// Prefill + three decode steps; returns all logits concatenated.
template <class P>
std::vector<float> run(const Model& m, P& policy, KvStrategy kv, Trace* trace = nullptr) {
  Session s(m, SessionOptions{0, kv});
  s.set_trace(trace);
  auto lg = s.forward(kPrompt, Phase::PP, policy, Logits::All);
  std::vector<float> out(lg.begin(), lg.end());
  for (int32_t t : kNext) {
    auto l = s.forward(std::span(&t, 1), Phase::RG, policy);
    out.insert(out.end(), l.begin(), l.end());
  }
  return out;
}
}  // namespace

TEST_CASE("decayed threshold") {
  CHECK(decayed_threshold(0.8, 5, 0) == 0.8);
  CHECK(decayed_threshold(0.8, 0, 10) == doctest::Approx(0.8));
  CHECK(decayed_threshold(0.8, 10, 10) == doctest::Approx(0.8 * std::exp(-4.0) / 10 + 0.72));
  CHECK(decayed_threshold(0.8, 5, 10) < decayed_threshold(0.8, 4, 10));
  CHECK(cosine(std::vector<float>{1, 0}, std::vector<float>{1, 1}) ==
        doctest::Approx(std::sqrt(0.5)));
  CHECK(parse_confidence("state") == Confidence::State);
  CHECK_THROWS_AS(parse_confidence("entropy"), UsageError);
}

TEST_CASE("impossible threshold equals FullDepth bit for bit") {
  for (const char* name : {"llama_f32", "qwen2_bf16"}) {
    auto model = load_model(fixture(name));
    FullDepth full;
    const auto ref = run(*model, full, KvStrategy::Propagate);
    for (auto measure : {Confidence::SoftmaxMax, Confidence::SoftmaxDiff, Confidence::State}) {
      for (auto kv : {KvStrategy::Propagate, KvStrategy::Exact, KvStrategy::None}) {
        CAPTURE(name);
        CAPTURE(confidence_name(measure));
        Trace trace(model->n_layers());
        EarlyExit<> ee(*model, EarlyExitOptions{measure, 1.5, 1, 0});
        CHECK(run(*model, ee, kv, &trace) == ref);
        CHECK(ee.mean_exit_layer() == double(model->n_layers()));
        CHECK(ee.tokens() == kPrompt.size() + kNext.size());
        for (auto& r : trace.records()) {
          CHECK(r.exit_layer == -1);
          CHECK(r.readout_layer == int(model->n_layers()) - 1);
        }
      }
    }
  }
}

TEST_CASE("threshold 0 exits at min_exit, and the readout is the lens at that point") {
  auto model = load_model(fixture("llama_f32"));
  const size_t L = model->n_layers();
  for (int min_exit : {1, 2, 3}) {
    for (auto kv : {KvStrategy::Propagate, KvStrategy::Exact, KvStrategy::None}) {
      CAPTURE(min_exit);
      Trace trace(L);
      EarlyExit<> ee(*model, EarlyExitOptions{Confidence::SoftmaxMax, 0.0, min_exit, 0});
      const auto got = run(*model, ee, kv, &trace);
      CHECK(ee.mean_exit_layer() == double(min_exit));
      for (auto& r : trace.records()) {
        CHECK(r.exit_layer == min_exit);
        CHECK(r.readout_layer == min_exit - 1);
        for (size_t l = 0; l < L; ++l) CHECK(r.layers[l].executed == (int(l) < min_exit));
      }
      // Same as reading out hidden_states[min_exit] with the logit lens, with the same K/V rule.
      lens::LogitLens ll{L};
      lens::LensReadout<lens::LogitLens> at(ll, L, size_t(min_exit));
      CHECK(run(*model, at, kv) == got);
    }
  }
  CHECK_THROWS_AS(EarlyExit<>(*model, EarlyExitOptions{Confidence::State, 0.5, 0, 0}), UsageError);
  // exit_prompt = false: prompt tokens run every block, generated ones exit at min_exit.
  Trace trace(L);
  EarlyExit<> ee(*model, EarlyExitOptions{Confidence::SoftmaxMax, 0.0, 2, 0, false});
  run(*model, ee, KvStrategy::Propagate, &trace);
  CHECK(ee.mean_exit_layer(Phase::PP) == double(L));
  CHECK(ee.mean_exit_layer(Phase::RG) == 2.0);
  for (auto& r : trace.records()) CHECK(r.exit_layer == (r.phase == Phase::PP ? -1 : 2));
}

TEST_CASE("confidence measures match direct computations; exits happen where they exceed λ") {
  auto model = load_model(fixture("qwen3_f32"));
  const size_t L = model->n_layers(), H = model->hidden();
  // The all-layers readout gives every hidden state's softmax; pick λ between layers.
  Session s(*model);
  lens::SiteRecorder rec(lens::hidden_state_sites(L), H);
  FullDepth full;
  s.forward(kPrompt, Phase::PP, full, rec);
  lens::Reader reader(*model);
  for (auto measure : {Confidence::SoftmaxMax, Confidence::SoftmaxDiff, Confidence::State}) {
    CAPTURE(confidence_name(measure));
    // conf[t][i]: confidence of hidden_states[i], i = 1..L-1.
    std::vector<std::vector<double>> conf(kPrompt.size(), std::vector<double>(L, 0));
    for (uint32_t t = 0; t < kPrompt.size(); ++t)
      for (size_t i = 1; i < L; ++i) {
        auto h = rec.get(i, t), prev = rec.get(i - 1, t);
        if (measure == Confidence::State) {
          conf[t][i] = cosine(prev, h);
        } else {
          auto p = lens::softmax_top2(reader.logits(h));
          conf[t][i] = measure == Confidence::SoftmaxMax ? p.p1 : p.p1 - p.p2;
        }
      }
    const double lambda = conf[0][1];  // token 0 is confident enough only strictly above this
    // Expected exits with Exact K/V (the stream of every token is unchanged by others' exits).
    Trace trace(L);
    EarlyExit<> ee(*model, EarlyExitOptions{measure, lambda, 1, 0});
    Session s2(*model, SessionOptions{0, KvStrategy::Exact});
    s2.set_trace(&trace);
    s2.forward(kPrompt, Phase::PP, ee, Logits::All);
    for (uint32_t t = 0; t < kPrompt.size(); ++t) {
      int expect = -1;
      for (size_t i = 1; i < L && expect < 0; ++i)
        if (conf[t][i] > lambda) expect = int(i);
      CAPTURE(t);
      CHECK(trace.records()[t].exit_layer == expect);
    }
  }
}

TEST_CASE("early exit with a tuned lens and in generation") {
  auto model = load_model(fixture("llama_bf16_tied"));
  const size_t L = model->n_layers(), H = model->hidden();
  lens::TunedLens zero(L, H);
  EarlyExit<lens::TunedLens> a(*model, EarlyExitOptions{Confidence::SoftmaxDiff, 0.0, 2, 0}, zero);
  EarlyExit<> b(*model, EarlyExitOptions{Confidence::SoftmaxDiff, 0.0, 2, 0});
  CHECK(run(*model, a, KvStrategy::Propagate) == run(*model, b, KvStrategy::Propagate));
  lens::TunedLens wrong(L + 1, H);
  CHECK_THROWS_AS(EarlyExit<lens::TunedLens>(*model, EarlyExitOptions{}, wrong), ConfigError);
  // Generation with the decaying threshold runs and exits.
  Session s(*model);
  EarlyExit<> ee(*model, EarlyExitOptions{Confidence::State, 0.0, 1, 8});
  GenerateOptions go;
  go.max_new_tokens = 8;
  go.stop_on_eos = false;
  auto g = generate(s, kPrompt, go, ee);
  CHECK(ee.tokens() > 0);
  CHECK(ee.mean_exit_layer() < double(L));
}

// CALM counts generation steps from 1: the prompt pass (which yields the first new token) is
// t = 0, the forward pass of the token sampled from it is t = 1. Checked on the λ(t) each token
// of a real prefill + decode gets, with the fixture model.
TEST_CASE("decay: prompt tokens use t = 0, the first generated step after the prompt t = 1") {
  auto model = load_model(fixture("llama_f32"));
  const int N = 8;
  EarlyExit<> ee(*model, EarlyExitOptions{Confidence::SoftmaxMax, 0.9, 1, N});
  for (int round = 0; round < 2; ++round) {  // a second sequence starts counting again
    Session s(*model);
    s.forward(kPrompt, Phase::PP, ee);
    CHECK(ee.last_threshold() == 0.9);
    for (size_t k = 0; k < kNext.size(); ++k) {
      s.forward(std::span(&kNext[k], 1), Phase::RG, ee);
      CAPTURE(k);
      CHECK(ee.last_threshold() == doctest::Approx(decayed_threshold(0.9, int64_t(k) + 1, N)));
      CHECK(ee.last_threshold() < 0.9);
    }
  }
}
