// Batched readouts (lens/batch_readout.hpp): one product per block of tokens gives the same
// logits as the one-token-at-a-time Reader up to summation order, and the same depth profiles
// (top-1, target ranks) and option ranks as the per-token path, on a fixture model with a trained
// tuned lens and on the real stories260K; with a Q8 unembedding, the exact and the model-kernel
// products; bad block sizes and ids are typed errors.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <random>
#include <vector>

#include "fathom/core/shared_path.hpp"
#include "fathom/depth/metrics.hpp"
#include "fathom/io/json.hpp"
#include "fathom/model/load.hpp"
#include "fathom/tokenizer/llama2c_tokenizer.hpp"
#include "thread_scope.hpp"

using namespace fathom;

namespace {
const std::filesystem::path kLensDir =
    std::filesystem::path(FATHOM_SOURCE_DIR) / "tests/fixtures/lens";

// Rank of y among logits counted with a tolerance: [1 + #{v > y + tol}, 1 + #{v > y - tol}].
std::pair<int64_t, int64_t> rank_bounds(std::span<const float> lg, int32_t y, float tol) {
  const float ly = lg[size_t(y)];
  int64_t lo = 1, hi = 1;
  for (float v : lg) lo += v > ly + tol, hi += v > ly - tol;
  return {lo, hi};
}

struct Compare {
  size_t rows = 0, exact = 0, near_tie = 0, wrong = 0;
};

// Batched profiles against per-token ones. A difference is accepted only where the per-token
// logits have a near tie (within 1e-5 relative): the summation order of gemm and gemv differs.
template <class Lens>
Compare compare_profiles(const Model& m, std::span<const int32_t> toks, const Lens& lens,
                         depth::Target target, size_t block_rows) {
  const size_t L = m.n_layers();
  Session a(m), b(m), c(m);
  const auto batched = depth::profile_tokens(a, toks, lens, target, block_rows);
  const auto single = depth::profile_tokens_per_token(b, toks, lens, target);
  REQUIRE(batched.size() == single.size());
  // Per-token logits for the tolerance check, recorded once.
  const auto rec = lens::record_hidden_states(c, toks);
  lens::Reader reader(m);
  std::vector<float> scratch;
  Compare cmp;
  for (size_t t = 0; t < batched.size(); ++t) {
    const auto& x = batched[t];
    const auto& y = single[t];
    CHECK(x.token == y.token);
    for (size_t i = 0; i <= L; ++i) {
      ++cmp.rows;
      const bool same = x.top1[i] == y.top1[i] && x.rank[i] == y.rank[i];
      if (x.target != y.target) {
        ++cmp.wrong;  // only the final readout sets the target: must be explained there
      }
      if (same && x.target == y.target) {
        ++cmp.exact;
        continue;
      }
      auto lg = lens::lens_logits(reader, lens, rec, uint32_t(t), i, scratch);
      float mx = 0;
      for (float v : lg) mx = std::max(mx, std::abs(v));
      const float tol = 1e-5f * std::max(1.f, mx);
      const bool top_ok = std::abs(lg[size_t(x.top1[i])] - lg[size_t(y.top1[i])]) <= tol;
      const auto [lo, hi] = rank_bounds(lg, y.target, tol);
      const bool rank_ok = x.rank[i] >= lo && x.rank[i] <= hi;
      if (top_ok && rank_ok) ++cmp.near_tie;
      else ++cmp.wrong;
    }
  }
  return cmp;
}
}  // namespace

TEST_CASE("batched logits equal the per-token reader up to summation order") {
  for (const char* name : {"llama_f32", "qwen3_bf16_tied"}) {
    CAPTURE(name);
    auto m = load_model(std::filesystem::path(FATHOM_SOURCE_DIR) / "tests/fixtures/models" / name);
    const size_t H = m->hidden(), V = m->vocab(), n = 13;
    std::mt19937 rng(3);
    std::normal_distribution<float> nd(0.f, 1.f);
    std::vector<float> h(n * H);  // [n, hidden]
    for (auto& v : h) v = nd(rng);
    lens::BatchReader br(*m, 16);
    lens::Reader r(*m);
    auto block = br.logits(h.data(), n);
    REQUIRE(block.size() == n * V);
    double worst = 0;
    for (size_t j = 0; j < n; ++j) {
      auto one = r.logits(std::span<const float>(h.data() + j * H, H));
      auto row = br.row(j);
      for (size_t v = 0; v < V; ++v)
        worst = std::max(worst, double(std::abs(one[v] - row[v])) / std::max(1.0, double(std::abs(one[v]))));
      CHECK(lens::top1_id(row) == lens::top_k(one, 1).front().id);
    }
    CHECK(worst < 1e-5);
  }
}

