#pragma once
// A Session runs one token sequence through a Model: it owns the KV cache, the position and the
// scratch buffers, and its forward pass consults a DepthPolicy for every token and layer.
//
// forward() processes n tokens at positions pos..pos+n-1 together (prefill: matrix-matrix
// products; n = 1 is single-token decode: matrix-vector). Per layer, every token gets one of
//   run       the whole layer (its K/V go to the cache);
//   kv-only   a skipped or exited token under KvStrategy::Propagate: K/V projections of the
//             hidden state that reached the layer, nothing else;
//   masked    a skipped or exited token under KvStrategy::None: invisible at that layer.
// Under KvStrategy::Exact an exited token keeps running the rest of the stack (so later tokens
// see exactly the keys and values the unmodified stream produces) while its prediction is read
// out at the exit point; a skipped (not exited) layer's true input is the stream that reached
// it, so Exact equals Propagate there.
//
// The session, not the policy, keeps the bookkeeping every policy would otherwise repeat: one
// policy State per token of the pass (kept per policy type and reused, so decoding allocates
// nothing once the buffers have grown) and, when a Trace is attached, each token's executed,
// activated, exit and readout layers.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <typeindex>
#include <typeinfo>
#include <utility>
#include <vector>

#include "fathom/core/error.hpp"
#include "fathom/model/full_depth.hpp"
#include "fathom/model/depth_policy.hpp"
#include "fathom/model/kv_cache.hpp"
#include "fathom/model/layer_pass.hpp"
#include "fathom/model/model.hpp"
#include "fathom/model/taps.hpp"
#include "fathom/model/trace.hpp"

namespace fathom {

class BatchSession;

struct SessionOptions {
  int64_t max_context = 0;  // 0: the model's max_position_embeddings, capped at 4096
  KvStrategy kv = KvStrategy::Propagate;
  KvPrecision kv_precision = KvPrecision::F32;  // BF16: half the cache memory, inexact (kv_cache.hpp)
};

enum class Logits : uint8_t { Last, All };  // which tokens of a forward pass get logits

namespace detail {
// The per-token States of one policy type, kept across forward passes.
struct PolicyStateStore {
  virtual ~PolicyStateStore() = default;
};
template <class S>
struct PolicyStates final : PolicyStateStore {
  std::vector<S> states;  // [slots]
};
}  // namespace detail

// The layer pass itself (decisions, K/V of rows that do not run, attention, MLP, the policy's view
// of each result, taps, readout) is detail::LayerPass, which BatchSession runs too.
class Session : private detail::LayerPass {
 public:
  explicit Session(const Model& model, SessionOptions opts = {})
      : m_(&model), opts_(opts) {
    const auto& c = model.config();
    int64_t cap = opts.max_context ? opts.max_context
                                   : std::min<int64_t>(c.max_position_embeddings, 4096);
    if (cap <= 0) throw UsageError("", "max_context", "must be positive");
    cache_ = KvCache(model.n_layers(), size_t(cap), model.layer(0).attn.n_kv_heads,
                     model.layer(0).attn.head_dim, opts.kv_precision);
  }

  const Model& model() const { return *m_; }
  int64_t position() const { return pos_; }
  int64_t capacity() const { return int64_t(cache_.capacity()); }
  KvStrategy kv_strategy() const { return opts_.kv; }
  const KvCache& cache() const { return cache_; }

  // Records every later token's layers into `trace` (nullptr: stop recording). The trace must
  // have one layer record per model layer and outlive its attachment.
  void set_trace(Trace* trace) {
    if (trace && trace->n_layers() != m_->n_layers())
      throw UsageError("", "trace", "has " + std::to_string(trace->n_layers()) +
                                        " layers, the model " + std::to_string(m_->n_layers()));
    trace_ = trace;
  }
  Trace* trace() const { return trace_; }

  // Start a new sequence (the cache is overwritten as positions are reused).
  void reset() { rewind(0); }
  // Continue from another session's first `n` positions (same model and capacity): their keys
  // and values are copied, so a prompt processed once can be continued under several policies.
  void continue_from(const Session& other, int64_t n) {
    if (other.m_ != m_ || other.capacity() != capacity() || n < 0 || n > other.pos_)
      throw UsageError("", "continue_from", "needs a session of the same model and capacity, n <= its position");
    cache_.copy_prefix(other.cache_, n);
    cache_.truncate(n);
    pos_ = n;
  }
  // Forget positions >= pos, e.g. to score several continuations of one prompt.
  void rewind(int64_t pos) {
    if (pos < 0 || pos > pos_) throw UsageError("", "pos", "rewind target outside [0, position]");
    cache_.truncate(pos);
    pos_ = pos;
  }

  // Runs `tokens` and returns logits: [vocab] for the last token (Logits::Last) or [n, vocab].
  template <DepthPolicy P = FullDepth, Observer O = NoObserver>
  std::span<const float> forward(std::span<const int32_t> tokens, Phase phase, P& policy,
                                 O& observer, Logits which = Logits::Last);

