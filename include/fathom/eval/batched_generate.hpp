#pragma once
// Generation scoring with batched decoding (eval --scoring generate --batch B): the items of a task
// decoded B at a time per policy (model/batch_generate.hpp), with results identical to the
// unbatched runner's (runner.hpp): the same prompts, per-item seeds (item_seed), stopping rules,
// layer-usage counts from a trace per sequence, and the same records in the same order in the
// results file — items in order, each item's policies in the order run_eval scores them (the
// policies that share a pass first). Only "seconds" differs: here it is the time from the item's
// join to its last token, which overlaps the other sequences of its batch.
//
// Items are taken in chunks (8 B items): each policy generates the chunk's open items, then the
// chunk's records are written; an interrupted run resumes like the unbatched one (results.hpp).
// Kernel threads: o.threads (the unbatched runner uses them as item workers instead).
#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <type_traits>
#include <vector>

#include <nlohmann/json.hpp>

#include "fathom/depth/policies.hpp"
#include "fathom/eval/extract.hpp"
#include "fathom/eval/policies.hpp"
#include "fathom/eval/progress.hpp"
#include "fathom/eval/prompt.hpp"
#include "fathom/eval/results.hpp"
#include "fathom/eval/runner.hpp"
#include "fathom/eval/shared_pass.hpp"
#include "fathom/eval/task.hpp"
#include "fathom/model/batch_generate.hpp"

