#pragma once
// The eval loop: every selected item under every policy, resumable (results.hpp), on one or
// more worker threads, each with its own Session per policy. Items are handed out in order;
// all policies score an item before the next one starts, so an interrupted comparison run has
// compared its policies over the same items.
#include <omp.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "fathom/core/splitmix.hpp"
#include "fathom/eval/gpqa.hpp"
#include "fathom/eval/policies.hpp"
#include "fathom/eval/progress.hpp"
#include "fathom/eval/prompt.hpp"
#include "fathom/eval/results.hpp"
#include "fathom/eval/shared_pass.hpp"
#include "fathom/eval/task.hpp"

namespace fathom::eval {

struct EvalOptions {
  PromptOptions prompt;
  ScoringSettings scoring;
  uint64_t seed = 0;           // sampling seed (per item: mixed with the item id)
  size_t limit = 0;            // 0: all items; else the first `limit`
  int threads = 1;             // worker threads (each runs single-threaded kernels when > 1)
  std::string out;             // results JSONL (required)
  bool progress = true;
  size_t stop_after = 0;       // testing aid: stop after this many new (item, policy) results
  // Policies that never change the stream (full, lac:α, lac-trace:α) share one forward pass per
  // item (shared_pass.hpp; identical results). false: one pass per policy.
  bool share_pass = true;
  SessionOptions session;      // context and KV cache of every evaluator's session
};

struct EvalRun {
  std::vector<PolicySummary> summaries;  // one per policy, in the order given
  size_t items = 0;                      // items selected
  size_t resumed = 0;                    // (item, policy) results found in the file
  size_t computed = 0;                   // (item, policy) results computed by this call
  double wall_seconds = 0;               // of this call
  bool complete = false;                 // every selected item has every policy's result
};

// The settings a results file must agree on to be resumed.
inline nlohmann::json run_settings(TaskKind task, const std::string& model, const std::string& data,
                                   const std::vector<std::string>& policies, const EvalOptions& o,
                                   const nlohmann::json& extra = {}) {
  nlohmann::json s = {{"task", task_name(task)},
                      {"model", model},
                      {"data", data},
                      {"policies", policies},
                      {"preset", preset_name(o.prompt.preset)},
                      {"shots", o.prompt.shots},
                      {"chat", o.prompt.chat},
                      {"scoring", scoring_name(o.scoring.scoring)},
                      {"seed", o.seed}};
  if (o.session.kv_precision == KvPrecision::BF16) s["kv_cache"] = "bf16";  // absent: f32 (older files)
  if (o.scoring.scoring == Scoring::Generate)
    s["generation"] = {{"max_new_tokens", o.scoring.generation.max_new_tokens},
                       {"temperature", o.scoring.generation.temperature},
                       {"top_p", o.scoring.generation.top_p}};
  if (extra.is_object())
    for (auto it = extra.begin(); it != extra.end(); ++it) s[it.key()] = it.value();
  return s;
}

// Context a prompt leaves free: room for the reply in generate scoring (at most a quarter of
// the context); log-likelihood scoring reserves its continuations inside PromptBuilder::build.
inline size_t prompt_reserve(const ScoringSettings& s, int64_t ctx) {
  if (s.scoring == Scoring::Loglik) return 0;
  return size_t(std::min<int64_t>(s.generation.max_new_tokens, ctx / 4));
}

inline uint64_t item_seed(uint64_t seed, const std::string& id) {
  uint64_t h = 1469598103934665603ull;  // FNV-1a of the id
  for (unsigned char c : id) h = (h ^ c) * 1099511628211ull;
  return splitmix64(seed ^ h);
}

// groups: a partition of the policy indices; make_group(g) returns a fresh evaluator for group
// g that scores its policies together (called once per group per worker).
inline EvalRun run_eval_groups(const Task& task, const tok::AnyTokenizer& tok,
                               const std::vector<std::string>& policies,
                               const std::vector<std::vector<size_t>>& groups,
                               const std::function<std::unique_ptr<GroupEvaluator>(size_t)>& make_group,
                               const EvalOptions& o, const nlohmann::json& settings) {
  if (o.out.empty()) throw UsageError("", "out", "a results file is required");
  if (task.items.empty()) throw UsageError("", "items", "no items selected");
  const auto t0 = std::chrono::steady_clock::now();
  const size_t n = o.limit ? std::min(o.limit, task.items.size()) : task.items.size();
  std::set<std::string> ids;
  for (size_t i = 0; i < n; ++i) ids.insert(task.items[i].id);

  ResultsFile file(o.out, settings);
  EvalRun run;
  run.items = n;
  // Items already complete for every policy are not counted as work left.
  auto complete = [&](const Item& it) {
    for (auto& p : policies)
      if (!file.done(p, it.id)) return false;
    return true;
  };
  size_t already = 0;
  for (size_t i = 0; i < n; ++i) already += complete(task.items[i]);
  for (auto& r : file.records()) run.resumed += ids.count(r.id) > 0;

  // Running accuracy per policy for the progress line.
  std::vector<size_t> right(policies.size(), 0), seen(policies.size(), 0);
  for (auto& r : file.records())
    for (size_t p = 0; p < policies.size(); ++p)
      if (r.policy == policies[p] && ids.count(r.id)) ++seen[p], right[p] += r.correct;

  ProgressBar bar(n, already, o.progress);
  std::mutex mu;
  std::atomic<size_t> next{0};
  std::atomic<size_t> computed{0};
  std::atomic<bool> stop{false};
  std::exception_ptr error;
  const int workers = std::max(1, o.threads);

  auto work = [&]() {
    try {
      if (workers > 1) omp_set_num_threads(1);  // parallel over items, not inside the tiny GEMMs
      std::vector<std::unique_ptr<GroupEvaluator>> ev;
      for (size_t g = 0; g < groups.size(); ++g) ev.push_back(make_group(g));
      const int64_t ctx = ev[0]->context();
      const bool loglik = o.scoring.scoring == Scoring::Loglik;
      const size_t reserve = prompt_reserve(o.scoring, ctx);
      PromptBuilder builder(tok, task.kind, o.prompt);
      for (;;) {
        if (stop) return;
        const size_t i = next++;
        if (i >= n) return;
        const Item& it = task.items[i];
        if (complete(it)) continue;
        const Prompt pr = builder.build(it, task.dev, size_t(ctx) - reserve, loglik);
        const uint64_t seed = item_seed(o.seed, it.id);
        for (size_t g = 0; g < groups.size(); ++g) {
          bool todo = false;
          for (size_t p : groups[g]) todo |= !file.done(policies[p], it.id);
          if (!todo) continue;
          if (o.stop_after && computed >= o.stop_after) { stop = true; return; }
          const std::vector<ItemOutcome> outs = ev[g]->evaluate(pr, it, tok, o.scoring, seed);
          for (size_t m = 0; m < groups[g].size(); ++m) {
            const size_t p = groups[g][m];
            if (file.done(policies[p], it.id)) continue;
            if (o.stop_after && computed >= o.stop_after) { stop = true; return; }
            const ItemOutcome& out = outs[m];
            ItemRecord r;
            r.policy = policies[p], r.id = it.id, r.subject = it.subject;
            r.answer = it.answer, r.pred = out.scored.pred, r.correct = r.pred == it.answer;
            r.logprobs = out.scored.logprobs, r.output = out.scored.output;
            r.prompt_tokens = pr.tokens.size(), r.shots = pr.shots, r.truncated = pr.truncated;
            r.pp_tokens = out.pp_tokens, r.pp_active = out.pp_active;
            r.rg_tokens = out.rg_tokens, r.rg_active = out.rg_active;
            r.seconds = out.seconds;
            file.append(r);
            ++computed;
            std::lock_guard<std::mutex> lock(mu);
            ++seen[p], right[p] += r.correct;
          }
        }
        std::lock_guard<std::mutex> lock(mu);
        std::string extra;
        for (size_t p = 0; p < policies.size(); ++p) {
          char b[96];
          std::snprintf(b, sizeof b, " %s %.1f%%", policies[p].c_str(),
                        seen[p] ? 100.0 * double(right[p]) / double(seen[p]) : 0.0);
          extra += b;
        }
        bar.tick(extra);
      }
    } catch (...) {
      std::lock_guard<std::mutex> lock(mu);
      if (!error) error = std::current_exception();
      stop = true;
    }
  };
  if (workers == 1) {
    work();
  } else {
    std::vector<std::thread> ts;
    for (int w = 0; w < workers; ++w) ts.emplace_back(work);
    for (auto& t : ts) t.join();
  }
  bar.finish();
  if (error) std::rethrow_exception(error);

  run.computed = computed;
  run.summaries = summarize(file.records(), policies, ids);
  run.complete = true;
  for (size_t i = 0; i < n && run.complete; ++i) run.complete = complete(task.items[i]);
  run.wall_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return run;
}

// make(p) returns a fresh evaluator for policy p (called once per policy per worker).
inline EvalRun run_eval(const Task& task, const tok::AnyTokenizer& tok,
                        const std::vector<std::string>& policies,
                        const std::function<std::unique_ptr<Evaluator>(size_t)>& make,
                        const EvalOptions& o, const nlohmann::json& settings) {
  std::vector<std::vector<size_t>> groups;
  for (size_t p = 0; p < policies.size(); ++p) groups.push_back({p});
  return run_eval_groups(
      task, tok, policies, groups,
      [&](size_t g) { return std::make_unique<SingleEvaluator>(make(groups[g][0])); }, o, settings);
}

// The usual case: named policies on one model. With o.share_pass, the policies that never
// change the stream form one group scored from one pass per item; the others run on their own.
inline EvalRun run_eval(const Task& task, const tok::AnyTokenizer& tok, const Model& model,
                        const std::vector<PolicySpec>& specs, const EvalOptions& o,
                        const nlohmann::json& settings) {
  std::vector<std::string> names;
  for (auto& s : specs) names.push_back(s.name);
  std::vector<std::vector<size_t>> groups;
  std::vector<size_t> shared;
  for (size_t p = 0; p < specs.size(); ++p) {
    if (o.share_pass && observe_only(specs[p])) shared.push_back(p);
    else groups.push_back({p});
  }
  if (shared.size() == 1) groups.push_back(shared);
  else if (shared.size() > 1) groups.insert(groups.begin(), shared);
  return run_eval_groups(
      task, tok, names, groups,
      [&](size_t g) -> std::unique_ptr<GroupEvaluator> {
        if (groups[g].size() == 1)
          return std::make_unique<SingleEvaluator>(make_evaluator(model, specs[groups[g][0]], o.session));
        std::vector<PolicySpec> members;
        for (size_t p : groups[g]) members.push_back(specs[p]);
        return std::make_unique<SharedPassEvaluator>(model, members, o.session);
      },
      o, settings);
}

}  // namespace fathom::eval
