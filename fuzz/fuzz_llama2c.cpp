// libFuzzer target: arbitrary bytes as a llama2.c checkpoint (.bin). The reader may only answer
// with a fathom::Error; every tensor it accepts must lie inside the input or in memory the store
// owns (ASan checks the touches), and its shape must match its byte count.
#include <cstddef>
#include <cstdint>
#include <span>

#include "fathom/io/llama2c.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::span<const std::byte> bytes(reinterpret_cast<const std::byte*>(data), size);
  try {
    const auto ck = fathom::io::parse_llama2c(bytes, "fuzz.bin");
    volatile uint8_t sink = 0;
    for (const auto& name : ck.weights.names()) {
      const auto& t = ck.weights.get(name);
      if (t.numel() * sizeof(float) != t.nbytes || t.nbytes == 0) __builtin_trap();
      const auto* p = reinterpret_cast<const uint8_t*>(t.data);
      sink = sink ^ p[0] ^ p[t.nbytes - 1];
    }
    const auto& c = ck.config;
    if (c.hidden_size <= 0 || c.num_hidden_layers <= 0 || c.vocab_size <= 0 || c.head_dim % 2 != 0 ||
        c.num_attention_heads % c.num_key_value_heads != 0)
      __builtin_trap();
  } catch (const fathom::Error&) {
    // typed rejection: the expected outcome for malformed input
  }
  return 0;
}
