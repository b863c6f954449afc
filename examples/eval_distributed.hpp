#pragma once
// eval over several MPI ranks (examples/eval.cpp; the plan is in fathom/eval/shard.hpp, the
// transport in mpi_comm.hpp): items, or perplexity windows, split over the ranks by cost, each
// rank running its share with its worker threads as one process would, rank 0 gathering and
// writing the results file and the report one process writes. With one rank these fall back to
// the single-process functions.
#include <algorithm>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <optional>
#include <set>
#include <span>
#include <sstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "fathom/eval/perplexity_parallel.hpp"
#include "fathom/eval/runner.hpp"
#include "fathom/eval/shard.hpp"
#include "mpi_comm.hpp"

namespace examples {

// Runs a task (a rank's share: the items of `part`) into the results file `o.out` with run
// settings `settings`: the ordinary runner, or any other that writes the same records.
using RunPart = std::function<fathom::eval::EvalRun(const fathom::eval::Task& part,
                                                    const fathom::eval::EvalOptions& o,
                                                    const nlohmann::json& settings)>;

namespace detail {
inline std::vector<std::string> item_ids(const fathom::eval::Task& task) {
  std::vector<std::string> ids;
  for (const auto& it : task.items) ids.push_back(it.id);
  return ids;
}
}  // namespace detail

// A single process: folds the part files an interrupted distributed run left beside o.out into
// it first (so their work is not lost), then runs as always.
inline fathom::eval::EvalRun run_eval_single(const fathom::eval::Task& task, const fathom::eval::EvalOptions& o,
                                             const nlohmann::json& settings, const RunPart& run) {
  if (!fathom::eval::list_parts(o.out).empty())
    fathom::eval::fold_visible_parts(o.out, settings, detail::item_ids(task));
  return run(task, o, settings);
}

// The task over comm's ranks, into o.out; the returned run (summaries, counts) is rank 0's, the
// other ranks get counts of their own share only.
inline fathom::eval::EvalRun run_eval_distributed(const Comm& comm, const fathom::eval::Task& task,
                                                  const fathom::tok::AnyTokenizer& tok,
                                                  const fathom::Model& model,
                                                  const std::vector<std::string>& policies,
                                                  const fathom::eval::EvalOptions& o,
                                                  const nlohmann::json& settings, const RunPart& run) {
  using namespace fathom;
  using namespace fathom::eval;
  if (!comm.distributed()) return run_eval_single(task, o, settings, run);
  const auto t0 = std::chrono::steady_clock::now();
  const size_t R = size_t(comm.size()), me = size_t(comm.rank());
  if (o.out.empty()) throw UsageError("", "out", "a results file is required");
  const size_t n = o.limit ? std::min(o.limit, task.items.size()) : task.items.size();
  const std::vector<std::string> all_ids = detail::item_ids(task);
  const std::set<std::string> selected(all_ids.begin(), all_ids.begin() + ptrdiff_t(n));
  // Rank 0's settings on every rank: model and data paths may be spelled differently elsewhere.
  const nlohmann::json s0 = nlohmann::json::parse(comm.bcast(settings.dump()));
  const std::string my_part = part_path(o.out, me);

  // 1. What earlier runs left: every rank's part file, merged by rank 0 into o.out.
  std::string text;
  comm.step([&] {
    if (std::filesystem::exists(my_part)) text = read_text_file(my_part);
  });
  auto texts = comm.gather(text);
  MergedResults merged;
  std::string missing_msg, seed_msg;
  comm.step([&] {
    if (me != 0) return;
    std::vector<std::vector<ItemRecord>> received;
    for (size_t r = 0; r < R; ++r)
      received.push_back(parse_part(texts[r], part_path(o.out, r), s0));
    merged = fold_visible_parts(o.out, s0, all_ids, received, R);
    const auto missing = missing_items(task.items, n, policies, merged);
    missing_msg = nlohmann::json(missing).dump();
    // The results the missing items already have (an item cut off between its policies).
    std::set<std::string> open;
    for (size_t i : missing) open.insert(task.items[i].id);
    std::vector<ItemRecord> seeds;
    for (const auto& r : merged.records())
      if (open.count(r.id)) seeds.push_back(r);
    seed_msg = results_text(s0, seeds);
  });
  texts.clear();
  std::vector<size_t> missing;
  std::vector<ItemRecord> seeds;
  missing_msg = comm.bcast(missing_msg);
  seed_msg = comm.bcast(seed_msg);
  comm.step([&] {
    missing = nlohmann::json::parse(missing_msg).get<std::vector<size_t>>();
    for (size_t i : missing)
      if (i >= n) throw DataError("", "plan", "item index out of range");
    seeds = parse_part(seed_msg, "rank 0's seed records", s0);
  });
  size_t resumed = 0;
  for (const auto& r : merged.records()) resumed += selected.count(r.id);

  // 2. The plan: the missing items' prompt lengths (each rank measures every R-th), balanced.
  std::string costs;
  comm.step([&] {
    const int64_t ctx = o.session.max_context
                            ? o.session.max_context
                            : std::min<int64_t>(model.config().max_position_embeddings, 4096);
    const bool loglik = o.scoring.scoring == Scoring::Loglik;
    const size_t reserve = prompt_reserve(o.scoring, ctx);
    PromptBuilder builder(tok, task.kind, o.prompt);
    for (size_t k = me; k < missing.size(); k += R) {
      const Prompt p = builder.build(task.items[missing[k]], task.dev, size_t(ctx) - reserve, loglik);
      costs += std::to_string(k) + " " + std::to_string(item_cost(p.tokens.size(), reserve)) + "\n";
    }
  });
  std::vector<uint64_t> weights(missing.size(), 0);
  for (const auto& t : comm.allgather(costs)) {
    std::istringstream in(t);
    size_t k = 0;
    uint64_t c = 0;
    while (in >> k >> c)
      if (k < weights.size()) weights[k] = c;
  }
  const auto plan = balance_shards(weights, R);

  // 3. This rank's items into its part file, seeded with what they already have.
  Task mine{task.kind, {}, task.dev};
  std::set<std::string> my_ids;
  for (size_t k : plan[me]) {
    mine.items.push_back(task.items[missing[k]]);
    my_ids.insert(task.items[missing[k]].id);
  }
  std::vector<ItemRecord> my_seeds;
  for (const auto& r : seeds)
    if (my_ids.count(r.id)) my_seeds.push_back(r);
  size_t computed = 0;
  comm.step([&] {
    write_file_atomic(my_part, results_text(s0, my_seeds));
    if (mine.items.empty()) return;
    EvalOptions op = o;
    op.out = my_part;
    op.limit = 0;
    op.progress = o.progress && me == 0;  // rank 0's share stands for the whole
    computed = run(mine, op, s0).computed;
  });

  // 4. Rank 0 gathers the parts and writes o.out in canonical order.
  comm.step([&] { text = read_text_file(my_part); });
  texts = comm.gather(text);
  const auto counts = comm.gather(std::to_string(computed));
  EvalRun out;
  comm.step([&] {
    if (me != 0) return;
    for (size_t r = 0; r < R; ++r)
      merged.add_all(parse_part(texts[r], part_path(o.out, r), s0));
    write_file_atomic(o.out, results_text(s0, canonical_order(merged.records(), all_ids)));
    out.items = n;
    out.resumed = resumed;
    for (const auto& c : counts) out.computed += std::stoull(c);
    out.summaries = summarize(merged.records(), policies, selected);
    out.complete = missing_items(task.items, n, policies, merged).empty();
  });
  // 5. Now that o.out holds them, the parts go.
  comm.step([&] { std::filesystem::remove(my_part); });
  if (me != 0) out.computed = computed;
  out.wall_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return out;
}

// Perplexity with its windows split over the ranks by length, each rank's over its worker
// threads; rank 0's result adds the windows in window order, as perplexity_parallel() does, so it
// is the single process's to the bit. Other ranks get an empty result.
inline fathom::eval::PolicyPerplexity perplexity_distributed(
    const Comm& comm, const fathom::Model& model, std::span<const int32_t> ids, size_t window,
    size_t stride, const fathom::PolicySpec& spec, int workers,
    const std::function<void()>& on_window = nullptr) {
  using namespace fathom;
  using namespace fathom::eval;
  if (!comm.distributed()) return perplexity_parallel(model, ids, window, stride, spec, workers, on_window);
  const auto t0 = std::chrono::steady_clock::now();
  const size_t R = size_t(comm.size()), me = size_t(comm.rank());
  const size_t total = ids.size() < 2 ? 0 : perplexity_windows(ids.size(), window, stride);
  std::vector<uint64_t> weights(total);
  for (size_t w = 0; w < total; ++w) weights[w] = perplexity_window_tokens(ids.size(), window, stride, w);
  const auto plan = balance_shards(weights, R);
  std::string text;
  comm.step([&] {
    const PerplexityPart part = perplexity_part(model, ids, window, stride, spec, workers, plan[me],
                                                me == 0 ? on_window : nullptr);
    std::vector<std::pair<size_t, WindowScore>> ws;
    for (size_t k = 0; k < plan[me].size(); ++k) ws.emplace_back(plan[me][k], part.scores[k]);
    text = pack_windows(ws, UsageCounts::of(part.trace.usage(Phase::PP)));
  });
  const auto texts = comm.gather(text);
  PolicyPerplexity out;
  comm.step([&] {
    if (me != 0) return;
    std::vector<std::optional<WindowScore>> by_window(total);
    UsageCounts usage;
    for (size_t r = 0; r < R; ++r) unpack_windows(texts[r], "rank " + std::to_string(r), by_window, usage);
    for (size_t w = 0; w < total; ++w) {
      if (!by_window[w]) throw DataError("", "window " + std::to_string(w), "no rank sent its score");
      add_window(out.result, *by_window[w]);
    }
    out.usage = usage.usage();
  });
  out.result.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return out;
}

}  // namespace examples
