// The skip-vs-accuracy tools: static:... policies (parsing, list splitting, layers not run),
// fixed item subsets (stratified, spread), ShortGPT's layer similarity against the model's own
// taps, the per-position layer-usage buckets and their SVG, GPQA text kept as the dataset has it,
// and the frontier table joined from calibration, timing and results files.
#include "fixture_util.hpp"

#include <set>

#include "fathom/depth/lac.hpp"
#include "fathom/depth/layer_similarity.hpp"
#include "fathom/eval/decode_timing.hpp"
#include "fathom/eval/frontier.hpp"
#include "fathom/eval/gpqa.hpp"
#include "fathom/eval/policies.hpp"
#include "fathom/eval/subset.hpp"
#include "fathom/report/usage_buckets.hpp"
#include "fathom/tokenizer/any_tokenizer.hpp"
#include "fathom/core/shared_path.hpp"

using namespace fathom;
using namespace fathom::eval;

TEST_CASE("registry: early exit, lens readout and cosine skip by name; bad names are UsageErrors") {
  CHECK(parse_policy("early-exit:0.9").name == "early-exit:softmax_max:0.9");
  const auto st = parse_policy("early-exit:state:0.95");
  CHECK(st.kind == PolicySpec::Kind::EarlyExit);
  CHECK(st.measure == Confidence::State);
  CHECK(st.alpha == 0.95);
  CHECK(parse_policy("logit-lens:3").index == 3);
  CHECK(parse_policy("cos-skip:0.5").kind == PolicySpec::Kind::CosineSkip);
  CHECK_THROWS_AS(parse_policy("early-exit:entropy:0.5"), UsageError);
  CHECK_THROWS_AS(parse_policy("early-exit"), UsageError);
  CHECK_THROWS_AS(parse_policy("logit-lens:1.5"), UsageError);
  CHECK_THROWS_AS(parse_policy("cos-skip:x"), UsageError);
  auto model = load_model(fixtures::model_dir("llama_f32"));
  const auto too_deep = parse_policy("logit-lens:" + std::to_string(model->n_layers() + 1));
  CHECK_THROWS_AS(make_evaluator(*model, too_deep), UsageError);
  // logit-lens:L reads the model's own output: full depth.
  Session a(*model), b(*model);
  const int32_t prompt[] = {1, 2, 3};
  FullDepth full;
  const auto want = a.forward(prompt, Phase::PP, full);
  const std::vector<float> w(want.begin(), want.end());
  with_policy(*model, parse_policy("logit-lens:" + std::to_string(model->n_layers())), [&](auto& pol) {
    const auto got = b.forward(prompt, Phase::PP, pol);
    CHECK(std::vector<float>(got.begin(), got.end()) == w);
  });
}

TEST_CASE("static policy: per-phase sets, canonical name, both-phase shorthand") {
  const auto p = parse_policy("static:pp=7,1,4;rg=2");
  CHECK(p.kind == PolicySpec::Kind::Static);
  CHECK(p.skip_pp == std::set<int>{1, 4, 7});
  CHECK(p.skip_rg == std::set<int>{2});
  CHECK(p.name == "static:pp=1,4,7;rg=2");
  const auto both = parse_policy("static:3,5");
  CHECK(both.skip_pp == std::set<int>{3, 5});
  CHECK(both.skip_rg == std::set<int>{3, 5});
  const auto none = parse_policy("static:pp=;rg=0");
  CHECK(none.skip_pp.empty());
  CHECK(none.name == "static:pp=;rg=0");
}

TEST_CASE("policy lists: a static set's commas do not split the list") {
  const auto l = parse_policies("full,static:pp=1,4,7;rg=2,3,lac:0.8,static:0,1");
  REQUIRE(l.size() == 4);
  CHECK(l[0].name == "full");
  CHECK(l[1].name == "static:pp=1,4,7;rg=2,3");
  CHECK(l[2].name == "lac:0.8");
  CHECK(l[3].name == "static:pp=0,1;rg=0,1");
  CHECK_THROWS_AS(parse_policies("static:1,2,static:pp=2,1;rg=1,2"), UsageError);  // listed twice
}

