#pragma once
// The registry of named policies: one parser and one switch, used by every example and by the
// eval harness, so a new policy is added here once.
//   full                    FullDepth
//   lac:α                   LAC, final-state substitution (the Void paper's released code)
//   lac-instream:α          LAC, a void's update discarded from the stream
//   lac-trace:α             LAC decisions recorded, nothing changed (logits identical to full)
//   lac-exit:α              the original LAC early-exit rule
//   static:pp=1,4,7;rg=2,3  StaticSkip: those layers are never computed in that phase (a
//                           calibrated void set or a ShortGPT set); `static:1,4` skips the same
//                           set in both phases, `pp=` / `rg=` with no layers skips nothing there.
//                           Its commas do not split a policy list: a list item that starts with a
//                           digit continues the static set before it.
//   early-exit:λ, early-exit:MEASURE:λ
//                           CALM early exit through the logit lens; MEASURE softmax_max (default),
//                           softmax_diff or state
//   logit-lens:i            read hidden_states[i] through the logit lens (blocks i.. not run)
//   cos-skip:c              CosineSkip: skip a layer whose cosine exceeded c on the previous token
#include <cctype>
#include <cstdio>
#include <cstdint>
#include <set>
#include <string>
#include <vector>

#include "fathom/core/error.hpp"
#include "fathom/depth/cosine_skip.hpp"
#include "fathom/depth/early_exit.hpp"
#include "fathom/depth/lac.hpp"
#include "fathom/depth/lens_policy.hpp"
#include "fathom/depth/static_skip.hpp"
#include "fathom/model/full_depth.hpp"
#include "fathom/model/model.hpp"

namespace fathom {

struct PolicySpec {
  enum class Kind : uint8_t {
    Full, Lac, LacInStream, LacTrace, LacExit, Static, EarlyExit, LogitLens, CosineSkip
  } kind = Kind::Full;
  double alpha = 0.8;              // LAC's α, early exit's λ, cos-skip's c
  std::set<int> skip_pp, skip_rg;  // Static: layers not computed per phase
  Confidence measure = Confidence::SoftmaxMax;  // EarlyExit
  int index = 0;                   // LogitLens: the hidden_states index read out
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
}  // namespace detail

// The StaticSkip spec that skips these layer sets, named canonically ("static:pp=1,4;rg=").
inline PolicySpec static_policy(const std::set<int>& skip_pp, const std::set<int>& skip_rg) {
  PolicySpec p;
  p.kind = PolicySpec::Kind::Static;
  p.skip_pp = skip_pp;
  p.skip_rg = skip_rg;
  p.name = "static:pp=" + detail::layer_list(skip_pp) + ";rg=" + detail::layer_list(skip_rg);
  return p;
}

namespace detail {
// "static:pp=1,4;rg=2" or "static:1,4" -> spec.
inline PolicySpec parse_static(const std::string& s, const std::string& body) {
  std::set<int> sets[2];  // pp, rg
  if (body.find('=') == std::string::npos) {
    sets[0] = sets[1] = parse_layer_set(body, s);
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
      sets[k] = parse_layer_set(part.substr(eq + 1), s);
      a = b + 1;
    }
  }
  return static_policy(sets[0], sets[1]);
}
// The number after a policy's colon; `what` names it in errors.
inline double parse_number(const std::string& text, const std::string& whole, const char* what) {
  size_t used = 0;
  double v = 0;
  try {
    v = std::stod(text, &used);
  } catch (...) {
    used = 0;
  }
  if (used != text.size() || text.empty() || !(v >= 0))
    throw UsageError("", "policies", std::string("bad ") + what + " in '" + whole + "' (want a number >= 0)");
  return v;
}
inline std::string number_text(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%g", v);
  return buf;
}
}  // namespace detail

