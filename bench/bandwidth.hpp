#pragma once
// The limit decode is measured against: how fast this machine streams bytes from DRAM, measured
// in the same program (and, with --benchmark_enable_random_interleaving, in the same minutes) as
// the products, because on a shared virtual machine it changes from run to run.
//
// The buffer is 512 MiB (16x an L3 of 32 MiB) of random bytes in a WeightBuffer (huge pages, as
// the kernels' weights in the benchmarks). Constant fills (e.g. 1.0f) let the host merge identical
// pages, after which a "DRAM" read hits in cache (seen on this machine class: 109 GB/s "read" of a
// constant buffer against 45-77 GB/s of random bytes).
#include <benchmark/benchmark.h>

#include <cstddef>
#include <cstdint>

#include "fathom/core/splitmix.hpp"
#include "fathom/kernels/parallel.hpp"
#include "fathom/kernels/prefetch.hpp"
#include "fathom/kernels/simd.hpp"
#include "fathom/kernels/weight_buffer.hpp"

namespace bench {

// splitmix64 output (core/splitmix.hpp, as random_model uses): every page different.
inline void fill_random(void* data, size_t bytes, uint64_t seed) {
  auto* p = static_cast<unsigned char*>(data);
  fathom::SplitMix64 rng{seed};
  for (size_t i = 0; i < bytes; i += 8) {
    const uint64_t z = rng.next();
    for (size_t k = 0; k < 8 && i + k < bytes; ++k) p[i + k] = static_cast<unsigned char>(z >> (8 * k));
  }
}

// The buffer above, built once per process.
constexpr size_t kReadBytes = size_t(512) << 20;
inline const fathom::kernels::WeightBuffer& read_buffer() {
  static const fathom::kernels::WeightBuffer buf = [] {
    fathom::kernels::WeightBuffer b(kReadBytes);
    fill_random(b.data(), kReadBytes, 42);
    return b;
  }();
  return buf;
}

// One read of the buffer with all threads, each streaming one contiguous part (as gemv splits
// rows), summing 32-bit integers; with `prefetch`, also software prefetch at the kernels'
// distance. Returns the sum (so that the loads cannot be dropped).
inline uint32_t read_pass(bool prefetch) {
  using uvec = fathom::kernels::simd::uvec;
  namespace kd = fathom::kernels::detail;
  constexpr size_t kStep = 4 * uvec::size * sizeof(uint32_t);
  const auto& buf = read_buffer();
  const size_t steps = kReadBytes / kStep;
  uint32_t total = 0;
  kd::parallel_chunks(steps, kd::worker_count(kReadBytes), [&](size_t b, size_t e) {
    uvec a0(0u), a1(0u), a2(0u), a3(0u);
    for (size_t i = b; i < e; ++i) {
      const uint32_t* p = buf.as<uint32_t>() + i * kStep / sizeof(uint32_t);
      if (prefetch)
        for (size_t l = 0; l < kStep; l += 64) kd::prefetch_line(reinterpret_cast<uintptr_t>(p) + kd::kPrefetchAhead + l);
      a0 += uvec::load_unaligned(p);
      a1 += uvec::load_unaligned(p + uvec::size);
      a2 += uvec::load_unaligned(p + 2 * uvec::size);
      a3 += uvec::load_unaligned(p + 3 * uvec::size);
    }
    const uint32_t s = xsimd::hadd((a0 + a1) + (a2 + a3));
#pragma omp atomic
    total += s;
  });
  return total;
}

// The better of plain and prefetch is the machine's read bandwidth.
inline void BM_read_bandwidth(benchmark::State& state, bool prefetch) {
  read_buffer();
  for (auto _ : state) benchmark::DoNotOptimize(read_pass(prefetch));
  state.SetBytesProcessed(int64_t(kReadBytes) * int64_t(state.iterations()));
  state.counters["GB/s"] = benchmark::Counter(double(kReadBytes) * double(state.iterations()) / 1e9,
                                              benchmark::Counter::kIsRate);
}

}  // namespace bench
