// fathom against transformers on tiny random models of every family (tests/fixtures/models):
// every layer's hidden state, the final norm, the logits and 16 greedy tokens, for prefill
// (matrix-matrix) and token-by-token decode (matrix-vector).
//
// Tolerance: relative error (max |Δ| / max(1, max |ref|)) ≤ 1e-5 for f32 weights and for bf16
// weights (the reference computes in f32 with the same bf16-rounded weights, so only f32
// summation order differs). Greedy tokens must be identical.
#include "fixture_util.hpp"

#include <cmath>
#include <cstring>
#include <set>

#include "fathom/model/generate.hpp"
#include "fathom/model/session.hpp"

using namespace fathom;
using fixtures::rel_err;

namespace {
constexpr double kTol = 1e-5;  // observed: ≤ 1.5e-6 on every fixture

const char* kModels[] = {"llama_f32",  "llama_bf16_tied", "mistral_f32",    "qwen2_f32",
                         "qwen2_bf16", "qwen3_f32",       "qwen3_bf16_tied"};

void check_model(const std::string& name) {
  CAPTURE(name);
  auto model = load_model(fixtures::model_dir(name));
  fixtures::Expected ex(fixtures::model_dir(name) / "expected.safetensors");
  const auto ids = ex.ids("input_ids");
  const size_t T = ids.size(), V = model->vocab();

  SUBCASE("prefill: every layer, final norm, logits") {
    Session s(*model);
    fixtures::Recorder rec;
    rec.n = T;
    FullDepth full;
    auto logits = s.forward(ids, Phase::PP, full, rec, Logits::All);
    CHECK(rel_err(rec.taps["embed"], ex.f32("embed")) <= kTol);
    for (size_t l = 0; l < model->n_layers(); ++l) {
      CAPTURE(l);
      CHECK(rel_err(rec.taps["resid_post." + std::to_string(l)],
                    ex.f32("resid_post." + std::to_string(l))) <= kTol);
    }
    CHECK(rel_err(rec.taps["final_norm"], ex.f32("final_norm")) <= kTol);
    CHECK(rel_err(logits, ex.f32("logits")) <= kTol);
  }

  // attn_ctx and mlp_act against what they stand for, computed here from the neighbouring taps
  // (whose chain to resid_post is checked against transformers above): attention by hand in
  // double from q, k, v; then Wo · attn_ctx = attn_out, silu(gate · n) ⊙ (up · n) = mlp_act for
  // n = mlp_norm, down · mlp_act = mlp_out.
  SUBCASE("attn_ctx and mlp_act: the inputs of the output and down projections") {
    Session s(*model);
    fixtures::Recorder rec;
    rec.n = T;
    FullDepth full;
    s.forward(ids, Phase::PP, full, rec, Logits::All);
    for (size_t l = 0; l < model->n_layers(); ++l) {
      CAPTURE(l);
      const auto& A = model->layer(l).attn;
      const auto& M = model->layer(l).mlp;
      const std::string at = "." + std::to_string(l);
      const auto &q = rec.taps.at("q" + at), &k = rec.taps.at("k" + at), &v = rec.taps.at("v" + at);
      const auto& ctx = rec.taps.at("attn_ctx" + at);
      REQUIRE(ctx.size() == T * A.q_dim());
      std::vector<float> want(T * A.q_dim());
      for (size_t t = 0; t < T; ++t)
        for (size_t h = 0; h < A.n_heads; ++h) {
          const size_t kv = A.kv_head(h), hd = A.head_dim;
          const size_t lo = size_t(A.window_start(int64_t(t)));
          std::vector<double> w(t + 1 - lo);
          double top = -INFINITY, sum = 0;
          for (size_t u = lo; u <= t; ++u) {
            double d = 0;
            for (size_t i = 0; i < hd; ++i) d += double(q[(t * A.n_heads + h) * hd + i]) * k[(u * A.n_kv_heads + kv) * hd + i];
            w[u - lo] = d * A.scale();
            top = std::max(top, w[u - lo]);
          }
          for (double& x : w) sum += (x = std::exp(x - top));
          for (size_t i = 0; i < hd; ++i) {
            double o = 0;
            for (size_t u = lo; u <= t; ++u) o += w[u - lo] / sum * v[(u * A.n_kv_heads + kv) * hd + i];
            want[(t * A.n_heads + h) * hd + i] = float(o);
          }
        }
      CHECK(rel_err(ctx, want) <= kTol);

      std::vector<float> out(T * model->hidden());
      A.output(ctx.data(), T, out.data());
      CHECK(rel_err(rec.taps.at("attn_out" + at), out) <= kTol);

      const auto& n = rec.taps.at("mlp_norm" + at);
      const auto& act = rec.taps.at("mlp_act" + at);
      const size_t I = M.intermediate();
      REQUIRE(act.size() == T * I);
      std::vector<float> g(T * I), u(T * I), act_want(T * I);
      kernels::gemm(M.gate, n.data(), T, g.data());
      kernels::gemm(M.up, n.data(), T, u.data());
      for (size_t i = 0; i < T * I; ++i)
        act_want[i] = float(double(g[i]) / (1.0 + std::exp(-double(g[i]))) * double(u[i]));
      CHECK(rel_err(act, act_want) <= kTol);
      kernels::gemm(M.down, act.data(), T, out.data());
      CHECK(rel_err(rec.taps.at("mlp_out" + at), out) <= kTol);
    }
  }

  SUBCASE("decode token by token equals the prefill logits") {
    Session s(*model);
    const auto ref = ex.f32("logits");
    for (size_t t = 0; t < T; ++t) {
      auto l = s.forward(std::span<const int32_t>(&ids[t], 1), Phase::PP);
      CAPTURE(t);
      CHECK(rel_err(l, std::span<const float>(ref).subspan(t * V, V)) <= kTol);
    }
  }

  SUBCASE("greedy generation: same 16 tokens, same logits at every step") {
    Session s(*model);
    const auto ref_tokens = ex.ids("greedy");
    const auto ref_logits = ex.f32("greedy_logits");
    GenerateOptions opt;
    opt.max_new_tokens = int(ref_tokens.size());
    opt.stop_on_eos = false;
    std::vector<float> step_logits;
    FullDepth full;
    fathom::NoObserver none;
    // The logits each token was chosen from: re-run the same session step by step.
    auto g = generate(s, ids, opt, full, none);
    CHECK(g.tokens == ref_tokens);
    Session s2(*model);
    auto l = s2.forward(ids, Phase::PP);
    for (size_t i = 0; i < ref_tokens.size(); ++i) {
      CAPTURE(i);
      CHECK(rel_err(l, std::span<const float>(ref_logits).subspan(i * V, V)) <= kTol);
      l = s2.forward(std::span<const int32_t>(&ref_tokens[i], 1), Phase::RG);
    }
  }
}
}  // namespace

