#pragma once
// Named intermediate quantities (docs/architecture.md). An observer receives them per layer; with the
// default NoObserver every tap compiles away (`if constexpr (O::enabled)`).
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string_view>

namespace fathom {

enum class Tap : uint8_t {
  embed, resid_pre, attn_norm, q, k, v, attn_ctx, attn_out, resid_mid, mlp_norm, mlp_act, mlp_out,
  resid_post, final_norm, logits
};
inline constexpr const char* tap_name(Tap t) {
  constexpr const char* names[] = {"embed", "resid_pre", "attn_norm", "q", "k", "v", "attn_ctx",
                                   "attn_out", "resid_mid", "mlp_norm", "mlp_act", "mlp_out",
                                   "resid_post", "final_norm", "logits"};
  return names[size_t(t)];
}
inline constexpr size_t kTapCount = size_t(Tap::logits) + 1;
// The tap named `name` (tap_name's spelling); nullopt for any other string.
inline constexpr std::optional<Tap> tap_from_name(std::string_view name) {
  for (size_t i = 0; i < kTapCount; ++i)
    if (name == tap_name(Tap(i))) return Tap(i);
  return std::nullopt;
}

// rows x cols values, row r belonging to the token in slot slots[r] of the forward pass.
// q/k are seen after bias, q/k-norm and RoPE, as attention uses them. attn_ctx is every head's
// attention output side by side, [q_dim] (the input of the output projection: attn_out = Wo ·
// attn_ctx); mlp_act the MLP's hidden activations silu(gate) ⊙ up, [intermediate] (the input of
// the down projection: mlp_out = down · mlp_act) -- per-head and per-neuron analyses start there.
// Session::forward: the rows are tokens of the session's one sequence, slots[r] their index in
// the pass, and `sequences` is empty. BatchSession::step: each row is another sequence's token,
// slots[r] its row in the step (the index into step()'s arguments) and sequences[r] the batch
// slot of its sequence (BatchSession::session(sequences[r])).
struct TapView {
  const float* data;
  size_t rows, cols;
  std::span<const uint32_t> slots;
  std::span<const uint32_t> sequences;  // [rows] in a batch step, else empty
  const float* row(size_t r) const { return data + r * cols; }
};

struct NoObserver {
  static constexpr bool enabled = false;
  void on_tap(Tap, int /*layer*/, const TapView&) {}
};

template <class O>
concept Observer = requires(O& o, Tap tap, int layer, const TapView& v) {
  { O::enabled } -> std::convertible_to<bool>;
  o.on_tap(tap, layer, v);
};

}  // namespace fathom
