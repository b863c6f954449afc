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
//
// All layers' keys and values are one buffer, [layers][keys, values][kv_heads][capacity][head_dim],
// on transparent huge pages where the system has them (kernels::WeightBuffer): decode streams the
// whole cache once per token after the weights have evicted it from the caches, and on 4 KiB pages
// every 16 rows of a 64-wide f32 head cost a TLB miss (SmolLM2-135M's 24 MB at 448 positions
// streamed 1.3-1.4x faster on huge pages on a Zen 5 core, docs/benchmarks.md).
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <utility>
#include <vector>

#include "fathom/core/dtype.hpp"
#include "fathom/core/error.hpp"
#include "fathom/kernels/weight_buffer.hpp"

namespace fathom {

enum class KvPrecision : uint8_t { F32, BF16 };

class KvCache {
 public:
  KvCache() = default;
  KvCache(size_t layers, size_t capacity, size_t kv_heads, size_t head_dim,
          KvPrecision precision = KvPrecision::F32)
      : layers_(layers), capacity_(capacity), kv_heads_(kv_heads), head_dim_(head_dim), precision_(precision),
        n_(kv_heads * capacity * head_dim), kv_(layers * 2 * n_ * elem_bytes()), visible_(layers),
        masked_(layers, 0) {
    for (size_t l = 0; l < layers; ++l) visible_[l].assign(capacity, 1);
  }
  KvCache(const KvCache& o)
      : layers_(o.layers_), capacity_(o.capacity_), kv_heads_(o.kv_heads_), head_dim_(o.head_dim_),
        precision_(o.precision_), n_(o.n_), kv_(o.kv_.size()), visible_(o.visible_), masked_(o.masked_) {
    if (o.kv_.size()) std::memcpy(kv_.data(), o.kv_.data(), o.kv_.size());
  }
  KvCache& operator=(const KvCache& o) {
    if (this != &o) *this = KvCache(o);
    return *this;
  }
  KvCache(KvCache&&) = default;
  KvCache& operator=(KvCache&&) = default;

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
        std::copy_n(key + i0, head_dim_, rows<float>(layer, 0) + o);
        std::copy_n(value + i0, head_dim_, rows<float>(layer, 1) + o);
      } else {
        for (size_t i = 0; i < head_dim_; ++i) rows<uint16_t>(layer, 0)[o + i] = f32_to_bf16(key[i0 + i]);
        for (size_t i = 0; i < head_dim_; ++i) rows<uint16_t>(layer, 1)[o + i] = f32_to_bf16(value[i0 + i]);
      }
    }
  }
  // Position pos's key / value widened to f32 (out: [kv_heads * head_dim], null: not wanted); any
  // precision.
  void load(size_t layer, int64_t pos, float* key, float* value) const {
    for (size_t h = 0; h < kv_heads_; ++h)
      for (size_t i = 0, o = at(h, pos); i < head_dim_; ++i) {
        const size_t d = h * head_dim_ + i;
        for (int kv = 0; kv < 2; ++kv)
          if (float* out = kv ? value : key)
            out[d] = precision_ == KvPrecision::F32 ? rows<float>(layer, kv)[o + i]
                                                    : bf16_to_f32(rows<uint16_t>(layer, kv)[o + i]);
      }
  }

  // A layer's stored keys / values, [kv_heads][capacity][head_dim] (head h's rows start at
  // h * capacity * head_dim): f32 caches only (k/v) or bf16 caches only (k_bf16/v_bf16); the other
  // kind is a UsageError.
  const float* k(size_t layer) const { return checked<float>(layer, 0); }
  const float* v(size_t layer) const { return checked<float>(layer, 1); }
  const uint16_t* k_bf16(size_t layer) const { return checked<uint16_t>(layer, 0); }
  const uint16_t* v_bf16(size_t layer) const { return checked<uint16_t>(layer, 1); }

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
    if (o.capacity_ != capacity_ || o.kv_heads_ != kv_heads_ || o.head_dim_ != head_dim_ || o.layers_ != layers_)
      throw UsageError("", "KvCache::copy_prefix", "the caches' shapes differ");
    const size_t es = elem_bytes();
    for (size_t l = 0; l < layers_; ++l) {
      for (int kv = 0; kv < 2; ++kv)
        for (size_t h = 0; h < kv_heads_; ++h)  // each head's first n rows
          std::memcpy(bytes(l, kv) + at(h, 0) * es, o.bytes(l, kv) + at(h, 0) * es, size_t(n) * head_dim_ * es);
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
  size_t elem_bytes() const { return precision_ == KvPrecision::F32 ? sizeof(float) : sizeof(uint16_t); }
  // Offset of head h's row at position pos within a layer.
  size_t at(size_t h, int64_t pos) const { return (h * capacity_ + size_t(pos)) * head_dim_; }
  // Layer `layer`'s keys (kv = 0) or values (kv = 1).
  std::byte* bytes(size_t layer, int kv) { return kv_.data() + (2 * layer + size_t(kv)) * n_ * elem_bytes(); }
  const std::byte* bytes(size_t layer, int kv) const { return kv_.data() + (2 * layer + size_t(kv)) * n_ * elem_bytes(); }
  template <class E> E* rows(size_t layer, int kv) { return reinterpret_cast<E*>(bytes(layer, kv)); }
  template <class E> const E* rows(size_t layer, int kv) const { return reinterpret_cast<const E*>(bytes(layer, kv)); }
  template <class E> const E* checked(size_t layer, int kv) const {
    if ((precision_ == KvPrecision::F32) != (sizeof(E) == sizeof(float)))
      throw UsageError("", "KvCache", sizeof(E) == sizeof(float) ? "f32 rows asked of a bf16 cache" : "bf16 rows asked of an f32 cache");
    return rows<E>(layer, kv);
  }

  size_t layers_ = 0, capacity_ = 0, kv_heads_ = 0, head_dim_ = 0;
  KvPrecision precision_ = KvPrecision::F32;
  size_t n_ = 0;                        // kv_heads * capacity * head_dim: elements of one layer's keys
  kernels::WeightBuffer kv_;            // [layers][keys, values][kv_heads][capacity][head_dim], f32 or bf16 bits
  std::vector<std::vector<uint8_t>> visible_;  // [layers][capacity]
  std::vector<size_t> masked_;              // [layers] count of masked positions
};

}  // namespace fathom
