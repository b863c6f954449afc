#pragma once
// Grouped-query self-attention block (transformers' LlamaAttention and its Mistral/Qwen2/Qwen3
// variants): optional q/k/v bias (Qwen2), optional per-head q/k RMSNorm before RoPE (Qwen3),
// rotate-half RoPE, scale 1/sqrt(head_dim), optional sliding window (Mistral). The block owns the
// projections and the attention over a layer's cache; the cache itself (which positions exist,
// which are masked) is the run loop's (model/session.hpp, model/kv_cache.hpp).
#include <cmath>
#include <cstddef>
#include <type_traits>
#include <vector>

#include "fathom/blocks/rmsnorm.hpp"
#include "fathom/blocks/rope.hpp"
#include "fathom/kernels/attention.hpp"
#include "fathom/kernels/gemv_batch.hpp"
#include "fathom/kernels/linear.hpp"
#include "fathom/kernels/parallel.hpp"

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
  // q: [n, q_dim] (may be null: keys/values only), k, v: [n, kv_dim]. `how`: Rows::AsGemv makes
  // every row what a one-row call computes (batched decoding, kernels/gemv_batch.hpp).
  void project(const float* xn, size_t n, const float* cos, const float* sin, float* q, float* k,
               float* v, kernels::Rows how = kernels::Rows::Gemm) const {
    if (q) kernels::fused_products(how, {{&wq, q}, {&wk, k}, {&wv, v}}, xn, n);
    else kernels::fused_products(how, {{&wk, k}, {&wv, v}}, xn, n);
    if (q) finish(q, n, n_heads, bq, q_norm, cos, sin);
    finish(k, n, n_kv_heads, bk, k_norm, cos, sin);
    if (!bv.empty())
      for (size_t r = 0; r < n; ++r) kernels::add_inplace(v + r * kv_dim(), bv.data(), kv_dim());
  }

  // out[n, hidden] = ctx[n, q_dim] · Wo^T
  void output(const float* ctx, size_t n, float* out, kernels::Rows how = kernels::Rows::Gemm) const {
    kernels::product(how, wo, ctx, n, out);
  }

  // Scratch floats attend_cached needs for a cache of `capacity` positions.
  size_t attend_scratch(size_t capacity) const {
    return size_t(kernels::detail::max_threads()) * (n_heads / n_kv_heads) * capacity;
  }

  // ctx[r, h] = softmax(scale · q[r,h] · K^T) V over positions window_start(pos[r])..pos[r] that
  // `mask` leaves visible, for m query rows. q, ctx: [m, q_dim]; pos: [m] ascending; k, v: the
  // layer's cache, [n_kv_heads][capacity][head_dim] (KvCache's layout); mask: [positions] visible
  // flags (null: all);
  // scores: attend_scratch(capacity) floats. The query heads sharing a key/value head are done in
  // one pass over the cache. Jobs are handed out dynamically: in a causal prompt row r attends to
  // r + 1 positions, so contiguous static chunks would leave the first thread idle while the last
  // works through the long rows.
  // The cache is f32 (attend_group) or bf16 bits (E = uint16_t: attend_group_bf16).
  template <class E>
  void attend_cached(const float* q, const int64_t* pos, size_t m, const E* k, const E* v,
                     const uint8_t* mask, size_t capacity, float* scores, float* ctx) const {
    static_assert(std::is_same_v<E, float> || std::is_same_v<E, uint16_t>);
    const size_t G = n_heads / n_kv_heads, hd = head_dim;
    const long jobs = long(m * n_kv_heads);
    const bool threaded = size_t(jobs) * G * size_t(pos[m - 1] + 1) * hd > (1u << 15);
    kernels::detail::parallel_jobs(jobs, threaded, [&](long j, int thread) {
      const size_t r = size_t(j) / n_kv_heads, g = size_t(j) % n_kv_heads;
      attend_kv_group(q + r * q_dim(), pos[r], g, k, v, capacity, mask, scores + size_t(thread) * G * capacity,
                      ctx + r * q_dim());
    });
  }

  // One job of attend_cached: the query heads of key/value head g for one row. q_row, ctx_row:
  // [q_dim] (heads g*G.. written); p: the row's position; k, v, capacity, mask: as attend_cached;
  // sc: G * capacity floats.
  template <class E>
  void attend_kv_group(const float* q_row, int64_t p, size_t g, const E* k, const E* v, size_t capacity,
                       const uint8_t* mask, float* sc, float* ctx_row) const {
    const size_t G = n_heads / n_kv_heads, hd = head_dim, stride = hd;  // head g's rows, one after another
    const int64_t lo = window_start(p);
    const size_t h0 = g * G;  // first query head of this group
    const E* kr = k + (g * capacity + size_t(lo)) * hd;
    const E* vr = v + (g * capacity + size_t(lo)) * hd;
    const uint8_t* mr = mask ? mask + lo : nullptr;
    if constexpr (std::is_same_v<E, float>)
      kernels::attend_group(q_row + h0 * hd, hd, G, kr, vr, size_t(p - lo + 1), stride, hd, scale(), mr, sc,
                            ctx_row + h0 * hd, hd);
    else
      kernels::attend_group_bf16(q_row + h0 * hd, hd, G, kr, vr, size_t(p - lo + 1), stride, hd, scale(), mr,
                                 sc, ctx_row + h0 * hd, hd);
  }

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
