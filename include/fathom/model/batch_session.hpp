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
#include "fathom/kernels/elementwise.hpp"
#include "fathom/kernels/gemv_batch.hpp"
#include "fathom/model/depth_policy.hpp"
#include "fathom/model/kv_cache.hpp"
#include "fathom/model/model.hpp"
#include "fathom/model/session.hpp"
#include "fathom/model/trace.hpp"

namespace fathom {

class BatchSession {
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
  template <DepthPolicy P>
  std::span<const float> step(std::span<const uint32_t> slots, std::span<const int32_t> tokens,
                              std::span<P* const> policies, Phase phase = Phase::RG);

 private:
  using Row = Session::Row;

  void reserve(size_t n);
  void prepare(size_t n);
  template <class P>
  typename P::State& state(size_t i) {
    return *static_cast<typename P::State*>(st_[i]);
  }
  template <DepthPolicy P>
  void run_layer(size_t l, std::span<P* const> pol, size_t n);
  void kv_only_rows(size_t l);
  void attend_rows(size_t l, size_t m);

  const Model* m_;
  SessionOptions opts_;
  std::vector<std::unique_ptr<Session>> sessions_;  // [slots]
  std::vector<uint8_t> used_;                       // [slots] in the current step (argument check)

  // Per step (n rows, m of them running the current layer):
  std::vector<Session*> rows_;        // [n] each row's sequence
  std::vector<void*> st_;             // [n] each row's policy State (its session's slot 0)
  std::vector<TokenInfo> info_;       // [n] what a lone decode step would pass (slot 0)
  std::vector<Row> row_state_;        // [n]
  std::vector<int> last_run_;         // [n] last layer the policy ran for the row (-1: none)
  std::vector<float> x_;              // [n, hidden] residual stream
  std::vector<float> snap_;           // [n, hidden] readout state of Shadow rows
  std::vector<float> cos_, sin_;      // [n, head_dim/2]
  std::vector<float> rcos_, rsin_;    // [m, head_dim/2] angles of the rows running the layer
  std::vector<uint32_t> run_, kvo_;   // rows running the layer / needing K/V only
  std::vector<uint8_t> policy_sees_;  // [m] whether after_layer is called for run_[r]
  std::vector<float> xr_, in_;        // [m, hidden] gathered rows, their layer input
  std::vector<float> xn_;             // [m, hidden] normed rows
  std::vector<float> q_, k_, v_, ctx_;  // [m, q_dim], [m, kv_dim] x2, [m, q_dim]
  std::vector<float> tmp_;            // [m, hidden]
  std::vector<float> g_, u_;          // [m, intermediate]
  std::vector<float> kx_, kcos_, ksin_, kk_, kv_;  // kv-only rows: [r, hidden], [r, head_dim/2] x2, [r, kv_dim] x2
  std::vector<float> scores_;         // [threads, group, capacity] attention scratch
  std::vector<float> final_, normed_, logits_;  // [n, hidden] x2, [n, vocab]
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
  run_.reserve(n), kvo_.reserve(n), policy_sees_.reserve(n);
  rows_.reserve(n), st_.reserve(n), info_.reserve(n), row_state_.reserve(n), last_run_.reserve(n);
}

inline void BatchSession::prepare(size_t n) {
  const auto& A = m_->layer(0).attn;
  const size_t H = m_->hidden(), half = A.head_dim / 2;
  rows_.resize(n);
  st_.resize(n);
  info_.resize(n);
  row_state_.assign(n, Row::Live);
  last_run_.assign(n, -1);
  x_.resize(n * H);
  cos_.resize(n * half);
  sin_.resize(n * half);
  const size_t need = A.attend_scratch(size_t(sessions_[0]->capacity()));
  if (scores_.size() < need) scores_.resize(need);
}

template <DepthPolicy P>
std::span<const float> BatchSession::step(std::span<const uint32_t> slots, std::span<const int32_t> tokens,
                                          std::span<P* const> policies, Phase phase) {
  const size_t n = slots.size(), H = m_->hidden();
  if (n == 0) throw UsageError("", "slots", "step() needs at least one sequence");
  if (tokens.size() != n || policies.size() != n)
    throw UsageError("", "step", "needs one token and one policy per slot");
  prepare(n);
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
  for (size_t i = 0; i < n; ++i) {
    policies[i]->begin_token(info_[i], state<P>(i));
    if (Trace* t = rows_[i]->trace_) t->begin(info_[i]).embed_norm = float(kernels::l2_norm(x_.data() + i * H, H));
  }

  for (size_t l = 0; l < m_->n_layers(); ++l) run_layer(l, policies, n);

  // Readout, as Session::forward: the policy picks the vector, the final norm and head make logits.
  for (size_t i = 0; i < n; ++i)
    if (Trace* t = rows_[i]->trace_)
      t->open(0).readout_layer = policies[i]->readout_layer(info_[i], state<P>(i), last_run_[i]);
  const size_t V = m_->vocab();
  final_.resize(n * H);
  normed_.resize(n * H);
  logits_.resize(n * V);
  for (size_t i = 0; i < n; ++i) {
    const float* src = row_state_[i] == Row::Shadow ? snap_.data() + i * H : x_.data() + i * H;
    auto v = policies[i]->readout(info_[i], state<P>(i), std::span<const float>(src, H));
    if (v.size() != H) throw UsageError("", "readout", "policy returned a vector of wrong size");
    std::copy(v.begin(), v.end(), final_.data() + i * H);
  }
  m_->readout()(final_.data(), n, normed_.data(), logits_.data(), kernels::Rows::AsGemv);
  for (size_t i = 0; i < n; ++i) {
    policies[i]->end_token(info_[i], state<P>(i));
    if (Trace* t = rows_[i]->trace_) t->end(0);
    rows_[i]->pos_ += 1;
  }
  return {logits_.data(), logits_.size()};
}

template <DepthPolicy P>
void BatchSession::run_layer(size_t l, std::span<P* const> pol, size_t n) {
  const DecoderLayer& L = m_->layer(l);
  const auto& A = L.attn;
  const size_t H = m_->hidden(), I = L.mlp.intermediate(), half = A.head_dim / 2;
  constexpr bool sees = P::observes_layers;
  const KvStrategy kv = opts_.kv;

  // 1. Decisions, per row as Session::run_layer takes them.
  run_.clear();
  kvo_.clear();
  policy_sees_.clear();
  for (size_t i = 0; i < n; ++i) {
    Trace* trace = rows_[i]->trace_;
    Action a = Action::Skip;
    if (row_state_[i] == Row::Shadow) {
      a = Action::Run;
    } else if (row_state_[i] == Row::Live) {
      a = pol[i]->before_layer(info_[i], state<P>(i), int(l));
      if (a == Action::Run) {
        last_run_[i] = int(l);
        if (trace) {
          auto& lr = trace->open(0).layers[l];
          lr.executed = lr.activated = true;
        }
      } else if (a == Action::Exit) {
        if (trace) trace->open(0).exit_layer = int(l);
        if (kv == KvStrategy::Exact) {
          row_state_[i] = Row::Shadow;
          snap_.resize(n * H);
          std::copy_n(x_.data() + i * H, H, snap_.data() + i * H);
          a = Action::Run;
        } else {
          row_state_[i] = Row::Exited;
          a = Action::Skip;
        }
      }
    }
    if (a == Action::Run) {
      run_.push_back(uint32_t(i));
      policy_sees_.push_back(row_state_[i] == Row::Live);
    } else if (kv == KvStrategy::None) {
      rows_[i]->cache_.set_visible(l, info_[i].position, false);
    } else {
      kvo_.push_back(uint32_t(i));
    }
  }
  if (!kvo_.empty()) kv_only_rows(l);
  const size_t m = run_.size();
  if (m == 0) return;

  // 2. Gather the running rows and their RoPE angles (no copy when every row runs).
  const bool whole = m == n;
  float* x = x_.data();
  const float* cs = cos_.data();
  const float* sn = sin_.data();
  if (!whole) {
    xr_.resize(m * H);
    rcos_.resize(m * half), rsin_.resize(m * half);
    for (size_t r = 0; r < m; ++r) {
      std::copy_n(x_.data() + run_[r] * H, H, xr_.data() + r * H);
      std::copy_n(cos_.data() + run_[r] * half, half, rcos_.data() + r * half);
      std::copy_n(sin_.data() + run_[r] * half, half, rsin_.data() + r * half);
    }
    x = xr_.data(), cs = rcos_.data(), sn = rsin_.data();
  }
  if constexpr (sees && P::needs_layer_input) in_.assign(x, x + m * H);

  // 3. Attention: a = h + Wo · attn(q, K, V), each row over its own cache.
  constexpr auto rows = kernels::Rows::AsGemv;
  xn_.resize(m * H);
  q_.resize(m * A.q_dim());
  k_.resize(m * A.kv_dim());
  v_.resize(m * A.kv_dim());
  ctx_.resize(m * A.q_dim());
  tmp_.resize(m * H);
  L.attn_norm(x, xn_.data(), m);
  A.project(xn_.data(), m, cs, sn, q_.data(), k_.data(), v_.data(), rows);
  for (size_t r = 0; r < m; ++r)
    rows_[run_[r]]->cache_.store(l, info_[run_[r]].position, k_.data() + r * A.kv_dim(),
                                 v_.data() + r * A.kv_dim());
  attend_rows(l, m);
  A.output(ctx_.data(), m, tmp_.data(), rows);
  kernels::add_inplace(x, tmp_.data(), m * H);

  // 4. MLP: h = a + down(silu(gate(n)) ⊙ up(n)), n = RMSNorm(a).
  g_.resize(m * I);
  u_.resize(m * I);
  L.mlp_norm(x, xn_.data(), m);
  L.mlp(xn_.data(), m, tmp_.data(), g_.data(), u_.data(), rows);
  kernels::add_inplace(x, tmp_.data(), m * H);

  // 5. Each row's policy sees its result (and may rewrite it), then rows go back to the stream.
  if constexpr (sees) {
    for (size_t r = 0; r < m; ++r) {
      if (!policy_sees_[r]) continue;
      const uint32_t i = run_[r];
      const float* in = P::needs_layer_input ? in_.data() + r * H : nullptr;
      LayerNote note;
      pol[i]->after_layer(info_[i], state<P>(i), int(l), std::span<const float>(in, in ? H : 0),
                          std::span<float>(x + r * H, H), note);
      if (Trace* trace = rows_[i]->trace_) {
        auto& lr = trace->open(0).layers[l];
        lr.activated = note.activated, lr.norm = note.norm, lr.delta = note.delta, lr.tau = note.tau;
      }
    }
  }
  if (!whole)
    for (size_t r = 0; r < m; ++r) std::copy_n(x + r * H, H, x_.data() + run_[r] * H);
}

// Keys and values of rows that do not run layer l, from the hidden state that reached it.
inline void BatchSession::kv_only_rows(size_t l) {
  const DecoderLayer& L = m_->layer(l);
  const auto& A = L.attn;
  const size_t H = m_->hidden(), half = A.head_dim / 2, m = kvo_.size();
  kx_.resize(m * H), kcos_.resize(m * half), ksin_.resize(m * half);
  kk_.resize(m * A.kv_dim()), kv_.resize(m * A.kv_dim());
  for (size_t r = 0; r < m; ++r) {
    std::copy_n(x_.data() + kvo_[r] * H, H, kx_.data() + r * H);
    std::copy_n(cos_.data() + kvo_[r] * half, half, kcos_.data() + r * half);
    std::copy_n(sin_.data() + kvo_[r] * half, half, ksin_.data() + r * half);
  }
  L.attn_norm(kx_.data(), kx_.data(), m);
  A.project(kx_.data(), m, kcos_.data(), ksin_.data(), nullptr, kk_.data(), kv_.data(), kernels::Rows::AsGemv);
  for (size_t r = 0; r < m; ++r)
    rows_[kvo_[r]]->cache_.store(l, info_[kvo_[r]].position, kk_.data() + r * A.kv_dim(),
                                 kv_.data() + r * A.kv_dim());
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
    if (f32) A.attend_kv_group(q, p, g, c.k(l, 0), c.v(l, 0), c.mask(l), sc, ctx);
    else A.attend_kv_group(q, p, g, c.k_bf16(l, 0), c.v_bf16(l, 0), c.mask(l), sc, ctx);
  });
}

}  // namespace fathom
