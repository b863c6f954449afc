#pragma once
// Perplexity of a token sequence under any DepthPolicy, with the sliding-window convention of
// Hugging Face's perplexity guide and lm-eval: windows of `window` tokens start every `stride`
// tokens; the first window scores all its tokens (but the very first, which has no context),
// every later window only the tokens not scored before, each with up to window − 1 tokens of
// context. With stride < window every token but the first is scored; stride = window gives
// disjoint windows (cheapest), and as in the reference the first token of each later window,
// which has no context inside its window, is then not scored (`scored` says how many were).
#include <algorithm>
#include <chrono>
#include <cmath>
#include <functional>
#include <cstdint>
#include <span>
#include <vector>

#include "fathom/core/error.hpp"
#include "fathom/model/depth_policy.hpp"
#include "fathom/model/session.hpp"

namespace fathom::eval {

struct PerplexityResult {
  double nll = 0;         // Σ −log p(token | context), nats
  size_t scored = 0;      // tokens scored (= sequence length − 1)
  size_t windows = 0;
  size_t tokens = 0;      // tokens run through the model (overlaps counted again)
  double seconds = 0;
  double mean_nll() const { return scored ? nll / double(scored) : NAN; }
  double ppl() const { return std::exp(mean_nll()); }
  double tokens_per_second() const { return seconds > 0 ? double(tokens) / seconds : 0; }
};

// Number of windows perplexity() runs over n tokens.
inline size_t perplexity_windows(size_t n, size_t window, size_t stride) {
  return n <= window ? 1 : 1 + (n - window + stride - 1) / stride;
}

// One window's share of the sums. The totals add windows in window order (perplexity(),
// perplexity_parallel(), and the ranks of a distributed run), so they do not depend on how the
// windows were split over threads or ranks.
struct WindowScore {
  double nll = 0;
  size_t scored = 0, tokens = 0;
};

namespace detail {
inline void check_perplexity_args(int64_t capacity, size_t n, size_t window, size_t stride) {
  if (window < 2) throw UsageError("", "window", "must be at least 2 tokens");
  if (window > size_t(capacity))
    throw UsageError("", "window", std::to_string(window) + " exceeds the session's context of " +
                                       std::to_string(capacity));
  if (stride == 0 || stride > window) throw UsageError("", "stride", "must be in [1, window]");
  if (n < 2) throw UsageError("", "tokens", "need at least two tokens");
}
}  // namespace detail

// Tokens window w (of perplexity_windows(n, window, stride)) runs through the model.
inline size_t perplexity_window_tokens(size_t n, size_t window, size_t stride, size_t w) {
  const size_t begin = w * stride;
  return std::min(begin + window, n) - begin;
}

// Window w alone (arguments as perplexity(), unchecked: perplexity() and perplexity_parallel()
// check them).
template <DepthPolicy P>
WindowScore perplexity_window(Session& s, std::span<const int32_t> ids, size_t window, size_t stride,
                              P& policy, size_t w) {
  WindowScore r;
  const size_t n = ids.size();
  const size_t begin = w * stride;
  const size_t end = std::min(begin + window, n);
  const size_t len = end - begin;
  // Targets are positions max(prev_end, begin + 1) .. end − 1, prev_end being where the
  // previous window ended (a window's first token has no context inside the window).
  const size_t prev_end = w == 0 ? 0 : std::min((w - 1) * stride + window, n);
  const size_t first = std::max(prev_end, begin + 1);
  s.reset();
  const auto logits = s.forward(ids.subspan(begin, len), Phase::PP, policy, Logits::All);
  const size_t V = logits.size() / len;
  for (size_t t = first; t < end; ++t) {
    const auto row = logits.subspan((t - 1 - begin) * V, V);
    const float mx = *std::max_element(row.begin(), row.end());
    double z = 0;
    for (float v : row) z += std::exp(double(v) - double(mx));
    r.nll -= double(row[size_t(ids[t])]) - double(mx) - std::log(z);
    ++r.scored;
  }
  r.tokens = len;
  return r;
}

// Adds one window's score into a total (in window order, see WindowScore).
inline void add_window(PerplexityResult& r, const WindowScore& w) {
  r.nll += w.nll, r.scored += w.scored, r.tokens += w.tokens;
  ++r.windows;
}

// on_window(done, total) reports progress (may be empty). Windows are independent, so work can
// be split: a call with (shard, shards) runs only windows w with w % shards == shard, and the
// shards' nll, scored, windows and tokens add up to the whole.
template <DepthPolicy P>
PerplexityResult perplexity(Session& s, std::span<const int32_t> ids, size_t window, size_t stride,
                            P& policy,
                            const std::function<void(size_t, size_t)>& on_window = nullptr,
                            size_t shard = 0, size_t shards = 1) {
  detail::check_perplexity_args(s.capacity(), ids.size(), window, stride);
  PerplexityResult r;
  const auto t0 = std::chrono::steady_clock::now();
  const size_t total = perplexity_windows(ids.size(), window, stride);
  if (shards == 0 || shard >= shards) throw UsageError("", "shard", "must be < shards");
  for (size_t w = shard; w < total; w += shards) {
    add_window(r, perplexity_window(s, ids, window, stride, policy, w));
    if (on_window) on_window(r.windows, total);
  }
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return r;
}

}  // namespace fathom::eval