TEST_CASE("static policy: bad layer numbers and keys are UsageErrors") {
  CHECK_THROWS_WITH_AS(parse_policy("static"), doctest::Contains("needs its layers"), UsageError);
  CHECK_THROWS_WITH_AS(parse_policy("static:pp=1,x"), doctest::Contains("bad layer 'x'"), UsageError);
  CHECK_THROWS_WITH_AS(parse_policy("static:pp=-1"), doctest::Contains("bad layer"), UsageError);
  CHECK_THROWS_WITH_AS(parse_policy("static:pp=1;pp=2"), doctest::Contains("at most once"), UsageError);
  CHECK_THROWS_WITH_AS(parse_policy("static:xx=1"), doctest::Contains("bad static set"), UsageError);
  CHECK_THROWS_WITH_AS(parse_policy("static:pp=1,,2"), doctest::Contains("bad layer ''"), UsageError);
}

TEST_CASE("static policy on a model: the listed layers are not run, per phase; out of range is a UsageError") {
  auto model = load_model(fixtures::model_dir("qwen2_f32"));
  const size_t L = model->n_layers();
  REQUIRE(L >= 2);
  const auto spec = parse_policy("static:pp=0;rg=1");
  Trace trace(L);
  Session s(*model);
  s.set_trace(&trace);
  const int32_t prompt[] = {1, 2, 3}, next = 4;
  with_policy(*model, spec, [&](auto& pol) {
    s.forward(prompt, Phase::PP, pol);
    s.forward(std::span<const int32_t>(&next, 1), Phase::RG, pol);
  });
  CHECK(trace.usage(Phase::PP).executed[0] == 0);
  CHECK(trace.usage(Phase::PP).executed[1] == 1);
  CHECK(trace.usage(Phase::RG).executed[0] == 1);
  CHECK(trace.usage(Phase::RG).executed[1] == 0);
  CHECK(trace.usage(Phase::PP).tokens == 3);
  const auto bad = parse_policy("static:pp=" + std::to_string(L));
  CHECK_THROWS_AS(make_evaluator(*model, bad), UsageError);
}

namespace {
std::vector<Item> items_by_subject(const std::vector<std::pair<std::string, size_t>>& sizes) {
  std::vector<Item> v;
  for (auto& [subj, n] : sizes)
    for (size_t i = 0; i < n; ++i) {
      Item it;
      it.subject = subj;
      it.id = subj + "/" + std::to_string(i);
      v.push_back(it);
    }
  return v;
}
}  // namespace

TEST_CASE("stratified subset: proportional per subject, seeded, in the task's order") {
  const auto items = items_by_subject({{"a", 100}, {"b", 50}, {"c", 10}});
  const auto s = stratified_subset(items, 16, 7);
  REQUIRE(s.size() == 16);
  std::map<std::string, int> per;
  for (auto& it : s) ++per[it.subject];
  CHECK(per["a"] == 10);
  CHECK(per["b"] == 5);
  CHECK(per["c"] == 1);
  // The task's order: subjects in sequence, rows ascending within a subject.
  for (size_t i = 1; i < s.size(); ++i) {
    if (s[i].subject != s[i - 1].subject) continue;
    CHECK(std::stoi(s[i - 1].id.substr(2)) < std::stoi(s[i].id.substr(2)));
  }
  // Same seed, same items; another seed, other items.
  const auto again = stratified_subset(items, 16, 7), other = stratified_subset(items, 16, 8);
  std::vector<std::string> ids, ids2, ids3;
  for (auto& it : s) ids.push_back(it.id);
  for (auto& it : again) ids2.push_back(it.id);
  for (auto& it : other) ids3.push_back(it.id);
  CHECK(ids == ids2);
  CHECK(ids != ids3);
  // A subset of a subset's size: nested samples keep their items (same ranking per subject).
  CHECK(stratified_subset(items, 1000, 7).size() == items.size());
  CHECK_THROWS_AS(stratified_subset(items, 0, 7), UsageError);
}

TEST_CASE("spread items: one question from evenly spaced subjects, then further rounds") {
  const auto items = items_by_subject({{"a", 3}, {"b", 3}, {"c", 3}, {"d", 3}, {"e", 1}});
  auto ids = [](const std::vector<Item>& v) {
    std::vector<std::string> o;
    for (auto& it : v) o.push_back(it.id);
    return o;
  };
  CHECK(ids(spread_items(items, 2)) == std::vector<std::string>{"a/0", "c/0"});
  CHECK(ids(spread_items(items, 5)) == std::vector<std::string>{"a/0", "b/0", "c/0", "d/0", "e/0"});
  // Round 2 picks from subjects 0 and 2 of 5 (e has no second question; c has).
  CHECK(ids(spread_items(items, 7)) ==
        std::vector<std::string>{"a/0", "b/0", "c/0", "d/0", "e/0", "a/1", "c/1"});
  CHECK(spread_items(items, 100).size() == 13);
}

