#pragma once
// Readouts of many residual-stream rows at once: the final norm for n rows, then ONE matrix
// product against the unembedding, instead of one [vocab] matrix-vector product per row. The
// unembedding is then read once per block of rows rather than once per row, which turns a
// bandwidth-bound loop (~4-8 GFLOP/s) into a compute-bound one.
//
// The product is by default kernels::Rows::Exact: the unembedding's exact values (Q8 or GGUF
// blocks widened to f32 in the gemm's packing) times the unquantised normed states -- the
// arithmetic the lens trainer optimises (lens/train.hpp), and on CPUs without AVX512-VNNI faster
// than the int8 kernels (SmolLM2 readouts 1.3-1.5x on a Zen 3, docs/benchmarks.md). Rows::Gemm
// reads out with the model's own prompt kernels instead (int8 activations for quantised
// unembeddings, as the model's logits; the faster choice where VNNI is present).
//
// Statistics are taken from each [n, vocab] block as it comes out and the block is then reused:
// reading every layer of a long text never holds more than one block of logits. ranks() goes
// further for the statistics the depth metrics need (top-1 and target ranks): with Exact products
// the block is reduced inside the product (kernels::gemm_rank) and never written, the same values
// bit for bit; the unembedding is then kept widened to f32 panels (4 bytes per weight, made once
// per reader) unless that exceeds kPrepackMaxBytes. Where the build targets AVX512-VNNI the
// unembedding is screened with int16 products instead and only the columns the screen cannot
// decide are computed exactly (kernels::gemm_rank_screened: the same statistics; SmolLM2's
// readouts 1.3-1.4x faster), kept as int16 panels (~2 bytes per weight).
//
// Results equal Reader (readout.hpp, one token at a time with the model's decode product) up to
// the summation order of the product for f32/bf16/f16 unembeddings: a logit may differ in its
// last bits, and a rank only where two logits are that close (tests/test_lens_batch.cpp bounds
// it). For a quantised unembedding Reader also rounds the activations to int8 blocks, as the
// model's decode does, which Rows::Exact does not; Rows::Gemm gives Reader's values then, up to
// summation order.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "fathom/core/error.hpp"
#include "fathom/kernels/gemm_rank.hpp"
#include "fathom/kernels/rank_screen.hpp"
#include "fathom/lens/readout.hpp"
#include "fathom/model/model.hpp"

namespace fathom::lens {

// The highest logit's id; ties: the lower id (the same choice as top_k(logits, 1)).
inline int32_t top1_id(std::span<const float> logits) {
  size_t best = 0;
  for (size_t v = 1; v < logits.size(); ++v)
    if (logits[v] > logits[best]) best = v;
  return int32_t(best);
}

// Calls fn(j, row_logits) for every row j of an [n, vocab] block, rows split between threads
// (each row's statistics are independent; fn must only write per-row results).
template <class Fn>
void for_each_row(std::span<const float> block, size_t vocab, Fn&& fn) {
  const long n = long(block.size() / vocab);
  // A row scan is ~vocab operations; only parallel when there are enough rows to share.
#pragma omp parallel for schedule(static) if (n >= 8 && size_t(n) * vocab >= (size_t(1) << 18))
  for (long j = 0; j < n; ++j) fn(size_t(j), block.subspan(size_t(j) * vocab, vocab));
}

// Turns blocks of up to `max_rows` residual-stream rows into logits with one product each.
class BatchReader {
 public:
  // 256 rows of a 49,152-token vocabulary are a 48 MiB logits block: large enough that the
  // unembedding is streamed once per 256 rows, small enough to stay out of swap on small hosts.
  static constexpr size_t kDefaultRows = 256;

  // products: kernels::Rows::Exact (default) or Rows::Gemm (see the top of this file).
  explicit BatchReader(const Readout& r, size_t max_rows = kDefaultRows,
                       kernels::Rows products = kernels::Rows::Exact)
      : r_(r), rows_(max_rows), how_(products) {
    if (max_rows == 0) throw UsageError("", "max_rows", "must be positive");
    if (products == kernels::Rows::AsGemv)
      throw UsageError("", "products", "Exact or Gemm (AsGemv is batched decoding's)");
  }
  explicit BatchReader(const Model& m, size_t max_rows = kDefaultRows,
                       kernels::Rows products = kernels::Rows::Exact)
      : BatchReader(m.readout(), max_rows, products) {}

