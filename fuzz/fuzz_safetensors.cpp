// libFuzzer target: arbitrary bytes as a safetensors file. The parser may only answer with a
// fathom::Error; every view it accepts must lie inside the input (ASan checks the touches).
#include <cstddef>
#include <cstdint>
#include <span>

#include "fathom/io/safetensors.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::span<const std::byte> bytes(reinterpret_cast<const std::byte*>(data), size);
  try {
    auto h = fathom::io::parse_safetensors_header(bytes, "fuzz.safetensors");
    volatile uint8_t sink = 0;
    for (const auto& e : h.tensors) {
      if (e.end == e.begin) continue;
      sink = sink ^ data[h.data_start + e.begin] ^ data[h.data_start + e.end - 1];
    }
    for (const auto& e : h.tensors) {  // accepted entries are self-consistent
      uint64_t numel = 1;
      for (auto d : e.shape) numel *= uint64_t(d);
      if (e.begin > e.end || e.end > h.data_size || numel * fathom::dtype_size(e.dtype) != e.end - e.begin)
        __builtin_trap();
    }
  } catch (const fathom::Error&) {
    // typed rejection: the expected outcome for malformed input
  }
  return 0;
}
