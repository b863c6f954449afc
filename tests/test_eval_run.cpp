// Eval harness, model side: both scoring modes on a tiny random model whose answers a forcing
// policy decides, the resumable runner (interrupted, crashed mid-line, --limit, settings
// mismatch, threads), layer-usage accounting, and sliding-window perplexity against a direct
// computation.
#include <doctest/doctest.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>

#include <omp.h>

#include "fathom/eval/mmlu.hpp"
#include "fathom/eval/perplexity.hpp"
#include "fathom/eval/report.hpp"
#include "fathom/eval/runner.hpp"
#include "test_eval_util.hpp"

using namespace fathom;
using namespace fathom::eval;
using evaltest::Forcer;

namespace {
// The test model is tiny: OpenMP teams only add overhead (and stall on a loaded machine). One
// thread per test case, restored afterwards: other files' tests may run in the same process.
struct OneThread {
  int saved = omp_get_max_threads();
  OneThread() { omp_set_num_threads(1); }
  ~OneThread() { omp_set_num_threads(saved); }
  OneThread(const OneThread&) = delete;
  OneThread& operator=(const OneThread&) = delete;
};
const std::filesystem::path kFix = std::filesystem::path(FATHOM_SOURCE_DIR) / "tests/fixtures/eval";

std::string tmp_file(const std::string& name) {
  auto p = std::filesystem::temp_directory_path() / ("fathom_test_eval_" + std::to_string(::getpid()) + "_" + name);
  std::filesystem::remove(p);
  return p.string();
}

int row_of(const Item& it) { return std::stoi(it.id.substr(it.id.find('/') + 1)); }

// Forces the model to answer item rows with even index correctly and odd ones wrongly (the next
// option), so the expected accuracy is known exactly.
class ForcedEvaluator final : public Evaluator {
 public:
  explicit ForcedEvaluator(const Model& m) : m_(&m), s_(m) {}
  int64_t context() const override { return s_.capacity(); }
  ItemOutcome evaluate(const Prompt& p, const Item& item, const tok::AnyTokenizer& tok,
                       const ScoringSettings& st, uint64_t seed) override {
    const int forced = (item.answer + row_of(item) % 2) % int(item.choices.size());
    const std::string label = p.labels[size_t(forced)];
    Forcer f{m_, {}};
    ItemOutcome o;
    if (st.scoring == Scoring::Loglik) {
      f.script = {int32_t(label[0]) + 3};  // every readout predicts the label's first byte
      o.scored = score_loglik(s_, p, f);
    } else {
      for (char c : "The answer is [" + label + "].") f.script.push_back(int32_t(c) + 3);
      f.script.push_back(2);  // EOS
      o.scored = score_generate(s_, tok, p, item, st.generation, seed, f);
    }
    o.pp_tokens = o.scored.pp_tokens, o.rg_tokens = o.scored.rg_tokens;
    return o;
  }

 private:
  const Model* m_;
  Session s_;
};

EvalOptions options(const std::string& out, Scoring sc = Scoring::Loglik) {
  EvalOptions o;
  o.out = out;
  o.progress = false;
  o.scoring.scoring = sc;
  return o;
}

std::map<std::string, ItemRecord> by_key(const std::vector<ItemRecord>& v) {
  std::map<std::string, ItemRecord> m;
  for (auto& r : v) m[r.policy + "|" + r.id] = r;
  return m;
}

void check_same(const std::string& a_path, const std::string& b_path, const std::vector<std::string>& pol) {
  const auto settings = nlohmann::json::object();
  (void)settings;
  auto read = [&](const std::string& p) {
    std::ifstream f(p);
    std::string line;
    std::vector<ItemRecord> v;
    std::getline(f, line);  // header
    while (std::getline(f, line)) v.push_back(record_from_json(nlohmann::json::parse(line)));
    return v;
  };
  auto a = by_key(read(a_path)), b = by_key(read(b_path));
  REQUIRE(a.size() == b.size());
  for (auto& [k, r] : a) {
    CAPTURE(k);
    REQUIRE(b.count(k));
    const auto& s = b[k];
    CHECK(r.pred == s.pred);
    CHECK(r.correct == s.correct);
    CHECK(r.logprobs == s.logprobs);
    CHECK(r.pp_tokens == s.pp_tokens);
    CHECK(r.pp_active == s.pp_active);
  }
  auto sa = summarize(read(a_path), pol), sb = summarize(read(b_path), pol);
  for (size_t i = 0; i < pol.size(); ++i) {
    CHECK(sa[i].overall.correct == sb[i].overall.correct);
    CHECK(sa[i].overall.n == sb[i].overall.n);
    CHECK(sa[i].pp_active == sb[i].pp_active);
  }
}
}  // namespace

