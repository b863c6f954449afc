#pragma once
// Benchmark items as option-constrained prompts for per-layer option ranks (depth::option_ranks,
// examples/depth --task): the evaluation's own prompts (eval/prompt.hpp: k-shot from the dev
// set, lm-eval layout "Question ... Answer:"), each option scored by the first token of its
// answer continuation (" A", " B", ...; BoolQ " yes"/" no"), as log-likelihood scoring sees them.
#include <algorithm>
#include <cstdint>
#include <string>
#include <vector>

#include "fathom/core/error.hpp"
#include "fathom/eval/prompt.hpp"
#include "fathom/eval/task.hpp"

namespace fathom::eval {

struct McTokens {
  std::string id;                      // the item's id
  std::vector<int32_t> prompt;         // context tokens, BOS included
  std::vector<int32_t> option_tokens;  // first token of each option's continuation
  int answer = -1;
};

// Prompts of `items` within `budget` tokens. Items whose options do not begin with distinct
// tokens cannot be told apart by one readout and are left out (counted in `skipped`).
inline std::vector<McTokens> mc_tokens(const tok::AnyTokenizer& tok, const Task& task,
                                       const std::vector<Item>& items, PromptOptions o, size_t budget,
                                       size_t* skipped = nullptr) {
  PromptBuilder pb(tok, task.kind, o);
  std::vector<McTokens> out;
  size_t skip = 0;
  for (const auto& it : items) {
    const Prompt p = pb.build(it, task.dev, budget, /*reserve_continuation=*/true);
    McTokens m{it.id, p.tokens, {}, it.answer};
    for (const auto& c : p.continuations) {
      if (c.empty()) throw DataError(it.id, "continuation", "an option's answer encodes to no tokens");
      m.option_tokens.push_back(c[0]);
    }
    std::vector<int32_t> sorted = m.option_tokens;
    std::sort(sorted.begin(), sorted.end());
    if (std::adjacent_find(sorted.begin(), sorted.end()) != sorted.end()) {
      ++skip;
      continue;
    }
    out.push_back(std::move(m));
  }
  if (skipped) *skipped = skip;
  return out;
}

}  // namespace fathom::eval
