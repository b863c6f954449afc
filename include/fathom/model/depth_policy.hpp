#pragma once
// The DepthPolicy concept: per token and per layer, a policy decides what runs, sees what each
// layer did, and chooses the vector the model reads its prediction from. A policy states only its
// rule; the run loop (model/session.hpp) owns everything else: one `State` per token of a forward
// pass (the policy's per-token memory, reused from pass to pass), the trace of executed, exited
// and read-out layers, and the keys and values of layers a token did not run.
//
// For every token of a forward pass the loop calls
//   begin_token(t, s)                        once, before layer 0 (s: the token's State)
//   before_layer(t, s, l) -> Action          before each layer l the token has not exited
//   after_layer(t, s, l, in, out, note)      after layer l ran for the token; `in` is h_{l-1}
//                                            (the layer's input, empty unless needs_layer_input),
//                                            `out` is h_l and may be rewritten (e.g. set to `in`
//                                            to discard a void layer's update); `note` tells the
//                                            trace whether the update counts as used, and why
//   readout_layer(t, s, last_run) -> int     the layer whose output the prediction is read from
//                                            (-1: the embeddings); every token, logits or not
//   readout(t, s, final) -> span             the vector fed to the final norm + LM head, for the
//                                            tokens that get logits; `final` is the stream after
//                                            the last layer the token ran
//   end_token(t, s)                          once, after the readout decision
// PolicyBase supplies every call with its obvious default (run every layer, change nothing,
// read out the final stream), so a policy writes only the calls its rule needs.
#include <cmath>
#include <concepts>
#include <cstdint>
#include <span>

namespace fathom {

enum class Phase : uint8_t { PP, RG };  // prompt processing, response generation
constexpr const char* phase_name(Phase p) { return p == Phase::PP ? "PP" : "RG"; }

enum class Action : uint8_t {
  Run,   // compute the layer
  Skip,  // do not compute it: the stream continues from the layer's input
  Exit,  // stop here: this and all later layers are not computed for the token
};

// What a position owes later tokens at layers it did not run (docs/policies.md, "Keys and values").
enum class KvStrategy : uint8_t {
  Propagate,  // K/V projections of the hidden state that reached the layer
  Exact,      // exited tokens keep running the rest of the stack (full cost) for their K/V
  None,       // the position is masked out of that layer's attention
};

struct TokenInfo {
  uint32_t slot = 0;      // index inside the current forward pass
  int64_t position = 0;   // absolute position in the sequence
  Phase phase = Phase::PP;
  int32_t token = 0;      // the input token id
};

// What a policy reports about a layer a token ran, for the trace: whether the layer's update was
// used (LAC: not a void) and the quantities it decided on (NaN: not measured).
struct LayerNote {
  bool activated = true;
  float norm = NAN;   // n_l = ||h_l||_2
  float delta = NAN;  // Δ_l = n_l − n_{l−1}
  float tau = NAN;    // τ_l, the threshold Δ_l was compared with
};

template <class P>
concept DepthPolicy = requires(P& p, typename P::State& s, const TokenInfo& t, int layer,
                               std::span<const float> in, std::span<float> out,
                               std::span<const float> final_state, LayerNote& note) {
  requires std::default_initializable<typename P::State>;
  p.begin_token(t, s);
  { p.before_layer(t, s, layer) } -> std::same_as<Action>;
  p.after_layer(t, s, layer, in, out, note);
  { p.readout_layer(t, s, layer) } -> std::convertible_to<int>;
  { p.readout(t, s, final_state) } -> std::convertible_to<std::span<const float>>;
  p.end_token(t, s);
  // Whether after_layer must see the layer's input; a policy that only looks at `out` (or
  // nothing) lets the loop skip saving h_{l-1}.
  { P::needs_layer_input } -> std::convertible_to<bool>;
  // false: after_layer is a no-op and the loop does not call it.
  { P::observes_layers } -> std::convertible_to<bool>;
};

// The defaults of every call. Derive from it and define what differs; `State` is empty unless the
// policy declares its own (a fresh State{} per token unless begin_token is defined).
struct PolicyBase {
  struct State {};
  static constexpr bool needs_layer_input = false;
  static constexpr bool observes_layers = true;

  template <class S>
  void begin_token(const TokenInfo&, S& s) const { s = S{}; }
  template <class S>
  Action before_layer(const TokenInfo&, S&, int) const { return Action::Run; }
  template <class S>
  void after_layer(const TokenInfo&, S&, int, std::span<const float>, std::span<float>,
                   LayerNote&) const {}
  template <class S>
  int readout_layer(const TokenInfo&, const S&, int last_run) const { return last_run; }
  template <class S>
  std::span<const float> readout(const TokenInfo&, S&, std::span<const float> final_state) const {
    return final_state;
  }
  template <class S>
  void end_token(const TokenInfo&, S&) const {}
};

}  // namespace fathom
