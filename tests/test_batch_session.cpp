// Batched decoding (model/batch_session.hpp, model/batch_generate.hpp, kernels/gemv_batch.hpp):
// every sequence's logits, trace and tokens are bit-identical to decoding it alone through Session,
// for every weight format, policy, KV strategy and KV precision, with sequences of different
// lengths joining and leaving mid-run, and so are the taps a step reports for each row; eval's
// batched generation scoring writes the records the unbatched runner writes.
#include "fixture_util.hpp"

#include <omp.h>

#include <cstring>
#include <map>
#include <random>

#include "fathom/depth/policies.hpp"
#include "fathom/eval/batched_generate.hpp"
#include "fathom/eval/mmlu.hpp"
#include "fathom/eval/runner.hpp"
#include "fathom/kernels/gemv_batch.hpp"
#include "fathom/kernels/quant.hpp"
#include "fathom/kernels/quant4.hpp"
#include "fathom/model/batch_generate.hpp"
#include "fathom/model/generate.hpp"
#include "fathom/model/load.hpp"
#include "fathom/model/random_model.hpp"
#include "test_eval_util.hpp"
#include "thread_scope.hpp"

using namespace fathom;
namespace kk = fathom::kernels;

namespace {

bool bit_equal(std::span<const float> a, std::span<const float> b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}
bool same_bits(float a, float b) { return std::memcmp(&a, &b, sizeof a) == 0; }

std::vector<float> random_vec(size_t n, std::mt19937& rng) {
  std::normal_distribution<float> nd(0.f, 1.f);
  std::vector<float> v(n);
  for (float& x : v) x = nd(rng);
  return v;
}

// A weight matrix of dtype dt (F32, BF16, F16 or Q8) with random values, owning its storage.
struct TestMatrix {
  std::vector<float> f;
  std::vector<uint16_t> h;
  kk::QuantizedMatrix q;
  kk::MatrixView view;
  TestMatrix(DType dt, size_t rows, size_t cols, std::mt19937& rng) : f(random_vec(rows * cols, rng)) {
    if (dt == DType::F32) {
      view = {dt, rows, cols, f.data()};
    } else if (dt == DType::Q8) {
      q = kk::quantize_q8({DType::F32, rows, cols, f.data()});
      view = q.view();
    } else {
      h.resize(f.size());
      for (size_t i = 0; i < f.size(); ++i) h[i] = dt == DType::BF16 ? f32_to_bf16(f[i]) : kk::detail::f32_to_f16(f[i]);
      view = {dt, rows, cols, h.data()};
    }
  }
};

// gemv_batch's row t against gemv of X[t], bit for bit.
void check_rows_as_gemv(const kk::MatrixView& W, size_t n, std::mt19937& rng) {
  const auto X = random_vec(n * W.cols, rng);
  std::vector<float> Y(n * W.rows, NAN), y(W.rows);
  kk::gemv_batch(W, X.data(), n, Y.data());
  for (size_t t = 0; t < n; ++t) {
    kk::gemv(W, X.data() + t * W.cols, y.data());
    CHECK_MESSAGE(bit_equal(std::span<const float>(Y).subspan(t * W.rows, W.rows), y),
                  dtype_name(W.dtype), " ", W.rows, "x", W.cols, " n=", n, " row ", t);
  }
}

// A step's (or a lone forward pass's) taps, by the sequence each row belongs to: (tap, layer) ->
// the row's values. Checks that every view says which sequence each row is, and names no row twice.
using TapRows = std::map<std::pair<int, int>, std::vector<float>>;
struct StepTaps {
  static constexpr bool enabled = true;
  std::span<const uint32_t> step_slots;  // the step's slots (empty: Session::forward, sequence 0)
  std::map<uint32_t, TapRows> of;        // sequence -> its rows
  bool consistent = true;
  void on_tap(Tap t, int layer, const TapView& v) {
    const bool batch = !step_slots.empty();
    if (v.slots.size() != v.rows || v.sequences.size() != (batch ? v.rows : 0)) {
      consistent = false;
      return;
    }
    for (size_t r = 0; r < v.rows; ++r) {
      uint32_t seq = 0;
      if (batch) {  // slots[r]: the row's index in the step, sequences[r]: its batch slot
        consistent &= v.slots[r] < step_slots.size() && step_slots[v.slots[r]] == v.sequences[r];
        seq = v.sequences[r];
      } else {
        consistent &= v.slots[r] == 0;
      }
      consistent &= of[seq].try_emplace({int(t), layer}, v.row(r), v.row(r) + v.cols).second;
    }
  }
};

// Teacher-forced decoding: sequence s feeds feeds[s] one token at a time. Returns the logits of
// every step, [steps][vocab] per sequence, and the traces.
struct Decoded {
  std::vector<std::vector<std::vector<float>>> logits;  // [seq][step][vocab]
  std::vector<std::vector<TokenRecord>> records;         // [seq]
  std::vector<std::vector<float>> last_k;                // [seq] K of the last position, every layer
};

void check_same_records(const std::vector<TokenRecord>& a, const std::vector<TokenRecord>& b) {
  REQUIRE(a.size() == b.size());
  for (size_t i = 0; i < a.size(); ++i) {
    CHECK(a[i].position == b[i].position);
    CHECK(a[i].phase == b[i].phase);
    CHECK(a[i].token == b[i].token);
    CHECK(a[i].exit_layer == b[i].exit_layer);
    CHECK(a[i].readout_layer == b[i].readout_layer);
    CHECK(same_bits(a[i].embed_norm, b[i].embed_norm));
    REQUIRE(a[i].layers.size() == b[i].layers.size());
    for (size_t l = 0; l < a[i].layers.size(); ++l) {
      const auto &x = a[i].layers[l], &y = b[i].layers[l];
      CHECK(x.executed == y.executed);
      CHECK(x.activated == y.activated);
      CHECK(same_bits(x.norm, y.norm));
      CHECK(same_bits(x.delta, y.delta));
      CHECK(same_bits(x.tau, y.tau));
    }
  }
}

// K and V of the last position at every layer where it is visible (under KvStrategy::None a
// masked position's rows are never written, and a reused slot holds an earlier sequence's there).
std::vector<float> cache_k_last(const Session& s) {
  const auto& c = s.cache();
  std::vector<float> out;
  std::vector<float> k(c.kv_dim()), v(c.kv_dim());
  for (size_t l = 0; l < s.model().n_layers(); ++l) {
    if (!c.visible(l, s.position() - 1)) continue;
    c.load(l, s.position() - 1, k.data(), v.data());
    out.insert(out.end(), v.begin(), v.end());
    out.insert(out.end(), k.begin(), k.end());
  }
  return out;
}

// Prompts of different lengths and continuations of different lengths, so that sequences join
// and leave the batch at different steps.
struct Workload {
  std::vector<std::vector<int32_t>> prompts, feeds;
};
Workload workload(size_t vocab, size_t count, uint64_t seed) {
  std::mt19937 rng{uint32_t(seed)};
  std::uniform_int_distribution<int32_t> tok(3, int32_t(vocab) - 1);
  Workload w;
  for (size_t s = 0; s < count; ++s) {
    std::vector<int32_t> p(1 + (s * 5) % 9), f(2 + (s * 7) % 11);
    for (auto& t : p) t = tok(rng);
    for (auto& t : f) t = tok(rng);
    w.prompts.push_back(p);
    w.feeds.push_back(f);
  }
  return w;
}

// taps (optional): [seq][step] every tap of the step's forward pass.
template <class P>
Decoded decode_alone(const Model& m, const Workload& w, const P& proto, SessionOptions so,
                     std::vector<std::vector<TapRows>>* taps = nullptr) {
  Decoded d;
  for (size_t s = 0; s < w.prompts.size(); ++s) {
    Session ses(m, so);
    Trace trace(m.n_layers(), true);
    ses.set_trace(&trace);
    P policy = proto;
    std::vector<std::vector<float>> steps;
    ses.forward(w.prompts[s], Phase::PP, policy);
    for (int32_t t : w.feeds[s]) {
      StepTaps obs;
      const std::span<const int32_t> token(&t, 1);
      auto l = taps ? ses.forward(token, Phase::RG, policy, obs) : ses.forward(token, Phase::RG, policy);
      steps.emplace_back(l.begin(), l.end());
      if (taps) {
        CHECK(obs.consistent);
        (*taps)[s].push_back(std::move(obs.of[0]));
      }
    }
    d.logits.push_back(std::move(steps));
    d.records.push_back(trace.records());
    d.last_k.push_back(cache_k_last(ses));
  }
  return d;
}

// The same sequences through a BatchSession of `B` slots: a sequence joins (its prompt run by its
// slot's session) as soon as a slot is free, every step feeds all joined sequences one token, and
// a sequence leaves when its feed is used up. taps (optional): [seq][step] the step's taps of its row.
template <class P>
Decoded decode_batched(const Model& m, const Workload& w, const P& proto, SessionOptions so, size_t B,
                       std::vector<std::vector<TapRows>>* taps = nullptr) {
  const size_t n = w.prompts.size(), V = m.vocab();
  BatchSession bs(m, B, so);
  std::vector<std::unique_ptr<Trace>> traces;
  std::vector<std::optional<P>> policy(B);
  std::vector<long> seq(B, -1);  // slot -> sequence
  std::vector<size_t> done_steps(n, 0);
  Decoded d;
  d.logits.resize(n), d.records.resize(n), d.last_k.resize(n);
  for (size_t s = 0; s < n; ++s) traces.push_back(std::make_unique<Trace>(m.n_layers(), true));
  size_t next = 0, left = n;
  while (left) {
    for (size_t k = 0; k < B && next < n; ++k)
      if (seq[k] < 0) {
        seq[k] = long(next);
        policy[k].emplace(proto);
        Session& ses = bs.session(k);
        ses.reset();
        ses.set_trace(traces[next].get());
        ses.forward(w.prompts[next], Phase::PP, *policy[k]);
        ++next;
      }
    std::vector<uint32_t> slots;
    std::vector<int32_t> toks;
    std::vector<P*> pols;
    for (size_t k = 0; k < B; ++k)
      if (seq[k] >= 0) {
        slots.push_back(uint32_t(k));
        toks.push_back(w.feeds[size_t(seq[k])][done_steps[size_t(seq[k])]]);
        pols.push_back(&*policy[k]);
      }
    StepTaps obs;
    obs.step_slots = slots;
    const std::span<const uint32_t> sl(slots);
    const std::span<const int32_t> tk(toks);
    const std::span<P* const> pl(pols);
    auto logits = taps ? bs.step(sl, tk, pl, obs) : bs.step(sl, tk, pl);
    if (taps) CHECK(obs.consistent);
    for (size_t r = 0; r < slots.size(); ++r) {
      const size_t k = slots[r], s = size_t(seq[k]);
      auto row = logits.subspan(r * V, V);
      d.logits[s].emplace_back(row.begin(), row.end());
      if (taps) (*taps)[s].push_back(std::move(obs.of[uint32_t(k)]));
      if (++done_steps[s] == w.feeds[s].size()) {
        d.records[s] = traces[s]->records();
        d.last_k[s] = cache_k_last(bs.session(k));
        bs.session(k).set_trace(nullptr);
        seq[k] = -1;
        --left;
      }
    }
  }
  return d;
}

void check_same(const Decoded& a, const Decoded& b) {
  REQUIRE(a.logits.size() == b.logits.size());
  for (size_t s = 0; s < a.logits.size(); ++s) {
    REQUIRE(a.logits[s].size() == b.logits[s].size());
    for (size_t t = 0; t < a.logits[s].size(); ++t)
      CHECK_MESSAGE(bit_equal(a.logits[s][t], b.logits[s][t]), "sequence ", s, " step ", t);
    check_same_records(a.records[s], b.records[s]);
    CHECK(bit_equal(a.last_k[s], b.last_k[s]));
  }
}

const char* kPolicies[] = {"full",          "lac:0.8",        "lac-instream:0.8",
                           "lac-exit:0.5",  "static:pp=1;rg=0", "early-exit:softmax_max:0.02",
                           "early-exit:state:0.5", "logit-lens:1", "cos-skip:0.3"};

}  // namespace

