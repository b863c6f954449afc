#pragma once
// BatchSession: several independent sequences decoded together (continuous batching). Each
// sequence is a Session of its own (KV cache, position, trace, the policy States of its tokens),
// held in a slot; step() advances any set of them by one token each in a single forward pass: one
// pass over every weight matrix for all the rows (kernels/gemv_batch.hpp) instead of one per
// sequence, attention of each row over its own sequence's cache.
//
// Bit-identity: a sequence's logits, trace and KV cache are exactly those of the same tokens
// decoded alone through Session::forward (one token per call) under the same policy. The matrix
// products compute every row as gemv does (kernels::Rows::AsGemv); every other step (norms, RoPE,
// attention, the policy's decisions and rewrites, K/V of skipped or exited tokens under each
// KvStrategy, the readout) runs per row exactly as the single-token pass runs it, and each row's
// policy sees the TokenInfo and State a lone decode step gives it (slot 0, the sequence's position,
// the State its Session keeps). Policies that remember something across tokens in the policy object
// itself (CosineSkip's measurements, EarlyExit's first generated position) need one policy object
// per sequence: step() takes one pointer per row, and sharing an object between rows is only
// exact for policies without such memory.
//
// The layer pass is Session's own (detail::LayerPass, model/layer_pass.hpp), run over rows that
// each belong to another sequence.
//
// Joining: a sequence's prompt is processed by its own Session (session(slot).forward(prompt,
// Phase::PP, policy)), which is the unbatched prefill; leaving: simply not stepping the slot any
// more (reset() it before reuse). generate_batch (model/batch_generate.hpp) runs the whole loop.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "fathom/core/error.hpp"
#include "fathom/kernels/gemv_batch.hpp"
#include "fathom/model/depth_policy.hpp"
#include "fathom/model/kv_cache.hpp"
#include "fathom/model/layer_pass.hpp"
#include "fathom/model/model.hpp"
#include "fathom/model/session.hpp"
#include "fathom/model/trace.hpp"

namespace fathom {

class BatchSession : private detail::LayerPass {
 public:
  // `slots` sequences at most, each with a Session of these options (same context, KV strategy and
  // cache precision for all).
  BatchSession(const Model& model, size_t slots, SessionOptions opts = {}) : m_(&model), opts_(opts) {
    if (slots == 0) throw UsageError("", "batch", "a batch needs at least one slot");
    for (size_t i = 0; i < slots; ++i) sessions_.push_back(std::make_unique<Session>(model, opts));
    used_.assign(slots, 0);
    reserve(slots);
  }

  const Model& model() const { return *m_; }
  size_t slots() const { return sessions_.size(); }
  const SessionOptions& options() const { return opts_; }
  // The sequence in `slot`: run its prompt with forward(), reset() it for a new sequence, attach
  // its trace with set_trace().
  Session& session(size_t slot) { return *sessions_.at(slot); }
  const Session& session(size_t slot) const { return *sessions_.at(slot); }

  // One token for each of n sequences: row i feeds tokens[i] to the session in slots[i] (at its
  // position, which then advances by one) under *policies[i]. Returns the rows' logits [n, vocab].
  // Slots must be distinct, and so must the traces attached to their sessions.
  // The observer sees the taps of Session::forward (model/taps.hpp) for the rows of the step, each
  // view naming the row (slots: index into the arguments) and its sequence (sequences: its batch
  // slot); a row's values are those Session::forward reports for its token decoded alone.
  template <DepthPolicy P, Observer O>
  std::span<const float> step(std::span<const uint32_t> slots, std::span<const int32_t> tokens,
                              std::span<P* const> policies, O& observer, Phase phase = Phase::RG);
  template <DepthPolicy P>
  std::span<const float> step(std::span<const uint32_t> slots, std::span<const int32_t> tokens,
                              std::span<P* const> policies, Phase phase = Phase::RG) {
    NoObserver none;
    return step(slots, tokens, policies, none, phase);
  }

 private:
  // The pass's rows (detail::LayerPass): row i is the next token of the sequence rows_[i], under
  // its own policy; every product sums each row as gemv does.
  template <class P>
  struct Sequences {
    using Policy = P;
    static constexpr kernels::Rows products = kernels::Rows::AsGemv;
    BatchSession& b;
    std::span<P* const> pol;         // [n]
    std::span<const uint32_t> seqs;  // [n] each row's batch slot
    P& policy(size_t i) { return *pol[i]; }
    typename P::State& state(size_t i) { return *static_cast<typename P::State*>(b.st_[i]); }
    Trace* trace(size_t i) { return b.rows_[i]->trace_; }
    KvCache& cache(size_t i) { return b.rows_[i]->cache_; }
    std::span<const uint32_t> sequences() const { return seqs; }
    void attend(size_t l, size_t m) { b.attend_rows(l, m); }
  };

  void reserve(size_t n);
  void attend_rows(size_t l, size_t m);

  const Model* m_;
  SessionOptions opts_;
  std::vector<std::unique_ptr<Session>> sessions_;  // [slots]
  std::vector<uint8_t> used_;                       // [slots] in the current step (argument check)