namespace {
// Cosine of each layer's input and output per token, from the model's own resid_pre / resid_post taps.
struct CosineTaps {
  static constexpr bool enabled = true;
  std::map<std::pair<uint32_t, int>, std::vector<float>> pre;  // (slot, layer) -> h_{l-1}
  std::vector<double> sum;
  std::vector<uint64_t> n;
  void on_tap(Tap t, int layer, const TapView& v) {
    if (t != Tap::resid_pre && t != Tap::resid_post) return;
    for (size_t r = 0; r < v.rows; ++r) {
      const std::span<const float> row(v.row(r), v.cols);
      if (t == Tap::resid_pre) {
        pre[{v.slots[r], layer}] = {row.begin(), row.end()};
      } else {
        if (sum.size() <= size_t(layer)) sum.resize(size_t(layer) + 1), n.resize(size_t(layer) + 1);
        const auto& x = pre.at({v.slots[r], layer});
        double xy = 0, xx = 0, yy = 0;  // by hand, in double
        for (size_t i = 0; i < row.size(); ++i)
          xy += double(x[i]) * row[i], xx += double(x[i]) * x[i], yy += double(row[i]) * row[i];
        sum[size_t(layer)] += xy / std::sqrt(xx * yy);
        ++n[size_t(layer)];
      }
    }
  }
};
}  // namespace

TEST_CASE("layer similarity: cos(h_{l-1}, h_l) equals the taps' and leaves LAC's decisions alone") {
  auto model = load_model(fixtures::model_dir("qwen2_f32"));
  const size_t L = model->n_layers();
  const int32_t prompt[] = {5, 17, 99, 3, 42}, next = 7;
  // Reference: FullDepth with taps.
  CosineTaps taps;
  {
    Session s(*model);
    FullDepth full;
    s.forward(prompt, Phase::PP, full, taps);
    s.forward(std::span<const int32_t>(&next, 1), Phase::RG, full, taps);
  }
  // LayerSimilarity around final-state LAC, and plain LAC for its decisions.
  Trace t1(L), t2(L);
  LayerCosines cos(L);
  LAC lac1(0.8, LacMode::FinalState), lac2(0.8, LacMode::FinalState);
  LayerSimilarity<LAC> sim(lac1, cos);
  Session a(*model), b(*model);
  a.set_trace(&t1);
  b.set_trace(&t2);
  a.forward(prompt, Phase::PP, sim);
  a.forward(std::span<const int32_t>(&next, 1), Phase::RG, sim);
  b.forward(prompt, Phase::PP, lac2);
  b.forward(std::span<const int32_t>(&next, 1), Phase::RG, lac2);
  REQUIRE(taps.sum.size() == L);
  const auto mean = cos.mean();
  for (size_t l = 0; l < L; ++l) {
    CHECK(cos.count[0][l] == 5);
    CHECK(cos.count[1][l] == 1);
    CHECK(mean[l] == doctest::Approx(taps.sum[l] / double(taps.n[l])).epsilon(1e-12));
    CHECK(mean[l] > -1.0);
    CHECK(mean[l] < 1.0);
  }
  REQUIRE(t1.records().size() == t2.records().size());
  for (size_t i = 0; i < t1.records().size(); ++i)
    for (size_t l = 0; l < L; ++l)
      CHECK(t1.records()[i].layers[l].activated == t2.records()[i].layers[l].activated);
}

TEST_CASE("shortgpt: the k layers with the highest mean cosine, ties to the lower layer") {
  const std::vector<double> c = {0.5, 0.9, 0.1, 0.9, 0.95, NAN};
  CHECK(shortgpt_layers(c, 0).empty());
  CHECK(shortgpt_layers(c, 1) == std::set<int>{4});
  CHECK(shortgpt_layers(c, 2) == std::set<int>{1, 4});
  CHECK(shortgpt_layers(c, 3) == std::set<int>{1, 3, 4});
  CHECK(shortgpt_layers(c, 5) == std::set<int>{0, 1, 2, 3, 4});
  CHECK_THROWS_WITH_AS(shortgpt_layers(c, 6), doctest::Contains("5 have calibration data"), UsageError);
}