TEST_CASE_FIXTURE(OneThread, "forcing policy: the readout really decides the prediction") {
  auto m = evaltest::tiny_model();
  Session s(*m);
  for (int32_t t : {3, 68, 200}) {
    Forcer f{m.get(), {t}};
    const std::vector<int32_t> ids = {1, 50, 60};
    auto logits = s.forward(ids, Phase::PP, f);
    CHECK(argmax(logits) == t);
    s.reset();
  }
}

TEST_CASE_FIXTURE(OneThread, "loglik and generation scoring through the runner: known accuracy") {
  auto m = evaltest::tiny_model();
  auto tok = evaltest::byte_tokenizer();
  auto task = read_mmlu(kFix / "mmlu");
  for (Scoring sc : {Scoring::Loglik, Scoring::Generate}) {
    for (Preset pr : {Preset::LmEval, Preset::Void}) {
      CAPTURE(scoring_name(sc));
      CAPTURE(preset_name(pr));
      const auto out = tmp_file("forced.jsonl");
      auto o = options(out, sc);
      o.prompt.preset = pr;
      o.prompt.shots = 1;
      const std::vector<std::string> pol = {"forced"};
      auto run = run_eval(task, tok, pol, [&](size_t) { return std::make_unique<ForcedEvaluator>(*m); },
                          o, run_settings(task.kind, "tiny", "fixture", pol, o));
      REQUIRE(run.summaries.size() == 1);
      const auto& s = run.summaries[0];
      CHECK(run.complete);
      CHECK(s.overall.n == 6);
      CHECK(s.overall.correct == 3);  // rows 0 and 2 of arith, row 0 of colors
      CHECK(s.by_subject.at("arith").correct == 2);
      CHECK(s.by_subject.at("colors").correct == 1);
      CHECK(s.unanswered == 0);
      CHECK(s.overall.stderr_() == doctest::Approx(std::sqrt(0.25 / 5)));
      if (sc == Scoring::Generate) {
        CHECK(s.rg_tokens > 0);
      } else {
        CHECK(s.rg_tokens == 0);
      }
      std::filesystem::remove(out);
    }
  }
}

TEST_CASE_FIXTURE(OneThread, "loglik scoring: shared prefill with rewind equals scoring each option from scratch") {
  auto m = evaltest::tiny_model();
  auto tok = evaltest::byte_tokenizer();
  auto task = read_mmlu(kFix / "mmlu");
  PromptBuilder b(tok, TaskKind::MMLU, {Preset::Void, 0, true});
  auto p = b.build(task.items[0], task.dev, 256, true);
  Session s(*m);
  FullDepth full;
  auto sc = score_loglik(s, p, full);
  REQUIRE(sc.logprobs.size() == 4);
  for (size_t k = 0; k < 4; ++k) {
    std::vector<int32_t> ids = p.tokens;
    ids.insert(ids.end(), p.continuations[k].begin(), p.continuations[k].end());
    Session s2(*m);
    auto all = s2.forward(ids, Phase::PP, full, Logits::All);
    const size_t V = m->vocab();
    double lp = 0;
    for (size_t j = 0; j < p.continuations[k].size(); ++j) {
      const size_t row = p.tokens.size() - 1 + j;
      lp += eval::detail::log_prob(all.subspan(row * V, V), p.continuations[k][j]);
    }
    CHECK(sc.logprobs[k] == doctest::Approx(lp).epsilon(1e-5));
  }
  CHECK(sc.pred == int(std::max_element(sc.logprobs.begin(), sc.logprobs.end()) - sc.logprobs.begin()));
}

