#pragma once
// Continuous batching: generate() for many prompts with up to BatchSession::slots() sequences
// decoding together. A request joins as soon as a slot is free (its prompt processed by the slot's
// own Session, then its first token sampled) and leaves when it stops, so one long reply does not
// hold the others. Each request's tokens are exactly what generate() returns for it alone: the
// same prompt pass, the same per-token forward results (batch_session.hpp), its own Sampler
// seeded by its own options, the same stopping rules.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <type_traits>
#include <utility>
#include <vector>

#include "fathom/core/error.hpp"
#include "fathom/model/batch_session.hpp"
#include "fathom/model/generate.hpp"
#include "fathom/model/sampler.hpp"

namespace fathom {

// One sequence to generate. The prompt must stay valid until the request is done.
struct BatchRequest {
  std::span<const int32_t> prompt;
  GenerateOptions options;
};

// Generates requests 0..n-1, each under a policy object of its own:
//   request(i) -> BatchRequest        when request i joins (in order of i)
//   make_policy(i) -> policy          a fresh policy for request i (kept until it is done)
//   start(i, Session&)                before its prompt runs, on the reset session of its slot
//                                     (attach or clear a trace here)
//   done(i, Generation&&, Session&)   when it stops (in order of completion, not of i)
template <class RequestFn, class PolicyFn, class StartFn, class DoneFn>
void generate_batch(BatchSession& bs, size_t n, RequestFn&& request, PolicyFn&& make_policy, StartFn&& start,
                    DoneFn&& done) {
  using P = std::decay_t<decltype(make_policy(size_t(0)))>;
  static_assert(DepthPolicy<P>);
  struct Slot {
    bool busy = false;
    size_t req = 0;
    GenerateOptions opt;
    std::optional<Sampler> sampler;
    std::optional<P> policy;
    Generation gen;
    int32_t pending = 0;  // the token to feed next
  };
  const size_t B = bs.slots(), V = bs.model().vocab();
  std::vector<Slot> slot(B);
  std::vector<uint32_t> rows;  // [active] slots stepped together
  std::vector<int32_t> toks;   // [active]
  std::vector<P*> pols;        // [active]
  size_t next = 0, active = 0;

  // generate()'s loop body after a forward pass: sample, then decide whether to go on.
  auto advance = [&](size_t k, std::span<const float> logits) {
    Slot& s = slot[k];
    const auto& eos = s.opt.eos_ids.empty() ? bs.model().config().eos_token_ids : s.opt.eos_ids;
    const int32_t tok = (*s.sampler)(logits);
    s.gen.tokens.push_back(tok);
    const bool is_eos = std::find(eos.begin(), eos.end(), tok) != eos.end();
    if (s.opt.stop_on_eos && is_eos) {
      s.gen.stopped_on_eos = true;
      return false;
    }
    const Session& ses = bs.session(k);
    if (int(s.gen.tokens.size()) == s.opt.max_new_tokens || ses.position() >= ses.capacity()) return false;
    s.pending = tok;
    return true;
  };
  auto finish = [&](size_t k) {
    Slot& s = slot[k];
    s.busy = false;
    --active;
    s.policy.reset();
    done(s.req, std::move(s.gen), bs.session(k));
  };

  for (;;) {
    for (size_t k = 0; k < B; ++k) {
      while (!slot[k].busy && next < n) {  // join; a request that stops at once frees the slot again
        Slot& s = slot[k];
        const size_t i = next++;
        const BatchRequest rq = request(i);
        if (rq.prompt.empty()) throw UsageError("", "prompt", "generation needs at least one prompt token");
        Session& ses = bs.session(k);
        ses.reset();
        s.busy = true, ++active;
        s.req = i, s.opt = rq.options, s.gen = Generation{};
        s.sampler.emplace(rq.options.sampling);
        s.policy.emplace(make_policy(i));
        start(i, ses);
        const auto logits = ses.forward(rq.prompt, Phase::PP, *s.policy);
        if (s.opt.max_new_tokens <= 0 || !advance(k, logits)) finish(k);
      }
    }
    if (active == 0) break;
    rows.clear(), toks.clear(), pols.clear();
    for (size_t k = 0; k < B; ++k)
      if (slot[k].busy) {
        rows.push_back(uint32_t(k));
        toks.push_back(slot[k].pending);
        pols.push_back(&*slot[k].policy);
      }
    const auto logits = bs.step(std::span<const uint32_t>(rows), std::span<const int32_t>(toks),
                                std::span<P* const>(pols));
    for (size_t r = 0; r < rows.size(); ++r)
      if (!advance(rows[r], logits.subspan(r * V, V))) finish(rows[r]);
  }
}

}  // namespace fathom