TEST_CASE("fixtures: llama f32 (GQA, explicit head_dim, llama3 rope scaling, untied)") { check_model(kModels[0]); }
TEST_CASE("fixtures: llama bf16 tied (linear rope scaling)") { check_model(kModels[1]); }
TEST_CASE("fixtures: mistral f32 (sliding window shorter than the sequence)") { check_model(kModels[2]); }
TEST_CASE("fixtures: qwen2 f32 (q/k/v bias, tied)") { check_model(kModels[3]); }
TEST_CASE("fixtures: qwen2 bf16") { check_model(kModels[4]); }
TEST_CASE("fixtures: qwen3 f32 (q/k norm, explicit head_dim)") { check_model(kModels[5]); }
TEST_CASE("fixtures: qwen3 bf16 tied") { check_model(kModels[6]); }

TEST_CASE("weights converted at load time give the same outputs") {
  auto ref = load_model(fixtures::model_dir("qwen2_bf16"));
  auto f32 = load_model(fixtures::model_dir("qwen2_bf16"), LoadOptions{WeightFormat::F32});
  fixtures::Expected ex(fixtures::model_dir("qwen2_bf16") / "expected.safetensors");
  const auto ids = ex.ids("input_ids");
  Session a(*ref), b(*f32);
  auto sa = a.forward(ids, Phase::PP, Logits::All);
  std::vector<float> la(sa.begin(), sa.end());
  CHECK(rel_err(b.forward(ids, Phase::PP, Logits::All), la) <= kTol);
}

