// Distributed evaluation without MPI (fathom/eval/shard.hpp): the balanced, deterministic plan;
// part files (listing, half-written lines, corruption, other settings); the canonical merge, which
// gives the bytes of a single-threaded run whatever the number of shards and threads; folding
// leftover parts; and perplexity windows split over shards adding up to the bit. The MPI transport
// itself is tested by tests/mpi/run.sh (mpirun -np 2 / 3 against one process).
#include <doctest/doctest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <numeric>
#include <random>

#include <omp.h>

#include "fathom/eval/mmlu.hpp"
#include "fathom/eval/perplexity_parallel.hpp"
#include "fathom/eval/runner.hpp"
#include "fathom/eval/shard.hpp"
#include "test_eval_util.hpp"

using namespace fathom;
using namespace fathom::eval;

namespace {
struct OneOmpThread {
  int saved = omp_get_max_threads();
  OneOmpThread() { omp_set_num_threads(1); }
  ~OneOmpThread() { omp_set_num_threads(saved); }
  OneOmpThread(const OneOmpThread&) = delete;
  OneOmpThread& operator=(const OneOmpThread&) = delete;
};

const std::filesystem::path kFixture = std::filesystem::path(FATHOM_SOURCE_DIR) / "tests/fixtures/eval";

// A fresh folder per test case (part files are found by listing the results file's folder).
std::filesystem::path fresh_dir(const std::string& name) {
  auto d = std::filesystem::temp_directory_path() /
           ("fathom_test_shard_" + std::to_string(::getpid()) + "_" + name);
  std::filesystem::remove_all(d);
  std::filesystem::create_directories(d);
  return d;
}

void write(const std::filesystem::path& p, const std::string& text) {
  std::ofstream(p, std::ios::binary) << text;
}

ItemRecord rec(const std::string& policy, const std::string& id, int pred = 0) {
  ItemRecord r;
  r.policy = policy, r.id = id, r.subject = id.substr(0, id.find('/'));
  r.answer = 1, r.pred = pred, r.correct = pred == 1;
  r.logprobs = {-1.25, -0.5};
  r.prompt_tokens = 10 + id.size();
  r.seconds = 0.125;
  return r;
}

const nlohmann::json kSettings = {{"task", "mmlu"}, {"policies", {"full", "lac:0.8"}}};

// The file's text with every record's timing field zeroed.
std::string without_seconds(const std::string& path, const nlohmann::json& settings) {
  auto recs = parse_part(read_text_file(path), path, settings);
  for (auto& r : recs) r.seconds = 0;
  return results_text(settings, recs);
}
}  // namespace

TEST_CASE("balance_shards: every unit once, ascending, longest-first to the least loaded shard") {
  const std::vector<uint64_t> w = {5, 4, 3, 3, 3};
  const auto plan = balance_shards(w, 2);
  // 5 -> s0, 4 -> s1, 3 -> s1 (7), 3 -> s0 (8), 3 -> s1 (10)
  CHECK(plan == std::vector<std::vector<size_t>>{{0, 3}, {1, 2, 4}});
  CHECK(shard_loads(plan, w) == std::vector<uint64_t>{8, 10});
  CHECK(balance_shards(w, 1) == std::vector<std::vector<size_t>>{{0, 1, 2, 3, 4}});
  // More shards than units: the rest are empty; equal weights go round the shards in order.
  CHECK(balance_shards(std::vector<uint64_t>{7, 7}, 3) == std::vector<std::vector<size_t>>{{0}, {1}, {}});
  CHECK(balance_shards(std::vector<uint64_t>{}, 2) == std::vector<std::vector<size_t>>{{}, {}});
  CHECK_THROWS_AS(balance_shards(w, 0), UsageError);

  // Random prompt lengths: a partition, deterministic, and within one unit of the ideal load
  // (greedy to the least loaded shard never exceeds mean + the largest unit).
  std::mt19937_64 rng(3);
  std::vector<uint64_t> lens(1000);
  for (auto& x : lens) x = 20 + rng() % 2000;
  const uint64_t total = std::accumulate(lens.begin(), lens.end(), uint64_t(0));
  const uint64_t biggest = *std::max_element(lens.begin(), lens.end());
  for (size_t shards : {2, 3, 7, 64}) {
    CAPTURE(shards);
    const auto p = balance_shards(lens, shards);
    CHECK(p == balance_shards(lens, shards));
    std::vector<int> seen(lens.size(), 0);
    for (const auto& s : p) {
      CHECK(std::is_sorted(s.begin(), s.end()));
      for (size_t i : s) ++seen[i];
    }
    CHECK(std::all_of(seen.begin(), seen.end(), [](int c) { return c == 1; }));
    const auto loads = shard_loads(p, lens);
    const uint64_t hi = *std::max_element(loads.begin(), loads.end());
    const uint64_t lo = *std::min_element(loads.begin(), loads.end());
    CHECK(hi <= total / shards + biggest);
    CHECK(hi - lo <= biggest);
  }
  CHECK(item_cost(100, 0) == 101);
  CHECK(item_cost(100, 51) == 152);
}