TEST_CASE_FIXTURE(OneThread, "resume: interrupted, crashed mid-line, and --limit runs end identical to one run") {
  auto m = evaltest::tiny_model();
  auto tok = evaltest::byte_tokenizer();
  auto task = read_mmlu(kFix / "mmlu");
  const auto specs = parse_policies("full,lac:0.8,lac-trace:0.5");
  std::vector<std::string> names;
  for (auto& s : specs) names.push_back(s.name);
  auto settings = [&](const EvalOptions& o) { return run_settings(task.kind, "tiny", "fixture", names, o); };

  const auto whole = tmp_file("whole.jsonl");
  auto o = options(whole);
  auto ref = run_eval(task, tok, *m, specs, o, settings(o));
  CHECK(ref.complete);
  CHECK(ref.computed == 18);

  // Interrupted after 7 results, then resumed.
  const auto part = tmp_file("part.jsonl");
  auto op = options(part);
  op.stop_after = 7;
  auto r1 = run_eval(task, tok, *m, specs, op, settings(op));
  CHECK_FALSE(r1.complete);
  CHECK(r1.computed == 7);
  op.stop_after = 0;
  auto r2 = run_eval(task, tok, *m, specs, op, settings(op));
  CHECK(r2.complete);
  CHECK(r2.resumed == 7);
  CHECK(r2.computed == 11);
  check_same(whole, part, names);

  // A crash in the middle of writing the last line: the partial line is dropped and redone.
  const auto crash = tmp_file("crash.jsonl");
  std::filesystem::copy_file(whole, crash);
  std::filesystem::resize_file(crash, std::filesystem::file_size(crash) - 25);
  auto oc = options(crash);
  auto r3 = run_eval(task, tok, *m, specs, oc, settings(oc));
  CHECK(r3.computed == 1);
  CHECK(r3.resumed == 17);
  check_same(whole, crash, names);

  // --limit, then the full set.
  const auto lim = tmp_file("limit.jsonl");
  auto ol = options(lim);
  ol.limit = 2;
  auto r4 = run_eval(task, tok, *m, specs, ol, settings(ol));
  CHECK(r4.items == 2);
  CHECK(r4.summaries[0].overall.n == 2);
  ol.limit = 0;
  run_eval(task, tok, *m, specs, ol, settings(ol));
  check_same(whole, lim, names);

  // Two worker threads: same results.
  const auto thr = tmp_file("threads.jsonl");
  auto ot = options(thr);
  ot.threads = 2;
  run_eval(task, tok, *m, specs, ot, settings(ot));
  check_same(whole, thr, names);

  // Another preset on the same file is refused, naming the setting.
  auto ov = options(whole);
  ov.prompt.preset = Preset::Void;
  try {
    run_eval(task, tok, *m, specs, ov, settings(ov));
    FAIL("no error");
  } catch (const UsageError& e) {
    CHECK(e.field() == "settings.preset");
  }
  // A results file that is not one.
  const auto junk = tmp_file("junk.jsonl");
  std::ofstream(junk) << "{\"a\":1}\n";
  auto oj = options(junk);
  CHECK_THROWS_AS(run_eval(task, tok, *m, specs, oj, settings(oj)), DataError);

  // Accounting: FullDepth uses every layer; LAC trace-only predicts exactly as FullDepth.
  const auto& S = ref.summaries;
  CHECK(S[0].pp_layers(m->n_layers()) == 1.0);
  CHECK(S[0].pp_tokens > 0);
  CHECK(S[1].pp_tokens == S[0].pp_tokens);
  CHECK(S[1].pp_layers(m->n_layers()) <= 1.0);
  CHECK(S[2].pp_layers(m->n_layers()) < 1.0);
  auto recs = by_key(ResultsFile(whole, settings(o)).records());
  for (auto& it : task.items) CHECK(recs["full|" + it.id].pred == recs["lac-trace:0.5|" + it.id].pred);
  // Reports: the comparison table and the α plot.
  const std::string table = summary_table(S, m->n_layers()).str();
  CHECK(table.find("lac-trace:0.5") != std::string::npos);
  CHECK(table.find("100.0") != std::string::npos);  // FullDepth's PP layers
  CHECK(subject_table(S).str().find("colors") != std::string::npos);
  const auto svg = tmp_file("alpha.svg");
  REQUIRE(write_alpha_svg(svg, specs, S, m->n_layers(), "toy <mmlu>"));
  const std::string text = read_text_file(svg);
  CHECK(text.find("<svg") != std::string::npos);  // after the XML prolog
  CHECK(text.ends_with("</svg>\n"));
  CHECK(text.find("lac accuracy") != std::string::npos);
  CHECK(text.find("toy &lt;mmlu&gt;") != std::string::npos);
  CHECK_FALSE(write_alpha_svg(svg, {specs[0]}, {S[0]}, m->n_layers(), "no alpha"));
  for (auto& f : {whole, part, crash, lim, thr, junk, svg}) std::filesystem::remove(f);
}