namespace {
TokenRecord rec(int64_t seq, int64_t pos, Phase ph, std::vector<bool> act) {
  TokenRecord r;
  r.sequence = seq, r.position = pos, r.phase = ph;
  for (bool a : act) r.layers.push_back(LayerRecord{true, a, 1.f, 0.f, 0.f});
  return r;
}
}  // namespace

TEST_CASE("usage buckets: PP by relative position, RG by generated step") {
  std::vector<TokenRecord> r;
  for (int p = 0; p < 10; ++p) r.push_back(rec(0, p, Phase::PP, {p < 5, true}));   // 10-token prompt
  for (int p = 0; p < 4; ++p) r.push_back(rec(1, p, Phase::PP, {true, p == 3}));    // 4-token prompt
  for (int s = 0; s < 5; ++s) r.push_back(rec(0, 10 + s, Phase::RG, {s < 3, false})); // 5 steps
  for (int s = 0; s < 3; ++s) r.push_back(rec(1, 4 + s, Phase::RG, {false, true}));   // 3 steps
  const auto u = report::bucket_usage(r, 2, 2);
  // PP bucket 0: seq 0 positions 0-4 (layer 0 on), seq 1 positions 0-1; bucket 1: the rest.
  CHECK(u.pp.tokens == std::vector<uint64_t>{7, 7});
  CHECK(u.pp.mean(0, 0) == doctest::Approx(1.0));
  CHECK(u.pp.mean(0, 1) == doctest::Approx(2.0 / 7));
  CHECK(u.pp.mean(1, 0) == doctest::Approx(5.0 / 7));
  CHECK(u.pp.mean(1, 1) == doctest::Approx(6.0 / 7));
  CHECK(u.pp.sequences == 2);
  // RG: 5 steps at most over 2 buckets -> 3 steps per bucket.
  CHECK(u.rg.step_width == 3);
  CHECK(u.rg.tokens == std::vector<uint64_t>{6, 2});
  CHECK(u.rg.mean(0, 0) == doctest::Approx(3.0 / 6));
  CHECK(u.rg.mean(0, 1) == doctest::Approx(0.0));
  CHECK(u.rg.mean(1, 0) == doctest::Approx(3.0 / 6));
  const std::string svg = report::usage_buckets_svg(u, {"toy <model>", "lac:0.8"});
  CHECK(svg.find("toy &lt;model&gt;") != std::string::npos);
  CHECK(svg.find("PP (2 sequences, 14 tokens)") != std::string::npos);
  CHECK(svg.find("RG (2 sequences, 8 tokens)") != std::string::npos);
  CHECK(svg.find("layer 0 \u00B7 bucket 0 \u00B7 100.0% activated of 7 tokens") != std::string::npos);
  // An empty bucket is drawn hatched.
  const auto sparse = report::bucket_usage(std::vector<TokenRecord>{rec(0, 0, Phase::PP, {true, true})}, 2, 3);
  CHECK(sparse.pp.tokens == std::vector<uint64_t>{1, 0, 0});
  CHECK(report::usage_buckets_svg(sparse).find("no tokens") != std::string::npos);
  CHECK_THROWS_AS(report::bucket_usage(r, 3, 2), UsageError);  // records have 2 layers
  CHECK_THROWS_AS(report::bucket_usage(r, 2, 0), UsageError);
}

TEST_CASE("gpqa: AsIs keeps the dataset's answer strings untrimmed, Trimmed strips them") {
  const std::string csv =
      "Question,Correct Answer,Incorrect Answer 1,Incorrect Answer 2,Incorrect Answer 3\n"
      "\" What is x?\n\",\" 42\",\"7 \",\"\n9\",10\n";
  const auto as_is = parse_gpqa_csv(csv, "g.csv", GpqaOrder::CorrectLast, 0, GpqaText::AsIs);
  const auto trimmed = parse_gpqa_csv(csv, "g.csv", GpqaOrder::CorrectLast, 0);
  REQUIRE(as_is.size() == 1);
  CHECK(as_is[0].question == " What is x?\n");
  CHECK(as_is[0].choices == std::vector<std::string>{"7 ", "\n9", "10", " 42"});
  CHECK(as_is[0].answer == 3);
  CHECK(trimmed[0].question == "What is x?");
  CHECK(trimmed[0].choices == std::vector<std::string>{"7", "9", "10", "42"});
  // Blank after trimming is still an error in AsIs mode.
  CHECK_THROWS_AS(parse_gpqa_csv("Question,Correct Answer,Incorrect Answer 1,Incorrect Answer 2,"
                                 "Incorrect Answer 3\nq,\" \",b,c,d\n",
                                 "g.csv", GpqaOrder::CorrectLast, 0, GpqaText::AsIs),
                  DataError);
}

