// Early exit (CALM-style) against FullDepth: decode tokens/s and the mean number of blocks run
// per generated token, on the two llama2.c 260K models and on a randomly initialised model with
// Qwen2.5-0.5B's shape (bf16, built in memory). Each iteration prefills a short prompt at full
// depth (untimed; prompt tokens never exit, as in CALM) and greedily decodes `kDecode` tokens
// (timed); tok/s counts decoded tokens, mean_exit the blocks run per decoded token, agree the
// share of 64 decode steps whose greedy token equals FullDepth's (teacher-forced, 260K models).
//
// What the figures mean: the softmax measures read out through the unembedding after every
// block (Qwen shape: a 151936 x 896 product, ~0.27 GB of bf16, more than one block's weights),
// so on a large vocabulary they cost more than they save unless tokens exit very early; `state`
// costs one dot product per block. On the random model confidences are meaningless: its rows
// show the cost of the measures and of each K/V strategy, not a quality trade-off.
//
// With FATHOM_BENCH_LENS=<dir> (a tuned lens for stories260K, e.g. from examples/train_lens) the
// softmax measures are also run through that lens on stories260K.
#include <benchmark/benchmark.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <type_traits>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "fathom/core/shared_path.hpp"
#include "fathom/depth/early_exit.hpp"
#include "fathom/io/tensor_names.hpp"
#include "fathom/model/load.hpp"
#include "fathom/model/random_model.hpp"
#include "fathom/model/sampler.hpp"
#include "fathom/model/session.hpp"

using namespace fathom;

