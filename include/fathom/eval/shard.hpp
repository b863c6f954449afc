#pragma once
// Distributed evaluation, without MPI in it: which items (or perplexity windows) each rank runs,
// the per-rank part files that keep a killed rank's finished work, and the merge that turns the
// parts into exactly the results file one single-threaded process writes. The MPI transport
// lives in the eval example (examples/mpi_comm.hpp); everything here is plain C++, tested
// without MPI (tests/test_eval_shard.cpp), and the eval program runs it over MPI as follows
// (docs/evaluation.md, "Running on a cluster"):
//
//   1. every rank sends the text of its part file `<out>.rank<r>.part` (records a previous,
//      interrupted run computed there) to rank 0; rank 0 merges them and the parts it can see of
//      ranks beyond this run's count into `<out>`, rewritten in canonical order;
//   2. the items that still miss a policy's result are split by balance_shards() on their
//      prompt lengths, the same deterministic plan on every rank;
//   3. each rank runs its items with the ordinary runner into its part file, seeded with the
//      results its items already have (so only missing (item, policy) pairs are computed);
//   4. rank 0 gathers the parts, merges them into `<out>` (canonical order) and summarises.
//
// Sampling seeds are per item (runner.hpp, item_seed), so the results do not depend on the
// number of ranks; canonical_order() makes the file's bytes not depend on it either.
#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <set>
#include <span>
#include <sstream>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include <nlohmann/json.hpp>

#include "fathom/core/error.hpp"
#include "fathom/core/text_file.hpp"
#include "fathom/eval/perplexity.hpp"
#include "fathom/eval/results.hpp"
#include "fathom/eval/task.hpp"
#include "fathom/model/trace.hpp"

