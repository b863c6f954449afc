#pragma once
// Software prefetching for the matrix-vector products.
//
// Decode reads every weight byte once, straight from DRAM. The row kernels read R rows side by
// side (so the rows share the loads of x), i.e. R interleaved streams per thread; the hardware
// prefetchers follow them too late, and a 2-core machine then gets 20-50 % of its read bandwidth
// (measured: docs/benchmarks.md). The kernels therefore ask for each cache line a fixed distance
// ahead of the line they are reading, in the order in which they will read it.
#include <algorithm>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstdlib>

#include "fathom/kernels/cpu_features.hpp"

namespace fathom::kernels::detail {

// Bytes along a row between the line a kernel reads and the line it prefetches (2 KiB per row in
// flight per thread with 1-row tiles, 8 KiB with 4-row tiles). Interleaved runs of 1-16 KiB per row on the decode
// shapes (docs/benchmarks.md): 1-2 KiB is best on huge pages (where the hardware prefetchers
// also run ahead), 2-4 KiB on 4 KiB pages (mapped checkpoints); 16 KiB is worse on both.
constexpr size_t kPrefetchAhead = 2048;

// The distance of the dense (f32 / bf16) rows' prefetches (dense_prefetch() below) when nobody
// chose one. Measured per element type and CPU (docs/benchmarks.md, "Dense decode rows and
// software prefetch" and "Zen 4: dense decode rows without software prefetch"): on the AVX-512
// Zen 5 both types gained from kPrefetchAhead; on a Zen 4 (AMD family 19h with AVX-512) the
// hardware prefetchers alone streamed the rows faster (one thread: bf16 1.10-1.32x, f32
// 1.0-1.43x; two threads 1.03-1.21x); on the AVX2 Zen 3 f32 rows streamed faster on the hardware
// prefetchers alone (13 of 14 shapes x thread counts, up to +61 %), while bf16 rows still gained
// from it in 9 of 14.
inline size_t default_dense_prefetch(bool f32) {
#if defined(__AVX512F__)
  (void)f32;
  return amd_family_19h() ? 0 : kPrefetchAhead;
#else
  return f32 ? 0 : kPrefetchAhead;
#endif
}
constexpr size_t kDensePrefetchDefault = ~size_t(0);  // no choice made: default_dense_prefetch

// The chosen distance, or kDensePrefetchDefault; FATHOM_DENSE_PREFETCH=<bytes> in the environment
// (read once) chooses one for both types.
inline std::atomic<size_t>& dense_prefetch_ref() {
  static std::atomic<size_t> ahead = [] {
    const char* e = std::getenv("FATHOM_DENSE_PREFETCH");
    if (!e || !*e) return kDensePrefetchDefault;
    char* end = nullptr;
    const unsigned long long v = std::strtoull(e, &end, 10);
    return *end == '\0' && v <= (size_t(1) << 20) ? size_t(v) : kDensePrefetchDefault;
  }();
  return ahead;
}

// Asks for the cache line at `addr` in every cache level. A hint: it never faults, so addresses
// past the end of a buffer are harmless. On x86-64 it is an asm statement because GCC 12 deletes
// __builtin_prefetch (and _mm_prefetch) behind a condition at -O2/-O3 (checked with objdump:
// `if (on) __builtin_prefetch(p + a * b)` compiles to nothing).
inline void prefetch_line(uintptr_t addr) {
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
  asm volatile("prefetcht0 (%0)" : : "r"(addr));
#else
  __builtin_prefetch(reinterpret_cast<const void*>(addr), /*rw=*/0, /*locality=*/3);
#endif
}
// The same into L2 (and beyond), not L1: for streams whose L1 is busy holding x.
inline void prefetch_line_l2(uintptr_t addr) {
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
  asm volatile("prefetcht1 (%0)" : : "r"(addr));
#else
  __builtin_prefetch(reinterpret_cast<const void*>(addr), /*rw=*/0, /*locality=*/2);
#endif
}

// Either of the above: into L2 when `l2`, else into every level.
inline void prefetch_line_to(uintptr_t addr, bool l2) {
  if (l2)
    prefetch_line_l2(addr);
  else
    prefetch_line(addr);
}

// Prefetching for a kernel that reads tiles of R consecutive rows (row pitch `stride` bytes) side
// by side, front to back, then moves on to the next R rows. Seen from one row of a tile, the
// kernel reads a stream: that row, then the same row of the next tile, and so on. While reading
// byte `off` of a row it asks for the line `ahead` bytes further along that stream: further along
// the same row, or past its end in the same row of a later tile. The target is rounded down to
// the kernel's own 64-byte load offsets within its row, so that every line of a thread's range of
// rows is asked for (a line shared by two rows through the next row's start) before it is read.
// Kernels issue a tile's prefetches for a step of 256 bytes per row before that step's loads:
// measured on the decode shapes, that sustains 10-30 % more bandwidth than one prefetch beside
// each load (docs/benchmarks.md). A default-constructed TilePrefetch does nothing.
class TilePrefetch {
 public:
  TilePrefetch() = default;
  TilePrefetch(size_t ahead, size_t stride, size_t R, bool l2 = false)
      : on_(ahead > 0 && stride > 0), l2_(l2), ahead_(ahead), stride_(stride), R_(R),
        rem_(on_ ? ahead % stride : 0),
        near_(on_ ? R * (ahead / stride) * stride : 0),
        far_(on_ ? R * (ahead / stride + 1) * stride : 0) {}

