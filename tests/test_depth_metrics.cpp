// Depth metrics against hand-made distributions: first crossing, earliest-layer curve, frequency
// ranks and buckets, bucket shares, decision flips; profiles and option ranks on a tiny model
// agree with direct readouts; their per-readout summaries and the multiple-choice prompt file.
#include <doctest/doctest.h>

#include <cmath>
#include <algorithm>
#include <filesystem>
#include <fstream>
#include <vector>

#include "fathom/depth/metrics.hpp"
#include "fathom/eval/mc_prompts.hpp"
#include "fathom/eval/rank_summary.hpp"
#include "fathom/model/load.hpp"

using namespace fathom;
using namespace fathom::depth;

namespace {
std::filesystem::path fixture(const char* name) {
  return std::filesystem::path(FATHOM_SOURCE_DIR) / "tests/fixtures/models" / name;
}
// A tokenizer stand-in: every character is a token (ids = byte values).
struct CharTokenizer {
  std::vector<int32_t> encode(const std::string& s, bool) const {
    return std::vector<int32_t>(s.begin(), s.end());
  }
};
}  // namespace

TEST_CASE("first crossing and the earliest-layer curve") {
  const std::vector<int64_t> r = {500, 40, 3, 7, 1};
  CHECK(first_crossing(r, 1) == 4);
  CHECK(first_crossing(r, 5) == 2);   // first crossing, although rank 7 follows
  CHECK(first_crossing(r, 40) == 1);
  CHECK(first_crossing(r, 10000) == 0);
  CHECK(first_crossing(std::vector<int64_t>{9, 8}, 2) == -1);
  const std::vector<std::vector<int64_t>> items = {{500, 40, 3, 7, 1}, {2, 1, 1, 1, 1}, {9, 9, 9, 9, 9}};
  const std::vector<int64_t> ks = {1, 5, 9};
  auto c = earliest_layer_curve(items, ks);
  CHECK(c.items == 3);
  CHECK(c.crossed == std::vector<size_t>{2, 2, 3});
  CHECK(c.mean_layer[0] == doctest::Approx((4 + 1) / 2.0));
  CHECK(c.mean_layer[1] == doctest::Approx((2 + 0) / 2.0));
  CHECK(c.mean_layer[2] == doctest::Approx((2 + 0 + 0) / 3.0));
  auto none = earliest_layer_curve({{5, 5}}, std::vector<int64_t>{1});
  CHECK(std::isnan(none.mean_layer[0]));
  auto ks_default = default_ks();
  CHECK(ks_default.front() == 1);
  CHECK(ks_default.back() == 10000);
  CHECK(ks_default.size() == 37);
  CHECK(std::is_sorted(ks_default.begin(), ks_default.end()));
}

