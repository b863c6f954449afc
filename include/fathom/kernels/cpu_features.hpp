#pragma once
// What the CPU and the operating system offer at run time, beyond what the compiler targeted.
//
// AMX (Intel's tile matrix unit; issue 14, part 3) needs both the CPU (CPUID leaf 7: AMX-TILE,
// AMX-BF16, AMX-INT8) and the kernel's permission for the process to use the tile data state
// (Linux: arch_prctl(ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA)); a tile instruction without both
// dies with SIGILL, as llama.cpp's build did on such a machine. amx() asks once and answers false
// when the CPU lacks AMX, the request is refused, or the platform is not x86-64 Linux: callers
// then use the AVX-512 / portable kernels. The AMX kernels (amx.hpp) run only where this allows.
#include <cstdint>

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <cpuid.h>
#endif
#if defined(__linux__) && defined(__x86_64__)
#include <sys/syscall.h>
#include <unistd.h>
#endif

namespace fathom::kernels {

struct AmxSupport {
  bool tile = false, bf16 = false, int8 = false;  // CPUID.(EAX=7,ECX=0):EDX bits 24, 22, 25
  bool permitted = false;                         // the OS granted the tile data state
  bool usable() const { return tile && permitted && (bf16 || int8); }
};

namespace detail {
inline AmxSupport detect_amx() {
  AmxSupport a;
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
  unsigned eax = 0, ebx = 0, ecx = 0, edx = 0;
  if (__get_cpuid_max(0, nullptr) < 7) return a;
  __cpuid_count(7, 0, eax, ebx, ecx, edx);
  a.tile = (edx >> 24) & 1;
  a.bf16 = (edx >> 22) & 1;
  a.int8 = (edx >> 25) & 1;
#if defined(__linux__)
  if (a.tile) {
    constexpr long kArchReqXcompPerm = 0x1023, kXfeatureXtiledata = 18;
    a.permitted = syscall(SYS_arch_prctl, kArchReqXcompPerm, kXfeatureXtiledata) == 0;
  }
#endif
#endif
  return a;
}
}  // namespace detail

// Detected once per process (the permission request happens on the first call).
inline const AmxSupport& amx() {
  static const AmxSupport a = detail::detect_amx();
  return a;
}

// The family of an AMD CPU (0x19: Zen 3 / Zen 4; 0x1a: Zen 5), 0 on other vendors' CPUs. Read once
// per process.
inline unsigned amd_family() {
  static const unsigned family = [] {
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
    unsigned eax = 0, ebx = 0, ecx = 0, edx = 0;
    if (!__get_cpuid(0, &eax, &ebx, &ecx, &edx)) return 0u;
    const bool amd = ebx == 0x68747541u && edx == 0x69746e65u && ecx == 0x444d4163u;  // "AuthenticAMD"
    if (!amd || !__get_cpuid(1, &eax, &ebx, &ecx, &edx)) return 0u;
    return ((eax >> 8) & 0xf) + (((eax >> 8) & 0xf) == 0xf ? (eax >> 20) & 0xff : 0);
#else
    return 0u;
#endif
  }();
  return family;
}

// An AMD family 0x19 CPU (Zen 3 / Zen 4; with AVX-512 a Zen 4, whose 512-bit operations run on
// 256-bit datapaths). Kernels whose best shape differs there ask this (linear.hpp's dense decode
// row tiles; where the dense, Q8 and GGUF decode rows prefetch: prefetch.hpp, quant.hpp,
// quant4.hpp).
inline bool amd_family_19h() { return amd_family() == 0x19; }

// An AMD family 0x1a CPU or later (Zen 5): where dense decode rows stream one at a time, and they
// and long Q8 rows are prefetched one line short of a whole number of rows ahead (linear.hpp,
// prefetch.hpp, quant.hpp; the long Q8 rows on a Zen 4 too).
inline bool amd_family_1ah_on() { return amd_family() >= 0x1a; }

}  // namespace fathom::kernels
