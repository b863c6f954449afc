#pragma once
// Lenses as depth policies, and the all-layers readout loop of the depth metrics.
//
//   LensReadout<Lens>(lens, L, i) the prediction is read from hidden_states[i] (= resid_pre[i],
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
#include "fathom/lens/lens.hpp"
#include "fathom/lens/batch_readout.hpp"
#include "fathom/lens/readout.hpp"
#include "fathom/lens/site.hpp"
#include "fathom/lens/tuned_lens.hpp"
#include "fathom/model/session.hpp"

namespace fathom::lens {

template <Lens L>
class LensReadout : public PolicyBase {
 public:
  static constexpr bool observes_layers = false;

  struct State {
    std::vector<float> buf;  // [hidden] the translated readout
  };

  // Reads out hidden_states[index] (index in [0, n_layers]).
  LensReadout(const L& lens, size_t n_layers, size_t index) : lens_(&lens), index_(index) {
    if (index > n_layers)
      throw UsageError("", "index", "hidden_states index " + std::to_string(index) + " > " +
                                        std::to_string(n_layers));
  }

  void begin_token(const TokenInfo&, State&) const {}  // buf is overwritten before it is read
  Action before_layer(const TokenInfo&, const State&, int l) const {
    return size_t(l) >= index_ ? Action::Exit : Action::Run;
  }
  std::span<const float> readout(const TokenInfo&, State& s, std::span<const float> state) const {
    if (lens_->identity(index_)) return state;
    s.buf.resize(state.size());
    lens_->translate(index_, state.data(), s.buf.data(), 1, state.size());
    return s.buf;
  }

 private:
  const L* lens_;
  size_t index_;
};

// Wraps an exit-style policy: the readout goes through translator (layers the token ran).
template <DepthPolicy Inner, Lens L>
class WithLens {
 public:
  static constexpr bool needs_layer_input = Inner::needs_layer_input;
  static constexpr bool observes_layers = Inner::observes_layers;

  struct State {
    typename Inner::State inner;
    size_t ran = 0;          // hidden_states index the readout comes from
    std::vector<float> buf;  // [hidden] the translated readout
  };

  WithLens(Inner& inner, const L& lens, size_t n_layers) : inner_(&inner), lens_(&lens), L_(n_layers) {}

  void begin_token(const TokenInfo& t, State& s) {
    s.ran = L_;
    inner_->begin_token(t, s.inner);
  }
  Action before_layer(const TokenInfo& t, State& s, int l) {
    const Action a = inner_->before_layer(t, s.inner, l);
    if (a == Action::Exit && s.ran == L_) s.ran = size_t(l);
    return a;
  }
  void after_layer(const TokenInfo& t, State& s, int l, std::span<const float> in,
                   std::span<float> out, LayerNote& note) {
    inner_->after_layer(t, s.inner, l, in, out, note);
  }
  int readout_layer(const TokenInfo& t, const State& s, int last_run) {
    return inner_->readout_layer(t, s.inner, last_run);
  }
  std::span<const float> readout(const TokenInfo& t, State& s, std::span<const float> state) {
    std::span<const float> v = inner_->readout(t, s.inner, state);
    if (lens_->identity(s.ran)) return v;
    s.buf.resize(v.size());
    lens_->translate(s.ran, v.data(), s.buf.data(), 1, v.size());
    return s.buf;
  }
  void end_token(const TokenInfo& t, State& s) { inner_->end_token(t, s.inner); }

 private:
  Inner* inner_;
  const L* lens_;
  size_t L_;
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
template <Lens LensT>
std::span<const float> lens_logits(Reader& reader, const LensT& lens, const SiteRecorder& rec,
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
template <Lens LensT, class Fn>
void read_all_layers(Session& s, std::span<const int32_t> tokens, const LensT& lens, Fn&& fn,
                     Phase phase = Phase::PP, Logits which = Logits::All) {
  const size_t L = s.model().n_layers();
  const SiteRecorder rec = record_hidden_states(s, tokens, phase);
  Reader reader(s.model());
  std::vector<float> tr;  // [hidden] translated state
  const uint32_t first = which == Logits::Last ? uint32_t(tokens.size() - 1) : 0;
  for (uint32_t slot = first; slot < tokens.size(); ++slot)
    for (size_t i = 0; i <= L; ++i) fn(slot, i, lens_logits(reader, lens, rec, slot, i, tr));
}

// The recorded hidden_states[i] of slots [first, end) through the lens, in blocks of up to
// `rows` slots: fn(i, slot0, x, n) with x = [n, hidden] translated states of slots slot0 ..
// slot0+n-1 (valid during the call). Readout L (the model's output) comes first, so its results
// can serve as targets for the others; then i = 0..L-1.
template <Lens LensT, class Fn>
void translated_blocks(const SiteRecorder& rec, const LensT& lens, size_t rows, uint32_t first,
                       uint32_t end, Fn&& fn) {
  const size_t L = rec.sites().size() - 1, H = rec.hidden();
  std::vector<float> tr;  // [rows, hidden] translated states
  for (size_t k = 0; k <= L; ++k) {
    const size_t i = k == 0 ? L : k - 1;
    for (uint32_t s0 = first; s0 < end; s0 += uint32_t(rows)) {
      const size_t n = std::min<size_t>(rows, end - s0);
      auto h = rec.rows(i, s0, n);
      const float* x = h.data();
      if (!lens.identity(i)) {
        tr.resize(n * H);
        lens.translate(i, h.data(), tr.data(), n, H);
        x = tr.data();
      }
      fn(i, s0, x, n);
    }
  }
}

// Readouts of hidden_states[i] through the lens for the recorded slots [first, end), in blocks
// of up to reader.max_rows() slots: fn(i, slot0, block) with block = [n, vocab] logits of slots
// slot0 .. slot0+n-1 (valid during the call), readout L first (translated_blocks).
template <Lens LensT, class Fn>
void read_recorded_blocks(const SiteRecorder& rec, const LensT& lens, BatchReader& reader,
                          uint32_t first, uint32_t end, Fn&& fn) {
  translated_blocks(rec, lens, reader.max_rows(), first, end,
                    [&](size_t i, uint32_t s0, const float* x, size_t n) { fn(i, s0, reader.logits(x, n)); });
}

// Runs `tokens` at full depth (appended to the session) and calls fn(i, slot0, block) for every
// readout i = 0..L (readout L first) and every block of up to `block_rows` token slots (only the
// last slot with Logits::Last); block = [n, vocab] logits. Equal to read_all_layers up to the
// summation order of the products (and with a quantised unembedding and Exact products, up to
// read_all_layers' int8 activations: lens/batch_readout.hpp), many times faster.
template <Lens LensT, class Fn>
void read_all_layers_blocks(Session& s, std::span<const int32_t> tokens, const LensT& lens, Fn&& fn,
                            Phase phase = Phase::PP, Logits which = Logits::All,
                            size_t block_rows = BatchReader::kDefaultRows,
                            kernels::Rows products = kernels::Rows::Exact) {
  if (tokens.empty()) return;
  const SiteRecorder rec = record_hidden_states(s, tokens, phase);
  BatchReader reader(s.model(), block_rows, products);
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
