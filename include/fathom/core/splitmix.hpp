#pragma once
// splitmix64 (Steele, Lea and Flood; Vigna's reference constants), fathom's one source of seeded
// randomness where results must be the same on every platform: std:: engines are portable but the
// distributions and std::shuffle built on them differ between standard libraries. Used for option
// shuffles, subsets and per-item seeds (eval), the order of lens training sequences, and random
// weights.
#include <cstdint>

namespace fathom {

inline constexpr uint64_t kSplitMixGamma = 0x9E3779B97F4A7C15ull;  // 2^64 / golden ratio

// The mixing function alone: a well-spread 64-bit hash of x.
constexpr uint64_t splitmix64(uint64_t x) {
  x += kSplitMixGamma;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

// The generator: the state walks by the gamma and every output is splitmix64 of the state before
// the step.
struct SplitMix64 {
  uint64_t s;
  constexpr uint64_t next() {
    const uint64_t out = splitmix64(s);
    s += kSplitMixGamma;
    return out;
  }
};

}  // namespace fathom
