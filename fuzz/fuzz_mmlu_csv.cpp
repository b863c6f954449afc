// libFuzzer target: arbitrary bytes as an MMLU CSV file (both layouts: with the header of
// ../shared and the original hendrycks/test layout). The reader may only throw fathom::Error;
// every item it accepts has four choices, an answer 0-3 and a non-empty question.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "fathom/eval/mmlu.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  try {
    const auto items = fathom::eval::parse_mmlu_csv(text, "fuzz/x_test.csv", "x");
    for (const auto& it : items)
      if (it.choices.size() != 4 || it.answer < 0 || it.answer > 3 || it.question.empty()) __builtin_trap();
  } catch (const fathom::Error&) {
  }
  return 0;
}