TEST_CASE("gemv_batch: every row equals gemv bit for bit (f32, bf16, f16, Q8; tails; 1 and 2 threads)") {
  std::mt19937 rng(7);
  for (int threads : {1, 2}) {
    ThreadScope ts(threads);
    for (DType dt : {DType::F32, DType::BF16, DType::F16, DType::Q8})
      for (auto [rows, cols] : {std::pair<size_t, size_t>{37, 100}, {64, 96}, {130, 64}, {5, 7}, {300, 904}})
        for (size_t n : {2, 3, 5, 16}) {
          TestMatrix M(dt, rows, cols, rng);
          check_rows_as_gemv(M.view, n, rng);
        }
  }
}

TEST_CASE("gemv_batch: native GGUF block matrices (Q4_0, Q4_1, Q5_0, Q5_1, Q4_K, Q6_K) match gemv per row") {
  std::mt19937 rng(11);
  for (DType t : {DType::Q4_0, DType::Q4_1, DType::Q5_0, DType::Q5_1, DType::Q4_K, DType::Q6_K}) {
    const size_t rows = 21, cols = 512;
    // Blocks quantised from random floats by the library's own Q8 path are not available for the
    // 4-bit types; raw random blocks (valid scales) are what test_quant4.cpp uses too.
    const size_t bb = kk::gguf_block_bytes(t), nb = cols / kk::gguf_block_elems(t);
    std::vector<uint8_t> raw(rows * nb * bb);
    std::uniform_int_distribution<int> byte(0, 255);
    for (auto& b : raw) b = uint8_t(byte(rng));
    for (size_t i = 0; i < rows * nb; ++i) {  // small finite f16 scales (0x1000..0x13ff ~ 6e-5..1e-4)
      uint8_t* blk = raw.data() + i * bb;
      const size_t at = t == DType::Q6_K ? 208 : 0;
      blk[at] = uint8_t(byte(rng)), blk[at + 1] = uint8_t(0x10 + byte(rng) % 4);
      if (t == DType::Q4_1 || t == DType::Q5_1 || t == DType::Q4_K) blk[2] = uint8_t(byte(rng)), blk[3] = uint8_t(0x10 + byte(rng) % 4);
    }
    const size_t row_bytes = nb * bb;
    auto M = kk::block_matrix_from_gguf(t, rows, cols, [&](size_t r) {
      return reinterpret_cast<const std::byte*>(raw.data() + r * row_bytes);
    });
    for (size_t n : {2, 7}) check_rows_as_gemv(M.view(), n, rng);
  }
}