namespace {

constexpr int kDecode = 16;
constexpr int kAgree = 64;  // teacher-forced steps of the quality check

// Qwen2.5-0.5B's shape with random bf16 weights (tied embeddings, q/k/v bias), uniform rather
// than random_model's normal values.
std::unique_ptr<Model> qwen05_shaped() {
  const ModelConfig c = qwen25_05b_config();
  auto store = std::make_shared<io::TensorStore>();
  uint64_t state = 0x9E3779B97F4A7C15ull;
  auto next = [&] {  // xorshift64*: fast enough for half a billion weights
    state ^= state >> 12, state ^= state << 25, state ^= state >> 27;
    return state * 0x2545F4914F6CDD1Dull;
  };
  auto add = [&](const std::string& name, std::vector<int64_t> shape, float scale, bool ones) {
    size_t n = 1;
    for (auto d : shape) n *= size_t(d);
    std::vector<std::byte> b(n * 2);
    auto* p = reinterpret_cast<uint16_t*>(b.data());
    for (size_t i = 0; i < n; ++i) {
      const float u = float(next() >> 40) * (1.0f / 16777216.0f) * 2.f - 1.f;  // [-1, 1)
      p[i] = f32_to_bf16(ones ? 1.0f : u * scale);
    }
    store->add_owned(name, DType::BF16, std::move(shape), std::move(b));
  };
  for (const auto& t : io::hf_tensors(c)) {
    const io::HfRole role = io::hf_role(t.kind);
    const float scale = role == io::HfRole::Bias ? 0.02f : t.kind == io::HfTensor::Down ? 0.015f : 0.035f;
    add(t.name, t.shape, scale, role == io::HfRole::Norm);
  }
  store->set_origin("<random Qwen2.5-0.5B-shaped>");
  return std::make_unique<Model>(c, store);
}

const Model& model(const std::string& name) {
  static std::map<std::string, std::unique_ptr<Model>> cache;
  auto& m = cache[name];
  if (!m) {
    if (name == "qwen05-shape") m = qwen05_shaped();
    else m = load_model(shared_file("models/" + name + "/" + name + ".bin"));
  }
  return *m;
}

std::vector<int32_t> prompt_for(const Model& m) {
  // BOS and a few ordinary ids (the same for every policy, so runs compare).
  std::vector<int32_t> p = {1, 403, 261, 372, 280, 263, 1105 % int32_t(m.vocab())};
  for (auto& t : p) t %= int32_t(m.vocab());
  return p;
}

struct Setup {
  const char* model;
  const char* measure;  // "full" or a Confidence name
  double lambda;
  KvStrategy kv;
  bool tuned = false;   // read out through the tuned lens in $FATHOM_BENCH_LENS
};

// The tuned lens named by $FATHOM_BENCH_LENS (a train_lens output for stories260K), if any.
const lens::TunedLens* bench_lens() {
  static std::unique_ptr<lens::TunedLens> l;
  static bool tried = false;
  if (!tried) {
    tried = true;
    if (const char* p = std::getenv("FATHOM_BENCH_LENS"); p && *p) {
      try {
        l = std::make_unique<lens::TunedLens>(lens::TunedLens::load(p));
      } catch (const Error& e) {
        std::fprintf(stderr, "FATHOM_BENCH_LENS ignored: %s\n", e.what());
      }
    }
  }
  return l.get();
}

template <class P>
void measure(benchmark::State& st, const Model& m, const Setup& s, P& policy) {
  const auto prompt = prompt_for(m);
  Session sess(m, SessionOptions{256, s.kv});
  uint64_t decoded = 0;
  for (auto _ : st) {
    st.PauseTiming();
    sess.reset();
    auto logits = sess.forward(prompt, Phase::PP, policy);
    st.ResumeTiming();
    for (int i = 0; i < kDecode; ++i) {
      const int32_t next = argmax(logits);
      logits = sess.forward(std::span<const int32_t>(&next, 1), Phase::RG, policy);
    }
    decoded += kDecode;
  }
  double mean_exit = double(m.n_layers());
  if constexpr (!std::is_same_v<P, FullDepth>) mean_exit = policy.mean_exit_layer(Phase::RG);
  // Quality (untimed, not on the random model): share of decode steps whose greedy token equals
  // FullDepth's, teacher-forced on FullDepth's greedy continuation.
  if (!std::is_same_v<P, FullDepth> && std::strcmp(s.model, "qwen05-shape") != 0) {
    FullDepth f;
    std::vector<int32_t> ref;
    Session rs(m, SessionOptions{256, s.kv});
    auto lg = rs.forward(prompt, Phase::PP, f);
    for (int i = 0; i < kAgree; ++i) {
      ref.push_back(argmax(lg));
      lg = rs.forward(std::span<const int32_t>(&ref.back(), 1), Phase::RG, f);
    }
    sess.reset();
    lg = sess.forward(prompt, Phase::PP, policy);
    int agree = 0;
    for (int i = 0; i < kAgree; ++i) {
      agree += argmax(lg) == ref[size_t(i)];
      lg = sess.forward(std::span<const int32_t>(&ref[size_t(i)], 1), Phase::RG, policy);
    }
    st.counters["agree"] = double(agree) / kAgree;
  }
  st.counters["tok/s"] = benchmark::Counter(double(decoded), benchmark::Counter::kIsRate);
  st.counters["mean_exit"] = mean_exit;  // blocks run per timed decode token
  st.counters["layers"] = double(m.n_layers());
}

void BM_decode(benchmark::State& st, Setup s) {
  const Model* mp = nullptr;
  const lens::TunedLens* tl = nullptr;
  try {
    mp = &model(s.model);
    if (s.tuned) {
      tl = bench_lens();
      if (tl) tl->check_fits(*mp);
    }
  } catch (const Error& e) {
    st.SkipWithError(e.what());
    return;
  }
  const Model& m = *mp;
  if (std::strcmp(s.measure, "full") == 0) {
    FullDepth f;
    return measure(st, m, s, f);
  }
  const EarlyExitOptions o{parse_confidence(s.measure), s.lambda, 1, 0, /*exit_prompt=*/false};
  if (s.tuned) {
    EarlyExit<lens::TunedLens> ee(m, o, *tl);
    return measure(st, m, s, ee);
  }
  EarlyExit<> ee(m, o);
  measure(st, m, s, ee);
}

const char* kv_name(KvStrategy k) {
  return k == KvStrategy::Propagate ? "propagate" : k == KvStrategy::Exact ? "exact" : "none";
}

int register_all() {
  std::vector<Setup> setups;
  for (const char* m : {"stories260K", "aidreams260K", "qwen05-shape"}) {
    setups.push_back({m, "full", 0, KvStrategy::Propagate});
    setups.push_back({m, "softmax_max", 0.9, KvStrategy::Propagate});
    setups.push_back({m, "softmax_diff", 0.8, KvStrategy::Propagate});
    setups.push_back({m, "state", 0.95, KvStrategy::Propagate});
    setups.push_back({m, "state", 0.95, KvStrategy::Exact});
    setups.push_back({m, "state", 0.95, KvStrategy::None});
  }
  // Lower thresholds on stories260K, through the logit lens and (if given) a tuned lens.
  for (bool tuned : {false, true}) {
    if (tuned && !bench_lens()) break;
    for (double l : {0.9, 0.5, 0.3})
      if (tuned || l != 0.9) setups.push_back({"stories260K", "softmax_max", l, KvStrategy::Propagate, tuned});
    if (tuned) setups.push_back({"stories260K", "softmax_diff", 0.8, KvStrategy::Propagate, tuned});
  }
  for (const auto& s : setups) {
    std::string name = std::string("decode/") + s.model + "/" + s.measure;
    if (std::strcmp(s.measure, "full") != 0)
      name += "/l" + std::to_string(int(s.lambda * 100)) + "/" + kv_name(s.kv) +
              (s.tuned ? "/tuned-lens" : "");
    benchmark::RegisterBenchmark(name.c_str(), BM_decode, s)
        ->Unit(benchmark::kMillisecond)
        ->UseRealTime()
        ->MinTime(std::strcmp(s.model, "qwen05-shape") == 0 ? 3.0 : 0.3);
  }
  return 0;
}
const int registered = register_all();

}  // namespace
