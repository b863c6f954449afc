#pragma once
// The rounds of the benchmarks that measure decode against the read bandwidth
// (bench_decode_bound.cpp, bench_decode_steps.cpp): a session holding a `context`-token prompt;
// each round rewinds to it, decodes 16 tokens at full depth (token 1 fed back) and then reads
// bandwidth.hpp's 512 MiB once. The read also evicts the caches, so each round's first token
// starts cold, as every token of a model larger than L3 does.
#include <chrono>
#include <cstdint>
#include <span>

#include "bandwidth.hpp"
#include "bench_common.hpp"

#include "fathom/model/full_depth.hpp"

namespace bench {

class DecodeRounds {
 public:
  static constexpr size_t kTokens = 16;  // per round

  DecodeRounds(const fathom::Model& m, size_t context)
      : context_(context), session_(m, {int64_t(context + kTokens + 1)}) {
    session_.forward(prompt(m, context), fathom::Phase::PP, full_);
    read_buffer();
  }

  struct Round {
    double decode_s;  // the 16 tokens' wall time
    double read_gbs;  // the read that followed them, 10^9 bytes/s
  };
  // One round; the layer pass reports its taps to `obs`.
  template <class O>
  Round run(O& obs) {
    using clock = std::chrono::steady_clock;
    session_.rewind(int64_t(context_));
    const int32_t next = 1;
    const auto t0 = clock::now();
    for (size_t k = 0; k < kTokens; ++k) {
      auto logits = session_.forward(std::span<const int32_t>(&next, 1), fathom::Phase::RG, full_, obs);
      benchmark::DoNotOptimize(logits.data());
    }
    const auto t1 = clock::now();
    benchmark::DoNotOptimize(read_pass(false));
    const auto t2 = clock::now();
    return {std::chrono::duration<double>(t1 - t0).count(),
            double(kReadBytes) / std::chrono::duration<double>(t2 - t1).count() / 1e9};
  }
  Round run() {
    fathom::NoObserver none;
    return run(none);
  }

  // Bytes of f32 keys and values attention reads per token in a layer of `kv_dim`: (p + 1)
  // positions at position p, averaged over a round.
  double kv_bytes(size_t kv_dim) const {
    return 2.0 * 4.0 * double(kv_dim) * (double(context_) + double(kTokens + 1) / 2.0);
  }

 private:
  size_t context_;
  fathom::FullDepth full_;
  fathom::Session session_;
};

}  // namespace bench
