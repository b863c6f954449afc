// libFuzzer target: arbitrary text as the --ids option ("1,403,407"). Only a UsageError may come
// out; accepted text has one id per comma-separated item, each the item's value.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "fathom/core/id_list.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  try {
    const auto ids = fathom::parse_id_list(text);
    size_t items = 0;  // commas + 1, less a trailing comma, none for empty text
    for (char c : text) items += c == ',';
    if (!text.empty() && text.back() != ',') ++items;
    if (ids.size() != items) __builtin_trap();
    std::string back;  // the ids written back parse to the same ids
    for (size_t i = 0; i < ids.size(); ++i) back += (i ? "," : "") + std::to_string(ids[i]);
    if (fathom::parse_id_list(back) != ids) __builtin_trap();
  } catch (const fathom::UsageError&) {
  }
  return 0;
}