  // Per step, besides LayerPass's buffers (info_[i]: what a lone decode step would pass, slot 0):
  std::vector<Session*> rows_;        // [n] each row's sequence
  std::vector<void*> st_;             // [n] each row's policy State (its session's slot 0)
};

// ---------------------------------------------------------------------------------------------

// Every per-row buffer at its size for n rows, so that no step allocates however many of its
// rows run a layer, need K/V only or exit.
inline void BatchSession::reserve(size_t n) {
  const auto& A = m_->layer(0).attn;
  const size_t H = m_->hidden(), half = A.head_dim / 2, I = m_->layer(0).mlp.intermediate();
  for (auto* v : {&x_, &snap_, &xr_, &in_, &xn_, &tmp_, &kx_, &final_, &normed_}) v->reserve(n * H);
  for (auto* v : {&cos_, &sin_, &rcos_, &rsin_, &kcos_, &ksin_}) v->reserve(n * half);
  for (auto* v : {&q_, &ctx_}) v->reserve(n * A.q_dim());
  for (auto* v : {&k_, &v_, &kk_, &kv_}) v->reserve(n * A.kv_dim());
  for (auto* v : {&g_, &u_}) v->reserve(n * I);
  logits_.reserve(n * m_->vocab());
  run_.reserve(n), kvo_.reserve(n), policy_sees_.reserve(n), all_.reserve(n), tap_seq_.reserve(n);
  rows_.reserve(n), st_.reserve(n), info_.reserve(n), row_state_.reserve(n), last_run_.reserve(n);
}

template <DepthPolicy P, Observer O>
std::span<const float> BatchSession::step(std::span<const uint32_t> slots, std::span<const int32_t> tokens,
                                          std::span<P* const> policies, O& obs, Phase phase) {
  const size_t n = slots.size(), H = m_->hidden();
  if (n == 0) throw UsageError("", "slots", "step() needs at least one sequence");
  if (tokens.size() != n || policies.size() != n)
    throw UsageError("", "step", "needs one token and one policy per slot");
  start_pass(*m_, n, size_t(sessions_[0]->capacity()));
  rows_.resize(n);
  st_.resize(n);
  for (size_t i = 0; i < n; ++i) {
    if (slots[i] >= sessions_.size())
      throw UsageError("", "slots", "slot " + std::to_string(slots[i]) + " outside the batch of " +
                                        std::to_string(sessions_.size()));
    if (!policies[i]) throw UsageError("", "policies", "null policy");
    rows_[i] = sessions_[slots[i]].get();
  }
  std::fill(used_.begin(), used_.end(), 0);
  for (size_t i = 0; i < n; ++i) {
    Session& s = *rows_[i];
    if (used_[slots[i]]++) throw UsageError("", "slots", "slot " + std::to_string(slots[i]) + " given twice");
    if (s.pos_ >= s.capacity())
      throw UsageError("", "tokens", "position " + std::to_string(s.pos_) + " exceeds the session's context of " +
                                         std::to_string(s.capacity()));
    for (size_t j = 0; j < i; ++j)
      if (s.trace_ && rows_[j]->trace_ == s.trace_)
        throw UsageError("", "trace", "two sequences of one step share a trace");
  }
  const size_t half = m_->rope().head_dim() / 2;
  for (size_t i = 0; i < n; ++i) {
    Session& s = *rows_[i];
    info_[i] = TokenInfo{0, s.pos_, phase, tokens[i]};
    m_->embed(tokens[i], x_.data() + i * H);
    m_->rope().angles(s.pos_, cos_.data() + i * half, sin_.data() + i * half);
    st_[i] = &s.policy_states<typename P::State>(1)[0];
  }
  Sequences<P> rows{*this, policies, slots};
  tap(obs, Tap::embed, -1, x_.data(), n, H, all_, slots);
  begin_rows(*m_, n, rows);
  for (size_t l = 0; l < m_->n_layers(); ++l) run_layer(*m_, l, n, opts_.kv, rows, obs);
  read_out(*m_, n, all_, rows, obs);
  end_rows(n, rows);
  for (size_t i = 0; i < n; ++i) rows_[i]->pos_ += 1;
  return {logits_.data(), logits_.size()};
}

// Attention of the running rows, each over layer l of its own sequence's cache: one job per
// (row, key/value head), as Attention::attend_cached splits a single sequence.
inline void BatchSession::attend_rows(size_t l, size_t m) {
  const auto& A = m_->layer(l).attn;
  const size_t G = A.n_heads / A.n_kv_heads, cap = size_t(sessions_[0]->capacity());
  int64_t longest = 0;
  for (size_t r = 0; r < m; ++r) longest = std::max(longest, info_[run_[r]].position + 1);
  const long jobs = long(m * A.n_kv_heads);
  const bool threaded = size_t(jobs) * G * size_t(longest) * A.head_dim > (1u << 15);
  const bool f32 = opts_.kv_precision == KvPrecision::F32;
  kernels::detail::parallel_jobs(jobs, threaded, [&](long j, int thread) {
    const size_t r = size_t(j) / A.n_kv_heads, g = size_t(j) % A.n_kv_heads;
    const KvCache& c = rows_[run_[r]]->cache_;
    const int64_t p = info_[run_[r]].position;
    float* sc = scores_.data() + size_t(thread) * G * cap;
    float* ctx = ctx_.data() + r * A.q_dim();
    const float* q = q_.data() + r * A.q_dim();
    if (f32) A.attend_kv_group(q, p, g, c.k(l), c.v(l), c.capacity(), c.mask(l), sc, ctx);
    else A.attend_kv_group(q, p, g, c.k_bf16(l), c.v_bf16(l), c.capacity(), c.mask(l), sc, ctx);
  });
}

}  // namespace fathom
