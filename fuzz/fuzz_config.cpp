// libFuzzer target: arbitrary bytes as config.json and as generation_config.json. The parser may
// only answer with a fathom::Error (ConfigError, FormatError, UnsupportedError), never crash.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "fathom/io/config.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  try {
    auto c = fathom::io::parse_config(text, "fuzz/config.json");
    // Invariants every accepted config must satisfy (the model relies on them).
    if (c.hidden_size <= 0 || c.num_attention_heads <= 0 || c.num_key_value_heads <= 0 ||
        c.num_attention_heads % c.num_key_value_heads != 0 || c.head_dim <= 0 || c.head_dim % 2 != 0 ||
        c.vocab_size <= 0 || c.num_hidden_layers <= 0 || c.intermediate_size <= 0 || c.sliding_window < 0)
      __builtin_trap();
  } catch (const fathom::Error&) {
  }
  try {
    fathom::ModelConfig c;
    fathom::io::apply_generation_config(c, text, "fuzz/generation_config.json");
  } catch (const fathom::Error&) {
  }
  return 0;
}
