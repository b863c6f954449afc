#pragma once
// Readout of a residual-stream vector through the model's own final norm + unembedding
// (Model::readout(), the same code for every family), and the per-layer statistics lenses need:
// top-k, the rank of target tokens, softmax confidence. One vocab-sized buffer is reused for
// every readout, so reading all layers of a long text never holds more than one [vocab] vector.
//
//   rank(y) = 1 + #{v : logit(v) > logit(y)}   (equal to the rank by probability: softmax is
//                                                monotone; ties share the better rank)
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <queue>
#include <span>
#include <string>
#include <vector>

#include "fathom/core/error.hpp"
#include "fathom/model/model.hpp"

namespace fathom::lens {

struct TopEntry {
  int32_t id = 0;
  float logit = 0;
  float prob = 0;  // softmax probability over the whole vocabulary
};

// 1 + #{v : logits[v] > logits[target]}.
inline int64_t rank_of(std::span<const float> logits, int32_t target) {
  if (target < 0 || size_t(target) >= logits.size())
    throw UsageError("", "target", "token id " + std::to_string(target) + " outside the vocabulary");
  const float y = logits[size_t(target)];
  int64_t above = 0;
  for (float v : logits) above += v > y;
  return above + 1;
}

// log Σ exp(logits) computed stably.
inline double logsumexp(std::span<const float> logits) {
  float m = -INFINITY;
  for (float v : logits) m = std::max(m, v);
  double s = 0;
  for (float v : logits) s += std::exp(double(v - m));
  return double(m) + std::log(s);
}

// The k largest logits, best first (ties: lower id first), with softmax probabilities.
// O(V log k) with a size-k heap; never copies the vocabulary.
inline std::vector<TopEntry> top_k(std::span<const float> logits, size_t k) {
  k = std::min(k, logits.size());
  auto worse = [&](int32_t a, int32_t b) {  // a ranks after b
    const float la = logits[size_t(a)], lb = logits[size_t(b)];
    return la < lb || (la == lb && a > b);
  };
  // Min-heap by rank: the top of the heap is the worst of the k kept so far.
  auto cmp = [&](int32_t a, int32_t b) { return worse(b, a); };
  std::priority_queue<int32_t, std::vector<int32_t>, decltype(cmp)> heap(cmp);
  for (size_t v = 0; v < logits.size(); ++v) {
    if (heap.size() < k) heap.push(int32_t(v));
    else if (k && worse(heap.top(), int32_t(v))) heap.pop(), heap.push(int32_t(v));
  }
  const double lse = logsumexp(logits);
  std::vector<TopEntry> out(heap.size());
  for (size_t i = heap.size(); i-- > 0;) {
    const int32_t id = heap.top();
    heap.pop();
    out[i] = TopEntry{id, logits[size_t(id)], float(std::exp(double(logits[size_t(id)]) - lse))};
  }
  return out;
}

// Softmax confidence measures (CALM): probability of the top-1 token, and top-1 minus top-2.
struct SoftmaxTop2 {
  double p1 = 0, p2 = 0;
};
inline SoftmaxTop2 softmax_top2(std::span<const float> logits) {
  float m1 = -INFINITY, m2 = -INFINITY;
  for (float v : logits) {
    if (v > m1) m2 = m1, m1 = v;
    else if (v > m2) m2 = v;
  }
  double s = 0;
  for (float v : logits) s += std::exp(double(v - m1));
  return {1.0 / s, logits.size() > 1 ? std::exp(double(m2 - m1)) / s : 0.0};
}

// Turns residual-stream vectors into logits through a model's Readout, one [vocab] buffer.
class Reader {
 public:
  explicit Reader(const Readout& r) : r_(r), normed_(r.hidden()), logits_(r.vocab()) {}
  explicit Reader(const Model& m) : Reader(m.readout()) {}

  size_t vocab() const { return r_.vocab(); }
  size_t hidden() const { return r_.hidden(); }

  // [vocab] logits of h (valid until the next call).
  std::span<const float> logits(std::span<const float> h) {
    if (h.size() != hidden())
      throw UsageError("", "h", "readout of a vector of size " + std::to_string(h.size()) +
                                    ", expected " + std::to_string(hidden()));
    r_(h.data(), 1, normed_.data(), logits_.data());
    return logits_;
  }
  // [hidden] the normed vector of the last readout.
  std::span<const float> normed() const { return normed_; }

 private:
  Readout r_;
  std::vector<float> normed_;  // [hidden]
  std::vector<float> logits_;  // [vocab]
};

// What one readout yields for the depth metrics: top-k and the ranks of given targets.
struct ReadoutStats {
  std::vector<TopEntry> top;          // best first
  std::vector<int64_t> target_ranks;  // one per requested target
  double logsumexp = 0;
};

inline ReadoutStats readout_stats(std::span<const float> logits, size_t k,
                                  std::span<const int32_t> targets) {
  ReadoutStats s;
  s.top = top_k(logits, k);
  s.target_ranks.reserve(targets.size());
  for (int32_t t : targets) s.target_ranks.push_back(rank_of(logits, t));
  s.logsumexp = logsumexp(logits);
  return s;
}

}  // namespace fathom::lens
