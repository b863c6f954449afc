// libFuzzer target: arbitrary text as a --policies list (depth/policies.hpp). Only a UsageError
// may come out; every accepted policy's canonical name parses back to the same policy.
#include <cstddef>
#include <cstdint>
#include <string>

#include "fathom/depth/policies.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  try {
    const auto specs = fathom::parse_policies(text);
    for (const auto& p : specs) {
      const auto q = fathom::parse_policy(p.name);
      if (q.name != p.name || q.kind != p.kind || q.skip_pp != p.skip_pp || q.skip_rg != p.skip_rg ||
          q.index != p.index)
        __builtin_trap();
    }
  } catch (const fathom::UsageError&) {
  }
  return 0;
}
