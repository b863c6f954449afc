#pragma once
// Keys and values of every position at every layer, plus which positions each layer may attend
// to (a position that skipped a layer under KvStrategy::None is masked there).
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <vector>

namespace fathom {

class KvCache {
 public:
  KvCache() = default;
  KvCache(size_t layers, size_t capacity, size_t kv_dim)
      : capacity_(capacity), kv_dim_(kv_dim), k_(layers), v_(layers), visible_(layers),
        masked_(layers, 0) {
    for (size_t l = 0; l < layers; ++l) {
      k_[l].assign(capacity * kv_dim, 0.f);
      v_[l].assign(capacity * kv_dim, 0.f);
      visible_[l].assign(capacity, 1);
    }
  }

  size_t capacity() const { return capacity_; }
  size_t kv_dim() const { return kv_dim_; }
  float* k(size_t layer, int64_t pos) { return k_[layer].data() + size_t(pos) * kv_dim_; }
  float* v(size_t layer, int64_t pos) { return v_[layer].data() + size_t(pos) * kv_dim_; }
  const float* k(size_t layer, int64_t pos) const { return k_[layer].data() + size_t(pos) * kv_dim_; }
  const float* v(size_t layer, int64_t pos) const { return v_[layer].data() + size_t(pos) * kv_dim_; }

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
    for (size_t l = 0; l < k_.size(); ++l) {
      std::copy_n(o.k_[l].data(), size_t(n) * kv_dim_, k_[l].data());
      std::copy_n(o.v_[l].data(), size_t(n) * kv_dim_, v_[l].data());
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
  size_t capacity_ = 0, kv_dim_ = 0;
  std::vector<std::vector<float>> k_, v_;   // [layers][capacity, kv_dim]
  std::vector<std::vector<uint8_t>> visible_;  // [layers][capacity]
  std::vector<size_t> masked_;              // [layers] count of masked positions
};

}  // namespace fathom
