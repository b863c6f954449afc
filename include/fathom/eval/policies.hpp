#pragma once
// Policies by name, for command lines and comparison runs, and the per-policy evaluator that
// scores one item and reports the layers it used.
//   full               FullDepth
//   lac:α              LAC, final-state substitution (the Void paper's released code)
//   lac-instream:α     LAC, a void's update discarded from the stream
//   lac-trace:α        LAC decisions recorded, nothing changed (logits identical to full)
//   lac-exit:α         the original LAC early-exit rule
//   static:pp=1,4,7;rg=2,3   StaticSkip: those layers are never computed in that phase (a
//                      calibrated void set or a ShortGPT set); `static:1,4` skips the same set in
//                      both phases, `pp=` / `rg=` with no layers skips nothing there. Its commas
//                      do not split a policy list: a list item that starts with a digit continues
//                      the static set before it.
// Layer usage per item: activated layer-token pairs and tokens per phase, so a summary over any
// set of items is exact (Σ activated / (layers · Σ tokens) = the paper's "% of layers used").
#include <cctype>
#include <chrono>
#include <cstdio>
#include <cstdint>
#include <functional>
#include <memory>
#include <set>
#include <type_traits>
#include <string>
#include <vector>

#include "fathom/core/error.hpp"
#include "fathom/model/full_depth.hpp"
#include "fathom/depth/lac.hpp"
#include "fathom/depth/static_skip.hpp"
#include "fathom/depth/trace.hpp"
#include "fathom/eval/scoring.hpp"
#include "fathom/model/model.hpp"
#include "fathom/model/session.hpp"

namespace fathom::eval {

struct PolicySpec {
  enum class Kind : uint8_t { Full, Lac, LacInStream, LacTrace, LacExit, Static } kind = Kind::Full;
  double alpha = 0.8;
  std::set<int> skip_pp, skip_rg;  // Static: layers not computed per phase
  std::string name = "full";  // as written, canonical ("lac:0.8", "static:pp=1,4;rg=4")
};

namespace detail {
// "1,4,7" (or "") -> {1, 4, 7}; `whole` names the policy in errors.
inline std::set<int> parse_layer_set(const std::string& s, const std::string& whole) {
  std::set<int> out;
  size_t a = 0;
  while (a < s.size()) {
    size_t b = s.find(',', a);
    if (b == std::string::npos) b = s.size();
    const std::string n = s.substr(a, b - a);
    size_t used = 0;
    long v = -1;
    try {
      v = std::stol(n, &used);
    } catch (...) {
      used = 0;
    }
    if (n.empty() || used != n.size() || v < 0 || v > 100000)
      throw UsageError("", "policies", "bad layer '" + n + "' in '" + whole + "' (want layer numbers >= 0)");
    out.insert(int(v));
    a = b + 1;
  }
  return out;
}
inline std::string layer_list(const std::set<int>& s) {
  std::string o;
  for (int l : s) {
    if (!o.empty()) o += ',';
    o += std::to_string(l);
  }
  return o;
}
// "static:pp=1,4;rg=2" or "static:1,4" -> spec.
inline PolicySpec parse_static(const std::string& s, const std::string& body) {
  PolicySpec p;
  p.kind = PolicySpec::Kind::Static;
  if (body.find('=') == std::string::npos) {
    p.skip_pp = p.skip_rg = parse_layer_set(body, s);
  } else {
    bool seen[2] = {false, false};
    size_t a = 0;
    while (a <= body.size()) {
      size_t b = body.find(';', a);
      if (b == std::string::npos) b = body.size();
      const std::string part = body.substr(a, b - a);
      const size_t eq = part.find('=');
      const std::string key = part.substr(0, eq);
      const int k = key == "pp" ? 0 : key == "rg" ? 1 : -1;
      if (eq == std::string::npos || k < 0 || seen[k])
        throw UsageError("", "policies", "bad static set '" + part + "' in '" + s +
                                             "' (want pp=l,l,...;rg=l,l,... each at most once)");
      seen[k] = true;
      (k == 0 ? p.skip_pp : p.skip_rg) = parse_layer_set(part.substr(eq + 1), s);
      a = b + 1;
    }
  }
  p.name = "static:pp=" + layer_list(p.skip_pp) + ";rg=" + layer_list(p.skip_rg);
  return p;
}
}  // namespace detail

inline PolicySpec parse_policy(const std::string& s) {
  PolicySpec p;
  const auto colon = s.find(':');
  const std::string head = s.substr(0, colon);
  if (head == "full") {
    if (colon != std::string::npos) throw UsageError("", "policies", "'full' takes no α: " + s);
    return p;
  }
  if (head == "static") {
    if (colon == std::string::npos) throw UsageError("", "policies", "'static' needs its layers: " + s);
    return detail::parse_static(s, s.substr(colon + 1));
  }
  if (head == "lac") p.kind = PolicySpec::Kind::Lac;
  else if (head == "lac-instream") p.kind = PolicySpec::Kind::LacInStream;
  else if (head == "lac-trace") p.kind = PolicySpec::Kind::LacTrace;
  else if (head == "lac-exit") p.kind = PolicySpec::Kind::LacExit;
  else
    throw UsageError("", "policies", "unknown policy '" + s +
                                         "' (full, lac:α, lac-instream:α, lac-trace:α, lac-exit:α, "
                                         "static:pp=...;rg=...)");
  if (colon != std::string::npos) {
    const std::string a = s.substr(colon + 1);
    size_t used = 0;
    try {
      p.alpha = std::stod(a, &used);
    } catch (...) {
      used = 0;
    }
    if (used != a.size() || a.empty() || !(p.alpha >= 0))
      throw UsageError("", "policies", "bad α in '" + s + "' (want a number >= 0)");
  }
  char buf[32];
  std::snprintf(buf, sizeof buf, "%g", p.alpha);
  p.name = head + ":" + buf;
  return p;
}

inline std::vector<PolicySpec> parse_policies(const std::string& list) {
  // Split at commas, then glue back the pieces that continue a static set ("static:1,4,full").
  std::vector<std::string> parts;
  size_t a = 0;
  while (a <= list.size()) {
    size_t b = list.find(',', a);
    if (b == std::string::npos) b = list.size();
    const std::string piece = list.substr(a, b - a);
    const bool continues = !parts.empty() && parts.back().starts_with("static:") && !piece.empty() &&
                           (std::isdigit(static_cast<unsigned char>(piece[0])) || piece.starts_with("rg=") ||
                            piece.starts_with("pp="));
    if (continues) parts.back() += "," + piece;
    else if (!piece.empty()) parts.push_back(piece);
    a = b + 1;
  }
  std::vector<PolicySpec> out;
  for (const auto& p : parts) out.push_back(parse_policy(p));
  if (out.empty()) throw UsageError("", "policies", "no policy given");
  for (size_t i = 0; i < out.size(); ++i)
    for (size_t j = 0; j < i; ++j)
      if (out[i].name == out[j].name)
        throw UsageError("", "policies", "policy '" + out[i].name + "' listed twice");
  return out;
}

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
  // make(trace) builds the policy; it may keep the Trace pointer (usage accounting).
  PolicyEvaluator(const Model& m, std::function<P(Trace*)> make, SessionOptions so = {})
      : model_(&m), session_(m, so), trace_(m.n_layers(), false), policy_(make(&trace_)) {}

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
    count(Phase::PP, o.pp_tokens, o.pp_active, o.scored);
    count(Phase::RG, o.rg_tokens, o.rg_active, o.scored);
    return o;
  }

 private:
  void count(Phase ph, uint64_t& tokens, uint64_t& active, const Scored& sc) {
    if constexpr (std::is_same_v<P, FullDepth>) {
      // FullDepth writes no trace: every layer runs for every token.
      tokens = ph == Phase::PP ? sc.pp_tokens : sc.rg_tokens;
      active = tokens * model_->n_layers();
    } else {
      const Usage u = trace_.usage(ph);
      tokens = u.tokens;
      double a = 0;
      for (double f : u.activated) a += f * double(u.tokens);
      active = uint64_t(a + 0.5);
    }
  }

  const Model* model_;
  Session session_;
  Trace trace_;
  P policy_;
};

