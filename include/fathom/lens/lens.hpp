#pragma once
// The Lens concept: a translator of residual-stream vectors before the model's own readout
// (final norm + unembedding) turns them into logits (docs/lenses.md):
//   logit lens:  logits = W_U · norm(h)
//   tuned lens:  logits = W_U · norm(h + A_i h + b_i)        (lens/tuned_lens.hpp)
// Index convention (tuned-lens 0.2): translator i reads hidden_states[i] = resid_pre[i], the
// INPUT of block i; i = 0 is the embedding output, i = L the last block's output.
#include <algorithm>
#include <concepts>
#include <cstddef>

namespace fathom::lens {

template <class T>
concept Lens = requires(const T& lens, size_t i, const float* h, float* out, size_t rows,
                        size_t hidden) {
  { lens.n_layers() } -> std::convertible_to<size_t>;
  // translate(i, ...) is a plain copy: a caller may read h itself and skip the call.
  { lens.identity(i) } -> std::convertible_to<bool>;
  // out[r] = translator_i(h[r]) for r < rows; h, out: [rows, hidden] (out may equal h).
  lens.translate(i, h, out, rows, hidden);
};

// The logit lens: every translator is the identity.
struct LogitLens {
  size_t layers = 0;  // informational; the logit lens has no parameters
  size_t n_layers() const { return layers; }
  bool identity(size_t) const { return true; }
  void translate(size_t, const float* h, float* out, size_t n, size_t hidden) const {
    if (out != h) std::copy_n(h, n * hidden, out);
  }
};
static_assert(Lens<LogitLens>);

// The layer axis of the "How Do LLMs Use Their Depth?" code: it reads the OUTPUT of block b with
// lens b, i.e. translator b is applied to hidden_states[b+1] although it was trained on
// hidden_states[b]. Wrapped around a lens, readout i (hidden_states[i], 1 <= i < L) goes through
// translator i-1; readouts 0 (the embeddings) and L (the model's output, the target the
// analyses track) stay untranslated. For the logit lens this only relabels the axis (block b =
// readout b+1); for a tuned lens each translator sees the state one block later than it learned.
template <class Inner>
struct BlockOutputAxis {
  const Inner* inner = nullptr;
  size_t n_layers() const { return inner->n_layers(); }
  bool identity(size_t i) const { return i == 0 || i >= n_layers() || inner->identity(i - 1); }
  void translate(size_t i, const float* h, float* out, size_t n, size_t hidden) const {
    if (i == 0 || i >= n_layers()) {
      if (out != h) std::copy_n(h, n * hidden, out);
      return;
    }
    inner->translate(i - 1, h, out, n, hidden);
  }
};
static_assert(Lens<BlockOutputAxis<LogitLens>>);

}  // namespace fathom::lens
