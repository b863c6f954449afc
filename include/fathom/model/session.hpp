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
#include "fathom/kernels/elementwise.hpp"
#include "fathom/model/kv_cache.hpp"
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

class Session {
 public:
  explicit Session(const Model& model, SessionOptions opts = {})
      : m_(&model), opts_(opts) {
    const auto& c = model.config();
    int64_t cap = opts.max_context ? opts.max_context
                                   : std::min<int64_t>(c.max_position_embeddings, 4096);
    if (cap <= 0) throw UsageError("", "max_context", "must be positive");
    cache_ = KvCache(model.n_layers(), size_t(cap), model.layer(0).attn.kv_dim(), opts.kv_precision);
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
  enum class Row : uint8_t { Live, Exited, Shadow };  // Shadow: exited under KvStrategy::Exact

  void prepare(size_t n);
  template <class O>
  void tap(O& obs, Tap t, int layer, const float* data, size_t rows, size_t cols,
           std::span<const uint32_t> slots) {
    if constexpr (O::enabled) obs.on_tap(t, layer, TapView{data, rows, cols, slots});
  }
  template <class S>
  std::vector<S>& policy_states(size_t n);
  template <DepthPolicy P, Observer O>
  void run_layer(size_t l, P& policy, std::vector<typename P::State>& st, O& obs, size_t n);
  void attend_rows(size_t l, const float* q, float* ctx, size_t m);
  void kv_only_rows(size_t l);

  const Model* m_;
  SessionOptions opts_;
  KvCache cache_;
  int64_t pos_ = 0;
  Trace* trace_ = nullptr;
  std::vector<std::pair<std::type_index, std::unique_ptr<detail::PolicyStateStore>>> states_;

  // Per forward pass (n tokens, m of them running the current layer):
  std::vector<TokenInfo> info_;       // [n]
  std::vector<Row> row_state_;        // [n]
  std::vector<int> last_run_;         // [n] last layer the policy ran for the token (-1: none)
  std::vector<uint32_t> all_;         // [n] 0..n-1
  std::vector<float> x_;              // [n, hidden] residual stream
  std::vector<float> snap_;           // [n, hidden] readout state of Shadow rows
  std::vector<float> cos_, sin_;      // [n, head_dim/2]
  std::vector<float> rcos_, rsin_;    // [m, head_dim/2] angles of the rows running the layer
  std::vector<uint32_t> run_, kvo_;   // slots running the layer / needing K/V only
  std::vector<int64_t> run_pos_;      // [m] positions of the running rows
  std::vector<uint8_t> policy_sees_;  // [m] whether after_layer is called for run_[r]
  std::vector<float> xr_, in_;        // [m, hidden] gathered rows, their layer input
  std::vector<float> xn_;             // [m, hidden] normed rows
  std::vector<float> q_, k_, v_, ctx_;  // [m, q_dim], [m, kv_dim] x2, [m, q_dim]
  std::vector<float> tmp_;            // [m, hidden]
  std::vector<float> g_, u_;          // [m, intermediate]
  std::vector<float> kx_, kcos_, ksin_, kk_, kv_;  // kv-only rows: [r, hidden], [r, head_dim/2] x2, [r, kv_dim] x2
  std::vector<float> scores_;         // Attention::attend_scratch(capacity)
  std::vector<float> final_, normed_, logits_;  // [r, hidden] x2, [r, vocab]
};

// ---------------------------------------------------------------------------------------------

inline void Session::prepare(size_t n) {
  const auto& L0 = m_->layer(0);
  const size_t H = m_->hidden(), half = L0.attn.head_dim / 2;
  info_.resize(n);
  row_state_.assign(n, Row::Live);
  last_run_.assign(n, -1);
  all_.resize(n);
  for (size_t i = 0; i < n; ++i) all_[i] = uint32_t(i);
  x_.resize(n * H);
  cos_.resize(n * half);
  sin_.resize(n * half);
  const size_t need_scores = L0.attn.attend_scratch(cache_.capacity());
  if (scores_.size() < need_scores) scores_.resize(need_scores);
}

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
  prepare(n);
  auto& st = policy_states<typename P::State>(n);
  const size_t half = m_->rope().head_dim() / 2;
  for (size_t i = 0; i < n; ++i) {
    info_[i] = TokenInfo{uint32_t(i), pos_ + int64_t(i), phase, tokens[i]};
    m_->embed(tokens[i], x_.data() + i * H);
    m_->rope().angles(pos_ + int64_t(i), cos_.data() + i * half, sin_.data() + i * half);
  }
  tap(obs, Tap::embed, -1, x_.data(), n, H, all_);
  for (size_t i = 0; i < n; ++i) {
    policy.begin_token(info_[i], st[i]);
    if (trace_) trace_->begin(info_[i]).embed_norm = float(kernels::l2_norm(x_.data() + i * H, H));
  }