namespace fathom::eval {

// ---- assignment -----------------------------------------------------------------------------

// Splits units of work with costs `weights` over `shards` ranks: greedy longest-processing-time
// (heaviest unit first, ties by index, each to the least loaded shard, ties to the lowest shard),
// whose largest load is at most 4/3 of the best possible. Deterministic: every rank computes the
// same plan from the same weights. Returns, per shard, the indices of its units in ascending order.
inline std::vector<std::vector<size_t>> balance_shards(std::span<const uint64_t> weights,
                                                       size_t shards) {
  if (shards == 0) throw UsageError("", "shards", "must be at least 1");
  std::vector<size_t> order(weights.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::stable_sort(order.begin(), order.end(),
                   [&](size_t a, size_t b) { return weights[a] > weights[b]; });
  std::vector<std::vector<size_t>> plan(shards);
  std::vector<uint64_t> load(shards, 0);
  for (size_t i : order) {
    const size_t s = size_t(std::min_element(load.begin(), load.end()) - load.begin());  // first min
    plan[s].push_back(i);
    load[s] += weights[i];
  }
  for (auto& p : plan) std::sort(p.begin(), p.end());
  return plan;
}

// Σ weights of each shard of a plan (for reports and tests).
inline std::vector<uint64_t> shard_loads(const std::vector<std::vector<size_t>>& plan,
                                         std::span<const uint64_t> weights) {
  std::vector<uint64_t> out;
  for (const auto& p : plan) {
    uint64_t s = 0;
    for (size_t i : p) s += weights[i];
    out.push_back(s);
  }
  return out;
}

// An item's cost for balancing: its prompt tokens plus the reply budget (max new tokens under
// generate scoring, 0 under log-likelihood), plus one so that an empty prompt still counts.
inline uint64_t item_cost(size_t prompt_tokens, size_t reply_tokens) {
  return uint64_t(prompt_tokens) + uint64_t(reply_tokens) + 1;
}

// ---- part files -----------------------------------------------------------------------------

inline std::string part_path(const std::string& out, size_t rank) {
  return out + ".rank" + std::to_string(rank) + ".part";
}

// The part files of `out` that exist (any rank), as (rank, path), by rank.
inline std::vector<std::pair<size_t, std::string>> list_parts(const std::string& out) {
  namespace fs = std::filesystem;
  const fs::path p(out);
  const fs::path dir = p.parent_path().empty() ? fs::path(".") : p.parent_path();
  const std::string prefix = p.filename().string() + ".rank";
  std::vector<std::pair<size_t, std::string>> found;
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) return found;
  for (const auto& e : fs::directory_iterator(dir, ec)) {
    const std::string name = e.path().filename().string();
    if (name.size() <= prefix.size() + 5 || name.compare(0, prefix.size(), prefix) != 0 ||
        !name.ends_with(".part"))
      continue;
    const std::string digits = name.substr(prefix.size(), name.size() - prefix.size() - 5);
    if (digits.empty() || digits.size() > 9 ||
        !std::all_of(digits.begin(), digits.end(), [](char c) { return c >= '0' && c <= '9'; }))
      continue;
    found.emplace_back(size_t(std::stoul(digits)), (p.parent_path() / name).string());
  }
  std::sort(found.begin(), found.end());
  return found;
}

// The records of one part file's text; `where` names it in errors (e.g. "rank 2: out.jsonl.rank2.part").
// An empty text has none. A half-written last line (the rank was killed mid-write) is dropped,
// as ResultsFile does; any other damage is a DataError naming the line, and a part written by a
// run with other settings is the UsageError ResultsFile gives.
inline std::vector<ItemRecord> parse_part(std::string_view text, const std::string& where,
                                          const nlohmann::json& settings) {
  const size_t nl = text.rfind('\n');
  text = text.substr(0, nl == std::string_view::npos ? 0 : nl + 1);
  if (text.empty()) return {};
  ResultsText parsed = parse_results_jsonl(text, where, settings);
  return std::move(parsed.records);
}

// ---- merge ----------------------------------------------------------------------------------

// The first record of each (policy, item), in the order they were added.
class MergedResults {
 public:
  bool add(const ItemRecord& r) {
    if (!keys_.insert(key(r.policy, r.id)).second) return false;
    records_.push_back(r);
    return true;
  }
  size_t add_all(const std::vector<ItemRecord>& rs) {
    size_t n = 0;
    for (const auto& r : rs) n += add(r);
    return n;
  }
  bool done(const std::string& policy, const std::string& id) const {
    return keys_.count(key(policy, id)) > 0;
  }
  const std::vector<ItemRecord>& records() const { return records_; }
  size_t size() const { return records_.size(); }