  template <DepthPolicy P = FullDepth>
  std::span<const float> forward(std::span<const int32_t> tokens, Phase phase, P& policy,
                                 Logits which = Logits::Last) {
    NoObserver none;
    return forward(tokens, phase, policy, none, which);
  }
  std::span<const float> forward(std::span<const int32_t> tokens, Phase phase = Phase::PP,
                                 Logits which = Logits::Last) {
    FullDepth full;
    return forward(tokens, phase, full, which);
  }

 private:
  friend class BatchSession;  // advances several sessions by one token together (batch_session.hpp)

  // The pass's rows (detail::LayerPass): the n tokens of this sequence, under one policy.
  template <class P>
  struct Tokens {
    using Policy = P;
    static constexpr kernels::Rows products = kernels::Rows::Gemm;
    Session& s;
    P& p;
    std::vector<typename P::State>& st;  // [n]
    P& policy(size_t) { return p; }
    typename P::State& state(size_t i) { return st[i]; }
    Trace* trace(size_t) { return s.trace_; }
    KvCache& cache(size_t) { return s.cache_; }
    std::span<const uint32_t> sequences() const { return {}; }  // all rows: this one sequence
    void attend(size_t l, size_t m) { s.attend_rows(l, m); }
  };

  template <class S>
  std::vector<S>& policy_states(size_t n);
  void attend_rows(size_t l, size_t m);

  const Model* m_;
  SessionOptions opts_;
  KvCache cache_;
  int64_t pos_ = 0;
  Trace* trace_ = nullptr;
  std::vector<std::pair<std::type_index, std::unique_ptr<detail::PolicyStateStore>>> states_;
  // The pass's buffers are LayerPass's; besides them:
  std::vector<int64_t> run_pos_;      // [m] positions of the rows running the layer
};

// ---------------------------------------------------------------------------------------------

template <class S>
std::vector<S>& Session::policy_states(size_t n) {
  detail::PolicyStates<S>* found = nullptr;
  for (auto& [type, store] : states_)
    if (type == std::type_index(typeid(S))) found = static_cast<detail::PolicyStates<S>*>(store.get());
  if (!found) {
    auto store = std::make_unique<detail::PolicyStates<S>>();
    found = store.get();
    states_.emplace_back(std::type_index(typeid(S)), std::move(store));
  }
  if (found->states.size() < n) found->states.resize(n);
  return found->states;
}

template <DepthPolicy P, Observer O>
std::span<const float> Session::forward(std::span<const int32_t> tokens, Phase phase, P& policy,
                                        O& obs, Logits which) {
  const size_t n = tokens.size(), H = m_->hidden();
  if (n == 0) throw UsageError("", "tokens", "forward() needs at least one token");
  if (pos_ + int64_t(n) > capacity())
    throw UsageError("", "tokens", "positions " + std::to_string(pos_) + ".." +
                                       std::to_string(pos_ + int64_t(n) - 1) +
                                       " exceed the session's context of " +
                                       std::to_string(capacity()));
  start_pass(*m_, n, cache_.capacity());
  auto& st = policy_states<typename P::State>(n);
  Tokens<P> rows{*this, policy, st};
  const size_t half = m_->rope().head_dim() / 2;
  for (size_t i = 0; i < n; ++i) {
    info_[i] = TokenInfo{uint32_t(i), pos_ + int64_t(i), phase, tokens[i]};
    m_->embed(tokens[i], x_.data() + i * H);
    m_->rope().angles(pos_ + int64_t(i), cos_.data() + i * half, sin_.data() + i * half);
  }
  tap(obs, Tap::embed, -1, x_.data(), n, H, all_, {});
  begin_rows(*m_, n, rows);
  for (size_t l = 0; l < m_->n_layers(); ++l) run_layer(*m_, l, n, opts_.kv, rows, obs);
  const std::span<const uint32_t> out =
      which == Logits::All ? std::span<const uint32_t>(all_) : std::span<const uint32_t>(all_).last(1);
  read_out(*m_, n, out, rows, obs);
  end_rows(n, rows);
  pos_ += int64_t(n);
  return {logits_.data(), logits_.size()};
}

// Attention of the running rows over layer l's cache (blocks/attention.hpp).
inline void Session::attend_rows(size_t l, size_t m) {
  run_pos_.resize(m);
  for (size_t r = 0; r < m; ++r) run_pos_[r] = info_[run_[r]].position;
  const auto& A = m_->layer(l).attn;
  if (cache_.precision() == KvPrecision::F32)
    A.attend_cached(q_.data(), run_pos_.data(), m, cache_.k(l), cache_.v(l), cache_.mask(l),
                    cache_.capacity(), scores_.data(), ctx_.data());
  else
    A.attend_cached(q_.data(), run_pos_.data(), m, cache_.k_bf16(l), cache_.v_bf16(l), cache_.mask(l),
                    cache_.capacity(), scores_.data(), ctx_.data());
}

}  // namespace fathom
