#pragma once
// Rotary position embedding in transformers' rotate-half convention, with linear and Llama-3
// frequency scaling (transformers' _compute_linear_scaling / _compute_llama3_parameters).
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <numbers>
#include <vector>

#include "fathom/kernels/elementwise.hpp"
#include "fathom/core/model_config.hpp"

namespace fathom::blocks {

class Rope {
 public:
  Rope() = default;
  Rope(size_t head_dim, double theta, const RopeScaling& scaling) : head_dim_(head_dim) {
    const size_t half = head_dim / 2;
    inv_freq_.resize(half);  // [head_dim/2], f32 as in transformers
    for (size_t i = 0; i < half; ++i)
      inv_freq_[i] = float(1.0 / std::pow(theta, double(2 * i) / double(head_dim)));
    using T = RopeScaling::Type;
    if (scaling.type == T::Linear) {
      for (auto& f : inv_freq_) f = float(f / scaling.factor);
    } else if (scaling.type == T::Llama3) {
      const double old_ctx = double(scaling.original_max_position_embeddings);
      const double low_wavelen = old_ctx / scaling.low_freq_factor;
      const double high_wavelen = old_ctx / scaling.high_freq_factor;
      for (auto& f : inv_freq_) {
        const double wavelen = 2.0 * std::numbers::pi / double(f);
        if (wavelen > low_wavelen) {
          f = float(f / scaling.factor);
        } else if (wavelen >= high_wavelen) {  // medium band: interpolate
          const double smooth = (old_ctx / wavelen - scaling.low_freq_factor) /
                                (scaling.high_freq_factor - scaling.low_freq_factor);
          f = float((1.0 - smooth) * f / scaling.factor + smooth * f);
        }
      }
    } else if (scaling.type == T::Factors) {  // Model checks there are head_dim / 2 of them
      for (size_t i = 0; i < half && i < scaling.freq_factors.size(); ++i)
        inv_freq_[i] = float(inv_freq_[i] / scaling.freq_factors[i]);
    }
  }

  size_t head_dim() const { return head_dim_; }

  // cos/sin[head_dim/2] for one position: angle = f32(position) * inv_freq in f32, as the
  // reference computes it, then cos/sin of that f32 angle.
  void angles(int64_t position, float* cos, float* sin) const {
    for (size_t i = 0; i < inv_freq_.size(); ++i) {
      const float a = float(position) * inv_freq_[i];
      cos[i] = float(std::cos(double(a)));
      sin[i] = float(std::sin(double(a)));
    }
  }

  // Rotates n_heads consecutive head vectors v[n_heads, head_dim] in place.
  void apply(float* v, size_t n_heads, const float* cos, const float* sin) const {
    for (size_t h = 0; h < n_heads; ++h)
      kernels::rope_rotate_half(v + h * head_dim_, cos, sin, head_dim_);
  }

  const std::vector<float>& inv_freq() const { return inv_freq_; }

 private:
  size_t head_dim_ = 0;
  std::vector<float> inv_freq_;
};

}  // namespace fathom::blocks
