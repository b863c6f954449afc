#pragma once
// Keys and values of every position at every layer, plus which positions each layer may attend
// to (a position that skipped a layer under KvStrategy::None is masked there).
//
// Stored in f32 (exact, the default) or bf16 (KvPrecision::BF16: keys and values rounded to
// nearest even when stored, half the memory and half the bytes attention streams per token;
// attention then reads them with the bf16 kernels of kernels/attention.hpp, accumulating in f32).
//
// Layout per layer: [kv_heads][capacity][head_dim], each key/value head's positions one after
// another. Decode attention reads one kv head's rows front to back, so each head is one sequential
// stream. (Position-major rows, [capacity][kv_heads * head_dim], made every head's pass read a
// slice of each row at a stride: on a Zen 3 core attention over SmolLM2-135M's cache then ran at
// half the speed, docs/benchmarks.md.)
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <vector>

#include "fathom/core/dtype.hpp"
#include "fathom/core/error.hpp"

namespace fathom {

enum class KvPrecision : uint8_t { F32, BF16 };

class KvCache {
 public:
  KvCache() = default;
  KvCache(size_t layers, size_t capacity, size_t kv_heads, size_t head_dim,
          KvPrecision precision = KvPrecision::F32)
      : capacity_(capacity), kv_heads_(kv_heads), head_dim_(head_dim), precision_(precision),
        k_(layers), v_(layers), k16_(layers), v16_(layers), visible_(layers), masked_(layers, 0) {
    const size_t n = kv_heads * capacity * head_dim;
    for (size_t l = 0; l < layers; ++l) {
      if (precision == KvPrecision::F32) {
        k_[l].assign(n, 0.f);
        v_[l].assign(n, 0.f);
      } else {
        k16_[l].assign(n, 0);
        v16_[l].assign(n, 0);
      }
      visible_[l].assign(capacity, 1);
    }
  }

  size_t capacity() const { return capacity_; }
  size_t kv_heads() const { return kv_heads_; }
  size_t head_dim() const { return head_dim_; }
  size_t kv_dim() const { return kv_heads_ * head_dim_; }
  KvPrecision precision() const { return precision_; }

  // Stores position pos's key and value ([kv_heads * head_dim] each, head after head, as the
  // projections produce them), rounded to the cache's precision.
  void store(size_t layer, int64_t pos, const float* key, const float* value) {
    for (size_t h = 0; h < kv_heads_; ++h) {
      const size_t o = at(h, pos), i0 = h * head_dim_;
      if (precision_ == KvPrecision::F32) {
        std::copy_n(key + i0, head_dim_, k_[layer].data() + o);
        std::copy_n(value + i0, head_dim_, v_[layer].data() + o);
      } else {
        for (size_t i = 0; i < head_dim_; ++i) k16_[layer][o + i] = f32_to_bf16(key[i0 + i]);
        for (size_t i = 0; i < head_dim_; ++i) v16_[layer][o + i] = f32_to_bf16(value[i0 + i]);
      }
    }
  }
  // Position pos's key / value widened to f32 (out: [kv_heads * head_dim], null: not wanted); any
  // precision.
  void load(size_t layer, int64_t pos, float* key, float* value) const {
    for (size_t h = 0; h < kv_heads_; ++h)
      for (size_t i = 0, o = at(h, pos); i < head_dim_; ++i) {
        const size_t d = h * head_dim_ + i;
        if (key) key[d] = precision_ == KvPrecision::F32 ? k_[layer][o + i] : bf16_to_f32(k16_[layer][o + i]);
        if (value) value[d] = precision_ == KvPrecision::F32 ? v_[layer][o + i] : bf16_to_f32(v16_[layer][o + i]);
      }
  }