TEST_CASE("results file: hostile numbers and headers are DataErrors naming the line (fuzzing and review)") {
  const std::string head = "{\"type\":\"run\",\"settings\":{\"task\":\"mmlu\"}}\n";
  const std::string rec =
      "{\"policy\":\"full\",\"id\":\"x/0\",\"subject\":\"x\",\"answer\":1,\"pred\":1,\"correct\":true,"
      "\"prompt_tokens\":3,\"shots\":0,\"truncated\":false,\"pp_tokens\":3,\"pp_active\":6,\"rg_tokens\":0,"
      "\"rg_active\":0,\"seconds\":0.5}";
  const auto good = parse_results_jsonl(head + rec + "\n", "r.jsonl");
  CHECK(good.had_header);
  REQUIRE(good.records.size() == 1);
  CHECK(good.records[0].answer == 1);
  auto error_of = [&](const std::string& text) {
    try {
      parse_results_jsonl(text, "r.jsonl", nlohmann::json{{"task", "mmlu"}});
    } catch (const DataError& e) {
      return std::string(e.field()) + ": " + e.reason();
    }
    FAIL("no DataError");
    return std::string();
  };
  auto with = [&](const std::string& from, const std::string& to) {
    std::string r = rec;
    r.replace(r.find(from), from.size(), to);
    return head + r + "\n";
  };
  // get<int>() of 1e300 was a float-to-int cast out of range (undefined behaviour; found in review).
  CHECK(error_of(with("\"answer\":1", "\"answer\":1e300")).starts_with("line 2: bad record"));
  CHECK(error_of(with("\"pred\":1", "\"pred\":4294967296")).starts_with("line 2: bad record"));
  CHECK(error_of(with("\"pp_tokens\":3", "\"pp_tokens\":-3")).starts_with("line 2: bad record"));
  CHECK(error_of(with("\"seconds\":0.5", "\"seconds\":\"0.5\"")).starts_with("line 2: bad record"));
  // 1e999 is nlohmann's out_of_range, not a parse_error: it escaped untyped (found by fuzzing).
  CHECK(error_of(with("\"seconds\":0.5", "\"seconds\":1e999")).starts_with("line 2: invalid JSON"));
  // A header whose "type" is not a string made json::value() throw a type_error (found by fuzzing).
  CHECK(error_of("{\"type\":5,\"settings\":{}}\n").starts_with("line 1: not a fathom eval results file"));
  CHECK(error_of("{\"type\":\"run\",\"settings\":[1]}\n").starts_with("line 1, settings"));
  CHECK(error_of(head + "[1]\n").starts_with("line 2: bad record"));
}

TEST_CASE_FIXTURE(OneThread, "policy names") {
  auto p = parse_policies("full,lac:0.80,lac-instream:0.6,lac-exit:0.9,lac-trace:1");
  REQUIRE(p.size() == 5);
  CHECK(p[1].name == "lac:0.8");
  CHECK(p[1].kind == PolicySpec::Kind::Lac);
  CHECK(p[2].kind == PolicySpec::Kind::LacInStream);
  CHECK(p[2].alpha == 0.6);
  CHECK_THROWS_AS(parse_policies("full,full"), UsageError);
  CHECK_THROWS_AS(parse_policies("lac:x"), UsageError);
  CHECK_THROWS_AS(parse_policies("nope"), UsageError);
}

