// libFuzzer target: arbitrary bytes as BoolQ JSON Lines. The reader may only throw fathom::Error;
// accepted items have the two options and an answer 0 or 1.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "fathom/eval/boolq.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  try {
    const auto items = fathom::eval::parse_boolq_jsonl(text, "fuzz/dev.jsonl");
    for (const auto& it : items)
      if (it.choices.size() != 2 || (it.answer != 0 && it.answer != 1)) __builtin_trap();
  } catch (const fathom::Error&) {
  }
  return 0;
}