TEST_CASE("part files: listing, a half-written last line, corruption and other settings") {
  const auto dir = fresh_dir("parts");
  const std::string out = (dir / "run.jsonl").string();
  CHECK(part_path(out, 3) == out + ".rank3.part");
  for (const char* name : {"run.jsonl.rank0.part", "run.jsonl.rank12.part", "run.jsonl.rank2.part",
                           "run.jsonl.rank.part", "run.jsonl.rank1a.part", "run.jsonl.rank1.partial",
                           "other.jsonl.rank1.part", "run.jsonl"})
    write(dir / name, "");
  const auto parts = list_parts(out);
  REQUIRE(parts.size() == 3);
  CHECK(parts[0].first == 0);
  CHECK(parts[1].first == 2);
  CHECK(parts[2].first == 12);
  CHECK(parts[2].second == (dir / "run.jsonl.rank12.part").string());
  CHECK(list_parts((dir / "missing" / "x.jsonl").string()).empty());

  const std::string good = results_text(kSettings, {rec("full", "a/0"), rec("lac:0.8", "a/0")});
  CHECK(parse_part("", "p", kSettings).empty());
  CHECK(parse_part(good, "p", kSettings).size() == 2);
  // Killed mid-write: the partial last line is dropped.
  CHECK(parse_part(good.substr(0, good.size() - 20), "p", kSettings).size() == 1);
  // Killed while writing the header: nothing.
  CHECK(parse_part(good.substr(0, 10), "p", kSettings).empty());
  // A damaged line in the middle is a DataError naming the part and the line.
  std::string bad = good;
  bad.insert(results_header_line(kSettings).size(), "{\"policy\": \n");
  try {
    parse_part(bad, "out.jsonl.rank1.part", kSettings);
    FAIL("no error");
  } catch (const DataError& e) {
    CHECK(e.file() == "out.jsonl.rank1.part");
    CHECK(e.field() == "line 2");
  }
  CHECK_THROWS_AS(parse_part("{\"x\":1}\n" + good, "p", kSettings), DataError);  // no run header
  auto other = kSettings;
  other["seed"] = 5;
  CHECK_THROWS_AS(parse_part(good, "p", other), UsageError);  // another run's part
  std::filesystem::remove_all(dir);
}

TEST_CASE("merge: canonical order, first record of a key wins, the bytes ResultsFile writes") {
  const std::vector<std::string> ids = {"a/0", "a/1", "b/0"};
  // Two "ranks" finished in some order; an id from an earlier, larger run is kept at the end.
  MergedResults m;
  CHECK(m.add(rec("full", "b/0")));
  CHECK(m.add(rec("lac:0.8", "b/0")));
  CHECK(m.add(rec("full", "x/9")));
  CHECK(m.add_all({rec("full", "a/1"), rec("lac:0.8", "a/1"), rec("full", "a/0"), rec("lac:0.8", "a/0")}) == 4);
  CHECK_FALSE(m.add(rec("full", "a/0", 3)));  // a duplicate (a part merged twice)
  CHECK(m.size() == 7);
  CHECK(m.done("lac:0.8", "a/1"));
  CHECK_FALSE(m.done("lac:0.8", "x/9"));
  const auto c = canonical_order(m.records(), ids);
  std::vector<std::string> got;
  for (const auto& r : c) got.push_back(r.policy + " " + r.id);
  CHECK(got == std::vector<std::string>{"full a/0", "lac:0.8 a/0", "full a/1", "lac:0.8 a/1",
                                        "full b/0", "lac:0.8 b/0", "full x/9"});
  CHECK(c[0].pred == 0);

  // results_text is what ResultsFile writes for the same records.
  const auto dir = fresh_dir("merge");
  const std::string path = (dir / "r.jsonl").string();
  {
    ResultsFile f(path, kSettings);
    for (const auto& r : c) f.append(r);
  }
  CHECK(read_text_file(path) == results_text(kSettings, c));
  // write_file_atomic replaces the file whole and leaves no temporary.
  write_file_atomic(path, "x\n");
  CHECK(read_text_file(path) == "x\n");
  CHECK_FALSE(std::filesystem::exists(path + ".tmp"));
  CHECK_THROWS_AS(write_file_atomic((dir / "no" / "r.jsonl").string(), "x"), IoError);

  // missing_items: items 0..n-1 that miss any policy.
  std::vector<Item> items(3);
  for (size_t i = 0; i < 3; ++i) items[i].id = ids[i];
  MergedResults part;
  part.add(rec("full", "a/0")), part.add(rec("lac:0.8", "a/0")), part.add(rec("full", "a/1"));
  CHECK(missing_items(items, 3, {"full", "lac:0.8"}, part) == std::vector<size_t>{1, 2});
  CHECK(missing_items(items, 1, {"full", "lac:0.8"}, part).empty());
  std::filesystem::remove_all(dir);
}