TEST_CASE("policy parser: a huge logit-lens index is a UsageError (found by fuzzing)") {
  // int(1e300) was a float-to-int conversion out of range (undefined behaviour).
  CHECK_THROWS_AS(parse_policy("logit-lens:1e300"), UsageError);
  CHECK_THROWS_AS(parse_policy("logit-lens:inf"), UsageError);
  CHECK_THROWS_AS(parse_policies("full,logit-lens:4294967296"), UsageError);
  CHECK(parse_policy("logit-lens:3").index == 3);
}

TEST_CASE_FIXTURE(OneThread, "perplexity: sliding windows score every token once with the right context") {
  auto m = evaltest::tiny_model(64);
  std::vector<int32_t> ids;
  for (char c : std::string("Once upon a time there was a tiny model that could count.")) ids.push_back(int32_t(c) + 3);
  const size_t n = ids.size(), V = m->vocab();
  FullDepth full;
  for (auto [W, S] : {std::pair<size_t, size_t>{8, 1}, {8, 3}, {16, 16}, {64, 64}, {10, 4}}) {
    CAPTURE(W);
    CAPTURE(S);
    Session s(*m);
    auto r = perplexity(s, ids, W, S, full);
    if (S < W) CHECK(r.scored == n - 1);  // every token but the first
    // Reference (Hugging Face's convention): token t is scored in the first window (start b, a
    // multiple of S) whose end passes t, with context ids[b..t-1]; a token that starts its
    // window (only when S = W) has no context there and is not scored.
    double nll = 0;
    size_t scored = 0;
    for (size_t t = 1; t < n; ++t) {
      size_t b = 0;
      while (b + W <= t) b += S;
      if (b == t) continue;
      ++scored;
      Session s2(*m);
      auto lg = s2.forward(std::span<const int32_t>(ids.data() + b, t - b), Phase::PP, full);
      nll -= eval::detail::log_prob(lg.subspan(0, V), ids[t]);
    }
    CHECK(r.scored == scored);
    CHECK(r.nll == doctest::Approx(nll).epsilon(1e-5));
    CHECK(r.ppl() == doctest::Approx(std::exp(nll / double(scored))).epsilon(1e-5));
  }
  // Two shards of the windows add up to the whole.
  Session s(*m), s1(*m);
  auto whole = perplexity(s, ids, 10, 4, full);
  auto a = perplexity(s, ids, 10, 4, full, nullptr, 0, 2), b = perplexity(s1, ids, 10, 4, full, nullptr, 1, 2);
  CHECK(a.scored + b.scored == whole.scored);
  CHECK(a.windows + b.windows == whole.windows);
  CHECK(a.nll + b.nll == doctest::Approx(whole.nll).epsilon(1e-9));
  CHECK_THROWS_AS(perplexity(s, ids, 128, 16, full), UsageError);  // window > context
  CHECK_THROWS_AS(perplexity(s, ids, 16, 17, full), UsageError);   // stride > window
}

// The Void paper's loop: one token sampled from the prompt pass, then 50 loop steps, so a reply
// that never reaches eos has 51 new tokens, 50 of them fed back through the model.
TEST_CASE_FIXTURE(OneThread, "generate scoring: the first token from the prompt pass + 50 steps = 51 new tokens") {
  auto m = evaltest::tiny_model();
  auto tok = evaltest::byte_tokenizer();
  auto task = read_mmlu(kFix / "mmlu");
  const GenerationSettings g;  // the defaults are the paper's
  CHECK(g.max_new_tokens == 51);
  CHECK(g.temperature == 0.6f);
  CHECK(g.top_p == 0.9f);
  PromptBuilder b(tok, task.kind, {Preset::Void, 0, false});
  const Prompt p = b.build(task.items[0], {}, 200, false);
  Session s(*m);
  Forcer never_eos{m.get(), {int32_t('x') + 3}};
  auto r = score_generate(s, tok, p, task.items[0], GenerationSettings{51, 0.f, 1.f}, 0, never_eos);
  CHECK(r.output == std::string(51, 'x'));
  CHECK(r.rg_tokens == 50);
  CHECK(r.pp_tokens == p.tokens.size());
  CHECK(s.position() == int64_t(p.tokens.size() + 50));
  // eos ends it early: "[B]" then eos is 4 new tokens, 3 of them fed back.
  Forcer stops{m.get(), {int32_t('[') + 3, int32_t('B') + 3, int32_t(']') + 3, 2}};
  auto q = score_generate(s, tok, p, task.items[0], GenerationSettings{}, 0, stops);
  CHECK(q.output == "[B]");
  CHECK(q.rg_tokens == 3);
  CHECK(q.pred == 1);
}