TEST_CASE("frequency ranks, buckets, shares and flips") {
  TokenFrequency f;
  // Token id i appears (2000 - i) times for i in 0..1199: rank of id i is i + 1.
  std::vector<int32_t> ids;
  for (int32_t i = 0; i < 1200; ++i) ids.insert(ids.end(), size_t(2000 - i), i);
  f.add(ids);
  CHECK(f.rank(0) == 1);
  CHECK(f.rank(9) == 10);
  CHECK(f.rank(10) == 11);
  CHECK(f.rank(1199) == 1200);
  CHECK(f.rank(5000) == 1201);  // unseen
  CHECK(f.bucket(9) == 0);
  CHECK(f.bucket(10) == 1);
  CHECK(f.bucket(99) == 1);
  CHECK(f.bucket(100) == 2);
  CHECK(f.bucket(999) == 2);
  CHECK(f.bucket(1000) == 3);
  CHECK(f.bucket(5000) == 3);
  // Ties: lower id first.
  TokenFrequency t;
  t.add(std::vector<int32_t>{7, 3, 3, 7, 5});
  CHECK(t.rank(3) == 1);
  CHECK(t.rank(7) == 2);
  CHECK(t.rank(5) == 3);

  // Three readouts (L = 2); final top-1 is the last entry.
  BucketStats b(3, f);
  b.add(std::vector<int32_t>{0, 50, 50});     // buckets 0, 1, 1; layer 0 flips
  b.add(std::vector<int32_t>{1, 2, 500});     // buckets 0, 0, 2; layers 0, 1 flip
  b.add(std::vector<int32_t>{5000, 500, 500});  // buckets 3, 2, 2; layer 0 flips
  b.add(std::vector<int32_t>{3, 3, 3});       // bucket 0 everywhere, no flips
  CHECK(b.tokens() == 4);
  CHECK(b.share(0, 0) == doctest::Approx(0.75));
  CHECK(b.share(0, 3) == doctest::Approx(0.25));
  CHECK(b.share(1, 0) == doctest::Approx(0.5));
  CHECK(b.share(1, 1) == doctest::Approx(0.25));
  CHECK(b.share(1, 2) == doctest::Approx(0.25));
  CHECK(b.share(2, 2) == doctest::Approx(0.5));
  CHECK(b.flip_ratio(0, 0) == doctest::Approx(2.0 / 3.0));
  CHECK(b.flip_ratio(0, 3) == doctest::Approx(1.0));
  CHECK(b.flip_ratio(1, 0) == doctest::Approx(0.5));
  CHECK(std::isnan(b.flip_ratio(1, 3)));
  CHECK(b.flip_ratio(0) == doctest::Approx(0.75));
  CHECK(b.flip_ratio(2) == 0.0);
  CHECK_THROWS_AS(b.add(std::vector<int32_t>{1, 2}), UsageError);

  TokenFrequency c;
  const auto path = std::filesystem::temp_directory_path() / "fathom-depth-freq.txt";
  {
    std::ofstream o(path);
    o << "aab\nb\n\nbc\n";
  }
  c.add_text_file(CharTokenizer{}, path);
  CHECK(c.count('b') == 3);
  CHECK(c.count('a') == 2);
  CHECK(c.rank('b') == 1);
  CHECK(c.rank('c') == 3);
  std::filesystem::remove(path);
}

TEST_CASE("token profiles and option ranks agree with direct readouts") {
  auto model = load_model(fixture("llama_f32"));
  const size_t L = model->n_layers(), V = model->vocab();
  const std::vector<int32_t> toks = {1, 30, 31, 32, 99, 100};
  lens::LogitLens ll{L};
  Session s(*model);
  auto prof = profile_tokens(s, toks, ll, Target::FinalTop1);
  REQUIRE(prof.size() == toks.size());
  Session ref(*model);
  auto lg = ref.forward(toks, Phase::PP, Logits::All);
  for (size_t t = 0; t < toks.size(); ++t) {
    CAPTURE(t);
    const auto top = lens::top_k(lg.subspan(t * V, V), 1).front().id;
    CHECK(prof[t].target == top);
    CHECK(prof[t].top1[L] == top);
    CHECK(prof[t].rank[L] == 1);
  }
  Session s2(*model);
  auto next = profile_tokens(s2, toks, ll, Target::NextToken);
  REQUIRE(next.size() == toks.size() - 1);
  CHECK(next[0].target == 30);
  CHECK(next[0].rank[L] == lens::rank_of(lg.subspan(0, V), 30));

  const std::vector<int32_t> options = {65, 66, 67, 68};
  Session s3(*model);
  auto r = option_ranks(s3, toks, options, ll);
  REQUIRE(r.vocab.size() == L + 1);
  const auto last = lg.subspan((toks.size() - 1) * V, V);
  for (size_t o = 0; o < options.size(); ++o) CHECK(r.vocab[L][o] == lens::rank_of(last, options[o]));
  for (size_t i = 0; i <= L; ++i) {
    std::vector<int> among = r.among[i];
    std::sort(among.begin(), among.end());
    CHECK(among.front() == 1);
  }
  CHECK(option_first_tokens(CharTokenizer{}, {"A", "Bx"}) == std::vector<int32_t>{'A', 'B'});
  CHECK_THROWS_AS(option_first_tokens(CharTokenizer{}, {""}), UsageError);
  CHECK(option_tokens_after(CharTokenizer{}, "Q:", {" A", "B"}) == std::vector<int32_t>{' ', 'B'});
  CHECK_THROWS_AS(option_tokens_after(CharTokenizer{}, "Q:", {""}), UsageError);
}