TEST_CASE("gemv_batch_fused: q/k/v-like products of one input equal their gemvs") {
  std::mt19937 rng(3);
  for (DType dt : {DType::F32, DType::BF16, DType::Q8}) {
    TestMatrix a(dt, 64, 96, rng), b(dt, 16, 96, rng), c(dt, 16, 96, rng);
    const size_t n = 6;
    const auto X = random_vec(n * 96, rng);
    std::vector<float> Ya(n * 64), Yb(n * 16), Yc(n * 16), y(64);
    kk::gemv_batch_fused({{&a.view, Ya.data()}, {&b.view, Yb.data()}, {&c.view, Yc.data()}}, X.data(), n);
    for (size_t t = 0; t < n; ++t) {
      for (auto [M, Y] : {std::pair{&a.view, &Ya}, {&b.view, &Yb}, {&c.view, &Yc}}) {
        kk::gemv(*M, X.data() + t * 96, y.data());
        CHECK(bit_equal(std::span<const float>(*Y).subspan(t * M->rows, M->rows),
                        std::span<const float>(y).first(M->rows)));
      }
    }
  }
}

// A model whose widths are no multiple of the vector width (intermediate 100, vocab 300): the
// kernels' scalar tails (the products' and SwiGLU's exp) run, as in stories260K (hidden_dim 172).
std::unique_ptr<Model> odd_model(WeightFormat wf) {
  ModelConfig c = qwen25_05b_config();
  c.hidden_size = 64, c.intermediate_size = 100, c.num_hidden_layers = 3, c.num_attention_heads = 4;
  c.num_key_value_heads = 2, c.head_dim = 16, c.vocab_size = 300, c.max_position_embeddings = 128;
  return random_model(c, DType::F32, 3, {wf});
}

