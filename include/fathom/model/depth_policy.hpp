#pragma once
// The DepthPolicy concept: per token and per layer, a policy decides what runs, sees what each
// layer did, and chooses the vector the model reads its prediction from.
//
// The run loop (model/session.hpp) calls, for every token of a forward pass:
//   begin_token(t)                       once, before layer 0
//   before_layer(t, l) -> Action         before each layer l the token has not exited
//   after_layer(t, l, in, out)           after layer l ran for the token; `in` is h_{l-1}
//                                        (the layer's input), `out` is h_l and may be rewritten
//                                        (e.g. set to `in` to discard a void layer's update)
//   readout(t, final) -> span            the vector fed to the final norm + LM head; `final` is
//                                        the residual stream after the last layer
//   end_token(t)                         once, after the readout decision
// `t.slot` indexes the token inside the current forward pass (0..n-1), so a policy can keep
// per-token state for a whole prefill batch.
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

template <class P>
concept DepthPolicy = requires(P& p, const TokenInfo& t, int layer, std::span<const float> in,
                               std::span<float> out, std::span<const float> final_state) {
  p.begin_token(t);
  { p.before_layer(t, layer) } -> std::same_as<Action>;
  p.after_layer(t, layer, in, out);
  { p.readout(t, final_state) } -> std::convertible_to<std::span<const float>>;
  p.end_token(t);
  // Whether after_layer must see the layer's input; a policy that only looks at `out` (or
  // nothing) lets the loop skip saving h_{l-1}.
  { P::needs_layer_input } -> std::convertible_to<bool>;
};

}  // namespace fathom
