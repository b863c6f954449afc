#pragma once
// One forward pass for many policies. FullDepth, LAC trace-only and LAC final-state never change
// the residual stream: they differ only in which layer's state the final norm + LM head read.
// So every such policy (any number of α) can be scored from one pass per item:
//   - the pass records, per token, the norms n_{-1}..n_{L-1} (all a LAC decision needs) and, for
//     the tokens whose logits are wanted, the state after every layer;
//   - each LAC policy's decisions are derived from the norms with exactly the arithmetic of
//     LAC::after_layer (lac_decisions), giving its layer usage and readout layer per token;
//   - logits are computed once per distinct set of readout rows, through the same readout call
//     (same rows, same batch) a separate run makes, so the results are bit-identical to running
//     each policy on its own (tests/test_eval_run.cpp checks this).
// Log-likelihood scoring shares everything. Generate scoring shares the prompt pass: each policy
// samples its first token from its own readout of the prompt, then continues in its own Session
// from a copy of the prompt's keys and values (identical for all of them), under its own LAC.
// The wall time of the shared work is divided evenly among the policies in `seconds`.
#include <chrono>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "fathom/depth/lac.hpp"
#include "fathom/model/trace.hpp"
#include "fathom/eval/policies.hpp"
#include "fathom/kernels/elementwise.hpp"
#include "fathom/model/sampler.hpp"

namespace fathom::eval {

// Policies whose stream equals FullDepth's, so one pass can serve them all.
inline bool observe_only(const PolicySpec& s) {
  using K = PolicySpec::Kind;
  return s.kind == K::Full || s.kind == K::Lac || s.kind == K::LacTrace;
}

namespace detail {
// Records what the observe-only policies need from a pass; reads out the final state (as
// FullDepth and LAC trace-only do).
class NormRecorder : public PolicyBase {
 public:
  static constexpr bool needs_layer_input = true;
  NormRecorder(size_t L, size_t H) : L_(L), H_(H) {}

  // Before a pass over n tokens: keep the per-layer states of all tokens or only the last.
  void prepare(size_t n, bool all_states) {
    n_ = n, all_ = all_states;
    norms_.assign(n * (L_ + 1), 0.0);
    states_.assign((all_ ? n : 1) * (L_ + 1) * H_, 0.f);
  }
  size_t tokens() const { return n_; }
  // [L + 1] n_{-1}..n_{L-1} of slot i.
  std::span<const double> norms(size_t i) const { return {norms_.data() + i * (L_ + 1), L_ + 1}; }
  // [hidden] the state after layer `layer` (-1: the embeddings) of slot i (i = n-1 only when
  // not all states are kept).
  const float* state(size_t i, int layer) const {
    const size_t r = all_ ? i : 0;
    return states_.data() + (r * (L_ + 1) + size_t(layer + 1)) * H_;
  }

  void after_layer(const TokenInfo& t, State&, int l, std::span<const float> in,
                   std::span<float> out, LayerNote&) {
    double* n = norms_.data() + t.slot * (L_ + 1);
    if (l == 0) n[0] = kernels::l2_norm(in.data(), in.size());
    n[l + 1] = kernels::l2_norm(out.data(), out.size());
    if (!all_ && t.slot + 1 != n_) return;
    float* s = states_.data() + (all_ ? t.slot : 0) * (L_ + 1) * H_;
    if (l == 0) std::copy(in.begin(), in.end(), s);
    std::copy(out.begin(), out.end(), s + size_t(l + 1) * H_);
  }

 private:
  size_t L_, H_, n_ = 0;
  bool all_ = false;
  std::vector<double> norms_;  // [n, L + 1]
  std::vector<float> states_;  // [n or 1, L + 1, hidden]
};
static_assert(DepthPolicy<NormRecorder>);
}  // namespace detail

class SharedPassEvaluator final : public GroupEvaluator {
 public:
  SharedPassEvaluator(const Model& m, std::vector<PolicySpec> specs, SessionOptions so = {})
      : m_(&m), specs_(std::move(specs)), so_(so), session_(m, so), rec_(m.n_layers(), m.hidden()) {
    for (auto& s : specs_)
      if (!observe_only(s)) throw UsageError("", "policies", "'" + s.name + "' changes the stream: it cannot share a pass");
  }
  int64_t context() const override { return session_.capacity(); }
  size_t size() const override { return specs_.size(); }