TEST_CASE("BatchSession: logits, traces and caches equal decoding alone, every policy and KV strategy") {
  ThreadScope ts(2);
  for (const char* name : {"llama_f32", "qwen2_bf16", "qwen3_bf16_tied", "mistral_f32", "odd"}) {
    for (WeightFormat wf : {WeightFormat::AsStored, WeightFormat::Q8}) {
      auto model = std::string(name) == "odd" ? odd_model(wf) : load_model(fixtures::model_dir(name), {wf});
      const auto w = workload(model->vocab(), 7, 5);
      for (const char* pol : kPolicies)
        for (KvStrategy kv : {KvStrategy::Propagate, KvStrategy::Exact, KvStrategy::None})
          for (KvPrecision prec : {KvPrecision::F32, KvPrecision::BF16}) {
            if (prec == KvPrecision::BF16 && kv != KvStrategy::Propagate && wf == WeightFormat::Q8) continue;
            const std::string model_name = name, policy_name = pol;
            CAPTURE(model_name);
            CAPTURE(policy_name);
            CAPTURE(int(wf));
            CAPTURE(int(kv));
            CAPTURE(int(prec));
            const SessionOptions so{64, kv, prec};
            with_policy(*model, parse_policy(pol), [&](auto& proto) {
              const Decoded alone = decode_alone(*model, w, proto, so);
              check_same(alone, decode_batched(*model, w, proto, so, 3));
            });
          }
    }
  }
}

