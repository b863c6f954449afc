#pragma once
// The forward pass over the layers, shared by Session::forward (n tokens of one sequence: row i is
// the token at position pos + i) and BatchSession::step (one token of each of n sequences: row i
// is the next token of its own sequence). Per layer every row's policy decides, rows that do not
// run get K/V only or are masked (KvStrategy), the running rows go through attention and MLP
// together, each row's policy sees its result, and the named taps report what ran; then every
// row's readout. Both callers run exactly this code, so a row's arithmetic cannot drift between
// the single-sequence and the batched pass.
//
// What differs between the callers is reached through their `rows` view (a small struct each
// caller defines):
//   using Policy = P;                          the policy type
//   static constexpr kernels::Rows products;   Gemm (one sequence) or AsGemv (a batch: every row
//                                              summed as gemv sums it, kernels/gemv_batch.hpp)
//   P& policy(size_t i)                        row i's policy
//   P::State& state(size_t i)                  row i's policy State
//   Trace* trace(size_t i)                     row i's trace (nullptr: none); its record is the
//                                              one open for info_[i].slot
//   KvCache& cache(size_t i)                   the cache row i's keys and values go to
//   std::span<const uint32_t> sequences()      [n] the sequence of each row, for the taps' view
//                                              (empty: all rows belong to one sequence)
//   void attend(size_t l, size_t m)            attention of the m rows in run_ over layer l:
//                                              q_ -> ctx_ (each row over its own cache)
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "fathom/core/error.hpp"
#include "fathom/kernels/elementwise.hpp"
#include "fathom/kernels/gemv_batch.hpp"
#include "fathom/model/depth_policy.hpp"
#include "fathom/model/kv_cache.hpp"
#include "fathom/model/model.hpp"
#include "fathom/model/taps.hpp"
#include "fathom/model/trace.hpp"

namespace fathom::detail {

class LayerPass {
 protected:
  enum class Row : uint8_t { Live, Exited, Shadow };  // Shadow: exited under KvStrategy::Exact

  // Sizes the per-row buffers for a pass of n rows over caches of `capacity` positions.
  void start_pass(const Model& model, size_t n, size_t capacity);
  // Each row's begin_token and trace record (info_ and x_ already hold the rows' tokens).
  template <class Rows>
  void begin_rows(const Model& model, size_t n, Rows& rows);
  template <class Rows, Observer O>
  void run_layer(const Model& model, size_t l, size_t n, KvStrategy kv, Rows& rows, O& obs);
  // Every row's readout layer into its trace; logits_ [out.size(), vocab] for the rows in `out`
  // from the vectors their policies read out.
  template <class Rows, Observer O>
  void read_out(const Model& model, size_t n, std::span<const uint32_t> out, Rows& rows, O& obs);
  template <class Rows>
  void end_rows(size_t n, Rows& rows);

  template <class O>
  static void tap(O& obs, Tap t, int layer, const float* data, size_t rows, size_t cols,
                  std::span<const uint32_t> slots, std::span<const uint32_t> sequences) {
    if constexpr (O::enabled) obs.on_tap(t, layer, TapView{data, rows, cols, slots, sequences});
  }
  // The sequences of the rows `which` for a tap's view; empty when the rows are one sequence's.
  std::span<const uint32_t> tap_sequences(std::span<const uint32_t> which, std::span<const uint32_t> of_row) {
    if (of_row.empty()) return {};
    tap_seq_.resize(which.size());
    for (size_t r = 0; r < which.size(); ++r) tap_seq_[r] = of_row[which[r]];
    return tap_seq_;
  }

  // Per pass (n rows, m of them running the current layer):
  std::vector<TokenInfo> info_;       // [n] what each row's policy is told
  std::vector<Row> row_state_;        // [n]
  std::vector<int> last_run_;         // [n] last layer the policy ran for the row (-1: none)
  std::vector<uint32_t> all_;         // [n] 0..n-1
  std::vector<float> x_;              // [n, hidden] residual stream
  std::vector<float> snap_;           // [n, hidden] readout state of Shadow rows
  std::vector<float> cos_, sin_;      // [n, head_dim/2]
  std::vector<float> rcos_, rsin_;    // [m, head_dim/2] angles of the rows running the layer
  std::vector<uint32_t> run_, kvo_;   // rows running the layer / needing K/V only
  std::vector<uint32_t> tap_seq_;     // [m] or [n] the sequences of a tap's rows (batch only)
  std::vector<uint8_t> policy_sees_;  // [m] whether after_layer is called for run_[r]
  std::vector<float> xr_, in_;        // [m, hidden] gathered rows, their layer input
  std::vector<float> xn_;             // [m, hidden] normed rows
  std::vector<float> q_, k_, v_, ctx_;  // [m, q_dim], [m, kv_dim] x2, [m, q_dim]
  std::vector<float> tmp_;            // [m, hidden]
  std::vector<float> g_, u_;          // [m, intermediate]
  std::vector<float> kx_, kcos_, ksin_, kk_, kv_;  // kv-only rows: [r, hidden], [r, head_dim/2] x2, [r, kv_dim] x2
  std::vector<float> scores_;         // Attention::attend_scratch(capacity)
  std::vector<float> final_, normed_, logits_;  // rows read out: [r, hidden] x2, [r, vocab]