  std::vector<ItemOutcome> evaluate(const Prompt& p, const Item& item, const tok::AnyTokenizer& tok,
                                    const ScoringSettings& st, uint64_t seed) override {
    const auto t0 = std::chrono::steady_clock::now();
    std::vector<ItemOutcome> out(specs_.size());
    const size_t L = m_->n_layers(), P = specs_.size();
    session_.reset();
    std::vector<std::vector<int>> layer;  // [policy][token of the pass] readout layer
    // The prompt pass: usage of every prompt token, logits of the last one.
    rec_.prepare(p.tokens.size(), false);
    const auto full = session_.forward(p.tokens, Phase::PP, rec_, Logits::Last);
    account(Phase::PP, out, layer);
    std::vector<std::vector<float>> first = readouts(full, layer, 1, rec_.tokens() - 1);  // [policy][vocab]
    if (st.scoring == Scoring::Loglik) {
      const size_t V = m_->vocab(), base = size_t(session_.position());
      for (auto& o : out) o.scored.pp_tokens = p.tokens.size();
      for (size_t k = 0; k < P; ++k) out[k].scored.logprobs.assign(p.continuations.size(), 0.0);
      for (size_t c = 0; c < p.continuations.size(); ++c) {
        const auto& cont = p.continuations[c];
        if (cont.empty()) throw UsageError("", "continuation", "an option has no tokens");
        for (size_t k = 0; k < P; ++k) out[k].scored.logprobs[c] = detail::log_prob(first[k], cont[0]);
        if (cont.size() < 2) continue;
        const size_t n = cont.size() - 1;
        rec_.prepare(n, true);
        const auto all = session_.forward(std::span<const int32_t>(cont.data(), n), Phase::PP, rec_, Logits::All);
        account(Phase::PP, out, layer);
        const auto rows = readouts(all, layer, n, 0);  // [policy][n * vocab]
        for (size_t k = 0; k < P; ++k) {
          for (size_t j = 0; j < n; ++j)
            out[k].scored.logprobs[c] += detail::log_prob(std::span<const float>(rows[k]).subspan(j * V, V), cont[j + 1]);
          out[k].scored.pp_tokens += n;
        }
        session_.rewind(int64_t(base));
      }
      for (auto& o : out) {
        const auto& lp = o.scored.logprobs;
        o.scored.pred = int(std::max_element(lp.begin(), lp.end()) - lp.begin());
      }
      const double each = seconds_since(t0) / double(P);
      for (auto& o : out) o.seconds = each;
      return out;
    }
    // Generate: the prompt pass is shared; each policy samples and continues on its own.
    const double shared = seconds_since(t0) / double(P);
    std::vector<int32_t> eos;
    for (int32_t e : tok.eos_ids()) eos.push_back(e);
    for (size_t k = 0; k < P; ++k) {
      const auto t1 = std::chrono::steady_clock::now();
      Sampler sample(SamplingOptions{st.generation.temperature, st.generation.top_p, seed});
      std::vector<int32_t> gen;
      Session& s = own_session(k);
      s.continue_from(session_, int64_t(p.tokens.size()));
      Trace trace(L, false);  // the RG layer usage of this policy's reply
      uint64_t rg_tokens = 0;
      s.set_trace(&trace);
      with_policy(*m_, specs_[k], [&](auto& policy) {
        std::span<const float> logits = first[k];
        for (int i = 0; i < st.generation.max_new_tokens; ++i) {
          const int32_t next = sample(logits);
          gen.push_back(next);
          if (std::find(eos.begin(), eos.end(), next) != eos.end()) break;
          if (i + 1 == st.generation.max_new_tokens || s.position() >= s.capacity()) break;
          logits = s.forward(std::span<const int32_t>(&next, 1), Phase::RG, policy);
          ++rg_tokens;
        }
      });
      s.set_trace(nullptr);
      const uint64_t rg_active = trace.activated_pairs(Phase::RG);
      auto& o = out[k];
      o.scored.output = tok.decode(gen, true);
      o.scored.pp_tokens = p.tokens.size();
      o.scored.rg_tokens = rg_tokens;
      o.scored.pred = extract_answer(o.scored.output, p.labels, item);
      o.rg_tokens = rg_tokens, o.rg_active = rg_active;
      o.seconds = shared + seconds_since(t1);
    }
    return out;
  }