TEST_CASE("Q8 unembedding: Gemm readouts with int8 prompts are the per-token reader's; Exact ones differ by its int8 activations") {
  // Rows::Gemm runs the model's prompt kernels: exact by default (then = Rows::Exact), the int8
  // kernels (= the reader's gemv) under set_exact_prefill(false).
  auto m = load_model(std::filesystem::path(FATHOM_SOURCE_DIR) / "tests/fixtures/models/llama_f32",
                      LoadOptions{WeightFormat::Q8});
  const kernels::MatrixView& U = m->readout().unembed;
  REQUIRE(U.dtype == DType::Q8);
  const size_t H = m->hidden(), V = m->vocab(), n = 11;
  std::mt19937 rng(5);
  std::normal_distribution<float> nd(0.f, 1.f);
  std::vector<float> h(n * H), normed(n * H);  // [n, hidden]
  for (auto& v : h) v = nd(rng);
  (*m->readout().norm)(h.data(), normed.data(), n);
  lens::BatchReader exact(*m, 16), model(*m, 16, kernels::Rows::Gemm);
  CHECK_THROWS_AS(lens::BatchReader(*m, 16, kernels::Rows::AsGemv), UsageError);
  lens::Reader r(*m);
  const auto be = exact.logits(h.data(), n);
  const std::vector<float> e(be.begin(), be.end());
  {
    PrefillScope exact_prompts(true);
    const auto bd = model.logits(h.data(), n);
    CHECK(std::memcmp(bd.data(), e.data(), n * V * sizeof(float)) == 0);
  }
  DecodeBitsPrompts int8_prompts;
  const auto bm = model.logits(h.data(), n);
  size_t differ = 0;
  for (size_t j = 0; j < n; ++j) {
    const auto one = r.logits(std::span<const float>(h.data() + j * H, H));
    // Q8 gemm rows are gemv's bit for bit
    CHECK(std::memcmp(one.data(), bm.data() + j * V, V * sizeof(float)) == 0);
    // The int8 activations of the reader: x within half a step d = amax(block) / 127 of its value
    const float* x = normed.data() + j * H;
    std::vector<double> half_step(H);
    for (size_t b = 0; b < H; b += kernels::kQ8Block) {
      float amax = 0;
      for (size_t c = b; c < std::min(H, b + kernels::kQ8Block); ++c) amax = std::max(amax, std::abs(x[c]));
      for (size_t c = b; c < std::min(H, b + kernels::kQ8Block); ++c) half_step[c] = amax / 127.0 / 2;
    }
    for (size_t v = 0; v < V; ++v) {
      double bound = 0, mag = 0;
      for (size_t c = 0; c < H; ++c) {
        bound += std::abs(double(U.at(v, c))) * half_step[c];
        mag += std::abs(double(U.at(v, c)) * x[c]);
      }
      const double d = std::abs(double(e[j * V + v]) - one[v]);
      differ += d > 0;
      if (!(d <= bound * 1.001 + 1e-5 * mag)) {
        FAIL_CHECK("row " << j << " token " << v << ": exact " << e[j * V + v] << ", reader " << one[v]);
        break;
      }
    }
  }
  CHECK(differ > 0);  // the two products do differ: the option reaches the kernel
}

TEST_CASE("BatchReader::ranks = top1_id, the target logits and rank_of of logits(), bit for bit") {
  // Exact products: reduced inside the product (kernels::gemm_rank), the logits never written;
  // Gemm products: the block scanned. f32 and Q8 unembeddings; a row without target.
  for (WeightFormat wf : {WeightFormat::F32, WeightFormat::Q8}) {
    auto m = load_model(std::filesystem::path(FATHOM_SOURCE_DIR) / "tests/fixtures/models/llama_f32",
                        LoadOptions{wf});
    const size_t H = m->hidden(), V = m->vocab(), n = 29, T = 2;
    std::mt19937 rng(9);
    std::normal_distribution<float> nd(0.f, 1.f);
    std::vector<float> h(n * H);  // [n, hidden]
    for (auto& v : h) v = nd(rng);
    std::vector<int32_t> targets(n * T);
    for (size_t i = 0; i < targets.size(); ++i) targets[i] = int32_t(i * 37 % V);
    targets[5] = -1;
    for (auto how : {kernels::Rows::Exact, kernels::Rows::Gemm}) {
      CAPTURE(int(how));
      lens::BatchReader br(*m, 32, how);
      const auto block = br.logits(h.data(), n);
      const std::vector<float> lg(block.begin(), block.end());
      for (int threads : {1, 2}) {
        ThreadScope ts(threads);
        const auto& r = br.ranks(h.data(), n, targets, T);
        for (size_t j = 0; j < n; ++j) {
          const std::span<const float> row(lg.data() + j * V, V);
          CHECK(r.top1[j] == lens::top1_id(row));
          for (size_t t = 0; t < T; ++t) {
            const int32_t id = targets[j * T + t];
            if (id < 0) {
              CHECK(r.rank[j * T + t] == 0);
              continue;
            }
            CHECK(std::memcmp(&r.logit[j * T + t], &row[size_t(id)], 4) == 0);
            CHECK(r.rank[j * T + t] == lens::rank_of(row, id));
          }
        }
      }
    }
    lens::BatchReader br(*m, 32);
    std::vector<int32_t> bad(n, int32_t(V));
    CHECK_THROWS_AS(br.ranks(h.data(), n, bad, 1), UsageError);
    CHECK_THROWS_AS(br.ranks(h.data(), n, targets, 1), UsageError);  // 2n ids for n rows x 1
  }
}