namespace {
std::string write_tmp(const std::string& name, const std::string& text) {
  const auto p = std::filesystem::temp_directory_path() / ("fathom_void_tools_" + name);
  report::write_text_file(p, text);
  return p.string();
}
ItemRecord result(const std::string& policy, const std::string& id, int pred, int answer) {
  ItemRecord r;
  r.policy = policy, r.id = id, r.subject = "s", r.pred = pred, r.answer = answer, r.correct = pred == answer;
  return r;
}
}  // namespace

TEST_CASE("frontier: calibration, timing and results joined per policy") {
  const auto cal = write_tmp("cal.csv",
                             "c,method,skipped_pp,skipped_rg,policy\n"
                             "0.1,calibrated,2,1,\"static:pp=3,4;rg=4\"\n"
                             "0.1,shortgpt,2,1,\"static:pp=5,6;rg=6\"\n");
  const auto tim = write_tmp("tim.csv", "policy,tokens,seconds,cpu_seconds,tok_s\nfull,10,1,1,100\n"
                                        "\"static:pp=3,4;rg=4\",10,0.5,0.5,200\n");
  const auto rows = read_calibration_csv(cal);
  REQUIRE(rows.size() == 3);
  CHECK(rows[0].policy == "full");
  CHECK(rows[1].policy == "static:pp=3,4;rg=4");
  CHECK(rows[2].skipped_pp == 2);
  const auto tps = read_timing_csv(tim);
  CHECK(tps.at("full") == 100);
  // Results: full 3/4 right with one unanswered, the calibrated set 1/2; ShortGPT not evaluated.
  std::string jsonl = "{\"type\":\"run\",\"settings\":{}}\n";
  for (auto r : {result("full", "a", 0, 0), result("full", "b", 1, 1), result("full", "c", 2, 2),
                 result("full", "d", -1, 0), result("static:pp=3,4;rg=4", "a", 0, 0),
                 result("static:pp=3,4;rg=4", "b", 0, 1)})
    jsonl += to_json(r).dump() + "\n";
  jsonl += "{\"policy\":\"full\",\"id";  // a half-written last line is not a record yet
  const auto recs = read_results_records(write_tmp("res.jsonl", jsonl));
  REQUIRE(recs.size() == 6);
  const std::vector<FrontierTask> tasks = {{"mmlu", recs}};
  const std::string csv = frontier_csv(rows, tasks, tps);
  CHECK(csv.find("method,c,skipped_pp,skipped_rg,policy,mmlu_acc,mmlu_se,mmlu_no_answer,mmlu_items,decode_tok_s") == 0);
  CHECK(csv.find("full,,0,0,full,0.7500,0.2500,0.2500,4,100.0") != std::string::npos);
  CHECK(csv.find("calibrated,0.100,2,1,\"static:pp=3,4;rg=4\",0.5000,0.5000,0.0000,2,200.0") != std::string::npos);
  CHECK(csv.find("shortgpt,0.100,2,1,\"static:pp=5,6;rg=6\",,,,0,") != std::string::npos);
  const auto series = frontier_series(rows, tasks, tps);
  REQUIRE(series.size() == 2);  // full and calibrated; ShortGPT has neither results nor timing
  CHECK(series[1].name == "mmlu calibrated");
  CHECK(series[1].x == std::vector<double>{200});
  CHECK(series[1].y == std::vector<double>{50});
}