  size_t vocab() const { return r_.vocab(); }
  size_t hidden() const { return r_.hidden(); }
  size_t max_rows() const { return rows_; }

  // [n, vocab] logits of h [n, hidden], n <= max_rows(); valid until the next call.
  std::span<const float> logits(const float* h, size_t n) {
    if (n > rows_)
      throw UsageError("", "n", std::to_string(n) + " rows in one block, at most " +
                                    std::to_string(rows_));
    normed_.resize(n * hidden());    // [n, hidden]
    logits_.resize(n * vocab());     // [n, vocab]
    r_(h, n, normed_.data(), logits_.data(), how_);
    return {logits_.data(), n * vocab()};
  }
  // What ranks() gives per row j of a block, T targets per row (j * T + t).
  struct RowRanks {
    std::vector<int32_t> top1;   // [n] top1_id of the row's logits
    std::vector<float> logit;    // [n, T] the target's logit (NaN: no target)
    std::vector<int64_t> rank;   // [n, T] rank_of the target (0: no target)
  };
  // Per row of h [n, hidden] (n <= max_rows()): top-1 and, for targets[j * T + t] (negative =
  // none), the target's logit and rank: the values logits() would give, without the [n, vocab]
  // block when products are Exact (valid until the next call).
  const RowRanks& ranks(const float* h, size_t n, std::span<const int32_t> targets, size_t T) {
    if (targets.size() != n * T)
      throw UsageError("", "targets", std::to_string(targets.size()) + " ids for " + std::to_string(n) +
                                          " rows x " + std::to_string(T));
    for (int32_t id : targets)  // checked here: rows are scanned in threads
      if (id >= 0 && size_t(id) >= vocab())
        throw UsageError("", "targets", "token id " + std::to_string(id) + " outside the vocabulary");
    RowRanks& r = ranks_;
    r.top1.assign(n, 0), r.logit.assign(n * T, NAN), r.rank.assign(n * T, 0);
    if (how_ != kernels::Rows::Exact) {
      const auto block = logits(h, n);
      for_each_row(block, vocab(), [&](size_t j, std::span<const float> row) {
        r.top1[j] = top1_id(row);
        for (size_t t = 0; t < T; ++t)
          if (const int32_t id = targets[j * T + t]; id >= 0)
            r.logit[j * T + t] = row[size_t(id)], r.rank[j * T + t] = rank_of(row, id);
      });
      return r;
    }
    if (n > rows_)
      throw UsageError("", "n", std::to_string(n) + " rows in one block, at most " + std::to_string(rows_));
    const kernels::MatrixView& W = r_.unembed;
    const bool screened = kernels::kRankScreen;
    if (screened && screen_.empty()) screen_ = kernels::RankScreen(W);
    if (!screened && packed_.empty() && W.rows * W.cols * sizeof(float) <= kPrepackMaxBytes)
      packed_ = kernels::PackedPanels(W);
    normed_.resize(n * hidden());  // [n, hidden]
    (*r_.norm)(h, normed_.data(), n);
    kernels::RankStats st =
        screened ? kernels::gemm_rank_screened(screen_, normed_.data(), n, targets, T)
                 : kernels::gemm_rank(W, packed_.empty() ? nullptr : &packed_, normed_.data(), n, targets, T);
    r.top1 = std::move(st.argmax);
    r.logit = std::move(st.value);
    for (size_t i = 0; i < n * T; ++i)
      if (targets[i] >= 0) r.rank[i] = st.above[i] + 1;
    return r;
  }
  // The f32 panels ranks() keeps of the unembedding: up to 1 GiB (a 49,152 x 576 unembedding
  // takes 113 MB; a 128,256 x 4,096 one, 2.1 GB, is packed panel by panel during each call
  // instead: 0-5 % slower on the readout shape, docs/benchmarks.md).
  static constexpr size_t kPrepackMaxBytes = size_t(1) << 30;

  // Row j of the last block.
  std::span<const float> row(size_t j) const {
    return {logits_.data() + j * vocab(), vocab()};
  }

 private:
  Readout r_;
  size_t rows_;
  kernels::Rows how_;
  std::vector<float> normed_;  // [rows, hidden]
  std::vector<float> logits_;  // [rows, vocab]
  kernels::PackedPanels packed_;  // [vocab/NR][hidden][NR] the unembedding widened (ranks())
  kernels::RankScreen screen_;    // the unembedding as int16 panels (ranks(), with AVX512-VNNI)
  RowRanks ranks_;
};

}  // namespace fathom::lens