TEST_CASE("top1_id breaks ties towards the lower id, as top_k does") {
  const std::vector<float> lg = {0.5f, 3.0f, -1.0f, 3.0f};
  CHECK(lens::top1_id(lg) == 1);
  CHECK(lens::top_k(lg, 1).front().id == 1);
}

TEST_CASE("batched profiles equal per-token profiles (fixture model, tuned and logit lens)") {
  auto m = load_model(kLensDir / "model");
  const auto tuned = lens::TunedLens::load(kLensDir / "lens");
  tuned.check_fits(*m);
  std::mt19937 rng(11);
  std::uniform_int_distribution<int32_t> d(3, int32_t(m->vocab()) - 1);
  std::vector<int32_t> toks(40);
  toks[0] = 1;
  for (size_t t = 1; t < toks.size(); ++t) toks[t] = d(rng);
  for (size_t rows : {size_t(1), size_t(7), size_t(64)}) {  // one block, several, ragged last
    CAPTURE(rows);
    for (auto target : {depth::Target::FinalTop1, depth::Target::NextToken}) {
      auto ct = compare_profiles(*m, toks, tuned, target, rows);
      CHECK(ct.wrong == 0);
      CHECK(ct.exact + ct.near_tie == ct.rows);
      auto cl = compare_profiles(*m, toks, lens::LogitLens{m->n_layers()}, target, rows);
      CHECK(cl.wrong == 0);
    }
  }
}

TEST_CASE("batched option ranks equal ranks read one readout at a time") {
  auto m = load_model(kLensDir / "model");
  const auto tuned = lens::TunedLens::load(kLensDir / "lens");
  const std::vector<int32_t> prompt = {1, 40, 41, 42, 7, 9};
  const std::vector<int32_t> options = {10, 20, 30, 44};
  Session s(*m), ref(*m);
  const auto r = depth::option_ranks(s, prompt, options, tuned);
  const size_t L = m->n_layers();
  lens::read_all_layers(
      ref, prompt, tuned,
      [&](uint32_t slot, size_t i, std::span<const float> lg) {
        if (slot + 1 != prompt.size()) return;
        for (size_t o = 0; o < options.size(); ++o) {
          CAPTURE(i);
          CHECK(r.vocab[i][o] == lens::rank_of(lg, options[o]));
        }
      },
      Phase::PP, Logits::All);
  CHECK(r.vocab.size() == L + 1);
}

TEST_CASE("stories260K: batched profiles equal per-token profiles on TinyStories text") {
  auto m = load_model(shared_file("models/stories260K/stories260K.bin"));
  auto tok = tok::Llama2cTokenizer::load(shared_file("models/stories260K/tok512.bin"), m->vocab());
  const auto text = read_text_file(shared_file("data/tinystories/TinyStories-valid-head30KB.txt"));
  auto ids = tok.encode(text.substr(0, 4000), false);
  ids.resize(std::min<size_t>(ids.size(), 255));
  ids.insert(ids.begin(), 1);
  for (auto target : {depth::Target::FinalTop1, depth::Target::NextToken}) {
    auto c = compare_profiles(*m, ids, lens::LogitLens{m->n_layers()}, target, 100);
    MESSAGE("stories260K readouts: " << c.rows << " compared, " << c.exact << " identical, "
                                     << c.near_tie << " differ at a near tie");
    CHECK(c.wrong == 0);
    CHECK(c.rows == (ids.size() - (target == depth::Target::NextToken)) * (m->n_layers() + 1));
  }
}

TEST_CASE("batched readout: bad block sizes and ids are usage errors") {
  auto m = load_model(kLensDir / "model");
  CHECK_THROWS_AS(lens::BatchReader(*m, 0), UsageError);
  lens::BatchReader br(*m, 2);
  std::vector<float> h(3 * m->hidden(), 0.5f);
  CHECK_THROWS_AS(br.logits(h.data(), 3), UsageError);
  Session s(*m);
  const std::vector<int32_t> bad = {1, 5, int32_t(m->vocab()) + 3};
  CHECK_THROWS_AS(depth::profile_tokens(s, bad, lens::LogitLens{m->n_layers()},
                                        depth::Target::NextToken),
                  Error);
  Session s2(*m);
  const std::vector<int32_t> prompt = {1, 5, 6};
  const std::vector<int32_t> opts = {4, int32_t(m->vocab())};
  CHECK_THROWS_AS(depth::option_ranks(s2, prompt, opts, lens::LogitLens{m->n_layers()}), UsageError);
  lens::SiteRecorder rec(lens::hidden_state_sites(m->n_layers()), m->hidden());
  CHECK_THROWS_AS(rec.rows(0, 0, 1), UsageError);
}
