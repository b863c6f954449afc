#pragma once
// Lenses as depth policies, and the all-layers readout loop of the depth metrics.
//
//   LensReadout<Lens>(lens, i)   the prediction is read from hidden_states[i] (= resid_pre[i],
//                                the input of block i) through the lens: blocks i..L-1 are not
//                                run for the token (Action::Exit). i = L is the full model.
//                                Under KvStrategy::Exact later tokens still see the unmodified
//                                stream's keys and values, so this is the pure lens readout of
//                                every position; Propagate/None change the context.
//   WithLens<Inner, Lens>        wraps any exit-style policy (one that reads out the stream it
//                                stopped at): the readout goes through the lens translator of the
//                                layer the token stopped before.
//   read_all_layers(...)         one FullDepth pass, then every hidden_states[i] of every token
//                                through the lens, one [vocab] vector at a time.
//   read_all_layers_blocks(...)  the same readouts, a block of tokens per matrix product
//                                (lens/batch_readout.hpp): what the depth metrics use.
#include <cstddef>
#include <span>
#include <vector>

#include "fathom/model/depth_policy.hpp"
#include "fathom/depth/trace.hpp"
#include "fathom/lens/batch_readout.hpp"
#include "fathom/lens/readout.hpp"
#include "fathom/lens/site.hpp"
#include "fathom/lens/tuned_lens.hpp"
#include "fathom/model/session.hpp"

namespace fathom::lens {

namespace detail {
// Per-slot [hidden] buffers for translated readout vectors.
struct SlotBuffers {
  size_t hidden = 0;
  std::vector<float> data;  // [slots, hidden]
  float* at(uint32_t slot) {
    if (data.size() < (size_t(slot) + 1) * hidden) data.resize((size_t(slot) + 1) * hidden);
    return data.data() + size_t(slot) * hidden;
  }
};
}  // namespace detail

template <class Lens>
class LensReadout {
 public:
  static constexpr bool needs_layer_input = false;
  static constexpr bool observes_layers = false;

  // Reads out hidden_states[index] (index in [0, n_layers]).
  LensReadout(const Lens& lens, size_t n_layers, size_t hidden, size_t index,
              Trace* trace = nullptr)
      : lens_(&lens), L_(n_layers), index_(index), trace_(trace) {
    buf_.hidden = hidden;
    if (index > n_layers)
      throw UsageError("", "index", "hidden_states index " + std::to_string(index) + " > " +
                                        std::to_string(n_layers));
  }

  void begin_token(const TokenInfo& t) {
    if (trace_) trace_->begin(t);
  }
  Action before_layer(const TokenInfo& t, int l) {
    if (size_t(l) >= index_) {
      if (trace_) trace_->open(t.slot).exit_layer = l;
      return Action::Exit;
    }
    if (trace_) {
      auto& r = trace_->open(t.slot).layers[size_t(l)];
      r.executed = r.activated = true;
    }
    return Action::Run;
  }
  void after_layer(const TokenInfo&, int, std::span<const float>, std::span<float>) {}
  std::span<const float> readout(const TokenInfo& t, std::span<const float> state) {
    if (trace_) trace_->open(t.slot).readout_layer = int(index_) - 1;
    if (lens_->identity(index_)) return state;
    float* out = buf_.at(t.slot);
    lens_->translate(index_, state.data(), out, 1, state.size());
    return {out, state.size()};
  }
  void end_token(const TokenInfo& t) {
    if (trace_) trace_->end(t.slot);
  }

 private:
  const Lens* lens_;
  size_t L_, index_;
  Trace* trace_;
  detail::SlotBuffers buf_;
};

// Wraps an exit-style policy: the readout goes through translator (layers the token ran).
template <DepthPolicy Inner, class Lens>
class WithLens {
 public:
  static constexpr bool needs_layer_input = Inner::needs_layer_input;

  WithLens(Inner& inner, const Lens& lens, size_t n_layers, size_t hidden)
      : inner_(&inner), lens_(&lens), L_(n_layers) {
    buf_.hidden = hidden;
  }

  void begin_token(const TokenInfo& t) {
    if (ran_.size() <= t.slot) ran_.resize(t.slot + 1);
    ran_[t.slot] = L_;
    inner_->begin_token(t);
  }
  Action before_layer(const TokenInfo& t, int l) {
    const Action a = inner_->before_layer(t, l);
    if (a == Action::Exit && ran_[t.slot] == L_) ran_[t.slot] = size_t(l);
    return a;
  }
  void after_layer(const TokenInfo& t, int l, std::span<const float> in, std::span<float> out) {
    inner_->after_layer(t, l, in, out);
  }
  std::span<const float> readout(const TokenInfo& t, std::span<const float> state) {
    std::span<const float> v = inner_->readout(t, state);
    const size_t i = ran_[t.slot];
    if (lens_->identity(i)) return v;
    float* out = buf_.at(t.slot);
    lens_->translate(i, v.data(), out, 1, v.size());
    return {out, v.size()};
  }
  void end_token(const TokenInfo& t) { inner_->end_token(t); }

