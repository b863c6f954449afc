#pragma once
// Perplexity under a named policy with its windows spread over worker threads: each worker owns a
// Session and a Trace and runs every workers-th window, and the windows' scores add up (in window
// order) to the single-threaded result. With several workers each runs one OpenMP thread,
// since independent windows parallelise better than one window's products.
#include <chrono>
#include <exception>
#include <functional>
#include <limits>
#include <mutex>
#include <span>
#include <thread>
#include <vector>

#include <omp.h>

#include "fathom/depth/policies.hpp"
#include "fathom/eval/perplexity.hpp"
#include "fathom/model/session.hpp"
#include "fathom/model/trace.hpp"

namespace fathom::eval {

struct PolicyPerplexity {
  PerplexityResult result;
  Usage usage;  // PP layer usage over every token run
};

// The windows `which` (indices of perplexity_windows()) over `workers` threads: scores[k] is
// window which[k]'s, trace holds the PP layer counts of all of them. One rank's share of a
// distributed run; perplexity_parallel() runs every window.
struct PerplexityPart {
  std::vector<WindowScore> scores;
  Trace trace;
  double seconds = 0;
};

// on_window() is called (serialised) after each window of any worker.
inline PerplexityPart perplexity_part(const Model& model, std::span<const int32_t> ids, size_t window,
                                      size_t stride, const PolicySpec& spec, int workers,
                                      std::span<const size_t> which,
                                      const std::function<void()>& on_window = nullptr) {
  if (workers < 1) throw UsageError("", "workers", "must be >= 1");
  detail::check_perplexity_args(std::numeric_limits<int64_t>::max(), ids.size(), window, stride);
  const size_t total = perplexity_windows(ids.size(), window, stride);
  for (size_t w : which)
    if (w >= total) throw UsageError("", "window", std::to_string(w) + " of " + std::to_string(total));
  const auto t0 = std::chrono::steady_clock::now();
  const size_t W = size_t(workers);
  PerplexityPart out;
  out.scores.resize(which.size());
  std::vector<Trace> traces(W, Trace(model.n_layers(), false));
  std::mutex mu;
  std::exception_ptr error;
  auto work = [&](size_t t) {
    try {
      if (W > 1) omp_set_num_threads(1);
      Session s(model, SessionOptions{int64_t(window), KvStrategy::Propagate});
      detail::check_perplexity_args(s.capacity(), ids.size(), window, stride);  // window > context
      s.set_trace(&traces[t]);
      with_policy(model, spec, [&](auto& pol) {
        for (size_t k = t; k < which.size(); k += W) {
          out.scores[k] = perplexity_window(s, ids, window, stride, pol, which[k]);
          if (!on_window) continue;
          std::lock_guard<std::mutex> l(mu);
          on_window();
        }
      });
    } catch (...) {
      std::lock_guard<std::mutex> l(mu);
      if (!error) error = std::current_exception();
    }
  };
  std::vector<std::thread> ts;
  for (size_t t = 0; t < W; ++t) ts.emplace_back(work, t);
  for (auto& th : ts) th.join();
  if (error) std::rethrow_exception(error);
  out.trace = Trace(model.n_layers(), false);
  for (size_t t = 0; t < W; ++t) out.trace.merge(traces[t]);
  out.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return out;
}

// Every window; the total adds them in window order, so it does not depend on `workers`.
inline PolicyPerplexity perplexity_parallel(const Model& model, std::span<const int32_t> ids,
                                            size_t window, size_t stride, const PolicySpec& spec,
                                            int workers,
                                            const std::function<void()>& on_window = nullptr) {
  std::vector<size_t> all(ids.size() < 2 ? 0 : perplexity_windows(ids.size(), window, stride));
  for (size_t w = 0; w < all.size(); ++w) all[w] = w;
  const PerplexityPart part = perplexity_part(model, ids, window, stride, spec, workers, all, on_window);
  PolicyPerplexity out;
  for (const auto& sc : part.scores) add_window(out.result, sc);
  out.result.seconds = part.seconds;
  out.usage = part.trace.usage(Phase::PP);
  return out;
}

}  // namespace fathom::eval