  for (size_t l = 0; l < m_->n_layers(); ++l) run_layer(l, policy, st, obs, n);

  // Readout: the policy picks the vector, the model's final norm and head turn it into logits.
  if (trace_)
    for (size_t i = 0; i < n; ++i)
      trace_->open(uint32_t(i)).readout_layer = policy.readout_layer(info_[i], st[i], last_run_[i]);
  const std::span<const uint32_t> out_slots =
      which == Logits::All ? std::span<const uint32_t>(all_) : std::span<const uint32_t>(all_).last(1);
  const size_t r = out_slots.size(), V = m_->vocab();
  final_.resize(r * H);
  normed_.resize(r * H);
  logits_.resize(r * V);
  for (size_t j = 0; j < r; ++j) {
    const uint32_t s = out_slots[j];
    const float* src = row_state_[s] == Row::Shadow ? snap_.data() + s * H : x_.data() + s * H;
    auto v = policy.readout(info_[s], st[s], std::span<const float>(src, H));
    if (v.size() != H) throw UsageError("", "readout", "policy returned a vector of wrong size");
    std::copy(v.begin(), v.end(), final_.data() + j * H);
  }
  m_->readout()(final_.data(), r, normed_.data(), logits_.data());
  tap(obs, Tap::final_norm, -1, normed_.data(), r, H, out_slots);
  tap(obs, Tap::logits, -1, logits_.data(), r, V, out_slots);
  for (size_t i = 0; i < n; ++i) {
    policy.end_token(info_[i], st[i]);
    if (trace_) trace_->end(uint32_t(i));
  }
  pos_ += int64_t(n);
  return {logits_.data(), logits_.size()};
}