  explicit operator bool() const { return on_; }
  bool to_l2() const { return on_ && l2_; }  // prefetcht1 rather than prefetcht0

  // Lines [off, off + bytes) of the tile's R rows (the first starting at `first_row`), `ahead`
  // bytes further along. The address arithmetic is in integers: it may point past the buffer.
  template <int R>
  void tile(const void* first_row, size_t off, size_t bytes) const {
    if (!on_) return;
    for (size_t b = 0; b < bytes; b += 64) {
      const uintptr_t at = target(first_row, off + b);
      for (int r = 0; r < R; ++r) prefetch_line_to(at + size_t(r) * stride_, l2_);
    }
  }

  // The address prefetched for byte `off` (< stride) of the tile's first row (row r: + r*stride).
  uintptr_t target(const void* first_row, size_t off) const {
    size_t o = off + rem_, rows = near_;
    if (o >= stride_) o -= stride_, rows = far_;
    return reinterpret_cast<uintptr_t>(first_row) + rows + (o & ~size_t(63));
  }

  // What the kernel reads before its own prefetches reach it: the first `ahead` bytes of each
  // stream, from the tile whose first row starts at `first_row`. Called where a thread starts on
  // a range of rows, so that a short matrix does not begin with a stall on every line.
  void prime(const void* first_row) const { for_primed(first_row, l2_ ? prefetch_line_l2 : prefetch_line); }
  // Calls f(address) for each line prime() prefetches.
  template <class F>
  void for_primed(const void* first_row, F&& f) const {
    if (!on_) return;
    const auto base = reinterpret_cast<uintptr_t>(first_row);
    for (size_t t = 0; t * stride_ < ahead_; ++t) {
      const size_t len = std::min(stride_, ahead_ - t * stride_);
      for (size_t r = 0; r < R_; ++r) {
        const uintptr_t b = base + (t * R_ + r) * stride_;
        for (uintptr_t line = b & ~uintptr_t(63); line < b + len; line += 64) f(line);
      }
    }
  }

 private:
  bool on_ = false, l2_ = false;
  size_t ahead_ = 0, stride_ = 0, R_ = 1;
  size_t rem_ = 0, near_ = 0, far_ = 0;  // ahead % stride; bytes to the same row k, k+1 tiles on
};

// Prefetching for a kernel that reads one contiguous region front to back in steps of one or a few
// rows (Q8 decode rows one at a time, GGUF rows of 48 blocks or fewer four at a time, on AVX512-VNNI
// builds): before each step, every line up to `ahead` bytes past the step's end, each line once.
// The first call also asks for the lines the step itself reads (a small matrix does not begin with
// a stall on every line; `l2`: into L2 only). A default-constructed one does nothing.
class StreamPrefetch {
 public:
  StreamPrefetch() = default;
  StreamPrefetch(const void* start, size_t ahead, bool l2 = false)
      : next_(reinterpret_cast<uintptr_t>(start) & ~uintptr_t(63)), ahead_(ahead), on_(true), l2_(l2) {}
  // The next step reads up to (not including) `end`.
  void to(const void* end) {
    if (!on_) return;
    for (const uintptr_t t = reinterpret_cast<uintptr_t>(end) + ahead_; next_ < t; next_ += 64)
      prefetch_line_to(next_, l2_);
  }