namespace fathom::eval {

// The order in which run_eval scores an item's policies: the group sharing a pass first (when
// o.share_pass groups two or more), then the others in the order given.
inline std::vector<size_t> runner_policy_order(const std::vector<PolicySpec>& specs, const EvalOptions& o) {
  std::vector<size_t> shared, alone;
  for (size_t p = 0; p < specs.size(); ++p) (o.share_pass && observe_only(specs[p]) ? shared : alone).push_back(p);
  std::vector<size_t> order;
  if (shared.size() > 1) order = shared;
  order.insert(order.end(), alone.begin(), alone.end());
  if (shared.size() == 1) order.push_back(shared[0]);
  return order;
}

inline EvalRun run_eval_batched(const Task& task, const tok::AnyTokenizer& tok, const Model& model,
                                const std::vector<PolicySpec>& specs, const EvalOptions& o,
                                const nlohmann::json& settings, size_t batch) {
  if (o.scoring.scoring != Scoring::Generate)
    throw UsageError("", "batch", "batched decoding serves generation scoring only (--scoring generate)");
  if (o.out.empty()) throw UsageError("", "out", "a results file is required");
  if (task.items.empty()) throw UsageError("", "items", "no items selected");
  if (batch == 0) throw UsageError("", "batch", "must be at least 1");
  const auto t0 = std::chrono::steady_clock::now();
  const size_t n = o.limit ? std::min(o.limit, task.items.size()) : task.items.size();
  std::vector<std::string> names;
  for (const auto& s : specs) names.push_back(s.name);
  std::set<std::string> ids;
  for (size_t i = 0; i < n; ++i) ids.insert(task.items[i].id);

  ResultsFile file(o.out, settings);
  EvalRun run;
  run.items = n;
  for (auto& r : file.records()) run.resumed += ids.count(r.id) > 0;
  auto complete = [&](const Item& it) {
    for (auto& p : names)
      if (!file.done(p, it.id)) return false;
    return true;
  };
  size_t already = 0;
  for (size_t i = 0; i < n; ++i) already += complete(task.items[i]);
  ProgressBar bar(n, already, o.progress);

  const int saved_threads = omp_get_max_threads();
  omp_set_num_threads(std::max(1, o.threads));
  struct Restore {
    int n;
    ~Restore() { omp_set_num_threads(n); }
  } restore{saved_threads};

  const std::vector<size_t> order = runner_policy_order(specs, o);
  BatchSession bs(model, batch, o.session);
  const int64_t ctx = bs.session(0).capacity();
  const size_t reserve = prompt_reserve(o.scoring, ctx);
  PromptBuilder builder(tok, task.kind, o.prompt);
  std::vector<std::unique_ptr<Trace>> traces;  // [slot] usage counts of the slot's sequence
  for (size_t k = 0; k < batch; ++k) traces.push_back(std::make_unique<Trace>(model.n_layers(), false));
  GenerateOptions base;
  base.max_new_tokens = o.scoring.generation.max_new_tokens;
  for (int32_t e : tok.eos_ids()) base.eos_ids.push_back(e);

  const size_t chunk = std::max<size_t>(8 * batch, 1);
  for (size_t c0 = 0; c0 < n; c0 += chunk) {
    const size_t c1 = std::min(n, c0 + chunk);
    std::vector<size_t> open;  // items of the chunk with a result missing
    for (size_t i = c0; i < c1; ++i)
      if (!complete(task.items[i])) open.push_back(i);
    if (open.empty()) continue;
    std::vector<std::optional<Prompt>> prompts(c1 - c0);
    for (size_t i : open) prompts[i - c0] = builder.build(task.items[i], task.dev, size_t(ctx) - reserve, false);
    std::map<std::pair<size_t, size_t>, ItemRecord> recs;  // (item, policy) -> record
    for (size_t p : order) {
      std::vector<size_t> todo;
      for (size_t i : open)
        if (!file.done(names[p], task.items[i].id)) todo.push_back(i);
      if (todo.empty()) continue;
      std::vector<std::chrono::steady_clock::time_point> started(todo.size());
      with_policy(model, specs[p], [&](auto& proto) {
        generate_batch(
            bs, todo.size(),
            [&](size_t j) {
              const Item& it = task.items[todo[j]];
              GenerateOptions g = base;
              g.sampling = SamplingOptions{o.scoring.generation.temperature, o.scoring.generation.top_p,
                                           item_seed(o.seed, it.id)};
              return BatchRequest{prompts[todo[j] - c0]->tokens, g};
            },
            [&](size_t) { return proto; },
            [&](size_t j, Session& s) {
              started[j] = std::chrono::steady_clock::now();
              for (size_t k = 0; k < batch; ++k)
                if (&bs.session(k) == &s) {
                  traces[k]->clear();
                  s.set_trace(traces[k].get());
                }
            },
            [&](size_t j, Generation&& gen, Session& s) {
              const size_t i = todo[j];
              const Item& it = task.items[i];
              const Prompt& pr = *prompts[i - c0];
              const Trace& t = *s.trace();
              ItemRecord r;
              r.policy = names[p], r.id = it.id, r.subject = it.subject;
              r.output = tok.decode(gen.tokens, true);
              r.answer = it.answer, r.pred = extract_answer(r.output, pr.labels, it);
              r.correct = r.pred == it.answer;
              r.prompt_tokens = pr.tokens.size(), r.shots = pr.shots, r.truncated = pr.truncated;
              r.pp_tokens = t.usage(Phase::PP).tokens, r.pp_active = t.activated_pairs(Phase::PP);
              r.rg_tokens = t.usage(Phase::RG).tokens, r.rg_active = t.activated_pairs(Phase::RG);
              r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started[j]).count();
              s.set_trace(nullptr);
              recs[{i, p}] = std::move(r);
            });
      });
    }
    for (size_t i : open) {
      for (size_t p : order) {
        auto f = recs.find({i, p});
        if (f == recs.end()) continue;
        file.append(f->second);
        ++run.computed;
      }
      std::string extra;
      bar.tick(extra);
    }
  }
  bar.finish();
  run.summaries = summarize(file.records(), names, ids);
  run.complete = true;
  for (size_t i = 0; i < n && run.complete; ++i) run.complete = complete(task.items[i]);
  run.wall_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return run;
}

}  // namespace fathom::eval