 private:
  static std::string key(const std::string& policy, const std::string& id) { return policy + "\x1f" + id; }
  std::set<std::string> keys_;
  std::vector<ItemRecord> records_;
};

// The records in the order a single-threaded process writes them for a fresh run: by the
// position of their item in `item_ids` (the task's order), one item's records in the order given
// (a rank scores an item's policies in the runner's order, as one process does); records of ids
// not in `item_ids` (e.g. from an earlier run with a larger --limit) come last, as they came.
inline std::vector<ItemRecord> canonical_order(const std::vector<ItemRecord>& recs,
                                               const std::vector<std::string>& item_ids) {
  std::unordered_map<std::string, size_t> pos;
  for (size_t i = 0; i < item_ids.size(); ++i) pos.emplace(item_ids[i], i);
  std::vector<std::pair<size_t, size_t>> keyed;  // (item position or SIZE_MAX, index in recs)
  for (size_t k = 0; k < recs.size(); ++k) {
    const auto it = pos.find(recs[k].id);
    keyed.emplace_back(it == pos.end() ? SIZE_MAX : it->second, k);
  }
  std::stable_sort(keyed.begin(), keyed.end(),
                   [](const auto& a, const auto& b) { return a.first < b.first; });
  std::vector<ItemRecord> out;
  out.reserve(recs.size());
  for (const auto& [_, k] : keyed) out.push_back(recs[k]);
  return out;
}

// A results file's bytes, exactly as ResultsFile writes them: the run header, then one line per
// record.
inline std::string results_header_line(const nlohmann::json& settings) {
  const nlohmann::json h = {{"type", "run"}, {"settings", settings}};
  return h.dump() + '\n';
}
inline std::string record_line(const ItemRecord& r) {
  return to_json(r).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + '\n';
}
inline std::string results_text(const nlohmann::json& settings, const std::vector<ItemRecord>& recs) {
  std::string s = results_header_line(settings);
  for (const auto& r : recs) s += record_line(r);
  return s;
}

// Replaces `path` with `text` atomically (a temporary beside it, flushed, then renamed), so a
// crash leaves the old file or the new one, never half of either.
inline void write_file_atomic(const std::string& path, const std::string& text) {
  const std::string tmp = path + ".tmp";
  {
    std::ofstream f(tmp, std::ios::binary | std::ios::trunc);
    if (!f) throw IoError(tmp, "", "cannot open for writing");
    f.write(text.data(), std::streamsize(text.size()));
    f.flush();
    if (!f) throw IoError(tmp, "", "write failed (disk full?)");
  }
  std::error_code ec;
  std::filesystem::rename(tmp, path, ec);
  if (ec) throw IoError(path, "", "cannot replace with " + tmp + ": " + ec.message());
}

// The records of an existing results file (none when it does not exist), checked against
// `settings` as ResultsFile checks them; a half-written last line is ignored.
inline std::vector<ItemRecord> read_results_records(const std::string& path, const nlohmann::json& settings) {
  if (!std::filesystem::exists(path)) return {};
  return parse_part(read_text_file(path), path, settings);
}

// Indices i < n of `items` that miss the result of any of `policies`.
inline std::vector<size_t> missing_items(const std::vector<Item>& items, size_t n,
                                         const std::vector<std::string>& policies,
                                         const MergedResults& done) {
  std::vector<size_t> out;
  for (size_t i = 0; i < std::min(n, items.size()); ++i)
    for (const auto& p : policies)
      if (!done.done(p, items[i].id)) {
        out.push_back(i);
        break;
      }
  return out;
}

// Folds the part files of `out` this process can see into `out` (created with `settings` if
// absent), rewritten in canonical order, then deletes them. For a single-process run after an
// interrupted distributed one, and for rank 0 (`skip_below`: ranks whose parts it received by
// message instead). Returns the merged records.
inline MergedResults fold_visible_parts(const std::string& out, const nlohmann::json& settings,
                                        const std::vector<std::string>& item_ids,
                                        const std::vector<std::vector<ItemRecord>>& received = {},
                                        size_t skip_below = 0) {
  MergedResults m;
  m.add_all(read_results_records(out, settings));
  const size_t before = m.size();
  for (const auto& rs : received) m.add_all(rs);
  std::vector<std::string> folded;
  for (const auto& [rank, path] : list_parts(out)) {
    if (rank < skip_below) continue;
    m.add_all(parse_part(read_text_file(path), path, settings));
    folded.push_back(path);
  }
  if (m.size() != before || !std::filesystem::exists(out))
    write_file_atomic(out, results_text(settings, canonical_order(m.records(), item_ids)));
  for (const auto& p : folded) std::filesystem::remove(p);
  return m;
}

// ---- perplexity windows ---------------------------------------------------------------------

// Layer-usage counts (exact integers, unlike Usage's fractions), which add across ranks.
struct UsageCounts {
  uint64_t tokens = 0;
  std::vector<uint64_t> activated, executed;  // [layers]
  // Recovers the counts from a Trace's Usage: its fractions are count / tokens in double, exact
  // enough below 2^52 tokens that rounding back gives the count.
  static UsageCounts of(const Usage& u) {
    UsageCounts c;
    c.tokens = u.tokens;
    for (double a : u.activated) c.activated.push_back(uint64_t(std::llround(a * double(u.tokens))));
    for (double e : u.executed) c.executed.push_back(uint64_t(std::llround(e * double(u.tokens))));
    return c;
  }
  void add(const UsageCounts& o) {
    if (activated.empty()) activated.assign(o.activated.size(), 0), executed.assign(o.executed.size(), 0);
    if (o.activated.size() != activated.size() || o.executed.size() != executed.size())
      throw DataError("", "usage", "layer counts of different models");
    tokens += o.tokens;
    for (size_t l = 0; l < activated.size(); ++l) activated[l] += o.activated[l], executed[l] += o.executed[l];
  }
  // What Trace::usage() gives for these counts (the same arithmetic).
  Usage usage() const {
    Usage u;
    u.tokens = tokens;
    for (uint64_t a : activated) u.activated.push_back(tokens ? double(a) / double(tokens) : 0.0);
    for (uint64_t e : executed) u.executed.push_back(tokens ? double(e) / double(tokens) : 0.0);
    return u;
  }
};

// A rank's perplexity part as text: a line "usage <tokens> <layers> a0 e0 a1 e1 ..." and one line
// "<window> <nll as IEEE-754 bits in hex> <scored> <tokens>" per window.
inline std::string pack_windows(const std::vector<std::pair<size_t, WindowScore>>& ws,
                                const UsageCounts& u) {
  std::string s = "usage " + std::to_string(u.tokens) + " " + std::to_string(u.activated.size());
  for (size_t l = 0; l < u.activated.size(); ++l)
    s += " " + std::to_string(u.activated[l]) + " " + std::to_string(u.executed[l]);
  s += '\n';
  char b[96];
  for (const auto& [w, sc] : ws) {
    std::snprintf(b, sizeof b, "%zu %016llx %zu %zu\n", w,
                  (unsigned long long)std::bit_cast<uint64_t>(sc.nll), sc.scored, sc.tokens);
    s += b;
  }
  return s;
}

// Reads pack_windows()' text into `by_window` (indexed by window; each must arrive once) and adds
// its usage to `usage`. `where` names the sender in errors.
inline void unpack_windows(std::string_view text, const std::string& where,
                           std::vector<std::optional<WindowScore>>& by_window, UsageCounts& usage) {
  auto bad = [&](size_t line, const std::string& why) {
    return DataError(where, "line " + std::to_string(line), why);
  };
  size_t pos = 0, line = 0;
  while (pos < text.size()) {
    size_t end = text.find('\n', pos);
    if (end == std::string_view::npos) end = text.size();
    const std::string row(text.substr(pos, end - pos));
    pos = end + 1;
    ++line;
    std::istringstream in(row);
    if (line == 1) {
      std::string tag;
      UsageCounts u;
      size_t layers = 0;
      if (!(in >> tag >> u.tokens >> layers) || tag != "usage" || layers > (1u << 20))
        throw bad(line, "expected 'usage <tokens> <layers> ...'");
      u.activated.resize(layers), u.executed.resize(layers);
      for (size_t l = 0; l < layers; ++l)
        if (!(in >> u.activated[l] >> u.executed[l])) throw bad(line, "too few layer counts");
      usage.add(u);
      continue;
    }
    size_t w = 0;
    std::string hex;
    WindowScore sc;
    if (!(in >> w >> hex >> sc.scored >> sc.tokens) || hex.size() != 16 ||
        hex.find_first_not_of("0123456789abcdef") != std::string::npos)
      throw bad(line, "expected '<window> <nll bits> <scored> <tokens>'");
    if (w >= by_window.size())
      throw bad(line, "window " + std::to_string(w) + " of " + std::to_string(by_window.size()));
    if (by_window[w]) throw bad(line, "window " + std::to_string(w) + " sent twice");
    sc.nll = std::bit_cast<double>(uint64_t(std::stoull(hex, nullptr, 16)));
    by_window[w] = sc;
  }
  if (line == 0) throw bad(0, "empty (no usage line)");
}

}  // namespace fathom::eval
