#pragma once
// A weight matrix widened to f32 once, in the panel layout the gemm kernel reads (gemm.hpp), for
// products that multiply the same matrix many times: the lens readouts (gemm_rank.hpp) and the
// lens trainer's unembedding products. Each call then skips the widening and transposing of every
// panel (for a quantised matrix the widening; on the 49,152 x 576 readout shape the packing was
// ~15 % of the product's time), at 4 bytes per weight of memory. Products with it are gemm_dense's
// bits: the same values in the same tiles.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "fathom/kernels/gemm.hpp"
#include "fathom/kernels/linear.hpp"
#include "fathom/kernels/matrix.hpp"
#include "fathom/kernels/parallel.hpp"

namespace fathom::kernels {

namespace detail {
inline float* align64(std::vector<float>& v) {
  return reinterpret_cast<float*>((reinterpret_cast<uintptr_t>(v.data()) + 63) & ~uintptr_t(63));
}
}  // namespace detail

// W [N, K] widened to f32, 32-row panels (NR rows with AVX-512, 16 with AVX2) each stored as
// [K][NR] (zero rows past N): the layout gemm_dense packs into its L1 buffer, kept for the whole
// matrix. The values are its own: W's data is named by matrix() (to check that a product is given
// the panels of its own matrix) but never read after the constructor.
class PackedPanels {
 public:
  PackedPanels() = default;
  explicit PackedPanels(const MatrixView& W) : W_(W) {
    detail::check_matrix(W, "PackedPanels");
    const size_t P = panels(), K = W.cols;
    data_.resize(P * K * detail::kNR + 16);
    float* base = base_ = detail::align64(data_);
    detail::parallel_chunks(P, detail::worker_count(P * K * detail::kNR), [&](size_t b, size_t e) {
      std::vector<float> rows(detail::kNR * K);
      for (size_t p = b; p < e; ++p)
        detail::pack_weights(W, p * detail::kNR, std::min(detail::kNR, W.rows - p * detail::kNR), 0, K,
                             base + p * K * detail::kNR, rows.data());
    });
  }

  // Move-only: base_ points into data_ (a move keeps the buffer, a copy would not).
  PackedPanels(PackedPanels&&) = default;
  PackedPanels& operator=(PackedPanels&&) = default;
  PackedPanels(const PackedPanels&) = delete;
  PackedPanels& operator=(const PackedPanels&) = delete;

  const MatrixView& matrix() const { return W_; }
  size_t panels() const { return (W_.rows + detail::kNR - 1) / detail::kNR; }
  bool empty() const { return data_.empty(); }
  // Panel p: [K][NR] floats, 64-byte aligned.
  const float* panel(size_t p) const { return base_ + p * W_.cols * detail::kNR; }
  const float* data() const { return base_; }
  size_t bytes() const { return data_.size() * sizeof(float); }

 private:
  MatrixView W_{};
  std::vector<float> data_;  // [panels][K][NR] + alignment slack
  float* base_ = nullptr;    // data_'s first 64-byte boundary
};

// Y[n, N] = X[n, K] . W^T with W pre-packed: gemm_exact(W.matrix(), ...)'s bits.
inline void gemm_packed(const PackedPanels& W, const float* X, size_t n, float* Y) {
  const MatrixView& M = W.matrix();
  if (n == 0) return;
  if (W.empty() && M.rows && M.cols) throw UsageError("", "W", "gemm_packed: no panels");
  // gemm_dense reads only the panels (the source matrix may be gone: matrix() is its shape).
  const detail::DenseProduct p{W.data(), M.rows, Y, W.data()};
  detail::gemm_dense(DType::F32, M.cols, X, n, std::span<const detail::DenseProduct>(&p, 1));
}

}  // namespace fathom::kernels