TEST_CASE("BatchSession: a step's taps of each row equal Session::forward's for that token alone") {
  // Skips, exits (KvStrategy::Exact: the exited row keeps running) and in-stream rewrites change
  // which rows a layer's taps hold and what resid_post shows; sequences join and leave mid-run.
  ThreadScope ts(2);
  for (const char* name : {"llama_f32", "qwen2_bf16", "odd"}) {
    auto model = std::string(name) == "odd" ? odd_model(WeightFormat::AsStored) : load_model(fixtures::model_dir(name));
    const auto w = workload(model->vocab(), 5, 9);
    for (const char* pol : {"full", "lac:0.8", "lac-instream:0.8", "early-exit:softmax_max:0.02", "static:pp=1;rg=0"})
      for (KvStrategy kv : {KvStrategy::Propagate, KvStrategy::Exact}) {
        const std::string model_name = name, policy_name = pol;
        CAPTURE(model_name);
        CAPTURE(policy_name);
        CAPTURE(int(kv));
        const SessionOptions so{64, kv, KvPrecision::F32};
        with_policy(*model, parse_policy(pol), [&](auto& proto) {
          std::vector<std::vector<TapRows>> alone(w.prompts.size()), batched(w.prompts.size());
          check_same(decode_alone(*model, w, proto, so, &alone), decode_batched(*model, w, proto, so, 3, &batched));
          size_t rows = 0;
          for (size_t s = 0; s < alone.size(); ++s) {
            REQUIRE(alone[s].size() == batched[s].size());
            for (size_t t = 0; t < alone[s].size(); ++t) {
              CHECK(alone[s][t].size() == batched[s][t].size());  // the same taps: none missing, none extra
              for (const auto& [key, row] : alone[s][t]) {
                const auto found = batched[s][t].find(key);
                CHECK_MESSAGE(found != batched[s][t].end(), "sequence ", s, " step ", t, " tap ",
                              tap_name(Tap(key.first)), " layer ", key.second);
                if (found == batched[s][t].end()) continue;
                CHECK_MESSAGE(bit_equal(row, found->second), "sequence ", s, " step ", t, " tap ",
                              tap_name(Tap(key.first)), " layer ", key.second);
                ++rows;
              }
            }
          }
          CHECK(rows > 0);
        });
      }
  }
}