TEST_CASE("token counts save and load round trip") {
  TokenFrequency f;
  f.add(std::vector<int32_t>{5, 5, 5, 2, 9, 9, 0});
  const auto path = std::filesystem::temp_directory_path() / "fathom-token-counts.txt";
  f.save(path, 16, "test\ncorpus");
  auto g = TokenFrequency::load(path, 16);
  CHECK(g.distinct() == 4);
  for (int32_t id : {0, 2, 5, 9, 7}) {
    CAPTURE(id);
    CHECK(g.count(id) == f.count(id));
    CHECK(g.rank(id) == f.rank(id));
  }
  std::filesystem::remove(path);
}

namespace {
void write_counts(const std::filesystem::path& p, const std::string& body) {
  std::ofstream o(p);
  o << body;
}
}  // namespace

TEST_CASE("token counts: bad files are typed errors naming the field") {
  const auto p = std::filesystem::temp_directory_path() / "fathom-token-counts-bad.txt";
  const std::string head = "fathom-token-counts 1\nvocab 16\nsource x\n";
  CHECK_THROWS_AS(TokenFrequency::load(p.string() + ".missing", 16), IoError);
  write_counts(p, "something else\n");
  CHECK_THROWS_AS(TokenFrequency::load(p, 16), FormatError);
  write_counts(p, "fathom-token-counts 1\n");
  CHECK_THROWS_AS(TokenFrequency::load(p, 16), FormatError);
  write_counts(p, "fathom-token-counts 1\nvocab 32\nsource x\n1 2\n");
  CHECK_THROWS_AS(TokenFrequency::load(p, 16), UsageError);  // counted with another tokenizer
  write_counts(p, head + "16 3\n");
  CHECK_THROWS_AS(TokenFrequency::load(p, 16), FormatError);  // id outside the vocabulary
  write_counts(p, head + "3 0\n");
  CHECK_THROWS_AS(TokenFrequency::load(p, 16), FormatError);  // count not positive
  write_counts(p, head + "3 x\n");
  CHECK_THROWS_AS(TokenFrequency::load(p, 16), FormatError);
  write_counts(p, head + "3 4\n3 5\n");
  CHECK_THROWS_AS(TokenFrequency::load(p, 16), FormatError);  // listed twice
  write_counts(p, head + "3 4\n");
  CHECK(TokenFrequency::load(p, 16).count(3) == 4);
  std::filesystem::remove(p);
}

TEST_CASE("target-rank summary: mean log10 rank, upper median and top-1 share per readout") {
  // 4 tokens, 3 readouts.
  const std::vector<std::vector<int64_t>> tr = {{1000, 10, 1}, {100, 1, 1}, {10, 1, 1}, {1, 100, 2}};
  const auto s = eval::summarize_target_ranks(tr);
  CHECK(s.items == 4);
  REQUIRE(s.mean_log10_rank.size() == 3);
  CHECK(s.mean_log10_rank[0] == doctest::Approx((3 + 2 + 1 + 0) / 4.0));
  CHECK(s.mean_log10_rank[1] == doctest::Approx((1 + 0 + 0 + 2) / 4.0));
  CHECK(s.mean_log10_rank[2] == doctest::Approx(std::log10(2.0) / 4.0));
  CHECK(s.median_rank == std::vector<int64_t>{100, 10, 1});  // element 2 of 4 sorted
  CHECK(s.top1_share == std::vector<double>{0.25, 0.5, 0.75});
  CHECK_THROWS_AS(eval::summarize_target_ranks({}), UsageError);
  CHECK_THROWS_AS(eval::summarize_target_ranks({{1, 2}, {1}}), UsageError);
}

