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
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include <omp.h>

#include "fathom/core/error.hpp"
#include "fathom/model/full_depth.hpp"
#include "fathom/model/depth_policy.hpp"
#include "fathom/kernels/attention.hpp"
#include "fathom/model/kv_cache.hpp"
#include "fathom/model/model.hpp"
#include "fathom/model/taps.hpp"

namespace fathom {

struct SessionOptions {
  int64_t max_context = 0;  // 0: the model's max_position_embeddings, capped at 4096
  KvStrategy kv = KvStrategy::Propagate;
};

enum class Logits : uint8_t { Last, All };  // which tokens of a forward pass get logits

namespace detail {
template <class P>
constexpr bool observes_layers() {
  if constexpr (requires { P::observes_layers; }) return P::observes_layers;
  return true;
}
}  // namespace detail

class Session {
 public:
  explicit Session(const Model& model, SessionOptions opts = {})
      : m_(&model), opts_(opts) {
    const auto& c = model.config();
    int64_t cap = opts.max_context ? opts.max_context
                                   : std::min<int64_t>(c.max_position_embeddings, 4096);
    if (cap <= 0) throw UsageError("", "max_context", "must be positive");
    cache_ = KvCache(model.n_layers(), size_t(cap), model.layer(0).attn.kv_dim());
  }

  const Model& model() const { return *m_; }
  int64_t position() const { return pos_; }
  int64_t capacity() const { return int64_t(cache_.capacity()); }
  KvStrategy kv_strategy() const { return opts_.kv; }
  const KvCache& cache() const { return cache_; }

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
  enum class Row : uint8_t { Live, Exited, Shadow };  // Shadow: exited under KvStrategy::Exact

  void prepare(size_t n);
  template <class O>
  void tap(O& obs, Tap t, int layer, const float* data, size_t rows, size_t cols,
           std::span<const uint32_t> slots) {
    if constexpr (O::enabled) obs.on_tap(t, layer, TapView{data, rows, cols, slots});
  }
  template <DepthPolicy P, Observer O>
  void run_layer(size_t l, P& policy, O& obs, size_t n);
  void attend_rows(size_t l, const float* q, float* ctx, size_t m);
  void kv_only_rows(size_t l);

  const Model* m_;
  SessionOptions opts_;
  KvCache cache_;
  int64_t pos_ = 0;

