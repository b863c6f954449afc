#pragma once
// Process-wide kernel settings for one scope, restored after: OpenMP's thread count (which the
// kernels' pool follows; the kernel tests run the same product at 1, 2 and 3 threads and compare
// the bits) and the prompt-product switch (kernels/linear.hpp, exact by default; tests that run
// both prefill kinds leave the next test the setting they found).
#include <omp.h>

#include "fathom/kernels/linear.hpp"

struct ThreadScope {
  int saved = omp_get_max_threads();
  explicit ThreadScope(int n) { omp_set_num_threads(n); }
  ~ThreadScope() { omp_set_num_threads(saved); }
  ThreadScope(const ThreadScope&) = delete;
  ThreadScope& operator=(const ThreadScope&) = delete;
};

struct PrefillScope {
  bool saved = fathom::kernels::exact_prefill();
  explicit PrefillScope(bool exact) { fathom::kernels::set_exact_prefill(exact); }
  ~PrefillScope() { fathom::kernels::set_exact_prefill(saved); }
  PrefillScope(const PrefillScope&) = delete;
  PrefillScope& operator=(const PrefillScope&) = delete;
};

// Int8 prompts with decode's bits: the int8 prompt kernels with the AMX tiles switched off, since
// on a CPU with AMX-INT8 Q8 and GGUF 4/5-bit prompts sum in another order there (kernels/amx_q8.hpp,
// amx_gguf.hpp, checked by tests/test_amx.cpp); elsewhere the same as PrefillScope(false).
struct DecodeBitsPrompts {
  PrefillScope int8{false};
  bool amx_saved = fathom::kernels::detail::amx_allowed_flag().load();
  DecodeBitsPrompts() { fathom::kernels::set_amx_allowed(false); }
  ~DecodeBitsPrompts() { fathom::kernels::set_amx_allowed(amx_saved); }
  DecodeBitsPrompts(const DecodeBitsPrompts&) = delete;
  DecodeBitsPrompts& operator=(const DecodeBitsPrompts&) = delete;
};