inline PolicySpec parse_policy(const std::string& s) {
  PolicySpec p;
  const auto colon = s.find(':');
  const std::string head = s.substr(0, colon);
  const std::string arg = colon == std::string::npos ? "" : s.substr(colon + 1);
  using K = PolicySpec::Kind;
  if (head == "full") {
    if (colon != std::string::npos) throw UsageError("", "policies", "'full' takes no α: " + s);
    return p;
  }
  if (head == "static") {
    if (colon == std::string::npos) throw UsageError("", "policies", "'static' needs its layers: " + s);
    return detail::parse_static(s, arg);
  }
  if (head == "early-exit") {
    p.kind = K::EarlyExit;
    const auto c2 = arg.find(':');
    if (c2 != std::string::npos) p.measure = parse_confidence(arg.substr(0, c2));
    p.alpha = detail::parse_number(c2 == std::string::npos ? arg : arg.substr(c2 + 1), s, "λ");
    p.name = "early-exit:" + std::string(confidence_name(p.measure)) + ":" + detail::number_text(p.alpha);
    return p;
  }
  if (head == "logit-lens") {
    p.kind = K::LogitLens;
    const double i = detail::parse_number(arg, s, "hidden_states index");
    // Range first: int(1e300) would be undefined behaviour (found by fuzzing).
    if (i > 1e6 || i != double(int(i))) throw UsageError("", "policies", "bad hidden_states index in '" + s + "'");
    p.index = int(i);
    p.name = "logit-lens:" + std::to_string(p.index);
    return p;
  }
  if (head == "cos-skip") {
    p.kind = K::CosineSkip;
    p.alpha = detail::parse_number(arg, s, "cosine threshold");
    p.name = "cos-skip:" + detail::number_text(p.alpha);
    return p;
  }
  if (head == "lac") p.kind = K::Lac;
  else if (head == "lac-instream") p.kind = K::LacInStream;
  else if (head == "lac-trace") p.kind = K::LacTrace;
  else if (head == "lac-exit") p.kind = K::LacExit;
  else
    throw UsageError("", "policies", "unknown policy '" + s +
                                         "' (full, lac:α, lac-instream:α, lac-trace:α, lac-exit:α, "
                                         "static:pp=...;rg=..., early-exit:[MEASURE:]λ, "
                                         "logit-lens:i, cos-skip:c)");
  if (colon != std::string::npos) p.alpha = detail::parse_number(arg, s, "α");
  p.name = head + ":" + detail::number_text(p.alpha);
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

// Calls fn(policy) with the named policy built for `m` and returns what fn returns. A Session
// attached to a Trace (Session::set_trace) records the policy's decisions.
template <class F>
decltype(auto) with_policy(const Model& m, const PolicySpec& spec, F&& fn) {
  const size_t L = m.n_layers();
  using K = PolicySpec::Kind;
  switch (spec.kind) {
    case K::Lac:
    case K::LacInStream:
    case K::LacTrace: {
      LAC p(spec.alpha, spec.kind == K::Lac        ? LacMode::FinalState
                        : spec.kind == K::LacTrace ? LacMode::TraceOnly
                                                   : LacMode::InStream);
      return fn(p);
    }
    case K::LacExit: {
      LACEarlyExit p(spec.alpha, 1);
      return fn(p);
    }
    case K::Static: {
      StaticSkip p(L, spec.skip_pp, spec.skip_rg);
      return fn(p);
    }
    case K::EarlyExit: {
      EarlyExit<> p(m, EarlyExitOptions{spec.measure, spec.alpha});
      return fn(p);
    }
    case K::LogitLens: {
      static const lens::LogitLens logit_lens;
      lens::LensReadout<lens::LogitLens> p(logit_lens, L, size_t(spec.index));
      return fn(p);
    }
    case K::CosineSkip: {
      CosineSkip p(L, spec.alpha);
      return fn(p);
    }
    case K::Full:
    default: {
      FullDepth p;
      return fn(p);
    }
  }
}

}  // namespace fathom