TEST_CASE("BatchSession: the policies above really skip, exit and rewrite on these models") {
  // Guards the identity test against vacuous success: each path of the batched layer loop is taken.
  auto model = load_model(fixtures::model_dir("llama_f32"));
  const auto w = workload(model->vocab(), 4, 5);
  auto count = [&](const char* pol, auto pred) {
    size_t c = 0;
    with_policy(*model, parse_policy(pol), [&](auto& proto) {
      for (const auto& recs : decode_alone(*model, w, proto, {64}).records)
        for (const auto& r : recs) c += pred(r);
    });
    return c;
  };
  CHECK(count("early-exit:softmax_max:0.02", [](const TokenRecord& r) { return r.exit_layer >= 0; }) > 0);
  CHECK(count("lac-exit:0.5", [](const TokenRecord& r) { return r.exit_layer >= 0; }) > 0);
  CHECK(count("static:pp=1;rg=0", [](const TokenRecord& r) { return !r.layers[0].executed; }) > 0);
  CHECK(count("cos-skip:0.3", [](const TokenRecord& r) {
          for (auto& l : r.layers)
            if (!l.executed) return true;
          return false;
        }) > 0);
  CHECK(count("lac:0.8", [](const TokenRecord& r) {
          for (auto& l : r.layers)
            if (!l.activated) return true;
          return false;
        }) > 0);
}

TEST_CASE("generate_batch: every request's tokens and trace equal generate() alone (sampling, per-request seeds)") {
  ThreadScope ts(2);
  auto model = load_model(fixtures::model_dir("qwen2_bf16"));
  const auto w = workload(model->vocab(), 9, 8);
  for (const char* pol : {"full", "lac:0.8", "early-exit:softmax_max:0.02", "cos-skip:0.3"})
    for (size_t B : {1, 2, 4, 16}) {
      const std::string policy_name = pol;
      CAPTURE(policy_name);
      CAPTURE(B);
      const SessionOptions so{48, KvStrategy::Propagate, KvPrecision::F32};
      auto options = [&](size_t i) {
        GenerateOptions o;
        o.max_new_tokens = int(3 + (i * 7) % 13);
        o.sampling = {0.9f, 0.95f, 1000 + i};
        o.stop_on_eos = true;
        o.eos_ids = {int64_t(w.prompts[i][0])};  // something it may well sample: early stops happen
        return o;
      };
      with_policy(*model, parse_policy(pol), [&](auto& proto) {
        std::vector<Generation> alone;
        std::vector<std::vector<TokenRecord>> alone_rec;
        for (size_t i = 0; i < w.prompts.size(); ++i) {
          Session s(*model, so);
          Trace t(model->n_layers(), true);
          s.set_trace(&t);
          auto p = proto;
          alone.push_back(generate(s, w.prompts[i], options(i), p));
          alone_rec.push_back(t.records());
        }
        BatchSession bs(*model, B, so);
        std::vector<std::optional<Generation>> got(w.prompts.size());
        std::vector<std::unique_ptr<Trace>> traces;
        for (size_t i = 0; i < w.prompts.size(); ++i) traces.push_back(std::make_unique<Trace>(model->n_layers(), true));
        generate_batch(
            bs, w.prompts.size(), [&](size_t i) { return BatchRequest{w.prompts[i], options(i)}; },
            [&](size_t) { return proto; }, [&](size_t i, Session& s) { s.set_trace(traces[i].get()); },
            [&](size_t i, Generation&& g, Session& s) {
              got[i] = std::move(g);
              s.set_trace(nullptr);
            });
        for (size_t i = 0; i < w.prompts.size(); ++i) {
          REQUIRE(got[i].has_value());
          CHECK(got[i]->tokens == alone[i].tokens);
          CHECK(got[i]->stopped_on_eos == alone[i].stopped_on_eos);
          check_same_records(traces[i]->records(), alone_rec[i]);
        }
      });
    }
}

