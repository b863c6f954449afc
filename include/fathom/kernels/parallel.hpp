#pragma once
// Static OpenMP work partitioning shared by the kernels. Work is cut into contiguous chunks, one
// per thread, never more threads than omp_get_max_threads(), and no parallel region at all for
// small jobs or when already inside one (nested regions would oversubscribe the cores).
#include <algorithm>
#include <cstddef>

#if defined(_OPENMP)
#include <omp.h>
#endif

namespace fathom::kernels::detail {

// Below this many multiply-adds a parallel region costs more than it saves (a region's fork and
// join is a few microseconds; one core does ~10^4 multiply-adds per microsecond).
constexpr size_t kParallelMinWork = size_t(1) << 17;

inline int worker_count(size_t work) {
#if defined(_OPENMP)
  if (work < kParallelMinWork || omp_in_parallel()) return 1;
  return std::max(1, omp_get_max_threads());
#else
  (void)work;
  return 1;
#endif
}

// Calls body(begin, end) for `units` items split into contiguous chunks over `threads` threads.
// The chunk boundaries depend only on (units, threads), so the result of each item never depends
// on scheduling.
template <class Body>
inline void parallel_chunks(size_t units, int threads, Body&& body) {
  if (threads <= 1 || units <= 1) {
    body(size_t(0), units);
    return;
  }
#if defined(_OPENMP)
#pragma omp parallel num_threads(threads)
  {
    const size_t nt = size_t(omp_get_num_threads());
    const size_t t = size_t(omp_get_thread_num());
    const size_t b = units * t / nt, e = units * (t + 1) / nt;
    if (b < e) body(b, e);
  }
#else
  body(size_t(0), units);
#endif
}

// The most threads a parallel region may use (1 without OpenMP).
inline int max_threads() {
#if defined(_OPENMP)
  return std::max(1, omp_get_max_threads());
#else
  return 1;
#endif
}

// Calls body(job, thread) for job = 0..jobs-1, handed out dynamically over the threads when
// `threaded` (for jobs of very different cost); thread < max_threads() indexes per-thread scratch.
// Each job must write only its own outputs, so results never depend on the schedule.
template <class Body>
inline void parallel_jobs(long jobs, bool threaded, Body&& body) {
#if defined(_OPENMP)
#pragma omp parallel for schedule(dynamic) if (threaded && !omp_in_parallel())
  for (long j = 0; j < jobs; ++j) body(j, omp_get_thread_num());
#else
  (void)threaded;
  for (long j = 0; j < jobs; ++j) body(j, 0);
#endif
}

}  // namespace fathom::kernels::detail