TEST_CASE("skip sets: calibrated per phase, ShortGPT of the same size; calibration.csv reads back") {
  const size_t L = 4;
  Trace t(L);
  auto token = [&](Phase p, std::vector<bool> act) {
    auto& r = t.begin(TokenInfo{0, 0, p, 0});
    for (size_t l = 0; l < L; ++l) r.layers[l].executed = true, r.layers[l].activated = act[l];
    t.end(0);
  };
  token(Phase::PP, {true, false, true, false});
  token(Phase::PP, {true, false, false, true});
  token(Phase::RG, {true, true, false, true});  // PP usage 1, 0, .5, .5; RG 1, 1, 0, 1
  LayerCosines cos(L);
  const double mean_cos[L] = {0.2, 0.4, 0.9, 0.7};  // ShortGPT order: 2, 3, 1, 0
  for (int p = 0; p < 2; ++p)
    for (size_t l = 0; l < L; ++l) cos.sum[p][l] = mean_cos[l], cos.count[p][l] = 1;
  const std::vector<double> cs = {0.5, 0.75};
  const std::vector<size_t> ks = {3};
  const auto sets = skip_sets(t, cos, cs, ks);
  REQUIRE(sets.size() == 5);
  CHECK(sets[0].policy == "static:pp=1;rg=2");     // c 0.5: usage below 0.5
  CHECK(sets[1].policy == "static:pp=2;rg=2");     // ShortGPT, 1 layer per phase
  CHECK(sets[2].policy == "static:pp=1,2,3;rg=2"); // c 0.75
  CHECK(sets[3].method == "shortgpt");
  CHECK(sets[3].policy == "static:pp=1,2,3;rg=2");
  CHECK(sets[4].policy == "static:pp=1,2,3;rg=1,2,3");
  CHECK(std::isnan(sets[4].c));
  const auto back = read_calibration_csv(write_tmp("calibration.csv", calibration_csv(sets)));
  REQUIRE(back.size() == sets.size() + 1);  // full depth first
  CHECK(back[0].policy == "full");
  for (size_t i = 0; i < sets.size(); ++i) {
    CHECK(back[i + 1].method == sets[i].method);
    CHECK(back[i + 1].policy == sets[i].policy);
    CHECK(back[i + 1].skipped_pp == sets[i].skipped_pp);
    CHECK(back[i + 1].skipped_rg == sets[i].skipped_rg);
    CHECK((std::isnan(back[i + 1].c) ? std::isnan(sets[i].c) : back[i + 1].c == sets[i].c));
  }
}

TEST_CASE("frontier: bad input files are DataErrors naming the file and field") {
  const auto no_col = write_tmp("nocol.csv", "c,method,skipped_pp,policy\n0.1,x,1,full\n");
  CHECK_THROWS_WITH_AS(read_calibration_csv(no_col), doctest::Contains("column skipped_rg"), DataError);
  const auto bad_num = write_tmp("badnum.csv", "c,method,skipped_pp,skipped_rg,policy\nabc,x,1,1,full\n");
  CHECK_THROWS_WITH_AS(read_calibration_csv(bad_num), doctest::Contains("row 1, field c"), DataError);
  const auto ragged = write_tmp("ragged.csv", "policy,tok_s\nfull\n");
  CHECK_THROWS_WITH_AS(read_timing_csv(ragged), doctest::Contains("line 2"), DataError);
  const auto not_results = write_tmp("notres.jsonl", "{\"policy\":\"full\"}\n");
  CHECK_THROWS_WITH_AS(read_results_records(not_results), doctest::Contains("no run header"), DataError);
  const auto bad_rec = write_tmp("badrec.jsonl", "{\"type\":\"run\"}\n{\"policy\":\"full\"}\n");
  CHECK_THROWS_WITH_AS(read_results_records(bad_rec), doctest::Contains("line 2"), DataError);
  CHECK_THROWS_AS(write_frontier_svg(std::filesystem::temp_directory_path() / "fathom_void_tools_none.svg", {}, "t"),
                  UsageError);
}

TEST_CASE("a GGUF's chat template is named by its GGUF key") {
  const auto gguf = shared_file("models/smollm2-135m-instruct/SmolLM2-135M-Instruct.Q4_1.gguf").string();
  const auto tok = tok::load_tokenizer_for(gguf, "");
  CHECK(tok.chat_template_source() == gguf + ": tokenizer.chat_template");
}

TEST_CASE("decode timing: every policy decodes steps x prompts tokens, capped by the context") {
  auto model = load_model(fixtures::model_dir("llama_f32"));
  const std::vector<PolicySpec> specs = {parse_policy("full"), parse_policy("static:1")};
  const std::vector<std::vector<int32_t>> prompts = {{1, 2, 3}, {4, 5, 6, 7, 8, 9}};
  const auto t = time_decode(*model, specs, prompts, 3, 2);
  REQUIRE(t.size() == 2);
  for (const auto& r : t) {
    CHECK(r.tokens == 6);
    CHECK(std::isfinite(r.seconds));
    CHECK(r.tok_s() > 0);
    CHECK(r.cpu_seconds >= 0);
  }
  // A context of 8 leaves 5 and 2 steps after the two prompts.
  CHECK(time_decode(*model, specs, prompts, 50, 1, SessionOptions{8})[0].tokens == 7);
  CHECK_THROWS_AS(time_decode(*model, specs, {{}}, 3, 1), UsageError);
}