TEST_CASE("option-rank summary: the answer against the other options per readout") {
  // 2 readouts, 3 options.
  OptionRanks a;
  a.option_tokens = {7, 8, 9};
  a.vocab = {{10, 100, 1000}, {1, 10, 100}};
  a.among = {{1, 2, 3}, {1, 2, 3}};
  OptionRanks b = a;
  b.vocab = {{1, 10, 10}, {100, 1, 1}};
  b.among = {{1, 2, 2}, {3, 1, 1}};
  eval::OptionRankSummary s(2);
  s.add(a, 0);   // answer: option 0
  s.add(b, -1);  // no answer: all three are "other"
  CHECK(s.items() == 2);
  CHECK(s.answers() == 1);
  CHECK(s.answer_log10_rank(0) == doctest::Approx(1.0));
  CHECK(s.answer_log10_rank(1) == doctest::Approx(0.0));
  CHECK(s.answer_among_rank(0) == doctest::Approx(1.0));
  CHECK(s.other_log10_rank(0) == doctest::Approx((2 + 3 + 0 + 1 + 1) / 5.0));
  CHECK(s.other_log10_rank(1) == doctest::Approx((1 + 2 + 2 + 0 + 0) / 5.0));
  CHECK_THROWS_AS(s.add(a, 3), UsageError);
  eval::OptionRankSummary none(2);
  none.add(b, -1);
  CHECK(std::isnan(none.answer_log10_rank(0)));
  CHECK(std::isnan(none.answer_among_rank(1)));
}

TEST_CASE("multiple-choice prompts: JSON Lines, optional answer, errors name the line") {
  const auto items = eval::parse_mc_jsonl(
      "{\"prompt\": \"Q: 2+2?\\nAnswer:\", \"options\": [\" 3\", \" 4\"], \"answer\": 1}\n"
      "\n  \r\n"
      "{\"prompt\": \"Sky:\", \"options\": [\" blue\"]}\r\n",
      "mc.jsonl");
  REQUIRE(items.size() == 2);
  CHECK(items[0].prompt == "Q: 2+2?\nAnswer:");
  CHECK(items[0].options == std::vector<std::string>{" 3", " 4"});
  CHECK(items[0].answer == 1);
  CHECK(items[0].where == "mc.jsonl:1");
  CHECK(items[1].answer == -1);
  CHECK(items[1].where == "mc.jsonl:4");
  auto error = [](const std::string& text) {
    try {
      eval::parse_mc_jsonl(text, "mc.jsonl");
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  CHECK(error("{\"prompt\": \"x\", \"options\": [\"a\"]}\n{\"options\": [\"a\"]}") ==
        "mc.jsonl:2: prompt: expected an object with a string \"prompt\"");
  CHECK(error("{\"prompt\": \"x\", \"options\": []}") ==
        "mc.jsonl:1: options: expected a non-empty array of strings");
  CHECK(error("{\"prompt\": \"x\", \"options\": [1]}") == "mc.jsonl:1: options: expected strings");
  CHECK(error("{\"prompt\": \"x\", \"options\": [\"a\"], \"answer\": 1}") ==
        "mc.jsonl:1: answer: expected an index into options");
  CHECK(error("{\"prompt\": \"x\", \"options\": [\"a\"], \"answer\": -1}") ==
        "mc.jsonl:1: answer: expected an index into options");
  CHECK(error("\n\n") == "mc.jsonl: no multiple-choice items");
  CHECK_THROWS_AS(eval::parse_mc_jsonl("{\"prompt\": ", "mc.jsonl"), FormatError);
  CHECK_THROWS_AS(eval::read_mc_jsonl("/nonexistent/mc.jsonl"), IoError);
}
