// DepthPolicy behaviour: LAC decisions on constructed norms, trace-only ≡ FullDepth, in-stream
// skipping ≡ transformers with the layers deleted, final-state substitution, StaticSkip(∅) ≡
// FullDepth, calibrated skip, and the three KV strategies on a 2-token example.
#include "fixture_util.hpp"

#include <cstring>
#include <map>

#include "fathom/depth/lac.hpp"
#include "fathom/depth/policies.hpp"
#include "fathom/depth/static_skip.hpp"
#include "fathom/model/generate.hpp"

using namespace fathom;
using fixtures::rel_err;

namespace {

bool bit_equal(std::span<const float> a, std::span<const float> b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

// Feeds LAC one token whose hidden state has the given norms: n_{-1} = norms[0], n_l = norms[l+1].
// Returns the token's record as a Session would write it from LAC's notes.
TokenRecord run_lac_on_norms(const std::vector<double>& norms, double alpha,
                             LacMode mode = LacMode::TraceOnly) {
  const size_t L = norms.size() - 1;
  LAC lac(alpha, mode);
  LAC::State s;
  TokenInfo t{0, 0, Phase::PP, 0};
  lac.begin_token(t, s);
  TokenRecord r;
  r.layers.resize(L);
  std::vector<float> stream = {float(norms[0]), 0.f};
  for (size_t l = 0; l < L; ++l) {
    CHECK(lac.before_layer(t, s, int(l)) == Action::Run);
    std::vector<float> in = stream, out = {0.f, float(norms[l + 1])};  // ||out|| = norms[l+1]
    LayerNote note;
    lac.after_layer(t, s, int(l), in, out, note);
    r.layers[l] = {true, note.activated, note.norm, note.delta, note.tau};
    stream = out;
  }
  r.readout_layer = lac.readout_layer(t, s, int(L) - 1);
  return r;
}

// A policy that follows a script: (position, layer) -> action; everything else runs.
struct Scripted : PolicyBase {
  static constexpr bool observes_layers = false;
  std::map<std::pair<int64_t, int>, Action> script;
  Action before_layer(const TokenInfo& t, State&, int l) const {
    auto it = script.find({t.position, l});
    return it == script.end() ? Action::Run : it->second;
  }
};
static_assert(DepthPolicy<Scripted>);

std::vector<float> copy(std::span<const float> s) { return {s.begin(), s.end()}; }

// K of layer l for a token whose stream entering layer l is h, at position pos (by hand).
std::vector<float> keys_by_hand(const Model& m, size_t l, const float* h, int64_t pos) {
  const auto& L = m.layer(l);
  std::vector<float> xn(m.hidden()), k(L.attn.kv_dim()), v(L.attn.kv_dim());
  std::vector<float> c(L.attn.head_dim / 2), s(L.attn.head_dim / 2);
  L.attn_norm(h, xn.data());
  m.rope().angles(pos, c.data(), s.data());
  L.attn.project(xn.data(), 1, c.data(), s.data(), nullptr, k.data(), v.data());
  return k;
}

}  // namespace

TEST_CASE("LAC rule: thresholds from the preceding layers' signed Δ, τ0 = τ1 = 0") {
  // n_{-1} = 1; n = 2, 1.5, 3, 3.2, 2  =>  Δ = 1, -0.5, 1.5, 0.2, -1.2
  // τ0 = τ1 = 0; τ2 = 0.8·(1 − (−0.5)) = 1.2; τ3 = τ4 = 0.8·(1.5 − (−0.5)) = 1.6
  auto r = run_lac_on_norms({1, 2, 1.5, 3, 3.2, 2}, 0.8);
  const double delta[] = {1, -0.5, 1.5, 0.2, -1.2}, tau[] = {0, 0, 1.2, 1.6, 1.6};
  const bool active[] = {true, false, true, false, false};
  for (int l = 0; l < 5; ++l) {
    CAPTURE(l);
    CHECK(r.layers[l].delta == doctest::Approx(delta[l]).epsilon(1e-6));
    CHECK(r.layers[l].tau == doctest::Approx(tau[l]).epsilon(1e-6));
    CHECK(r.layers[l].activated == active[l]);
    CHECK(r.layers[l].executed);
  }
}

TEST_CASE("LAC rule: a negative Δ at layers 0 and 1 is a void (τ = 0); ties activate") {
  auto r = run_lac_on_norms({4, 3, 2.5, 2.5, 2.5}, 0.8);  // Δ = -1, -0.5, 0, 0
  CHECK_FALSE(r.layers[0].activated);
  CHECK_FALSE(r.layers[1].activated);
  // τ2 = 0.8·(−0.5 − (−1)) = 0.4 > Δ2 = 0: void; τ3 = 0.8·(0 − (−1)) = 0.8: void
  CHECK_FALSE(r.layers[2].activated);
  CHECK(r.layers[2].tau == doctest::Approx(0.4));
  CHECK_FALSE(r.layers[3].activated);
  // Δ exactly equal to τ is not a void (the rule is Δ < τ).
  auto tie = run_lac_on_norms({1, 1, 2}, 0.0);  // Δ0 = 0 = τ0, Δ1 = 1
  CHECK(tie.layers[0].activated);
  CHECK(tie.layers[1].activated);
  LacRule rule{0.5};
  CHECK(rule.threshold(std::vector<double>{3.0}) == 0.0);
  CHECK(rule.threshold(std::vector<double>{3.0, -1.0, 2.0}) == doctest::Approx(2.0));
  CHECK(rule.is_void(1.999, 2.0));
  CHECK_FALSE(rule.is_void(2.0, 2.0));
}

TEST_CASE("LAC in-stream: Δ after a void is measured from the kept stream h_{l-1}") {
  // Layer 1 is a void (Δ1 = −1 < 0): its output is discarded, so the stream stays at norm 3
  // and layer 2 (which returns norm 6 for the stream it gets) has Δ2 = 3 ≥ τ2 = 0.8·(2 − (−1)).
  LAC lac(0.8, LacMode::InStream);
  LAC::State s;
  TokenInfo t{0, 0, Phase::RG, 0};
  lac.begin_token(t, s);
  std::vector<float> h = {1.f, 0.f};
  const float outs[] = {3.f, 2.f, 6.f};
  LayerNote notes[3];
  for (int l = 0; l < 3; ++l) {
    std::vector<float> in = h, out = {0.f, outs[l]};
    lac.after_layer(t, s, l, in, out, notes[l]);
    if (l == 1) CHECK(out == in);  // discarded
    h = out;
  }
  CHECK(notes[1].delta == doctest::Approx(-1));
  CHECK(notes[2].delta == doctest::Approx(3));
  CHECK(notes[2].tau == doctest::Approx(2.4));
  CHECK(notes[0].activated);
  CHECK_FALSE(notes[1].activated);
  CHECK(notes[2].activated);
  CHECK(lac.readout_layer(t, s, 2) == 2);  // in-stream reads the stream after the last layer
}

TEST_CASE("LAC trace-only leaves logits bit-identical to FullDepth (PP and RG)") {
  auto model = load_model(fixtures::model_dir("qwen2_f32"));
  fixtures::Expected ex(fixtures::model_dir("qwen2_f32") / "expected.safetensors");
  const auto ids = ex.ids("input_ids");
  Session a(*model), b(*model);
  Trace trace(model->n_layers());
  b.set_trace(&trace);
  LAC lac(0.8, LacMode::TraceOnly);
  FullDepth full;
  CHECK(bit_equal(copy(a.forward(ids, Phase::PP, full, Logits::All)),
                  copy(b.forward(ids, Phase::PP, lac, Logits::All))));
  const int32_t next[] = {5, 77, 200};
  for (int32_t t : next) {
    auto la = copy(a.forward(std::span<const int32_t>(&t, 1), Phase::RG, full));
    CHECK(bit_equal(la, copy(b.forward(std::span<const int32_t>(&t, 1), Phase::RG, lac))));
  }
  CHECK(trace.records().size() == ids.size() + 3);
  CHECK(trace.usage(Phase::PP).tokens == ids.size());
  CHECK(trace.usage(Phase::RG).tokens == 3);
  // The session records n_{-1}, the norm of the token's embedding, and every token's readout
  // layer, prompt tokens without logits included.
  std::vector<float> e(model->hidden());
  model->embed(ids[1], e.data());
  CHECK(trace.records()[1].embed_norm == kernels::l2_norm(e.data(), e.size()));
  for (const auto& r : trace.records()) CHECK(r.readout_layer == int(model->n_layers()) - 1);
}

TEST_CASE("StaticSkip in-stream equals transformers with those layers deleted") {
  for (std::string name : {"llama_f32", "qwen2_f32"}) {
    for (auto [file, set] : {std::pair<std::string, std::set<int>>{"skip_1", {1}},
                             std::pair<std::string, std::set<int>>{"skip_0_2", {0, 2}}}) {
      CAPTURE(name);
      CAPTURE(file);
      auto model = load_model(fixtures::model_dir(name));
      fixtures::Expected ex(fixtures::model_dir(name) / "expected.safetensors");
      fixtures::Expected sk(fixtures::model_dir(name) / (file + ".safetensors"));
      const auto ids = ex.ids("input_ids");
      StaticSkip skip(model->n_layers(), set);
      // Prefill: the logits of every position.
      Session s(*model);
      CHECK(rel_err(s.forward(ids, Phase::PP, skip, Logits::All), sk.f32("logits")) <= 1e-5);
      // Generation: same tokens, same logits at every step.
      Session g(*model);
      GenerateOptions opt;
      opt.max_new_tokens = 16;
      opt.stop_on_eos = false;
      CHECK(generate(g, ids, opt, skip).tokens == sk.ids("greedy"));
    }
  }
}

TEST_CASE("StaticSkip(∅) is FullDepth; per-phase sets apply per phase") {
  auto model = load_model(fixtures::model_dir("llama_f32"));
  const std::vector<int32_t> ids = {1, 17, 200, 5, 93};
  Session a(*model), b(*model), c(*model), d(*model);
  StaticSkip none(model->n_layers());
  FullDepth full;
  CHECK(bit_equal(copy(a.forward(ids, Phase::PP, full, Logits::All)),
                  copy(b.forward(ids, Phase::PP, none, Logits::All))));
  // Skipping only in RG leaves PP untouched, and changes RG.
  Trace trace(model->n_layers());
  c.set_trace(&trace);
  StaticSkip rg_only(model->n_layers(), {}, {1, 2});
  CHECK(bit_equal(copy(d.forward(std::span(ids).first(1), Phase::PP, full)),
                  copy(c.forward(std::span(ids).first(1), Phase::PP, rg_only))));
  auto l_full = copy(d.forward(std::span(ids).subspan(1, 1), Phase::RG, full));
  auto l_skip = copy(c.forward(std::span(ids).subspan(1, 1), Phase::RG, rg_only));
  CHECK_FALSE(bit_equal(l_full, l_skip));
  CHECK(trace.usage(Phase::PP).mean_executed() == 1.0);
  CHECK(trace.usage(Phase::RG).executed == std::vector<double>{1, 0, 0, 1});
  CHECK_THROWS_AS(StaticSkip(4, {7}), UsageError);
}

TEST_CASE("LAC final-state substitution reads out the last activated layer's hidden state") {
  auto model = load_model(fixtures::model_dir("llama_f32"));
  fixtures::Expected ex(fixtures::model_dir("llama_f32") / "expected.safetensors");
  const auto ids = ex.ids("input_ids");
  const size_t T = ids.size(), H = model->hidden(), V = model->vocab();
  Trace trace(model->n_layers());
  LAC lac(0.8, LacMode::FinalState);
  fixtures::Recorder rec;
  rec.n = T;
  Session s(*model);
  s.set_trace(&trace);
  auto logits = copy(s.forward(ids, Phase::PP, lac, rec, Logits::All));
  // The stack itself ran unchanged.
  CHECK(rel_err(rec.taps["resid_post.3"], ex.f32("resid_post.3")) <= 1e-5);
  size_t substituted = 0;
  std::vector<float> normed(H), expect(V);
  for (size_t t = 0; t < T; ++t) {
    const int last = trace.records()[t].readout_layer;
    const float* h = last < 0 ? rec.taps["embed"].data() + t * H
                              : rec.taps["resid_post." + std::to_string(last)].data() + t * H;
    model->readout()(h, 1, normed.data(), expect.data());
    CAPTURE(t);
    CHECK(rel_err(std::span<const float>(logits).subspan(t * V, V), expect) <= 1e-6);
    substituted += last != int(model->n_layers()) - 1;
  }
  MESSAGE("tokens read out before the last layer: " << substituted << " of " << T);
}

TEST_CASE("calibrated skip: layers activated for too few tokens are skipped without running") {
  const size_t L = 4;
  Trace t(L);
  auto token = [&](Phase p, std::vector<bool> act) {
    TokenInfo info{0, 0, p, 0};
    auto& r = t.begin(info);
    for (size_t l = 0; l < L; ++l) r.layers[l].executed = true, r.layers[l].activated = act[l];
    t.end(0);
  };
  token(Phase::PP, {true, false, true, false});
  token(Phase::PP, {true, false, false, true});
  token(Phase::RG, {true, true, false, true});
  StaticSkip s = calibrated_skip(t, 0.5);  // PP usage 1, 0, .5, .5; RG 1, 1, 0, 1
  CHECK(s.skipped(Phase::PP) == std::vector<uint8_t>{0, 1, 0, 0});
  CHECK(s.skipped(Phase::RG) == std::vector<uint8_t>{0, 0, 1, 0});
  CHECK(t.usage(Phase::PP).mean_activated() == doctest::Approx(0.5));
}

TEST_CASE("KV cache: head-major layout, store/load round trip, copy_prefix") {
  const size_t L = 2, cap = 5, heads = 3, hd = 4, D = heads * hd;
  for (KvPrecision prec : {KvPrecision::F32, KvPrecision::BF16}) {
    CAPTURE(int(prec));
    KvCache c(L, cap, heads, hd, prec);
    std::vector<float> key(D), val(D);
    auto fill = [&](size_t l, int64_t p) {  // values exact in bf16
      for (size_t i = 0; i < D; ++i) {
        key[i] = float(100 * l + 10 * p + i);
        val[i] = -float(100 * l + 10 * p + i) / 4;
      }
    };
    for (size_t l = 0; l < L; ++l)
      for (int64_t p = 0; p < int64_t(cap); ++p) {
        fill(l, p);
        c.store(l, p, key.data(), val.data());
      }
    std::vector<float> k2(D), v2(D);
    for (size_t l = 0; l < L; ++l)
      for (int64_t p = 0; p < int64_t(cap); ++p) {
        fill(l, p);
        c.load(l, p, k2.data(), v2.data());
        CHECK(k2 == key);
        CHECK(v2 == val);
        for (size_t h = 0; h < heads; ++h)  // head h's rows one after another
          for (size_t i = 0; i < hd; ++i) {
            const size_t at = (h * cap + size_t(p)) * hd + i;
            if (prec == KvPrecision::F32) {
              REQUIRE(c.k(l)[at] == key[h * hd + i]);
              REQUIRE(c.v(l)[at] == val[h * hd + i]);
            } else {
              REQUIRE(bf16_to_f32(c.k_bf16(l)[at]) == key[h * hd + i]);
              REQUIRE(bf16_to_f32(c.v_bf16(l)[at]) == val[h * hd + i]);
            }
          }
      }
    KvCache d(L, cap, heads, hd, prec);
    d.set_visible(1, 1, false);
    d.copy_prefix(c, 3);  // positions 0..2 of every head copied, the rest untouched (zero)
    for (size_t l = 0; l < L; ++l)
      for (int64_t p = 0; p < int64_t(cap); ++p) {
        d.load(l, p, k2.data(), v2.data());
        fill(l, p);
        if (p < 3) CHECK(k2 == key);
        else CHECK(k2 == std::vector<float>(D, 0.f));
      }
    CHECK(d.visible(1, 1));  // visibility copied too
    CHECK(d.mask(1) == nullptr);
    CHECK_THROWS_AS(d.copy_prefix(KvCache(L, cap + 1, heads, hd, prec), 1), UsageError);
  }
}

TEST_CASE("bf16 KV cache: keys and values stored rounded to bf16, logits close to the f32 cache's") {
  auto model = load_model(fixtures::model_dir("llama_f32"));
  const std::vector<int32_t> prompt = {1, 17, 99, 3, 250, 42, 7, 200, 12, 5};
  const size_t D = model->layer(0).attn.kv_dim();
  for (const char* name : {"full", "lac:0.8", "static:1"}) {
    CAPTURE(name);
    Session f32(*model, SessionOptions{64, KvStrategy::Propagate, KvPrecision::F32});
    Session b16(*model, SessionOptions{64, KvStrategy::Propagate, KvPrecision::BF16});
    std::vector<float> lf, lb;
    with_policy(*model, parse_policy(name), [&](auto& policy) {
      lf = copy(f32.forward(prompt, Phase::PP, policy, Logits::All));
      lb = copy(b16.forward(prompt, Phase::PP, policy, Logits::All));
      const int32_t next = 9;
      auto a = copy(f32.forward(std::span<const int32_t>(&next, 1), Phase::RG, policy));
      auto b = copy(b16.forward(std::span<const int32_t>(&next, 1), Phase::RG, policy));
      lf.insert(lf.end(), a.begin(), a.end());
      lb.insert(lb.end(), b.begin(), b.end());
    });
    // Layer 0 sees the same embeddings in both sessions: its stored keys and values are exactly
    // the f32 cache's rounded to nearest even.
    std::vector<float> kf(D), vf(D), kb(D), vb(D);
    for (int64_t p = 0; p <= int64_t(prompt.size()); ++p) {
      f32.cache().load(0, p, kf.data(), vf.data());
      b16.cache().load(0, p, kb.data(), vb.data());
      for (size_t i = 0; i < D; ++i) {
        REQUIRE(kb[i] == bf16_to_f32(f32_to_bf16(kf[i])));
        REQUIRE(vb[i] == bf16_to_f32(f32_to_bf16(vf[i])));
      }
    }
    CHECK(lf != lb);                 // the bf16 path ran
    CHECK(rel_err(lb, lf) <= 2e-2);  // and stays close (bf16 keeps 8 significant bits)
  }
  Session a(*model, SessionOptions{64, KvStrategy::Propagate, KvPrecision::F32});
  Session b(*model, SessionOptions{64, KvStrategy::Propagate, KvPrecision::BF16});
  CHECK_THROWS_AS(a.cache().k_bf16(0), UsageError);
  CHECK_THROWS_AS(b.cache().k(0), UsageError);
}

// Position 0's key at layer l, [kv_heads * head_dim].
static std::vector<float> key0(const KvCache& c, size_t l) {
  std::vector<float> k(c.kv_dim());
  c.load(l, 0, k.data(), nullptr);
  return k;
}

TEST_CASE("KV strategies on a 2-token example") {
  auto model = load_model(fixtures::model_dir("llama_f32"));
  const size_t H = model->hidden(), L = model->n_layers();
  const std::vector<int32_t> ids = {17, 200};
  Session ref(*model);
  fixtures::Recorder full_rec;
  full_rec.n = 2;
  FullDepth full;
  auto full_logits = copy(ref.forward(ids, Phase::PP, full, full_rec, Logits::All));

  for (bool batched : {true, false}) {
    CAPTURE(batched);
    auto run = [&](KvStrategy kv, Scripted& policy, fixtures::Recorder* rec) {
      auto s = std::make_unique<Session>(*model, SessionOptions{0, kv});
      std::vector<float> out;
      if (batched) {
        out = copy(s->forward(ids, Phase::PP, policy, *rec, Logits::All));
      } else {
        fixtures::Recorder r0, r1;
        r0.n = r1.n = 1;
        out = copy(s->forward(std::span(ids).first(1), Phase::PP, policy, r0));
        auto b = copy(s->forward(std::span(ids).subspan(1), Phase::PP, policy, r1));
        out.insert(out.end(), b.begin(), b.end());
        for (auto& [k, v] : r1.taps) rec->taps[k + ".t1"] = v;
        for (auto& [k, v] : r0.taps) rec->taps[k + ".t0"] = v;
      }
      return std::pair{std::move(s), out};
    };
    auto tap = [&](fixtures::Recorder& r, const std::string& name, size_t token) {
      if (batched) return std::vector<float>(r.taps[name].begin() + token * (r.taps[name].size() / 2),
                                             r.taps[name].begin() + (token + 1) * (r.taps[name].size() / 2));
      return r.taps[name + (token ? ".t1" : ".t0")];
    };

    SUBCASE("propagate: a skipped layer's K come from the stream that reached it") {
      Scripted p;
      p.script[{0, 1}] = Action::Skip;
      fixtures::Recorder rec;
      rec.n = 2;
      auto [s, logits] = run(KvStrategy::Propagate, p, &rec);
      auto h0 = tap(rec, "resid_post.0", 0);  // token 0's stream entering layer 1
      auto k = keys_by_hand(*model, 1, h0.data(), 0);
      CHECK(rel_err(key0(s->cache(), 1), k) <= 1e-6);
      CHECK(s->cache().visible(1, 0));
    }
    SUBCASE("none: the skipped position is invisible, so token 1 attends only to itself") {
      Scripted p;
      p.script[{0, 1}] = Action::Skip;
      fixtures::Recorder rec;
      rec.n = 2;
      auto [s, logits] = run(KvStrategy::None, p, &rec);
      CHECK_FALSE(s->cache().visible(1, 0));
      CHECK(s->cache().visible(1, 1));
      // attention output of token 1 at layer 1 = Wo · (its own V, repeated per kv group)
      const auto& A = model->layer(1).attn;
      auto v = tap(rec, "v.1", 1);
      std::vector<float> ctx(A.q_dim()), expect(H);
      for (size_t h = 0; h < A.n_heads; ++h)
        std::copy_n(v.data() + A.kv_head(h) * A.head_dim, A.head_dim, ctx.data() + h * A.head_dim);
      A.output(ctx.data(), 1, expect.data());
      CHECK(rel_err(tap(rec, "attn_out.1", 1), expect) <= 1e-6);
    }
    SUBCASE("exit + propagate: K/V of later layers from the frozen state") {
      Scripted p;
      p.script[{0, 2}] = Action::Exit;
      fixtures::Recorder rec;
      rec.n = 2;
      auto [s, logits] = run(KvStrategy::Propagate, p, &rec);
      auto h1 = tap(rec, "resid_post.1", 0);
      for (size_t l = 2; l < L; ++l) {
        auto k = keys_by_hand(*model, l, h1.data(), 0);
        CHECK(rel_err(key0(s->cache(), l), k) <= 1e-6);
      }
      // token 0 reads out its layer-1 state
      std::vector<float> normed(H), expect(model->vocab());
      model->readout()(h1.data(), 1, normed.data(), expect.data());
      CHECK(rel_err(std::span<const float>(logits).first(model->vocab()), expect) <= 1e-6);
    }
    SUBCASE("exit + exact: the cache is the full model's; only the readout moves") {
      Scripted p;
      p.script[{0, 2}] = Action::Exit;
      fixtures::Recorder rec;
      rec.n = 2;
      auto [s, logits] = run(KvStrategy::Exact, p, &rec);
      for (size_t l = 0; l < L; ++l)
        CHECK(rel_err(key0(s->cache(), l), key0(ref.cache(), l)) <= 1e-6);
      const size_t V = model->vocab();
      CHECK(rel_err(std::span<const float>(logits).subspan(V, V),
                    std::span<const float>(full_logits).subspan(V, V)) <= 1e-6);
      CHECK(rel_err(std::span<const float>(logits).first(V),
                    std::span<const float>(full_logits).first(V)) > 1e-3);
    }
  }
}

TEST_CASE("tap names: tap_from_name inverts tap_name, and knows no other name") {
  for (size_t i = 0; i < kTapCount; ++i) {
    CAPTURE(tap_name(Tap(i)));
    CHECK(tap_from_name(tap_name(Tap(i))) == Tap(i));
  }
  CHECK(tap_from_name("attn_ctx") == Tap::attn_ctx);
  CHECK(tap_from_name("mlp_act") == Tap::mlp_act);
  CHECK_FALSE(tap_from_name("attn").has_value());
  CHECK_FALSE(tap_from_name("").has_value());
  CHECK_FALSE(tap_from_name("resid_post.3").has_value());
}

// Taps under in-stream LAC show the stream as it continues: resid_post of layer l is what layer
// l+1 receives (h_{l-1} again after a void), and the last one is what the readout reads.
TEST_CASE("observer under lac-instream: resid_post is the continued stream, not the discarded update") {
  auto model = load_model(fixtures::model_dir("llama_f32"));
  fixtures::Expected ex(fixtures::model_dir("llama_f32") / "expected.safetensors");
  const auto ids = ex.ids("input_ids");
  const size_t L = model->n_layers(), H = model->hidden();
  Session s(*model);
  Trace trace(L);
  s.set_trace(&trace);
  LAC lac(0.5, LacMode::InStream);
  fixtures::Recorder rec;
  rec.n = ids.size();
  s.forward(ids, Phase::PP, lac, rec, Logits::All);
  size_t voids = 0;
  for (auto& r : trace.records())
    for (size_t l = 0; l + 1 < L; ++l) voids += !r.layers[l].activated;
  REQUIRE(voids > 0);  // else the test would show nothing
  for (size_t l = 0; l + 1 < L; ++l) {
    CAPTURE(l);
    CHECK(bit_equal(rec.taps.at("resid_post." + std::to_string(l)),
                    rec.taps.at("resid_pre." + std::to_string(l + 1))));
  }
  // A void's resid_post equals its resid_pre (the update was discarded).
  for (size_t i = 0; i < ids.size(); ++i)
    for (size_t l = 0; l < L; ++l) {
      if (trace.records()[i].layers[l].activated) continue;
      const auto& pre = rec.taps.at("resid_pre." + std::to_string(l));
      const auto& post = rec.taps.at("resid_post." + std::to_string(l));
      CHECK(bit_equal(std::span(pre).subspan(i * H, H), std::span(post).subspan(i * H, H)));
    }
}

// The worked example of docs/policies.md: a layer whose cosine exceeded c on the previous token
// is skipped for the next one, then measured again.
TEST_CASE("CosineSkip: c above any cosine is FullDepth; c below skips every other token") {
  auto model = load_model(fixtures::model_dir("llama_f32"));
  const size_t L = model->n_layers();
  const std::vector<int32_t> ids = {1, 17, 200, 5, 93};
  const int32_t next[] = {7, 128, 64, 9};
  Session a(*model), b(*model);
  FullDepth full;
  CosineSkip never(L, 1.5);
  CHECK(bit_equal(copy(a.forward(ids, Phase::PP, full, Logits::All)),
                  copy(b.forward(ids, Phase::PP, never, Logits::All))));
  for (int32_t t : next)
    CHECK(bit_equal(copy(a.forward(std::span<const int32_t>(&t, 1), Phase::RG, full)),
                    copy(b.forward(std::span<const int32_t>(&t, 1), Phase::RG, never))));

  Session c(*model);
  Trace trace(L);
  c.set_trace(&trace);
  CosineSkip always(L, -1.0);  // every measured cosine exceeds -1
  c.forward(ids, Phase::PP, always);  // nothing measured yet: every prompt token runs everything
  for (int32_t t : next) c.forward(std::span<const int32_t>(&t, 1), Phase::RG, always);
  const auto& recs = trace.records();
  REQUIRE(recs.size() == ids.size() + 4);
  for (size_t i = 0; i < ids.size(); ++i) CHECK(recs[i].layers[0].executed);
  for (size_t k = 0; k < 4; ++k) {
    CAPTURE(k);
    const auto& r = recs[ids.size() + k];
    for (size_t l = 0; l < L; ++l) CHECK(r.layers[l].executed == (k % 2 == 1));
    CHECK(r.readout_layer == (k % 2 == 1 ? int(L) - 1 : -1));
  }
  CHECK(parse_policy("cos-skip:0.98").name == "cos-skip:0.98");
}