TEST_CASE("fold_visible_parts: leftover parts join the results file, which is rewritten in order") {
  const auto dir = fresh_dir("fold");
  const std::string out = (dir / "r.jsonl").string();
  const std::vector<std::string> ids = {"a/0", "a/1", "b/0"};
  write(out, results_text(kSettings, {rec("full", "a/1")}));
  write(part_path(out, 0), results_text(kSettings, {rec("full", "b/0"), rec("full", "a/1", 2)}));
  const std::string p3 = results_text(kSettings, {rec("full", "a/0"), rec("lac:0.8", "a/0")});
  write(part_path(out, 3), p3.substr(0, p3.size() - 7));  // killed mid-line
  // A rank's part it received by message, and parts below skip_below left alone.
  const auto m = fold_visible_parts(out, kSettings, ids, {{rec("lac:0.8", "b/0")}}, 1);
  CHECK(m.size() == 3);
  CHECK(read_text_file(out) ==
        results_text(kSettings, {rec("full", "a/0"), rec("full", "a/1"), rec("lac:0.8", "b/0")}));
  CHECK(std::filesystem::exists(part_path(out, 0)));  // below skip_below: not this call's
  CHECK_FALSE(std::filesystem::exists(part_path(out, 3)));
  // Folding everything (a single process after a distributed run); the file's record of a key
  // wins over a part's duplicate.
  fold_visible_parts(out, kSettings, ids);
  CHECK(list_parts(out).empty());
  CHECK(read_text_file(out) == results_text(kSettings, {rec("full", "a/0"), rec("full", "a/1"),
                                                        rec("lac:0.8", "b/0"), rec("full", "b/0")}));
  // A corrupted part stops the fold before anything is removed or rewritten.
  const std::string before = read_text_file(out);
  write(part_path(out, 1), results_header_line(kSettings) + "not json\n");
  CHECK_THROWS_AS(fold_visible_parts(out, kSettings, ids), DataError);
  CHECK(read_text_file(out) == before);
  CHECK(std::filesystem::exists(part_path(out, 1)));
  std::filesystem::remove_all(dir);
}

TEST_CASE_FIXTURE(OneOmpThread, "sharded runs merge to the single-threaded file, for any shard and thread count") {
  auto m = evaltest::tiny_model();
  auto tok = evaltest::byte_tokenizer();
  auto task = read_mmlu(kFixture / "mmlu");
  const auto specs = parse_policies("full,lac:0.8,lac-instream:0.5");
  std::vector<std::string> names, ids;
  for (auto& s : specs) names.push_back(s.name);
  for (auto& it : task.items) ids.push_back(it.id);
  const auto dir = fresh_dir("sharded");
  for (Scoring sc : {Scoring::Loglik, Scoring::Generate}) {
    CAPTURE(scoring_name(sc));
    EvalOptions o;
    o.progress = false;
    o.scoring.scoring = sc;
    o.scoring.generation.max_new_tokens = 8;
    o.seed = 9;
    const auto settings = run_settings(task.kind, "tiny", "fixture", names, o);
    o.out = (dir / "whole.jsonl").string();
    std::filesystem::remove(o.out);
    const auto ref = run_eval(task, tok, *m, specs, o, settings);
    REQUIRE(ref.complete);
    const std::string want = without_seconds(o.out, settings);

    // The plan's costs as eval measures them: prompt tokens plus the reply budget.
    const size_t reserve = prompt_reserve(o.scoring, 256);
    PromptBuilder builder(tok, task.kind, o.prompt);
    std::vector<uint64_t> cost;
    for (auto& it : task.items)
      cost.push_back(item_cost(builder.build(it, task.dev, 256 - reserve, sc == Scoring::Loglik).tokens.size(), reserve));
    for (size_t shards : {1, 2, 3}) {
      for (int threads : {1, 2}) {
        CAPTURE(shards);
        CAPTURE(threads);
        MergedResults merged;
        const auto plan = balance_shards(cost, shards);
        for (size_t r = 0; r < shards; ++r) {
          if (plan[r].empty()) continue;
          Task mine{task.kind, {}, task.dev};
          for (size_t i : plan[r]) mine.items.push_back(task.items[i]);
          EvalOptions op = o;
          op.out = part_path((dir / "sharded.jsonl").string(), r);
          op.threads = threads;
          std::filesystem::remove(op.out);
          run_eval(mine, tok, *m, specs, op, settings);
          merged.add_all(parse_part(read_text_file(op.out), op.out, settings));
          std::filesystem::remove(op.out);
        }
        const std::string merged_path = (dir / "merged.jsonl").string();
        write_file_atomic(merged_path, results_text(settings, canonical_order(merged.records(), ids)));
        CHECK(without_seconds(merged_path, settings) == want);
      }
    }
  }
  std::filesystem::remove_all(dir);
}

