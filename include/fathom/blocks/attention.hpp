#pragma once
// Grouped-query self-attention block (transformers' LlamaAttention and its Mistral/Qwen2/Qwen3
// variants): optional q/k/v bias (Qwen2), optional per-head q/k RMSNorm before RoPE (Qwen3),
// rotate-half RoPE, scale 1/sqrt(head_dim), optional sliding window (Mistral). The cache-reading
// part lives in the run loop (model/session.hpp); this block owns the projections.
#include <cmath>
#include <cstddef>
#include <vector>

#include "fathom/blocks/rmsnorm.hpp"
#include "fathom/blocks/rope.hpp"
#include "fathom/kernels/linear.hpp"

namespace fathom::blocks {

struct Attention {
  size_t hidden = 0, n_heads = 0, n_kv_heads = 0, head_dim = 0;
  int64_t sliding_window = 0;        // 0: attend to every earlier position
  kernels::MatrixView wq, wk, wv;    // [n_heads*head_dim, hidden], [n_kv_heads*head_dim, hidden] x2
  kernels::MatrixView wo;            // [hidden, n_heads*head_dim]
  std::vector<float> bq, bk, bv;     // [n_heads*head_dim], [n_kv_heads*head_dim] x2; empty: no bias
  RMSNorm q_norm, k_norm;            // [head_dim] each; empty weight: no q/k norm
  const Rope* rope = nullptr;

  size_t q_dim() const { return n_heads * head_dim; }
  size_t kv_dim() const { return n_kv_heads * head_dim; }
  float scale() const { return 1.0f / std::sqrt(float(head_dim)); }
  // Query head h reads key/value head kv_head(h) (transformers' repeat_kv).
  size_t kv_head(size_t h) const { return h / (n_heads / n_kv_heads); }
  // First position visible from `position` (inclusive).
  int64_t window_start(int64_t position) const {
    return sliding_window > 0 && position >= sliding_window ? position - sliding_window + 1 : 0;
  }

  // xn: [n, hidden] normed input rows; cos/sin: [n, head_dim/2] per row.
  // q: [n, q_dim] (may be null: keys/values only), k, v: [n, kv_dim].
  void project(const float* xn, size_t n, const float* cos, const float* sin, float* q, float* k,
               float* v) const {
    if (q) kernels::gemm_fused({{&wq, q}, {&wk, k}, {&wv, v}}, xn, n);
    else kernels::gemm_fused({{&wk, k}, {&wv, v}}, xn, n);
    if (q) finish(q, n, n_heads, bq, q_norm, cos, sin);
    finish(k, n, n_kv_heads, bk, k_norm, cos, sin);
    if (!bv.empty())
      for (size_t r = 0; r < n; ++r) kernels::add_inplace(v + r * kv_dim(), bv.data(), kv_dim());
  }

  // out[n, hidden] = ctx[n, q_dim] · Wo^T
  void output(const float* ctx, size_t n, float* out) const { kernels::gemm(wo, ctx, n, out); }

 private:
  // bias, then per-head norm, then RoPE, as the reference orders them.
  void finish(float* x, size_t n, size_t heads, const std::vector<float>& bias,
              const RMSNorm& norm, const float* cos, const float* sin) const {
    const size_t dim = heads * head_dim, half = head_dim / 2;
    for (size_t r = 0; r < n; ++r) {
      float* row = x + r * dim;
      if (!bias.empty()) kernels::add_inplace(row, bias.data(), dim);
      if (norm.dim()) norm(row, row, heads);
      rope->apply(row, heads, cos + r * half, sin + r * half);
    }
  }
};

}  // namespace fathom::blocks