template <DepthPolicy P, Observer O>
void Session::run_layer(size_t l, P& policy, std::vector<typename P::State>& st, O& obs, size_t n) {
  const DecoderLayer& L = m_->layer(l);
  const auto& A = L.attn;
  const size_t H = m_->hidden(), I = L.mlp.intermediate(), half = A.head_dim / 2;
  constexpr bool sees = P::observes_layers;

  // 1. Decisions.
  run_.clear();
  kvo_.clear();
  policy_sees_.clear();
  for (size_t i = 0; i < n; ++i) {
    Action a = Action::Skip;
    if (row_state_[i] == Row::Shadow) {
      a = Action::Run;
    } else if (row_state_[i] == Row::Live) {
      a = policy.before_layer(info_[i], st[i], int(l));
      if (a == Action::Run) {
        last_run_[i] = int(l);
        if (trace_) {
          auto& lr = trace_->open(uint32_t(i)).layers[l];
          lr.executed = lr.activated = true;  // until the policy's note says otherwise
        }
      } else if (a == Action::Exit) {
        if (trace_) trace_->open(uint32_t(i)).exit_layer = int(l);
        if (opts_.kv == KvStrategy::Exact) {
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
    } else if (opts_.kv == KvStrategy::None) {
      cache_.set_visible(l, info_[i].position, false);
    } else {
      kvo_.push_back(uint32_t(i));
    }
  }
  if (!kvo_.empty()) kv_only_rows(l);
  const size_t m = run_.size();
  if (m == 0) return;

  // 2. Gather the running rows (no copy when every token runs).
  const bool whole = m == n;
  float* x;
  if (whole) {
    x = x_.data();
  } else {
    xr_.resize(m * H);
    for (size_t r = 0; r < m; ++r) std::copy_n(x_.data() + run_[r] * H, H, xr_.data() + r * H);
    x = xr_.data();
  }
  if constexpr (sees && P::needs_layer_input) in_.assign(x, x + m * H);
  // Per-row RoPE angles of the running rows.
  const float* cs = cos_.data();
  const float* sn = sin_.data();
  if (!whole) {
    rcos_.resize(m * half), rsin_.resize(m * half);
    for (size_t r = 0; r < m; ++r) {
      std::copy_n(cos_.data() + run_[r] * half, half, rcos_.data() + r * half);
      std::copy_n(sin_.data() + run_[r] * half, half, rsin_.data() + r * half);
    }
    cs = rcos_.data(), sn = rsin_.data();
  }
  const std::span<const uint32_t> slots(run_);
  tap(obs, Tap::resid_pre, int(l), x, m, H, slots);

  // 3. Attention: a = h + Wo · attn(q, K, V).
  xn_.resize(m * H);
  q_.resize(m * A.q_dim());
  k_.resize(m * A.kv_dim());
  v_.resize(m * A.kv_dim());
  ctx_.resize(m * A.q_dim());
  tmp_.resize(m * H);
  L.attn_norm(x, xn_.data(), m);
  tap(obs, Tap::attn_norm, int(l), xn_.data(), m, H, slots);
  A.project(xn_.data(), m, cs, sn, q_.data(), k_.data(), v_.data());
  tap(obs, Tap::q, int(l), q_.data(), m, A.q_dim(), slots);
  tap(obs, Tap::k, int(l), k_.data(), m, A.kv_dim(), slots);
  tap(obs, Tap::v, int(l), v_.data(), m, A.kv_dim(), slots);
  for (size_t r = 0; r < m; ++r) {
    const int64_t p = info_[run_[r]].position;
    cache_.store(l, p, k_.data() + r * A.kv_dim(), v_.data() + r * A.kv_dim());
  }
  attend_rows(l, q_.data(), ctx_.data(), m);
  A.output(ctx_.data(), m, tmp_.data());
  tap(obs, Tap::attn_out, int(l), tmp_.data(), m, H, slots);
  kernels::add_inplace(x, tmp_.data(), m * H);
  tap(obs, Tap::resid_mid, int(l), x, m, H, slots);

  // 4. MLP: h = a + down(silu(gate(n)) ⊙ up(n)), n = RMSNorm(a).
  g_.resize(m * I);
  u_.resize(m * I);
  L.mlp_norm(x, xn_.data(), m);
  tap(obs, Tap::mlp_norm, int(l), xn_.data(), m, H, slots);
  L.mlp(xn_.data(), m, tmp_.data(), g_.data(), u_.data());
  tap(obs, Tap::mlp_out, int(l), tmp_.data(), m, H, slots);
  kernels::add_inplace(x, tmp_.data(), m * H);

  // 5. The policy sees each result (and may discard it), then rows go back to the stream.
  if constexpr (sees) {
    for (size_t r = 0; r < m; ++r) {
      if (!policy_sees_[r]) continue;
      const uint32_t i = run_[r];
      const float* in = P::needs_layer_input ? in_.data() + r * H : nullptr;
      LayerNote note;
      policy.after_layer(info_[i], st[i], int(l), std::span<const float>(in, in ? H : 0),
                         std::span<float>(x + r * H, H), note);
      if (trace_) {
        auto& lr = trace_->open(i).layers[l];
        lr.activated = note.activated, lr.norm = note.norm, lr.delta = note.delta, lr.tau = note.tau;
      }
    }
  }
  // resid_post is the stream as it continues: after a policy rewrote the output (an in-stream
  // void is h_{l-1} again), not the update it discarded.
  tap(obs, Tap::resid_post, int(l), x, m, H, slots);
  if (!whole)
    for (size_t r = 0; r < m; ++r) std::copy_n(x + r * H, H, x_.data() + run_[r] * H);
}

// Keys and values of rows that do not run layer l, from the hidden state that reached it.
inline void Session::kv_only_rows(size_t l) {
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
  A.project(kx_.data(), m, kcos_.data(), ksin_.data(), nullptr, kk_.data(), kv_.data());
  for (size_t r = 0; r < m; ++r) {
    const int64_t p = info_[kvo_[r]].position;
    cache_.store(l, p, kk_.data() + r * A.kv_dim(), kv_.data() + r * A.kv_dim());
  }
}

// Attention of the running rows over layer l's cache (blocks/attention.hpp).
inline void Session::attend_rows(size_t l, const float* q, float* ctx, size_t m) {
  run_pos_.resize(m);
  for (size_t r = 0; r < m; ++r) run_pos_[r] = info_[run_[r]].position;
  const auto& A = m_->layer(l).attn;
  if (cache_.precision() == KvPrecision::F32)
    A.attend_cached(q, run_pos_.data(), m, cache_.k(l, 0), cache_.v(l, 0), cache_.mask(l), cache_.capacity(),
                    scores_.data(), ctx);
  else
    A.attend_cached(q, run_pos_.data(), m, cache_.k_bf16(l, 0), cache_.v_bf16(l, 0), cache_.mask(l),
                    cache_.capacity(), scores_.data(), ctx);
}

}  // namespace fathom