 private:
  uintptr_t next_ = 0;
  size_t ahead_ = 0;
  bool on_ = false, l2_ = false;
};

}  // namespace fathom::kernels::detail

namespace fathom::kernels {
// How far ahead the f32 / bf16 decode rows prefetch (bytes along a row stream; 0: no software
// prefetch, the hardware prefetchers alone): set_dense_prefetch(bytes) for both types,
// reset_dense_prefetch() for the measured defaults (default_dense_prefetch). Process-wide; change
// it between products, not during one. Results do not depend on it.
inline void set_dense_prefetch(size_t bytes) { detail::dense_prefetch_ref().store(std::min(bytes, size_t(1) << 20)); }
inline void reset_dense_prefetch() { detail::dense_prefetch_ref().store(detail::kDensePrefetchDefault); }
inline size_t dense_prefetch(bool f32) {
  const size_t v = detail::dense_prefetch_ref().load(std::memory_order_relaxed);
  return v == detail::kDensePrefetchDefault ? detail::default_dense_prefetch(f32) : v;
}

namespace detail {
// The prefetch of a dense gemv tile of R rows of `cols` values (linear.hpp): dense_prefetch(f32)
// into L1, except where nobody chose a distance on a Zen 4 (AMD family 19h with AVX-512) and one
// bf16 row runs with more than 16 KiB of x: there the row and x no longer both fit its 32 KiB L1,
// the hardware prefetchers alone streamed 896 x 4864 bf16 rows at 13-20 GB/s, lines asked for
// 8 KiB ahead into L2 (prefetcht1) at 23-27 (1.34-1.79x; 2048 x 8192: 1.6x), while prefetches
// into L1 were no better than none (docs/benchmarks.md, "Zen 4: dense decode rows without
// software prefetch"). f32 rows (twice the bytes per value) were 0.88-0.96x with it, so keep none.
//
// On a Zen 5 (AMD family 1Ah) one row at a time (f32 or bf16) asks for the line one line short of
// a whole number of rows ahead, at least 6 KiB (whole_rows_ahead; Q8 rows of 2048 values or more
// too, at least 8 KiB, on a Zen 4 from 1536 values: quant.hpp): one thread then streamed 576- to
// 4864-wide rows 1.10-1.22x as fast as four rows at a time with 2 KiB per row, near a plain read's
// rate, two threads 1.09-1.27x as fast as one row with 2 KiB; the same distance rounded up to
// whole rows, or one line past them, ran 15-20 % slower than one line short (docs/benchmarks.md,
// "Dense decode rows a whole number of rows ahead"). Not yet measured on the Intel Xeons.
inline size_t whole_rows_ahead(size_t stride, size_t at_least = size_t(6) << 10) {
  return (at_least + stride - 1) / stride * stride - 64;
}
inline TilePrefetch dense_tile_prefetch(bool f32, size_t cols, size_t R) {
  const size_t stride = cols * (f32 ? sizeof(float) : sizeof(uint16_t));
#if defined(__AVX512F__)
  if (R == 1 && dense_prefetch_ref().load(std::memory_order_relaxed) == kDensePrefetchDefault) {
    if (amd_family_1ah_on()) return TilePrefetch(whole_rows_ahead(stride), stride, 1);
    if (!f32 && cols * sizeof(float) > (size_t(16) << 10) && amd_family_19h())
      return TilePrefetch(size_t(8) << 10, stride, 1, /*l2=*/true);
  }
#endif
  return TilePrefetch(dense_prefetch(f32), stride, R);
}
}  // namespace detail
}  // namespace fathom::kernels