// Matrices computed on in their stored format are views into the mapped checkpoint (4 KiB pages);
// Model copies them onto huge pages unless LoadOptions::map_weights (model.hpp). Same bits either way.
TEST_CASE("matrices kept as stored are copied out of the mapped checkpoint, unless map_weights") {
  for (const char* name : {"llama_f32", "qwen3_bf16_tied"}) {
    CAPTURE(name);
    auto ck = io::load_checkpoint(fixtures::model_dir(name));
    auto store = std::make_shared<const io::TensorStore>(std::move(ck.weights));
    Model copied(ck.config, store), mapped(ck.config, store, LoadOptions{WeightFormat::AsStored, true});
    std::set<const void*> file;  // where the checkpoint's tensors lie
    for (const auto& n : store->names()) {
      CHECK(store->get(n).mapped);
      file.insert(store->get(n).data);
    }
    const auto a = copied.matrices(), b = mapped.matrices();
    REQUIRE(a.size() == b.size());
    for (size_t i = 0; i < a.size(); ++i) {
      CHECK(file.count(a[i]->data) == 0);
      CHECK(file.count(b[i]->data) == 1);
      CHECK(std::memcmp(a[i]->data, b[i]->data, Model::matrix_bytes(*a[i])) == 0);
    }
    if (ck.config.tie_word_embeddings) {  // one copy serves as both (save_model keeps it tied)
      CHECK(copied.embedding().data == a.back()->data);
      CHECK(mapped.embedding().data == b.back()->data);
    }
    fixtures::Expected ex(fixtures::model_dir(name) / "expected.safetensors");
    const auto ids = ex.ids("input_ids");
    Session sa(copied), sb(mapped);
    auto la = sa.forward(ids, Phase::PP, Logits::All);
    const std::vector<float> ref(la.begin(), la.end());
    auto lb = sb.forward(ids, Phase::PP, Logits::All);
    CHECK(std::equal(ref.begin(), ref.end(), lb.begin(), lb.end()));
  }
}

TEST_CASE("bf16 activations (opt-in, inexact): the bf16 fixtures' logits within bf16 rounding of the reference") {
  // kernels/bf16dot.hpp rounds activations to bf16 for products with bf16 weights; the error
  // against transformers' f32 computation is printed (docs/kernels.md quotes it).
  for (const char* name : {"llama_bf16_tied", "qwen2_bf16", "qwen3_bf16_tied"}) {
    CAPTURE(name);
    auto model = load_model(fixtures::model_dir(name));
    fixtures::Expected ex(fixtures::model_dir(name) / "expected.safetensors");
    const auto ids = ex.ids("input_ids");
    const bool saved = kernels::bf16_activations_requested();
    kernels::set_bf16_activations(true);
    Session s(*model), d(*model);
    auto prefill = s.forward(ids, Phase::PP, Logits::All);
    std::vector<float> decode;
    for (size_t t = 0; t < ids.size(); ++t) {
      auto l = d.forward(std::span<const int32_t>(&ids[t], 1), Phase::PP);
      decode.insert(decode.end(), l.begin(), l.end());
    }
    kernels::set_bf16_activations(saved);
    const double ep = rel_err(prefill, ex.f32("logits")), ed = rel_err(decode, ex.f32("logits"));
    MESSAGE(std::string(name) << " bf16 activations (" << std::string(kernels::kBf16Dot ? "vdpbf16ps" : "exact path") << "): logits rel err "
                 << ep << " prefill, " << ed << " decode");
    CHECK(ep <= 2e-2);
    CHECK(ed <= 2e-2);
  }
}