TEST_CASE_FIXTURE(OneThread, "results tables report the share of replies with no extractable answer") {
  std::vector<ItemRecord> recs(4);
  for (size_t i = 0; i < recs.size(); ++i) {
    recs[i].policy = "full", recs[i].id = "s/" + std::to_string(i), recs[i].subject = "s";
    recs[i].answer = 0, recs[i].pred = i == 3 ? -1 : 0, recs[i].correct = i != 3;
  }
  const auto S = summarize(recs, {"full"});
  CHECK(S[0].unanswered == 1);
  CHECK(S[0].unanswered_share() == 0.25);
  const std::string table = summary_table(S, 2).str();
  CHECK(table.find("no answer %") != std::string::npos);
  CHECK(table.find("25.0") != std::string::npos);
}

// full, trace-only and final-state LAC at several α from one pass per item must give exactly
// what one pass per policy gives: predictions, log-probabilities bit for bit, replies, usage.
TEST_CASE_FIXTURE(OneThread, "shared pass: observe-only policies scored from one pass equal separate runs") {
  auto m = evaltest::tiny_model(256, 11, 6);
  auto tok = evaltest::byte_tokenizer();
  auto task = read_mmlu(kFix / "mmlu");
  const auto specs = parse_policies("full,lac-trace:0.5,lac:0.2,lac:0.5,lac:0.8,lac-instream:0.5");
  std::vector<std::string> names;
  for (auto& s : specs) names.push_back(s.name);
  for (Scoring sc : {Scoring::Loglik, Scoring::Generate}) {
    CAPTURE(scoring_name(sc));
    std::map<std::string, ItemRecord> got[2];
    for (int shared = 0; shared < 2; ++shared) {
      const auto out = tmp_file("shared" + std::to_string(shared) + ".jsonl");
      auto o = options(out, sc);
      o.prompt.preset = Preset::Void;
      o.scoring.generation.max_new_tokens = 12;
      o.seed = 5;
      o.share_pass = shared == 1;
      auto run = run_eval(task, tok, *m, specs, o, run_settings(task.kind, "tiny", "fixture", names, o));
      CHECK(run.complete);
      got[shared] = by_key(ResultsFile(out, run_settings(task.kind, "tiny", "fixture", names, o)).records());
      std::filesystem::remove(out);
    }
    REQUIRE(got[0].size() == task.items.size() * specs.size());
    REQUIRE(got[1].size() == got[0].size());
    size_t differs_from_full = 0;
    for (auto& [k, a] : got[0]) {
      CAPTURE(k);
      const auto& b = got[1].at(k);
      CHECK(a.pred == b.pred);
      CHECK(a.logprobs == b.logprobs);
      CHECK(a.output == b.output);
      CHECK(a.pp_tokens == b.pp_tokens);
      CHECK(a.pp_active == b.pp_active);
      CHECK(a.rg_tokens == b.rg_tokens);
      CHECK(a.rg_active == b.rg_active);
      const auto& f = got[0].at("full|" + a.id);
      differs_from_full += a.policy.starts_with("lac:") && (a.logprobs != f.logprobs || a.output != f.output);
    }
    CHECK(differs_from_full > 0);  // final-state substitution really changed some readouts
    // α matters: the usage of lac:0.2 and lac:0.8 differs.
    CHECK(got[1].at("lac:0.2|arith/0").pp_active != got[1].at("lac:0.8|arith/0").pp_active);
  }
}
