#pragma once
// How far a model held in another weight format (Q8, bf16) is from the original: per-matrix
// relative error of the weights, and how far the logits move (largest change, top-1 agreement,
// KL). examples/quantize reports these; kept here so the measures are tested and the same for
// every program that compares two forms of one model.
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <span>

#include "fathom/core/error.hpp"
#include "fathom/kernels/matrix.hpp"
#include "fathom/lens/batch_readout.hpp"
#include "fathom/lens/readout.hpp"
#include "fathom/model/model.hpp"

namespace fathom::eval {

// sqrt(Σ (q − w)² / Σ w²) over one matrix, in double (0 for an all-zero w).
inline double relative_rms_error(const kernels::MatrixView& w, const kernels::MatrixView& q) {
  if (w.rows != q.rows || w.cols != q.cols) throw UsageError("", "matrices", "shapes differ");
  double num = 0, den = 0;
  for (size_t r = 0; r < w.rows; ++r)
    for (size_t c = 0; c < w.cols; ++c) {
      const double a = w.at(r, c), d = q.at(r, c) - a;
      num += d * d, den += a * a;
    }
  return den > 0 ? std::sqrt(num / den) : 0;
}

struct WeightDiff {
  size_t matrices = 0;
  size_t bytes_a = 0, bytes_b = 0;  // every matrix as held (Model::matrix_bytes)
  double mean_error = 0;            // mean over matrices of relative_rms_error
  double max_error = 0;
};

// Matrix by matrix (Model::matrices), b against a; the models must share one config.
inline WeightDiff weight_diff(const Model& a, const Model& b) {
  const auto ma = a.matrices(), mb = b.matrices();
  if (ma.size() != mb.size()) throw UsageError("", "models", "different numbers of matrices");
  WeightDiff d;
  d.matrices = ma.size();
  double sum = 0;
  for (size_t i = 0; i < ma.size(); ++i) {
    d.bytes_a += Model::matrix_bytes(*ma[i]);
    d.bytes_b += Model::matrix_bytes(*mb[i]);
    const double e = relative_rms_error(*ma[i], *mb[i]);
    sum += e, d.max_error = std::max(d.max_error, e);
  }
  d.mean_error = d.matrices ? sum / double(d.matrices) : 0;
  return d;
}

// KL(softmax(p) ‖ softmax(q)) in nats for two logit rows, in log space: Σ_v p_v (log p_v − log q_v)
// with log p_v = p_logit_v − logsumexp(p), so a tiny q_v never becomes log 0.
inline double logit_kl(std::span<const float> p, std::span<const float> q) {
  if (p.size() != q.size()) throw UsageError("", "logits", "rows of different lengths");
  const double lse_p = lens::logsumexp(p), lse_q = lens::logsumexp(q);
  double kl = 0;
  for (size_t v = 0; v < p.size(); ++v) {
    const double lp = double(p[v]) - lse_p, lq = double(q[v]) - lse_q;
    kl += std::exp(lp) * (lp - lq);
  }
  return kl;
}

struct LogitDiff {
  size_t positions = 0;
  size_t top1_agree = 0;  // positions whose top-1 token is the same
  double max_abs = 0;     // largest |logit| of a
  double max_dev = 0;     // largest |a − b|
  double kl_sum = 0;      // Σ over positions of KL(p_a ‖ p_b)
  double top1_agreement() const { return positions ? double(top1_agree) / double(positions) : 0; }
  double mean_kl() const { return positions ? kl_sum / double(positions) : 0; }
};

// a, b: [positions, vocab] logits of the same tokens under two forms of a model.
inline LogitDiff logit_diff(std::span<const float> a, std::span<const float> b, size_t vocab) {
  if (vocab == 0 || a.size() != b.size() || a.size() % vocab)
    throw UsageError("", "logits", "expected two [positions, vocab] blocks of one shape");
  LogitDiff d;
  d.positions = a.size() / vocab;
  for (size_t t = 0; t < d.positions; ++t) {
    const auto ra = a.subspan(t * vocab, vocab), rb = b.subspan(t * vocab, vocab);
    for (size_t v = 0; v < vocab; ++v) {
      d.max_abs = std::max(d.max_abs, double(std::fabs(ra[v])));
      d.max_dev = std::max(d.max_dev, double(std::fabs(ra[v] - rb[v])));
    }
    d.top1_agree += lens::top1_id(ra) == lens::top1_id(rb);
    d.kl_sum += logit_kl(ra, rb);
  }
  return d;
}

}  // namespace fathom::eval
