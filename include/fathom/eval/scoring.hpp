#pragma once
// The two ways an item is scored, under any DepthPolicy:
//   log-likelihood  the prompt is processed once; each option's continuation is scored from the
//                   shared prefix (Session::rewind drops the previous option's tokens), and the
//                   option with the highest summed log-probability is the prediction (ties: the
//                   first). Continuation tokens count as prompt processing (PP).
//   generation      the model answers (temperature + top-p sampling with a per-item seed, or
//                   greedy), and extract_answer() reads the option from the text (RG tokens).
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "fathom/model/depth_policy.hpp"
#include "fathom/eval/extract.hpp"
#include "fathom/eval/prompt.hpp"
#include "fathom/model/generate.hpp"
#include "fathom/model/session.hpp"

namespace fathom::eval {

enum class Scoring : uint8_t { Loglik, Generate };

inline Scoring parse_scoring(const std::string& s) {
  if (s == "loglik") return Scoring::Loglik;
  if (s == "generate") return Scoring::Generate;
  throw UsageError("", "scoring", "unknown scoring '" + s + "' (loglik, generate)");
}
constexpr const char* scoring_name(Scoring s) { return s == Scoring::Loglik ? "loglik" : "generate"; }

// The Void paper's sampling: the first token is sampled from the prompt pass's logits, then the
// loop runs 50 more steps, so a reply has up to 51 new tokens (fewer when eos comes first).
struct GenerationSettings {
  int max_new_tokens = 51;  // all new tokens, the one sampled from the prompt pass included
  float temperature = 0.6f;  // 0: greedy
  float top_p = 0.9f;
};

struct Scored {
  int pred = -1;
  std::vector<double> logprobs;  // loglik: per option, summed over its tokens
  std::string output;            // generate: the decoded reply
  size_t pp_tokens = 0;          // tokens run as prompt processing (prompt + continuations)
  size_t rg_tokens = 0;          // generated tokens fed back through the model
  size_t tokens() const { return pp_tokens + rg_tokens; }
};

namespace detail {
// log softmax(logits)[id], in double for stable sums.
inline double log_prob(std::span<const float> logits, int32_t id) {
  const float mx = *std::max_element(logits.begin(), logits.end());
  double s = 0;
  for (float v : logits) s += std::exp(double(v) - double(mx));
  return double(logits[size_t(id)]) - double(mx) - std::log(s);
}
}  // namespace detail

template <DepthPolicy P>
Scored score_loglik(Session& s, const Prompt& p, P& policy) {
  Scored r;
  s.reset();
  const auto last = s.forward(p.tokens, Phase::PP, policy, Logits::Last);
  const std::vector<float> first(last.begin(), last.end());  // [vocab] next-token logits
  const size_t V = first.size(), base = size_t(s.position());
  r.pp_tokens = p.tokens.size();
  for (const auto& cont : p.continuations) {
    if (cont.empty()) throw UsageError("", "continuation", "an option has no tokens");
    double lp = detail::log_prob(first, cont[0]);
    if (cont.size() > 1) {
      // Row j of the logits predicts cont[j + 1].
      const auto all = s.forward(std::span<const int32_t>(cont.data(), cont.size() - 1), Phase::PP,
                                 policy, Logits::All);
      for (size_t j = 0; j + 1 < cont.size(); ++j)
        lp += detail::log_prob(all.subspan(j * V, V), cont[j + 1]);
      r.pp_tokens += cont.size() - 1;
      s.rewind(int64_t(base));
    }
    r.logprobs.push_back(lp);
  }
  r.pred = int(std::max_element(r.logprobs.begin(), r.logprobs.end()) - r.logprobs.begin());
  return r;
}

// How an item's reply is generated: the settings' length and sampling, the item's seed, stop at
// the tokenizer's end-of-sequence tokens.
inline GenerateOptions generation_options(const tok::AnyTokenizer& tok, const GenerationSettings& g, uint64_t seed) {
  GenerateOptions o;
  o.max_new_tokens = g.max_new_tokens;
  o.sampling = SamplingOptions{g.temperature, g.top_p, seed};
  for (int32_t e : tok.eos_ids()) o.eos_ids.push_back(e);
  return o;
}

// The score of a generated reply: its text, the option extracted from it, the tokens it cost.
inline Scored score_reply(const tok::AnyTokenizer& tok, const Prompt& p, const Item& item, const Generation& gen) {
  Scored r;
  r.output = tok.decode(gen.tokens, true);
  // The last sampled token is never fed back, so it costs no forward pass.
  r.pp_tokens = p.tokens.size();
  r.rg_tokens = gen.tokens.empty() ? 0 : gen.tokens.size() - 1;
  r.pred = extract_answer(r.output, p.labels, item);
  return r;
}

// Generation scoring of one item on `s` (reset first). Batched decoding of many items
// (generate_batch) scores each with generation_options and score_reply as this does.
template <DepthPolicy P>
Scored score_generate(Session& s, const tok::AnyTokenizer& tok, const Prompt& p,
                      const Item& item, const GenerationSettings& g, uint64_t seed, P& policy) {
  s.reset();
  return score_reply(tok, p, item, generate(s, p.tokens, generation_options(tok, g, seed), policy));
}

}  // namespace fathom::eval