  // Per forward pass (n tokens, m of them running the current layer):
  std::vector<TokenInfo> info_;       // [n]
  std::vector<Row> row_state_;        // [n]
  std::vector<float> x_;              // [n, hidden] residual stream
  std::vector<float> snap_;           // [n, hidden] readout state of Shadow rows
  std::vector<float> cos_, sin_;      // [n, head_dim/2]
  std::vector<uint32_t> run_, kvo_;   // slots running the layer / needing K/V only
  std::vector<uint8_t> policy_sees_;  // [m] whether after_layer is called for run_[r]
  std::vector<float> xr_, in_;        // [m, hidden] gathered rows, their layer input
  std::vector<float> xn_;             // [m, hidden] normed rows
  std::vector<float> q_, k_, v_, ctx_;  // [m, q_dim], [m, kv_dim] x2, [m, q_dim]
  std::vector<float> tmp_;            // [m, hidden]
  std::vector<float> g_, u_;          // [m, intermediate]
  std::vector<float> scores_;         // [threads, heads per kv head, capacity]
  std::vector<float> final_, normed_, logits_;  // [r, hidden] x2, [r, vocab]
  std::vector<uint32_t> out_slots_;
};

// ---------------------------------------------------------------------------------------------

inline void Session::prepare(size_t n) {
  const auto& L0 = m_->layer(0);
  const size_t H = m_->hidden(), half = L0.attn.head_dim / 2;
  info_.resize(n);
  row_state_.assign(n, Row::Live);
  x_.resize(n * H);
  cos_.resize(n * half);
  sin_.resize(n * half);
  const size_t group = L0.attn.n_heads / L0.attn.n_kv_heads;
  const size_t need_scores = size_t(omp_get_max_threads()) * group * cache_.capacity();
  if (scores_.size() < need_scores) scores_.resize(need_scores);
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
  std::vector<uint32_t> all(n);
  for (size_t i = 0; i < n; ++i) {
    all[i] = uint32_t(i);
    info_[i] = TokenInfo{uint32_t(i), pos_ + int64_t(i), phase, tokens[i]};
    m_->embed(tokens[i], x_.data() + i * H);
    m_->rope().angles(pos_ + int64_t(i), cos_.data() + i * (m_->rope().head_dim() / 2),
                      sin_.data() + i * (m_->rope().head_dim() / 2));
  }
  tap(obs, Tap::embed, -1, x_.data(), n, H, all);
  for (auto& t : info_) policy.begin_token(t);

  for (size_t l = 0; l < m_->n_layers(); ++l) run_layer(l, policy, obs, n);

  // Readout: the policy picks the vector, the model's final norm and head turn it into logits.
  out_slots_.clear();
  if (which == Logits::All) out_slots_ = all;
  else out_slots_.push_back(uint32_t(n - 1));
  const size_t r = out_slots_.size(), V = m_->vocab();
  final_.resize(r * H);
  normed_.resize(r * H);
  logits_.resize(r * V);
  for (size_t j = 0; j < r; ++j) {
    const uint32_t s = out_slots_[j];
    const float* src = row_state_[s] == Row::Shadow ? snap_.data() + s * H : x_.data() + s * H;
    auto v = policy.readout(info_[s], std::span<const float>(src, H));
    if (v.size() != H) throw UsageError("", "readout", "policy returned a vector of wrong size");
    std::copy(v.begin(), v.end(), final_.data() + j * H);
  }
  m_->readout()(final_.data(), r, normed_.data(), logits_.data());
  tap(obs, Tap::final_norm, -1, normed_.data(), r, H, out_slots_);
  tap(obs, Tap::logits, -1, logits_.data(), r, V, out_slots_);
  for (auto& t : info_) policy.end_token(t);
  pos_ += int64_t(n);
  return {logits_.data(), logits_.size()};
}

template <DepthPolicy P, Observer O>
void Session::run_layer(size_t l, P& policy, O& obs, size_t n) {
  const DecoderLayer& L = m_->layer(l);
  const auto& A = L.attn;
  const size_t H = m_->hidden(), I = L.mlp.intermediate(), half = A.head_dim / 2;
  constexpr bool sees = detail::observes_layers<P>();

  // 1. Decisions.
  run_.clear();
  kvo_.clear();
  policy_sees_.clear();
  for (size_t i = 0; i < n; ++i) {
    Action a = Action::Skip;
    if (row_state_[i] == Row::Shadow) {
      a = Action::Run;
    } else if (row_state_[i] == Row::Live) {
      a = policy.before_layer(info_[i], int(l));
      if (a == Action::Exit) {
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
  std::vector<float>* cs = &cos_;
  std::vector<float>* sn = &sin_;
  std::vector<float> rc, rs;
  if (!whole) {
    rc.resize(m * half), rs.resize(m * half);
    for (size_t r = 0; r < m; ++r) {
      std::copy_n(cos_.data() + run_[r] * half, half, rc.data() + r * half);
      std::copy_n(sin_.data() + run_[r] * half, half, rs.data() + r * half);
    }
    cs = &rc, sn = &rs;
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
  A.project(xn_.data(), m, cs->data(), sn->data(), q_.data(), k_.data(), v_.data());
  tap(obs, Tap::q, int(l), q_.data(), m, A.q_dim(), slots);
  tap(obs, Tap::k, int(l), k_.data(), m, A.kv_dim(), slots);
  tap(obs, Tap::v, int(l), v_.data(), m, A.kv_dim(), slots);
  for (size_t r = 0; r < m; ++r) {
    const int64_t p = info_[run_[r]].position;
    std::copy_n(k_.data() + r * A.kv_dim(), A.kv_dim(), cache_.k(l, p));
    std::copy_n(v_.data() + r * A.kv_dim(), A.kv_dim(), cache_.v(l, p));
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
      const float* in = P::needs_layer_input ? in_.data() + r * H : nullptr;
      policy.after_layer(info_[run_[r]], int(l), std::span<const float>(in, in ? H : 0),
                         std::span<float>(x + r * H, H));
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
  std::vector<float> x(m * H), c(m * half), s(m * half), k(m * A.kv_dim()), v(m * A.kv_dim());
  for (size_t r = 0; r < m; ++r) {
    std::copy_n(x_.data() + kvo_[r] * H, H, x.data() + r * H);
    std::copy_n(cos_.data() + kvo_[r] * half, half, c.data() + r * half);
    std::copy_n(sin_.data() + kvo_[r] * half, half, s.data() + r * half);
  }
  L.attn_norm(x.data(), x.data(), m);
  A.project(x.data(), m, c.data(), s.data(), nullptr, k.data(), v.data());
  for (size_t r = 0; r < m; ++r) {
    const int64_t p = info_[kvo_[r]].position;
    std::copy_n(k.data() + r * A.kv_dim(), A.kv_dim(), cache_.k(l, p));
    std::copy_n(v.data() + r * A.kv_dim(), A.kv_dim(), cache_.v(l, p));
  }
}

// ctx[r, h] = softmax(scale q[r,h] · K^T) V over the positions row r may see at layer l. The
// query heads sharing a key/value head are done in one pass over the cache. Jobs are handed out
// dynamically: in a causal prompt row r attends to r + 1 positions, so contiguous static chunks
// would leave the first thread idle while the last works through the long rows. Each job writes
// only its own outputs, so the result does not depend on which thread runs it.
inline void Session::attend_rows(size_t l, const float* q, float* ctx, size_t m) {
  const auto& A = m_->layer(l).attn;
  const size_t nh = A.n_heads, nkv = A.n_kv_heads, G = nh / nkv, hd = A.head_dim,
               stride = A.kv_dim();
  const uint8_t* mask = cache_.mask(l);
  const long jobs = long(m * nkv);
  const int64_t last = info_[run_[m - 1]].position;
  const bool threaded = size_t(jobs) * G * size_t(last + 1) * hd > (1u << 15);
#pragma omp parallel for schedule(dynamic) if (threaded)
  for (long j = 0; j < jobs; ++j) {
    const size_t r = size_t(j) / nkv, g = size_t(j) % nkv;
    const int64_t p = info_[run_[r]].position, lo = A.window_start(p);
    float* scores = scores_.data() + size_t(omp_get_thread_num()) * G * cache_.capacity();
    const size_t h0 = g * G;  // first query head of this group
    kernels::attend_group(q + (r * nh + h0) * hd, hd, G, cache_.k(l, lo) + g * hd,
                          cache_.v(l, lo) + g * hd, size_t(p - lo + 1), stride, hd, A.scale(),
                          mask ? mask + lo : nullptr, scores, ctx + (r * nh + h0) * hd, hd);
  }
}

}  // namespace fathom