 private:
  template <class Rows>
  void kv_only_rows(const Model& model, size_t l, Rows& rows);
};

// ---------------------------------------------------------------------------------------------

inline void LayerPass::start_pass(const Model& model, size_t n, size_t capacity) {
  const auto& A = model.layer(0).attn;
  const size_t H = model.hidden(), half = A.head_dim / 2;
  info_.resize(n);
  row_state_.assign(n, Row::Live);
  last_run_.assign(n, -1);
  all_.resize(n);
  for (size_t i = 0; i < n; ++i) all_[i] = uint32_t(i);
  x_.resize(n * H);
  cos_.resize(n * half);
  sin_.resize(n * half);
  const size_t need_scores = A.attend_scratch(capacity);
  if (scores_.size() < need_scores) scores_.resize(need_scores);
}

template <class Rows>
void LayerPass::begin_rows(const Model& model, size_t n, Rows& rows) {
  const size_t H = model.hidden();
  for (size_t i = 0; i < n; ++i) {
    rows.policy(i).begin_token(info_[i], rows.state(i));
    if (Trace* t = rows.trace(i)) t->begin(info_[i]).embed_norm = float(kernels::l2_norm(x_.data() + i * H, H));
  }
}

template <class Rows, Observer O>
void LayerPass::run_layer(const Model& model, size_t l, size_t n, KvStrategy kv, Rows& rows, O& obs) {
  using P = typename Rows::Policy;
  const DecoderLayer& L = model.layer(l);
  const auto& A = L.attn;
  const size_t H = model.hidden(), I = L.mlp.intermediate(), half = A.head_dim / 2;
  constexpr bool sees = P::observes_layers;
  constexpr kernels::Rows how = Rows::products;

  // 1. Decisions.
  run_.clear();
  kvo_.clear();
  policy_sees_.clear();
  for (size_t i = 0; i < n; ++i) {
    Trace* trace = rows.trace(i);
    Action a = Action::Skip;
    if (row_state_[i] == Row::Shadow) {
      a = Action::Run;
    } else if (row_state_[i] == Row::Live) {
      a = rows.policy(i).before_layer(info_[i], rows.state(i), int(l));
      if (a == Action::Run) {
        last_run_[i] = int(l);
        if (trace) {
          auto& lr = trace->open(info_[i].slot).layers[l];
          lr.executed = lr.activated = true;  // until the policy's note says otherwise
        }
      } else if (a == Action::Exit) {
        if (trace) trace->open(info_[i].slot).exit_layer = int(l);
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
      rows.cache(i).set_visible(l, info_[i].position, false);
    } else {
      kvo_.push_back(uint32_t(i));
    }
  }
  if (!kvo_.empty()) kv_only_rows(model, l, rows);
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
  const std::span<const uint32_t> slots(run_);
  std::span<const uint32_t> seqs;
  if constexpr (O::enabled) seqs = tap_sequences(slots, rows.sequences());
  tap(obs, Tap::resid_pre, int(l), x, m, H, slots, seqs);

  // 3. Attention: a = h + Wo · attn(q, K, V), each row over its own sequence's cache.
  xn_.resize(m * H);
  q_.resize(m * A.q_dim());
  k_.resize(m * A.kv_dim());
  v_.resize(m * A.kv_dim());
  ctx_.resize(m * A.q_dim());
  tmp_.resize(m * H);
  L.attn_norm(x, xn_.data(), m);
  tap(obs, Tap::attn_norm, int(l), xn_.data(), m, H, slots, seqs);
  A.project(xn_.data(), m, cs, sn, q_.data(), k_.data(), v_.data(), how);
  tap(obs, Tap::q, int(l), q_.data(), m, A.q_dim(), slots, seqs);
  tap(obs, Tap::k, int(l), k_.data(), m, A.kv_dim(), slots, seqs);
  tap(obs, Tap::v, int(l), v_.data(), m, A.kv_dim(), slots, seqs);
  for (size_t r = 0; r < m; ++r)
    rows.cache(run_[r]).store(l, info_[run_[r]].position, k_.data() + r * A.kv_dim(), v_.data() + r * A.kv_dim());
  rows.attend(l, m);
  tap(obs, Tap::attn_ctx, int(l), ctx_.data(), m, A.q_dim(), slots, seqs);
  A.output(ctx_.data(), m, tmp_.data(), how);
  tap(obs, Tap::attn_out, int(l), tmp_.data(), m, H, slots, seqs);
  kernels::add_inplace(x, tmp_.data(), m * H);
  tap(obs, Tap::resid_mid, int(l), x, m, H, slots, seqs);

  // 4. MLP: h = a + down(silu(gate(n)) ⊙ up(n)), n = RMSNorm(a).
  g_.resize(m * I);
  u_.resize(m * I);
  L.mlp_norm(x, xn_.data(), m);
  tap(obs, Tap::mlp_norm, int(l), xn_.data(), m, H, slots, seqs);
  L.mlp.activations(xn_.data(), m, g_.data(), u_.data(), how);
  tap(obs, Tap::mlp_act, int(l), g_.data(), m, I, slots, seqs);
  L.mlp.project_down(g_.data(), m, tmp_.data(), how);
  tap(obs, Tap::mlp_out, int(l), tmp_.data(), m, H, slots, seqs);
  kernels::add_inplace(x, tmp_.data(), m * H);

  // 5. Each row's policy sees its result (and may rewrite it), then rows go back to the stream.
  if constexpr (sees) {
    for (size_t r = 0; r < m; ++r) {
      if (!policy_sees_[r]) continue;
      const uint32_t i = run_[r];
      const float* in = P::needs_layer_input ? in_.data() + r * H : nullptr;
      LayerNote note;
      rows.policy(i).after_layer(info_[i], rows.state(i), int(l), std::span<const float>(in, in ? H : 0),
                                 std::span<float>(x + r * H, H), note);
      if (Trace* trace = rows.trace(i)) {
        auto& lr = trace->open(info_[i].slot).layers[l];
        lr.activated = note.activated, lr.norm = note.norm, lr.delta = note.delta, lr.tau = note.tau;
      }
    }
  }
  // resid_post is the stream as it continues: after a policy rewrote the output (an in-stream
  // void is h_{l-1} again), not the update it discarded.
  tap(obs, Tap::resid_post, int(l), x, m, H, slots, seqs);
  if (!whole)
    for (size_t r = 0; r < m; ++r) std::copy_n(x + r * H, H, x_.data() + run_[r] * H);
}

// Keys and values of rows that do not run layer l, from the hidden state that reached it.
template <class Rows>
void LayerPass::kv_only_rows(const Model& model, size_t l, Rows& rows) {
  const DecoderLayer& L = model.layer(l);
  const auto& A = L.attn;
  const size_t H = model.hidden(), half = A.head_dim / 2, m = kvo_.size();
  kx_.resize(m * H), kcos_.resize(m * half), ksin_.resize(m * half);
  kk_.resize(m * A.kv_dim()), kv_.resize(m * A.kv_dim());
  for (size_t r = 0; r < m; ++r) {
    std::copy_n(x_.data() + kvo_[r] * H, H, kx_.data() + r * H);
    std::copy_n(cos_.data() + kvo_[r] * half, half, kcos_.data() + r * half);
    std::copy_n(sin_.data() + kvo_[r] * half, half, ksin_.data() + r * half);
  }
  L.attn_norm(kx_.data(), kx_.data(), m);
  A.project(kx_.data(), m, kcos_.data(), ksin_.data(), nullptr, kk_.data(), kv_.data(), Rows::products);
  for (size_t r = 0; r < m; ++r)
    rows.cache(kvo_[r]).store(l, info_[kvo_[r]].position, kk_.data() + r * A.kv_dim(), kv_.data() + r * A.kv_dim());
}

// The policy picks each row's vector, the model's final norm and head turn it into logits.
template <class Rows, Observer O>
void LayerPass::read_out(const Model& model, size_t n, std::span<const uint32_t> out, Rows& rows, O& obs) {
  for (size_t i = 0; i < n; ++i)
    if (Trace* t = rows.trace(i))
      t->open(info_[i].slot).readout_layer = rows.policy(i).readout_layer(info_[i], rows.state(i), last_run_[i]);
  const size_t r = out.size(), H = model.hidden(), V = model.vocab();
  final_.resize(r * H);
  normed_.resize(r * H);
  logits_.resize(r * V);
  for (size_t j = 0; j < r; ++j) {
    const uint32_t i = out[j];
    const float* src = row_state_[i] == Row::Shadow ? snap_.data() + i * H : x_.data() + i * H;
    auto v = rows.policy(i).readout(info_[i], rows.state(i), std::span<const float>(src, H));
    if (v.size() != H) throw UsageError("", "readout", "policy returned a vector of wrong size");
    std::copy(v.begin(), v.end(), final_.data() + j * H);
  }
  model.readout()(final_.data(), r, normed_.data(), logits_.data(), Rows::products);
  std::span<const uint32_t> seqs;
  if constexpr (O::enabled) seqs = tap_sequences(out, rows.sequences());
  tap(obs, Tap::final_norm, -1, normed_.data(), r, H, out, seqs);
  tap(obs, Tap::logits, -1, logits_.data(), r, V, out, seqs);
}

template <class Rows>
void LayerPass::end_rows(size_t n, Rows& rows) {
  for (size_t i = 0; i < n; ++i) {
    rows.policy(i).end_token(info_[i], rows.state(i));
    if (Trace* t = rows.trace(i)) t->end(info_[i].slot);
  }
}

}  // namespace fathom::detail
