#pragma once
// Perplexity under a named policy with its windows spread over worker threads: each worker owns a
// Session and a Trace and runs every workers-th window (eval/perplexity.hpp's shards), and the
// parts add up to the single-threaded result. With several workers each runs one OpenMP thread,
// since independent windows parallelise better than one window's products.
#include <functional>
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

// on_window() is called (serialised) after each window of any worker.
inline PolicyPerplexity perplexity_parallel(const Model& model, std::span<const int32_t> ids,
                                            size_t window, size_t stride, const PolicySpec& spec,
                                            int workers,
                                            const std::function<void()>& on_window = nullptr) {
  if (workers < 1) throw UsageError("", "workers", "must be >= 1");
  const auto t0 = std::chrono::steady_clock::now();
  const size_t W = size_t(workers);
  std::vector<PerplexityResult> parts(W);
  std::vector<Trace> traces(W, Trace(model.n_layers(), false));
  std::mutex mu;
  auto work = [&](size_t w) {
    if (W > 1) omp_set_num_threads(1);
    Session s(model, SessionOptions{int64_t(window), KvStrategy::Propagate});
    s.set_trace(&traces[w]);
    with_policy(model, spec, [&](auto& pol) {
      parts[w] = perplexity(s, ids, window, stride, pol, [&](size_t, size_t) {
        if (!on_window) return;
        std::lock_guard<std::mutex> l(mu);
        on_window();
      }, w, W);
    });
  };
  std::vector<std::thread> ts;
  for (size_t w = 0; w < W; ++w) ts.emplace_back(work, w);
  for (auto& th : ts) th.join();
  PolicyPerplexity out;
  Trace all(model.n_layers(), false);
  for (size_t w = 0; w < W; ++w) {
    auto& r = out.result;
    r.nll += parts[w].nll, r.scored += parts[w].scored;
    r.tokens += parts[w].tokens, r.windows += parts[w].windows;
    all.merge(traces[w]);
  }
  out.result.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  out.usage = all.usage(Phase::PP);
  return out;
}

}  // namespace fathom::eval