TEST_CASE_FIXTURE(OneOmpThread, "perplexity windows split over shards add up to the single process's, to the bit") {
  auto m = evaltest::tiny_model(64, 7, 4);
  std::vector<int32_t> ids;
  for (char c : std::string("Once upon a time there was a tiny model that counted every token it saw, "
                            "twice, to be sure that nothing was lost between the windows."))
    ids.push_back(int32_t(c) + 3);
  const size_t W = 24, S = 10;
  const size_t total = perplexity_windows(ids.size(), W, S);
  REQUIRE(total > 4);
  for (const char* policy : {"full", "lac:0.8"}) {
    CAPTURE(policy);
    const PolicySpec spec = parse_policy(policy);
    const auto one = perplexity_parallel(*m, ids, W, S, spec, 1);
    const auto three = perplexity_parallel(*m, ids, W, S, spec, 3);
    CHECK(one.result.nll == three.result.nll);  // window order, not worker order
    CHECK(one.result.scored == ids.size() - 1);
    CHECK(one.usage.activated == three.usage.activated);
    // Sequential perplexity() agrees (it adds windows in the same order).
    {
      Session s(*m);
      with_policy(*m, spec, [&](auto& pol) {
        CHECK(perplexity(s, ids, W, S, pol).nll == one.result.nll);
      });
    }
    std::vector<uint64_t> w(total);
    for (size_t k = 0; k < total; ++k) w[k] = perplexity_window_tokens(ids.size(), W, S, k);
    CHECK(w.back() < W);  // the last window is short
    for (size_t shards : {2, 3}) {
      CAPTURE(shards);
      const auto plan = balance_shards(w, shards);
      std::vector<std::optional<WindowScore>> by_window(total);
      UsageCounts usage;
      for (size_t r = 0; r < shards; ++r) {
        const auto part = perplexity_part(*m, ids, W, S, spec, 2, plan[r]);
        std::vector<std::pair<size_t, WindowScore>> ws;
        for (size_t k = 0; k < plan[r].size(); ++k) ws.emplace_back(plan[r][k], part.scores[k]);
        unpack_windows(pack_windows(ws, UsageCounts::of(part.trace.usage(Phase::PP))), "rank", by_window, usage);
      }
      PerplexityResult sum;
      for (const auto& s : by_window) {
        REQUIRE(s.has_value());
        add_window(sum, *s);
      }
      CHECK(sum.nll == one.result.nll);
      CHECK(sum.scored == one.result.scored);
      CHECK(sum.tokens == one.result.tokens);
      CHECK(sum.windows == total);
      const Usage u = usage.usage();
      CHECK(u.tokens == one.usage.tokens);
      CHECK(u.activated == one.usage.activated);
      CHECK(u.executed == one.usage.executed);
      CHECK(u.mean_activated() == one.usage.mean_activated());
    }
  }
  // Damaged messages are DataErrors naming the sender.
  std::vector<std::optional<WindowScore>> bw(3);
  UsageCounts u;
  const std::string ok = pack_windows({{1, {2.5, 3, 4}}}, UsageCounts{5, {1, 2}, {1, 2}});
  unpack_windows(ok, "rank 1", bw, u);
  CHECK(bw[1]->nll == 2.5);
  CHECK(u.tokens == 5);
  CHECK_THROWS_AS(unpack_windows(ok, "rank 1", bw, u), DataError);  // window 1 twice
  CHECK_THROWS_AS(unpack_windows(pack_windows({{3, {}}}, {}), "rank 2", bw, u), DataError);  // out of range
  CHECK_THROWS_AS(unpack_windows("usage 1 1 1 1\n0 zz 1 1\n", "rank 2", bw, u), DataError);
  CHECK_THROWS_AS(unpack_windows("", "rank 2", bw, u), DataError);
  CHECK_THROWS_AS(unpack_windows("usage 5 3 1 1 1 1 1 1\n", "rank 2", bw, u), DataError);  // other model
  CHECK_THROWS_AS(perplexity_part(*m, ids, W, S, parse_policy("full"), 1, std::vector<size_t>{total}), UsageError);
}
