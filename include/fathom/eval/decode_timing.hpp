#pragma once
// Decode speed of named policies: each prompt's prefill under the policy, then `steps` decode
// steps (token 1 fed back, no eos stop), timed over the decode steps only. Rounds go over all
// policies in turn and each policy keeps its fastest round, so a burst of load on a shared
// machine hits one round of every policy rather than all rounds of one. Used by `voids
// --calibrate` / `--time-policy` (timing.csv) and the skip frontier (docs/evaluation.md).
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <ctime>
#include <span>
#include <vector>

#include "fathom/depth/policies.hpp"
#include "fathom/model/session.hpp"

namespace fathom::eval {

struct DecodeTiming {
  size_t tokens = 0;             // decode steps timed (the fastest round)
  double seconds = INFINITY;     // wall time of those steps
  double cpu_seconds = 0;        // process CPU time of those steps (all threads)
  double tok_s() const { return seconds > 0 && std::isfinite(seconds) ? double(tokens) / seconds : 0; }
};

// This process's CPU time (every thread), in seconds.
inline double process_cpu_seconds() {
  timespec ts{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return double(ts.tv_sec) + 1e-9 * double(ts.tv_nsec);
}

// One DecodeTiming per spec, in order. Steps per prompt are capped by the context left.
inline std::vector<DecodeTiming> time_decode(const Model& model, const std::vector<PolicySpec>& specs,
                                             const std::vector<std::vector<int32_t>>& prompts,
                                             int steps, size_t rounds, SessionOptions so = {}) {
  std::vector<DecodeTiming> best(specs.size());
  for (size_t round = 0; round < std::max<size_t>(1, rounds); ++round)
    for (size_t k = 0; k < specs.size(); ++k) {
      DecodeTiming t;
      t.seconds = 0;
      with_policy(model, specs[k], [&](auto& pol) {
        for (const auto& ids : prompts) {
          if (ids.empty()) throw UsageError("", "prompts", "a timed prompt is empty");
          Session s(model, so);
          const int n = std::min<int>(steps, int(s.capacity() - int64_t(ids.size())));
          s.forward(ids, Phase::PP, pol);
          const auto t0 = std::chrono::steady_clock::now();
          const double c0 = process_cpu_seconds();
          const int32_t next = 1;
          for (int i = 0; i < n; ++i, ++t.tokens) s.forward(std::span<const int32_t>(&next, 1), Phase::RG, pol);
          t.seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
          t.cpu_seconds += process_cpu_seconds() - c0;
        }
      });
      if (t.seconds < best[k].seconds) best[k] = t;
    }
  return best;
}

}  // namespace fathom::eval
