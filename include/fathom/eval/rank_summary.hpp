#pragma once
// Per-readout summaries of the depth metrics over many tokens or prompts (depth/metrics.hpp
// gives one rank trajectory per token, one OptionRanks per prompt): what examples/depth writes as
// target_rank.csv and option_ranks.svg. Ranks span orders of magnitude (1 to the vocabulary
// size), so they are averaged as log10.
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <vector>

#include "fathom/core/error.hpp"
#include "fathom/depth/metrics.hpp"

namespace fathom::eval {

// Per readout i, over all trajectories (rank of the tracked token at each readout).
struct TargetRankSummary {
  std::vector<double> mean_log10_rank;  // [readouts]
  std::vector<int64_t> median_rank;     // [readouts] element n/2 of the sorted ranks (upper median)
  std::vector<double> top1_share;       // [readouts] share with rank 1
  size_t items = 0;
};

// trajectories: one [readouts] rank vector per token, all of one length.
inline TargetRankSummary summarize_target_ranks(const std::vector<std::vector<int64_t>>& trajectories) {
  if (trajectories.empty()) throw UsageError("", "trajectories", "no tokens to summarise");
  const size_t R = trajectories.front().size();
  for (auto& tr : trajectories)
    if (tr.size() != R) throw UsageError("", "trajectories", "rank vectors of different lengths");
  TargetRankSummary s;
  s.items = trajectories.size();
  const double n = double(trajectories.size());
  std::vector<int64_t> r(trajectories.size());  // [items] ranks at one readout
  for (size_t i = 0; i < R; ++i) {
    double lg = 0, top = 0;
    for (size_t t = 0; t < trajectories.size(); ++t) {
      r[t] = trajectories[t][i];
      lg += std::log10(double(r[t])), top += r[t] == 1;
    }
    std::nth_element(r.begin(), r.begin() + long(r.size() / 2), r.end());
    s.mean_log10_rank.push_back(lg / n);
    s.median_rank.push_back(r[r.size() / 2]);
    s.top1_share.push_back(top / n);
  }
  return s;
}

// Per readout, over multiple-choice prompts: the mean log10 vocabulary rank of the correct option
// and of the other options, and the correct option's mean rank among the options (1 = the most
// likely option). Every option of a prompt without an answer counts as "other".
class OptionRankSummary {
 public:
  explicit OptionRankSummary(size_t readouts)
      : ans_rank_(readouts, 0), other_rank_(readouts, 0), ans_among_(readouts, 0), ans_top_(readouts, 0) {}

  // answer: index of the correct option, -1 if unknown.
  void add(const depth::OptionRanks& r, int answer) {
    if (r.vocab.size() != readouts() || r.among.size() != readouts())
      throw UsageError("", "ranks", "expected " + std::to_string(readouts()) + " readouts");
    const size_t n = r.option_tokens.size();
    if (answer >= int(n)) throw UsageError("", "answer", "not an index into the options");
    for (size_t i = 0; i < readouts(); ++i)
      for (size_t q = 0; q < n; ++q) {
        const double lg = std::log10(double(r.vocab[i][q]));
        if (int(q) == answer) ans_rank_[i] += lg, ans_among_[i] += r.among[i][q], ans_top_[i] += r.among[i][q] == 1;
        else other_rank_[i] += lg;
      }
    n_ans_ += answer >= 0;
    n_other_ += n - (answer >= 0);
    ++items_;
  }

  size_t readouts() const { return ans_rank_.size(); }
  size_t items() const { return items_; }
  size_t answers() const { return n_ans_; }  // prompts with a known answer
  // NaN when no prompt had an answer (or, for other_log10_rank, no other option).
  double answer_log10_rank(size_t i) const { return n_ans_ ? ans_rank_[i] / double(n_ans_) : NAN; }
  double answer_among_rank(size_t i) const { return n_ans_ ? ans_among_[i] / double(n_ans_) : NAN; }
  double other_log10_rank(size_t i) const { return n_other_ ? other_rank_[i] / double(n_other_) : NAN; }
  // Share of prompts whose answer is the most likely option at readout i.
  double answer_top_share(size_t i) const { return n_ans_ ? ans_top_[i] / double(n_ans_) : NAN; }

 private:
  std::vector<double> ans_rank_, other_rank_, ans_among_, ans_top_;  // [readouts] sums
  size_t n_ans_ = 0, n_other_ = 0, items_ = 0;
};

}  // namespace fathom::eval
