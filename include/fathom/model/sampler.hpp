#pragma once
// Next-token choice from logits: greedy (argmax, lowest id on ties, as torch.argmax) or
// temperature + nucleus (top-p) sampling with a seeded generator, so runs are reproducible.
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <numeric>
#include <random>
#include <span>
#include <vector>

#include "fathom/core/error.hpp"

namespace fathom {

struct SamplingOptions {
  float temperature = 0.f;  // 0: greedy
  float top_p = 1.f;        // keep the smallest set of tokens whose probability reaches top_p
  uint64_t seed = 0;
};

inline int32_t argmax(std::span<const float> logits) {
  return int32_t(std::max_element(logits.begin(), logits.end()) - logits.begin());
}

class Sampler {
 public:
  explicit Sampler(SamplingOptions o = {}) : o_(o), rng_(o.seed) {
    if (o.temperature < 0.f) throw UsageError("", "temperature", "must be >= 0");
    if (!(o.top_p > 0.f && o.top_p <= 1.f)) throw UsageError("", "top_p", "must be in (0, 1]");
  }

  int32_t operator()(std::span<const float> logits) {
    if (o_.temperature == 0.f) return argmax(logits);
    const size_t V = logits.size();
    probs_.resize(V);
    const float mx = *std::max_element(logits.begin(), logits.end());
    double sum = 0;
    for (size_t i = 0; i < V; ++i) sum += probs_[i] = std::exp(double(logits[i] - mx) / o_.temperature);
    order_.resize(V);
    std::iota(order_.begin(), order_.end(), 0);
    // Nucleus: tokens by probability (ties by id, a total order), kept until their mass reaches
    // top_p. Only that head needs ordering, and it is short next to a 50k-150k vocabulary: the k
    // most probable are partially sorted, k growing until the mass is reached. The order of the
    // head (and so the draw) is exactly that of a full sort.
    const auto before = [&](int32_t a, int32_t b) {
      return probs_[a] != probs_[b] ? probs_[a] > probs_[b] : a < b;
    };
    size_t keep = V;
    for (size_t k = o_.top_p < 1.f ? std::min<size_t>(V, 64) : V;; k = std::min(V, 4 * k)) {
      std::partial_sort(order_.begin(), order_.begin() + std::ptrdiff_t(k), order_.end(), before);
      double acc = 0;
      size_t reached = 0;
      for (size_t i = 0; i < k && o_.top_p < 1.f; ++i) {
        acc += probs_[order_[i]] / sum;
        if (acc >= o_.top_p) { reached = i + 1; break; }
      }
      if (reached) { keep = reached; break; }
      if (k == V) break;
    }
    double kept = 0;
    for (size_t i = 0; i < keep; ++i) kept += probs_[order_[i]];
    const double u = std::uniform_real_distribution<double>(0.0, kept)(rng_);
    double acc = 0;
    for (size_t i = 0; i < keep; ++i) {
      acc += probs_[order_[i]];
      if (u < acc) return order_[i];
    }
    return order_[keep - 1];
  }

 private:
  SamplingOptions o_;
  std::mt19937_64 rng_;
  std::vector<double> probs_;
  std::vector<int32_t> order_;
};

}  // namespace fathom