// Calls fn(policy) with the named policy built for `m`, writing its decisions to `trace`
// (FullDepth writes none). For work that is not item scoring, e.g. perplexity.
template <class F>
decltype(auto) with_policy(const Model& m, const PolicySpec& spec, Trace* trace, F&& fn) {
  const size_t L = m.n_layers(), H = m.hidden();
  using K = PolicySpec::Kind;
  switch (spec.kind) {
    case K::Lac:
    case K::LacInStream:
    case K::LacTrace: {
      LAC p(L, H, spec.alpha,
            spec.kind == K::Lac ? LacMode::FinalState
                                : spec.kind == K::LacTrace ? LacMode::TraceOnly : LacMode::InStream,
            trace);
      return fn(p);
    }
    case K::LacExit: {
      LACEarlyExit p(L, spec.alpha, 1, trace);
      return fn(p);
    }
    case K::Static: {
      StaticSkip p(L, spec.skip_pp, spec.skip_rg, trace);
      return fn(p);
    }
    case K::Full:
    default: {
      FullDepth p;
      return fn(p);
    }
  }
}

// An evaluator for a named policy on `model`.
inline std::unique_ptr<Evaluator> make_evaluator(const Model& m, const PolicySpec& spec,
                                                 SessionOptions so = {}) {
  const size_t L = m.n_layers(), H = m.hidden();
  const double a = spec.alpha;
  using K = PolicySpec::Kind;
  switch (spec.kind) {
    case K::Full:
      return std::make_unique<PolicyEvaluator<FullDepth>>(m, [](Trace*) { return FullDepth{}; }, so);
    case K::Lac:
    case K::LacInStream:
    case K::LacTrace: {
      const LacMode mode = spec.kind == K::Lac         ? LacMode::FinalState
                           : spec.kind == K::LacTrace ? LacMode::TraceOnly
                                                      : LacMode::InStream;
      return std::make_unique<PolicyEvaluator<LAC>>(
          m, [=](Trace* t) { return LAC(L, H, a, mode, t); }, so);
    }
    case K::LacExit:
      return std::make_unique<PolicyEvaluator<LACEarlyExit>>(
          m, [=](Trace* t) { return LACEarlyExit(L, a, 1, t); }, so);
    case K::Static:
      return std::make_unique<PolicyEvaluator<StaticSkip>>(
          m, [=](Trace* t) { return StaticSkip(L, spec.skip_pp, spec.skip_rg, t); }, so);
  }
  throw UsageError("", "policy", "unknown kind");
}

}  // namespace fathom::eval
