#pragma once
// Generation: prompt processing (PP) of the whole prompt in one forward pass, then response
// generation (RG) one token at a time, each under the same DepthPolicy.
#include <algorithm>
#include <cstdint>
#include <functional>
#include <span>
#include <vector>

#include "fathom/model/full_depth.hpp"
#include "fathom/model/sampler.hpp"
#include "fathom/model/session.hpp"

namespace fathom {

struct GenerateOptions {
  int max_new_tokens = 128;
  SamplingOptions sampling;
  bool stop_on_eos = true;
  std::vector<int64_t> eos_ids;  // empty: the model config's eos ids
};

struct Generation {
  std::vector<int32_t> tokens;  // generated ids (the eos that stopped it included)
  bool stopped_on_eos = false;
};

// on_token(id) is called as each token is chosen; return false to stop early.
template <DepthPolicy P = FullDepth, Observer O = NoObserver>
Generation generate(Session& s, std::span<const int32_t> prompt, const GenerateOptions& opt,
                    P& policy, O& observer,
                    const std::function<bool(int32_t)>& on_token = nullptr) {
  if (prompt.empty()) throw UsageError("", "prompt", "generation needs at least one prompt token");
  const auto& eos = opt.eos_ids.empty() ? s.model().config().eos_token_ids : opt.eos_ids;
  Sampler sample(opt.sampling);
  Generation g;
  auto logits = s.forward(prompt, Phase::PP, policy, observer);
  for (int i = 0; i < opt.max_new_tokens; ++i) {
    const int32_t next = sample(logits);
    g.tokens.push_back(next);
    const bool is_eos = std::find(eos.begin(), eos.end(), next) != eos.end();
    if (on_token && !on_token(next)) break;
    if (opt.stop_on_eos && is_eos) { g.stopped_on_eos = true; break; }
    if (i + 1 == opt.max_new_tokens || s.position() >= s.capacity()) break;
    logits = s.forward(std::span<const int32_t>(&next, 1), Phase::RG, policy, observer);
  }
  return g;
}

template <DepthPolicy P = FullDepth>
Generation generate(Session& s, std::span<const int32_t> prompt, const GenerateOptions& opt,
                    P& policy, const std::function<bool(int32_t)>& on_token = nullptr) {
  NoObserver none;
  return generate(s, prompt, opt, policy, none, on_token);
}

inline Generation generate(Session& s, std::span<const int32_t> prompt,
                           const GenerateOptions& opt = {}) {
  FullDepth full;
  return generate(s, prompt, opt, full);
}

}  // namespace fathom
