#pragma once
// Sets OpenMP's thread count (which the kernels' pool follows) for one scope, restoring it after:
// the kernel tests run the same product at 1, 2 and 3 threads and compare the bits.
#include <omp.h>

struct ThreadScope {
  int saved = omp_get_max_threads();
  explicit ThreadScope(int n) { omp_set_num_threads(n); }
  ~ThreadScope() { omp_set_num_threads(saved); }
  ThreadScope(const ThreadScope&) = delete;
  ThreadScope& operator=(const ThreadScope&) = delete;
};
