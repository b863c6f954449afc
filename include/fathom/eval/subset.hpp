#pragma once
// Fixed subsets of a task's items, so long runs can be cut down without losing their balance and
// every rerun (and every resumed piece) sees exactly the same items.
//   stratified_subset(items, n, seed)  n items, each subject's share proportional to its size
//                                       (largest remainder; ties by the seeded order), a seeded
//                                       choice inside each subject, returned in the task's order.
//   spread_items(items, n)             n items spread over the subjects without randomness: round
//                                       r takes question r of evenly spaced subjects (n <= number
//                                       of subjects: one question each from subjects spaced
//                                       S/n apart). For a handful of demo or calibration items.
// Both depend only on (items, n, seed) — never on thread count or std:: random engines, whose
// sequences differ between standard libraries.
#include <algorithm>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "fathom/core/error.hpp"
#include "fathom/core/splitmix.hpp"
#include "fathom/eval/task.hpp"

namespace fathom::eval {

namespace detail {
// Subjects in order of first appearance, each with the indices of its items.
inline std::vector<std::pair<std::string, std::vector<size_t>>> by_subject(const std::vector<Item>& items) {
  std::vector<std::pair<std::string, std::vector<size_t>>> g;
  std::map<std::string, size_t> where;
  for (size_t i = 0; i < items.size(); ++i) {
    auto [it, fresh] = where.emplace(items[i].subject, g.size());
    if (fresh) g.push_back({items[i].subject, {}});
    g[it->second].second.push_back(i);
  }
  return g;
}
inline uint64_t key_hash(uint64_t seed, const std::string& s) {
  uint64_t h = 1469598103934665603ull;  // FNV-1a
  for (unsigned char c : s) h = (h ^ c) * 1099511628211ull;
  return splitmix64(seed ^ splitmix64(h));
}
}  // namespace detail

inline std::vector<Item> stratified_subset(const std::vector<Item>& items, size_t n, uint64_t seed) {
  if (n == 0) throw UsageError("", "subset", "a subset needs at least one item");
  if (n >= items.size()) return items;
  const auto groups = detail::by_subject(items);
  // Quotas: floor of the proportional share, then one more for the largest remainders.
  const double total = double(items.size());
  std::vector<size_t> quota(groups.size());
  std::vector<std::pair<double, size_t>> rem;  // (remainder, group)
  size_t given = 0;
  for (size_t g = 0; g < groups.size(); ++g) {
    const double share = double(n) * double(groups[g].second.size()) / total;
    quota[g] = size_t(share);
    given += quota[g];
    rem.push_back({share - double(quota[g]), g});
  }
  std::sort(rem.begin(), rem.end(), [&](const auto& a, const auto& b) {
    if (a.first != b.first) return a.first > b.first;
    return detail::key_hash(seed, groups[a.second].first) < detail::key_hash(seed, groups[b.second].first);
  });
  for (size_t k = 0; given < n && k < rem.size(); ++k, ++given) ++quota[rem[k].second];
  // Inside a subject: the quota items with the smallest seeded hash of their id.
  std::vector<size_t> keep;
  for (size_t g = 0; g < groups.size(); ++g) {
    std::vector<size_t> idx = groups[g].second;
    std::sort(idx.begin(), idx.end(), [&](size_t a, size_t b) {
      return detail::key_hash(seed, items[a].id) < detail::key_hash(seed, items[b].id);
    });
    keep.insert(keep.end(), idx.begin(), idx.begin() + std::ptrdiff_t(quota[g]));
  }
  std::sort(keep.begin(), keep.end());
  std::vector<Item> out;
  for (size_t i : keep) out.push_back(items[i]);
  return out;
}

inline std::vector<Item> spread_items(const std::vector<Item>& items, size_t n) {
  if (n == 0) throw UsageError("", "items", "at least one item");
  const auto groups = detail::by_subject(items);
  const size_t S = groups.size();
  std::vector<Item> out;
  for (size_t round = 0; out.size() < n && S > 0; ++round) {
    bool any = false;
    const size_t m = std::min(S, n - out.size());  // picks in this round
    for (size_t w = 0; w < m; ++w) {
      const auto& g = groups[w * S / m].second;
      if (round < g.size()) out.push_back(items[g[round]]), any = true;
    }
    if (!any) break;  // every subject exhausted
  }
  return out;
}

}  // namespace fathom::eval