 private:
  static double seconds_since(std::chrono::steady_clock::time_point t) {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count();
  }
  Session& own_session(size_t k) {
    if (own_.size() <= k) own_.resize(k + 1);
    if (!own_[k]) own_[k] = std::make_unique<Session>(*m_, so_);
    return *own_[k];
  }

  // Adds the pass's tokens to every policy's PP usage and sets each policy's readout layer per
  // token (L-1: the final state).
  void account(Phase ph, std::vector<ItemOutcome>& out, std::vector<std::vector<int>>& layer) {
    const size_t L = m_->n_layers(), n = rec_.tokens();
    layer.assign(specs_.size(), std::vector<int>(n, int(L) - 1));
    std::vector<uint8_t> act;
    for (size_t k = 0; k < specs_.size(); ++k) {
      uint64_t active = 0;
      for (size_t i = 0; i < n; ++i) {
        if (specs_[k].kind == PolicySpec::Kind::Full) {
          active += L;
          continue;
        }
        const int last = lac_decisions(rec_.norms(i), specs_[k].alpha, act);
        for (uint8_t a : act) active += a;
        if (specs_[k].kind == PolicySpec::Kind::Lac) layer[k][i] = last;
      }
      auto& o = out[k];
      (ph == Phase::PP ? o.pp_tokens : o.rg_tokens) += n;
      (ph == Phase::PP ? o.pp_active : o.rg_active) += active;
    }
  }

  // Per policy, the logits of `rows` tokens (slots from..from+rows-1) read out at its layers;
  // `final_logits` are the pass's own (the final state). Policies with the same layers share.
  std::vector<std::vector<float>> readouts(std::span<const float> final_logits,
                                           const std::vector<std::vector<int>>& layer, size_t rows,
                                           size_t from) {
    const size_t L = m_->n_layers(), H = m_->hidden(), V = m_->vocab();
    std::vector<std::vector<float>> res(specs_.size());
    for (size_t k = 0; k < specs_.size(); ++k) {
      const auto& lk = layer[k];
      bool final_only = true;
      for (size_t j = 0; j < rows; ++j) final_only &= lk[from + j] == int(L) - 1;
      if (final_only) {
        res[k].assign(final_logits.begin(), final_logits.end());
        continue;
      }
      size_t same = k;
      for (size_t q = 0; q < k && same == k; ++q)
        if (layer[q] == lk) same = q;
      if (same != k) {
        res[k] = res[same];
        continue;
      }
      buf_.resize(rows * H);    // [rows, hidden] the chosen states
      normed_.resize(rows * H);  // [rows, hidden]
      res[k].resize(rows * V);   // [rows, vocab]
      for (size_t j = 0; j < rows; ++j)
        std::copy_n(rec_.state(from + j, lk[from + j]), H, buf_.data() + j * H);
      m_->readout()(buf_.data(), rows, normed_.data(), res[k].data());
    }
    return res;
  }

  const Model* m_;
  std::vector<PolicySpec> specs_;
  SessionOptions so_;
  Session session_;
  detail::NormRecorder rec_;
  std::vector<std::unique_ptr<Session>> own_;  // generate: one continuation session per policy
  std::vector<float> buf_, normed_;
};

}  // namespace fathom::eval