 private:
  Inner* inner_;
  const Lens* lens_;
  size_t L_;
  std::vector<size_t> ran_;  // [slots] hidden_states index the readout comes from
  detail::SlotBuffers buf_;
};

// Runs `tokens` at full depth (appended to the session), recording hidden_states[0..L] of every
// token: SiteRecorder site i is hidden_states[i].
inline SiteRecorder record_hidden_states(Session& s, std::span<const int32_t> tokens,
                                         Phase phase = Phase::PP) {
  const Model& m = s.model();
  SiteRecorder rec(hidden_state_sites(m.n_layers()), m.hidden());
  FullDepth full;
  s.forward(tokens, phase, full, rec, Logits::Last);
  return rec;
}

// Logits of hidden_states[i] of the token in `slot` through the lens (valid until the reader's
// next call); `scratch` is a [hidden] buffer.
template <class Lens>
std::span<const float> lens_logits(Reader& reader, const Lens& lens, const SiteRecorder& rec,
                                   uint32_t slot, size_t i, std::vector<float>& scratch) {
  auto h = rec.get(i, slot);
  if (lens.identity(i)) return reader.logits(h);
  scratch.resize(h.size());
  lens.translate(i, h.data(), scratch.data(), 1, h.size());
  return reader.logits(scratch);
}

// Runs `tokens` at full depth (appending them to the session) and calls
//   fn(slot, i, std::span<const float> logits)
// for every token slot (only the last one with Logits::Last) and every i = 0..L, logits =
// readout of hidden_states[i] through the lens. One [vocab] buffer is reused throughout.
template <class Lens, class Fn>
void read_all_layers(Session& s, std::span<const int32_t> tokens, const Lens& lens, Fn&& fn,
                     Phase phase = Phase::PP, Logits which = Logits::All) {
  const size_t L = s.model().n_layers();
  const SiteRecorder rec = record_hidden_states(s, tokens, phase);
  Reader reader(s.model());
  std::vector<float> tr;  // [hidden] translated state
  const uint32_t first = which == Logits::Last ? uint32_t(tokens.size() - 1) : 0;
  for (uint32_t slot = first; slot < tokens.size(); ++slot)
    for (size_t i = 0; i <= L; ++i) fn(slot, i, lens_logits(reader, lens, rec, slot, i, tr));
}

// Readouts of hidden_states[i] through the lens for the recorded slots [first, end), in blocks
// of up to reader.max_rows() slots: fn(i, slot0, block) with block = [n, vocab] logits of slots
// slot0 .. slot0+n-1 (valid during the call). Readout L (the model's output) comes first, so its
// results can serve as targets for the others; then i = 0..L-1.
template <class Lens, class Fn>
void read_recorded_blocks(const SiteRecorder& rec, const Lens& lens, BatchReader& reader,
                          uint32_t first, uint32_t end, Fn&& fn) {
  const size_t L = rec.sites().size() - 1, H = reader.hidden();
  std::vector<float> tr;  // [rows, hidden] translated states
  for (size_t k = 0; k <= L; ++k) {
    const size_t i = k == 0 ? L : k - 1;
    for (uint32_t s0 = first; s0 < end; s0 += uint32_t(reader.max_rows())) {
      const size_t n = std::min<size_t>(reader.max_rows(), end - s0);
      auto h = rec.rows(i, s0, n);
      const float* x = h.data();
      if (!lens.identity(i)) {
        tr.resize(n * H);
        lens.translate(i, h.data(), tr.data(), n, H);
        x = tr.data();
      }
      fn(i, s0, reader.logits(x, n));
    }
  }
}

// Runs `tokens` at full depth (appended to the session) and calls fn(i, slot0, block) for every
// readout i = 0..L (readout L first) and every block of up to `block_rows` token slots (only the
// last slot with Logits::Last); block = [n, vocab] logits. Equal to read_all_layers up to the
// summation order of the products (lens/batch_readout.hpp), many times faster.
template <class Lens, class Fn>
void read_all_layers_blocks(Session& s, std::span<const int32_t> tokens, const Lens& lens, Fn&& fn,
                            Phase phase = Phase::PP, Logits which = Logits::All,
                            size_t block_rows = BatchReader::kDefaultRows) {
  if (tokens.empty()) return;
  const SiteRecorder rec = record_hidden_states(s, tokens, phase);
  BatchReader reader(s.model(), block_rows);
  const uint32_t first = which == Logits::Last ? uint32_t(tokens.size() - 1) : 0;
  read_recorded_blocks(rec, lens, reader, first, uint32_t(tokens.size()), fn);
}

// Runs `tokens` at full depth (appended to the session) and calls fn(slot, site_index, logits)
// for every token slot and every requested site (any resid_pre/resid_mid/resid_post), read out
// through the model's own final norm and unembedding (the logit lens: tuned-lens translators
// exist only for hidden_states). One [vocab] buffer is reused throughout.
template <class Fn>
void read_sites(Session& s, std::span<const int32_t> tokens, const std::vector<Site>& sites,
                Fn&& fn, Phase phase = Phase::PP) {
  const Model& m = s.model();
  for (auto& site : sites)
    if (site.layer < 0 || size_t(site.layer) >= m.n_layers())
      throw UsageError("", "site " + site.name(), "layer outside the model");
  SiteRecorder rec(sites, m.hidden());
  FullDepth full;
  s.forward(tokens, phase, full, rec, Logits::Last);
  Reader reader(m);
  for (uint32_t slot = 0; slot < tokens.size(); ++slot)
    for (size_t k = 0; k < sites.size(); ++k) fn(slot, k, reader.logits(rec.get(k, slot)));
}

}  // namespace fathom::lens
