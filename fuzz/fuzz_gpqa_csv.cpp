// libFuzzer target: arbitrary bytes as a GPQA CSV (the file inside the zip, from bytes: the zip
// itself is unzip's to parse). The first byte picks the option order, text mode and seed. The
// reader may only throw fathom::Error; accepted items have four choices and the answer among them.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "fathom/eval/gpqa.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  using namespace fathom::eval;
  const GpqaOrder order = data[0] & 1 ? GpqaOrder::CorrectLast : GpqaOrder::Shuffled;
  const GpqaText mode = data[0] & 2 ? GpqaText::AsIs : GpqaText::Trimmed;
  const std::string_view text(reinterpret_cast<const char*>(data + 1), size - 1);
  try {
    const auto items = parse_gpqa_csv(text, "fuzz/gpqa.csv", order, data[0] >> 2, mode);
    for (const auto& it : items)
      if (it.choices.size() != 4 || it.answer < 0 || it.answer > 3) __builtin_trap();
  } catch (const fathom::Error&) {
  }
  return 0;
}
