#pragma once
// The per-policy evaluator that scores one item and reports the layers it used (policies by name:
// depth/policies.hpp). Layer usage per item: activated layer-token pairs and tokens per phase, so
// a summary over any set of items is exact (Σ activated / (layers · Σ tokens) = the paper's "% of
// layers used").
#include <chrono>
#include <cstdint>
#include <memory>
#include <type_traits>
#include <vector>

#include "fathom/core/error.hpp"
#include "fathom/depth/policies.hpp"
#include "fathom/eval/scoring.hpp"
#include "fathom/model/model.hpp"
#include "fathom/model/session.hpp"
#include "fathom/model/trace.hpp"

namespace fathom::eval {

// What scoring one item under one policy produced.
struct ItemOutcome {
  Scored scored;
  uint64_t pp_tokens = 0, pp_active = 0;  // tokens, Σ over layers of activated (token, layer)
  uint64_t rg_tokens = 0, rg_active = 0;
  double seconds = 0;
};

struct ScoringSettings {
  Scoring scoring = Scoring::Loglik;
  GenerationSettings generation;
};

// One policy bound to its own Session and Trace; one per worker thread.
class Evaluator {
 public:
  virtual ~Evaluator() = default;
  virtual ItemOutcome evaluate(const Prompt& p, const Item& item, const tok::AnyTokenizer& tok,
                               const ScoringSettings& s, uint64_t seed) = 0;
  virtual int64_t context() const = 0;
};

// Several policies scored together on one item (e.g. from one shared forward pass,
// shared_pass.hpp); one outcome per policy, in the group's order.
class GroupEvaluator {
 public:
  virtual ~GroupEvaluator() = default;
  virtual std::vector<ItemOutcome> evaluate(const Prompt& p, const Item& item,
                                            const tok::AnyTokenizer& tok, const ScoringSettings& s,
                                            uint64_t seed) = 0;
  virtual int64_t context() const = 0;
  virtual size_t size() const = 0;
};

// A group of one.
class SingleEvaluator final : public GroupEvaluator {
 public:
  explicit SingleEvaluator(std::unique_ptr<Evaluator> e) : e_(std::move(e)) {}
  std::vector<ItemOutcome> evaluate(const Prompt& p, const Item& item, const tok::AnyTokenizer& tok,
                                    const ScoringSettings& s, uint64_t seed) override {
    return {e_->evaluate(p, item, tok, s, seed)};
  }
  int64_t context() const override { return e_->context(); }
  size_t size() const override { return 1; }

 private:
  std::unique_ptr<Evaluator> e_;
};

template <DepthPolicy P>
class PolicyEvaluator final : public Evaluator {
 public:
  PolicyEvaluator(const Model& m, P policy, SessionOptions so = {})
      : session_(m, so), trace_(m.n_layers(), false), policy_(std::move(policy)) {
    session_.set_trace(&trace_);
  }
  PolicyEvaluator(const PolicyEvaluator&) = delete;  // the session points at trace_
  PolicyEvaluator& operator=(const PolicyEvaluator&) = delete;

  int64_t context() const override { return session_.capacity(); }

  ItemOutcome evaluate(const Prompt& p, const Item& item, const tok::AnyTokenizer& tok,
                       const ScoringSettings& s, uint64_t seed) override {
    trace_.clear();
    ItemOutcome o;
    const auto t0 = std::chrono::steady_clock::now();
    o.scored = s.scoring == Scoring::Loglik
                   ? score_loglik(session_, p, policy_)
                   : score_generate(session_, tok, p, item, s.generation, seed, policy_);
    o.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    count(Phase::PP, o.pp_tokens, o.pp_active);
    count(Phase::RG, o.rg_tokens, o.rg_active);
    return o;
  }

 private:
  void count(Phase ph, uint64_t& tokens, uint64_t& active) {
    tokens = trace_.usage(ph).tokens;
    active = trace_.activated_pairs(ph);
  }

  Session session_;
  Trace trace_;
  P policy_;
};

// An evaluator for a named policy on `model`.
inline std::unique_ptr<Evaluator> make_evaluator(const Model& m, const PolicySpec& spec,
                                                 SessionOptions so = {}) {
  return with_policy(m, spec, [&](auto& policy) -> std::unique_ptr<Evaluator> {
    using P = std::decay_t<decltype(policy)>;
    return std::make_unique<PolicyEvaluator<P>>(m, std::move(policy), so);
  });
}

}  // namespace fathom::eval