  // A layer's stored keys / values, [kv_heads][capacity][head_dim] (head h's rows start at
  // h * capacity * head_dim): f32 caches only (k/v) or bf16 caches only (k_bf16/v_bf16); the other
  // kind is a UsageError.
  const float* k(size_t layer) const { return f32(k_, layer); }
  const float* v(size_t layer) const { return f32(v_, layer); }
  const uint16_t* k_bf16(size_t layer) const { return bf16(k16_, layer); }
  const uint16_t* v_bf16(size_t layer) const { return bf16(v16_, layer); }

  void set_visible(size_t layer, int64_t pos, bool vis) {
    visible_[layer][size_t(pos)] = vis;
    if (!vis) ++masked_[layer];
  }
  bool visible(size_t layer, int64_t pos) const { return visible_[layer][size_t(pos)] != 0; }
  // nullptr when every position of the layer is visible (the attention kernel then skips masking)
  const uint8_t* mask(size_t layer) const { return masked_[layer] ? visible_[layer].data() : nullptr; }

  // Positions [0, n) of every layer copied from `o` (same shape), e.g. a prompt's keys and
  // values shared by several continuations.
  void copy_prefix(const KvCache& o, int64_t n) {
    if (o.precision_ != precision_)
      throw UsageError("", "KvCache::copy_prefix", "the caches' precisions differ");
    if (o.capacity_ != capacity_ || o.kv_heads_ != kv_heads_ || o.head_dim_ != head_dim_ || o.k_.size() != k_.size())
      throw UsageError("", "KvCache::copy_prefix", "the caches' shapes differ");
    for (size_t l = 0; l < k_.size(); ++l) {
      for (size_t h = 0; h < kv_heads_; ++h) {  // each head's first n rows
        const size_t o0 = at(h, 0), len = size_t(n) * head_dim_;
        if (precision_ == KvPrecision::F32) {
          std::copy_n(o.k_[l].data() + o0, len, k_[l].data() + o0);
          std::copy_n(o.v_[l].data() + o0, len, v_[l].data() + o0);
        } else {
          std::copy_n(o.k16_[l].data() + o0, len, k16_[l].data() + o0);
          std::copy_n(o.v16_[l].data() + o0, len, v16_[l].data() + o0);
        }
      }
      for (size_t p = 0; p < size_t(n); ++p) {
        if (!o.visible_[l][p] && visible_[l][p]) ++masked_[l];
        if (o.visible_[l][p] && !visible_[l][p]) --masked_[l];
        visible_[l][p] = o.visible_[l][p];
      }
    }
  }

  // Forget positions >= pos (a new sequence, or a rewind).
  void truncate(int64_t pos) {
    for (size_t l = 0; l < visible_.size(); ++l)
      for (size_t p = size_t(pos); p < capacity_; ++p)
        if (!visible_[l][p]) { visible_[l][p] = 1; --masked_[l]; }
  }

 private:
  // Offset of head h's row at position pos within a layer.
  size_t at(size_t h, int64_t pos) const { return (h * capacity_ + size_t(pos)) * head_dim_; }
  const float* f32(const std::vector<std::vector<float>>& x, size_t layer) const {
    if (precision_ != KvPrecision::F32) throw UsageError("", "KvCache", "f32 rows asked of a bf16 cache");
    return x[layer].data();
  }
  const uint16_t* bf16(const std::vector<std::vector<uint16_t>>& x, size_t layer) const {
    if (precision_ != KvPrecision::BF16) throw UsageError("", "KvCache", "bf16 rows asked of an f32 cache");
    return x[layer].data();
  }

  size_t capacity_ = 0, kv_heads_ = 0, head_dim_ = 0;
  KvPrecision precision_ = KvPrecision::F32;
  std::vector<std::vector<float>> k_, v_;         // [layers][kv_heads, capacity, head_dim] (F32)
  std::vector<std::vector<uint16_t>> k16_, v16_;  // [layers][kv_heads, capacity, head_dim] bf16 bits (BF16)
  std::vector<std::vector<uint8_t>> visible_;  // [layers][capacity]
  std::vector<size_t> masked_;              // [layers] count of masked positions
};

}  // namespace fathom