TEST_CASE("BatchSession: argument errors") {
  auto model = load_model(fixtures::model_dir("llama_f32"));
  BatchSession bs(*model, 2, {16});
  FullDepth full;
  FullDepth* pols[2] = {&full, &full};
  const int32_t toks[2] = {5, 6};
  const int32_t p = 4;
  bs.session(0).forward(std::span<const int32_t>(&p, 1));
  bs.session(1).forward(std::span<const int32_t>(&p, 1));
  const uint32_t twice[2] = {0, 0}, outside[1] = {2};
  CHECK_THROWS_AS(bs.step(std::span<const uint32_t>(twice), std::span<const int32_t>(toks),
                          std::span<FullDepth* const>(pols)),
                  UsageError);
  CHECK_THROWS_AS(bs.step(std::span<const uint32_t>(outside), std::span<const int32_t>(toks, 1),
                          std::span<FullDepth* const>(pols, 1)),
                  UsageError);
  Trace shared(model->n_layers(), false);
  bs.session(0).set_trace(&shared);
  bs.session(1).set_trace(&shared);
  const uint32_t both[2] = {0, 1};
  CHECK_THROWS_AS(bs.step(std::span<const uint32_t>(both), std::span<const int32_t>(toks),
                          std::span<FullDepth* const>(pols)),
                  UsageError);
  CHECK_THROWS_AS(BatchSession(*model, 0), UsageError);
}

TEST_CASE("eval --batch: generation scoring records equal the unbatched runner's, in order, for any B") {
  ThreadScope ts(1);
  using namespace fathom::eval;
  auto m = evaltest::tiny_model();
  auto tok = evaltest::byte_tokenizer();
  auto task = read_mmlu(std::filesystem::path(FATHOM_SOURCE_DIR) / "tests/fixtures/eval/mmlu");
  REQUIRE(task.items.size() >= 4);
  const auto specs = parse_policies("full,static:pp=1;rg=0,lac:0.8,cos-skip:0.3,early-exit:softmax_max:0.3");
  std::vector<std::string> names;
  for (auto& s : specs) names.push_back(s.name);
  EvalOptions o;
  o.prompt = {Preset::Void, 0, false};
  o.scoring.scoring = Scoring::Generate;
  o.scoring.generation = {9, 0.9f, 0.95f};
  o.seed = 3;
  o.threads = 1;
  o.progress = false;
  const auto settings = run_settings(task.kind, "tiny", "fixture", names, o);
  auto tmp = [](const std::string& name) {
    auto p = std::filesystem::temp_directory_path() /
             ("fathom_test_batch_" + std::to_string(::getpid()) + "_" + name + ".jsonl");
    std::filesystem::remove(p);
    return p.string();
  };
  o.out = tmp("ref");
  run_eval(task, tok, *m, specs, o, settings);
  const auto ref = ResultsFile(o.out, settings).records();
  REQUIRE(ref.size() == task.items.size() * specs.size());
  for (size_t B : {1, 3, 8}) {
    CAPTURE(B);
    o.out = tmp("b" + std::to_string(B));
    const auto run = run_eval_batched(task, tok, *m, specs, o, settings, B);
    CHECK(run.complete);
    CHECK(run.computed == ref.size());
    const auto got = ResultsFile(o.out, settings).records();
    REQUIRE(got.size() == ref.size());
    for (size_t i = 0; i < ref.size(); ++i) {
      CAPTURE(i);
      CHECK(got[i].policy == ref[i].policy);
      CHECK(got[i].id == ref[i].id);
      CHECK(got[i].output == ref[i].output);
      CHECK(got[i].pred == ref[i].pred);
      CHECK(got[i].correct == ref[i].correct);
      CHECK(got[i].prompt_tokens == ref[i].prompt_tokens);
      CHECK(got[i].pp_tokens == ref[i].pp_tokens);
      CHECK(got[i].pp_active == ref[i].pp_active);
      CHECK(got[i].rg_tokens == ref[i].rg_tokens);
      CHECK(got[i].rg_active == ref[i].rg_active);
    }
    // Resuming a complete file computes nothing.
    CHECK(run_eval_batched(task, tok, *m, specs, o, settings, B).computed == 0);
    std::filesystem::remove(o.out);
  }
  std::filesystem::remove(tmp("ref"));
  CHECK_THROWS_AS(run_eval_batched(task, tok, *m, specs, [&] {
                    auto l = o;
                    l.scoring.scoring = Scoring::Loglik;
                    return l;
                  }(), settings, 2),
                  UsageError);
}
